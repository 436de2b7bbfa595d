"""metric_averaging: users - each user's targets averaged first, then over users."""

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_hiertcn.trainer import run_trainer
from recbole_hiertcn.trainer.user_averaging import per_user_means, row_values
from tests.conftest import build_model

METRICS = ["Recall", "MRR", "NDCG", "Hit"]
LAST_SESSION = {"split": {"last_session": "valid_and_test"}, "order": "TO", "mode": "full"}


def test_per_user_means():
    values = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert per_user_means(values, np.array([7, 7, 3])).tolist() == [[0.0, 0.0], [0.5, 1.0]]


def evaluate(config, model, test, averaging, spy=None):
    config["metric_averaging"] = averaging
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if spy is not None:
        original = trainer.evaluator.evaluate

        def capture(dataobject):
            spy.append(dataobject)
            return original(dataobject)

        trainer.evaluator.evaluate = capture
    return trainer.evaluate(test, load_best_model=False)


@pytest.mark.parametrize("model", ["HierTCN", "GRU4Rec"])
def test_users_average_each_users_targets_first(data_root, model):
    config, network, _, test = build_model(model, data_root, "tiny_sess", eval_args=LAST_SESSION,
                                           train_neg_sample_args=None, use_session_dataset=True,
                                           metrics=METRICS)
    structs = []
    by_target = evaluate(config, network, test, "targets", structs)
    by_user = evaluate(config, network, test, "users")
    users = torch.cat([batch[0]["user_id"] for batch in test]).numpy()
    assert len(set(users)) < len(users)  # several targets per user: the case that differs
    for name in ("recall", "mrr", "ndcg", "hit"):
        metric = next(m for key, m in _metrics(config).items() if key == name)
        rows = row_values(metric, structs[0])
        frame = pd.DataFrame(rows).assign(user=users)
        for k in (5, 10):
            expected = frame.groupby("user")[k - 1].mean().mean()
            assert by_user[f"{name}@{k}"] == pytest.approx(round(expected, 4), abs=1e-4)
            assert by_target[f"{name}@{k}"] == pytest.approx(round(rows[:, k - 1].mean(), 4),
                                                             abs=1e-4)
    assert by_user != by_target


def _metrics(config):
    from recbole.evaluator import Evaluator

    return Evaluator(config).metric_class


def test_one_target_per_user_gives_the_same_figures(data_root):
    config, network, _, test = build_model("HierTCN", data_root, "tiny_sess")  # LS
    assert evaluate(config, network, test, "users") == evaluate(config, network, test, "targets")


def test_unknown_averaging_names_the_key(data_root):
    config, network, _, test = build_model("HierTCN", data_root, "tiny_sess")
    with pytest.raises(ValueError, match="`metric_averaging`"):
        evaluate(config, network, test, "sessions")

"""Shared fixtures: tiny generated atomic datasets with sessions, and small model configs."""

import os
import socket

import numpy as np
import pytest

import recbole_hiertcn  # noqa: F401  (registers the plugin before any test builds a Config)

SESSION_GAP = 1800


def write_session_dataset(root, name, n_users=40, n_items=60, with_session_field=True, seed=0):
    """Write ``root/name/name.inter``: users with several sessions of a few items each.

    Items inside a session are 30-600 s apart and sessions 2 h - 3 days apart, so time gaps and
    session ids agree. Each user prefers a band of items, so there is something to learn.

    Returns the path of the dataset folder.
    """
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    header = ["user_id:token", "item_id:token", "timestamp:float"]
    if with_session_field:
        header.append("session_id:token")
    rows = []
    for user in range(1, n_users + 1):
        time = 1_500_000_000 + int(rng.integers(0, 86_400))
        favourite = int(rng.integers(0, n_items))
        for session in range(int(rng.integers(3, 7))):
            for _ in range(int(rng.integers(2, 6))):
                item = 1 + (favourite + int(rng.integers(-5, 6))) % n_items
                row = [str(user), str(item), str(time)]
                if with_session_field:
                    row.append(f"{user}_{session}")
                rows.append(row)
                time += int(rng.integers(30, 600))
            time += int(rng.integers(7_200, 3 * 86_400))
    with open(os.path.join(folder, f"{name}.inter"), "w", encoding="utf-8") as handle:
        handle.write("\t".join(header) + "\n")
        handle.writelines("\t".join(row) + "\n" for row in rows)
    return folder


def free_port():
    """A TCP port on the loopback address that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def small_config(data_path, dataset, with_session_field=True, **overrides):
    """Config dict for a fast HierTCN (or baseline) run on a tiny dataset."""
    fields = ["user_id", "item_id", "timestamp"] + (["session_id"] if with_session_field else [])
    config = {
        "data_path": str(data_path),
        "dataset": dataset,
        "load_col": {"inter": fields},
        "embedding_size": 16,
        "hidden_size": 16,
        "tcn_channels": [16, 16],
        "MAX_ITEM_LIST_LENGTH": 20,
        "epochs": 1,
        "train_batch_size": 64,
        "eval_batch_size": 256,
        "metrics": ["Recall", "MRR", "NDCG"],
        "topk": [5, 10],
        "valid_metric": "MRR@10",
        "show_progress": False,
        "use_gpu": False,
        "state": "ERROR",
        "seed": 7,
    }
    config.update(overrides)
    return config


def build_model(model, data_root, dataset="tiny_time", **overrides):
    """``config, model, train_data, test_data`` for a model on a tiny dataset, seeded,
    untrained, in eval mode (built-in sequential models get the session dataset with
    ``use_session_dataset=True``)."""
    from recbole.config import Config
    from recbole.data import data_preparation
    from recbole.utils import get_model, init_seed

    from recbole_hiertcn.quick_start import make_dataset

    config = Config(model=model, dataset=dataset, config_dict=small_config(
        data_root, dataset, dataset == "tiny_sess", **overrides))
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, make_dataset(config))
    init_seed(config["seed"], True)
    network = get_model(model)(config, train._dataset)
    network.eval()
    return config, network, train, test


def reload_and_test(model_file):
    """Reload a checkpoint the way a user does and test it: ``config, model, test_data`` and the
    test metrics, evaluated by the trainer a run of that model uses."""
    from recbole.quick_start import load_data_and_model  # the plugin's safe loader stands in
    from recbole_hiertcn.trainer import run_trainer

    config, model, _, _, _, test_data = load_data_and_model(str(model_file))
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return config, model, test_data, trainer.evaluate(test_data, load_best_model=False)


def assert_reload_reproduces(test_result, model_file):
    """The test metrics a run reported are those of the checkpoint it saved, reloaded."""
    *_, again = reload_and_test(model_file)
    assert dict(again) == dict(test_result)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A folder holding ``tiny_sess`` (with session ids) and ``tiny_time`` (timestamps only)."""
    root = tmp_path_factory.mktemp("datasets")
    write_session_dataset(str(root), "tiny_sess", with_session_field=True)
    write_session_dataset(str(root), "tiny_time", with_session_field=False)
    return root


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in a temporary folder: RecBole writes log/ and saved/ into the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    """RecBole's Config reads ``--key=value`` from sys.argv; keep pytest's own options out."""
    monkeypatch.setattr("sys.argv", ["pytest"])

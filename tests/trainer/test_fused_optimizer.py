"""fused_optimizer: the same Adam as RecBole's, to rounding; off by default; bad values refused."""

import pytest
import torch

from recbole_hiertcn.trainer import run_trainer
from tests.conftest import build_model


def trained_weights(data_root, tmp_path, model, **settings):
    config, network, train, _ = build_model(
        model, data_root, "tiny_sess", epochs=2, learning_rate=0.01, train_neg_sample_args=None,
        use_session_dataset=True, checkpoint_dir=str(tmp_path / "saved"), **settings)
    network.train()
    initial = {k: v.detach().clone() for k, v in network.state_dict().items()}
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, network)
    trainer.fit(train, None, saved=False)
    trained = {k: v.detach().clone() for k, v in network.state_dict().items()}
    return trainer.optimizer, initial, trained


@pytest.mark.parametrize("model, learner", [("HierTCN", "adam"), ("GRU4Rec", "adamw")])
def test_fused_adam_trains_to_the_same_weights(data_root, tmp_path, model, learner):
    loop, initial, expected = trained_weights(data_root, tmp_path, model, learner=learner)
    fused, _, weights = trained_weights(data_root, tmp_path, model, learner=learner,
                                        fused_optimizer=True)
    assert fused.defaults["fused"] is True and not loop.defaults.get("fused")
    assert type(fused) is type(loop)
    # two epochs moved the weights far more than the fused and looped updates differ
    assert max(float((expected[k] - initial[k]).abs().max()) for k in initial) > 1e-2
    for name, value in expected.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-5)


def test_other_learners_are_built_by_recbole(data_root, tmp_path):
    optimizer, _, _ = trained_weights(data_root, tmp_path, "HierTCN", learner="sgd",
                                   fused_optimizer=True)
    assert type(optimizer) is torch.optim.SGD


def test_a_bad_value_names_the_key(data_root, tmp_path):
    config, network, _, _ = build_model("HierTCN", data_root, "tiny_sess", epochs=1,
                                        checkpoint_dir=str(tmp_path / "saved"),
                                        fused_optimizer="yes")
    with pytest.raises(ValueError, match="`fused_optimizer`"):
        run_trainer(config["MODEL_TYPE"], config["model"])(config, network)

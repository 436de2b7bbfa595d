"""Step decay of the learning rate: the rate each epoch trains at, and bad settings."""

import pytest
from recbole.trainer import Trainer

from recbole_hiertcn.trainer import run_trainer
from recbole_hiertcn.trainer.lr_schedule import epoch_learning_rate
from tests.conftest import build_model


def test_rate_of_an_epoch():
    rates = [epoch_learning_rate(0.01, epoch, (2, 4), 0.2) for epoch in range(6)]
    assert rates == pytest.approx([0.01, 0.01, 0.002, 0.002, 0.0004, 0.0004])


@pytest.mark.parametrize("model", ["HierTCN", "GRU4Rec"])
def test_each_epoch_trains_at_its_scheduled_rate(data_root, monkeypatch, in_tmp_dir, model):
    config, network, train, _ = build_model(
        model, data_root, "tiny_sess", epochs=3, learning_rate=0.01, lr_decay_epochs=[1, 2],
        lr_decay_factor=0.5, train_neg_sample_args=None, use_session_dataset=True,
        checkpoint_dir=str(in_tmp_dir / "saved"))
    seen = []
    original = Trainer._train_epoch

    def spy(self, train_data, epoch_idx, *args, **kwargs):
        seen.append((epoch_idx, self.optimizer.param_groups[0]["lr"]))
        return original(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", spy)
    network.train()
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, network)
    trainer.fit(train, None, saved=False)
    assert seen == [(0, pytest.approx(0.01)), (1, pytest.approx(0.005)),
                    (2, pytest.approx(0.0025))]


@pytest.mark.parametrize("key, value", [("lr_decay_epochs", [0]), ("lr_decay_epochs", "ten"),
                                        ("lr_decay_factor", 1.5), ("lr_decay_factor", 0)])
def test_bad_schedules_name_the_key(data_root, in_tmp_dir, key, value):
    settings = {"lr_decay_epochs": [1], key: value}
    config, network, _, _ = build_model("HierTCN", data_root, "tiny_sess", epochs=1,
                                            checkpoint_dir=str(in_tmp_dir / "saved"), **settings)
    with pytest.raises(ValueError, match=f"`{key}`"):  # refused before any training
        run_trainer(config["MODEL_TYPE"], config["model"])(config, network)

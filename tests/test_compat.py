"""The compatibility workarounds: numpy aliases, checkpoint loading, pandas guard, anomaly mode."""

import os
import pickle

import numpy as np
import pytest
import torch

import recbole.trainer.trainer as recbole_trainer

from recbole_hiertcn import compat


class Payload:
    """Unpickling this runs code (it would call os.system in a real attack)."""

    def __reduce__(self):
        return (os.getenv, ("HOME",))


def test_numpy_aliases_recbole_and_ray_need_are_present():
    for name in ("float_", "complex_", "unicode_", "bool8"):
        assert hasattr(np, name)
    assert np.float_ is np.float64 and np.bool8 is np.bool_


def test_recbole_config_runs_its_numpy_compatibility_code():
    from recbole.config import Config
    Config(model="HierTCN", dataset="ml-100k")  # touches np.float_ on every Config()


def test_plain_torch_load_still_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert torch.load is not compat.load_recbole_checkpoint


def test_checkpoint_loader_refuses_foreign_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"config": Payload()}, path, pickle_protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="os.getenv"):
        compat.load_recbole_checkpoint(path)


def test_checkpoint_loader_reads_recbole_objects(tmp_path):
    from recbole.config import Config
    config = Config(model="HierTCN", dataset="ml-100k")
    path = tmp_path / "ckpt.pth"
    torch.save({"config": config, "state_dict": {"w": torch.ones(2)}}, path, pickle_protocol=4)
    names = compat.checkpoint_globals(path)
    assert "recbole.config.configurator.Config" in names
    loaded = compat.load_recbole_checkpoint(path)
    assert loaded["config"]["model"] == "HierTCN"
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_only_recbole_trainer_module_uses_the_checkpoint_loader():
    assert recbole_trainer.torch.load is compat.load_recbole_checkpoint
    assert recbole_trainer.torch.nn is torch.nn
    assert torch.load is not compat.load_recbole_checkpoint


def test_trust_for_load_data_and_model_is_limited_to_its_file(tmp_path):
    trusted, other = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"x": Payload()}, other)
    with compat._checkpoint_path_trusted(trusted):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(other)
    assert torch.load.__module__ == "torch.serialization"


def test_pandas_3_is_refused(monkeypatch):
    import pandas
    monkeypatch.setattr(pandas, "__version__", "3.0.1")
    with pytest.raises(ImportError, match="pandas<3"):
        compat.check_pandas()


def test_recbole_sine_import_does_not_leave_anomaly_detection_on():
    import recbole.model.sequential_recommender.sine  # noqa: F401  (turns it on at import)
    assert not torch.is_anomaly_enabled()


def test_after_import_patches_a_module_when_it_is_first_imported(tmp_path, monkeypatch):
    (tmp_path / "late_module_for_test.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    compat.after_import("late_module_for_test", lambda m: setattr(m, "VALUE", 2))
    import late_module_for_test
    assert late_module_for_test.VALUE == 2

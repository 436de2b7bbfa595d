"""The compatibility workarounds: numpy aliases, checkpoint loading, pandas guard, anomaly mode."""

import os
import pickle

import numpy as np
import pytest
import torch

import recbole.trainer.trainer as recbole_trainer

from recbole_hiertcn import compat
from recbole_hiertcn.checkpoint import load_checkpoint


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
    assert torch.load is torch.serialization.load


def test_only_recbole_trainer_module_gets_the_checkpoint_loader():
    assert recbole_trainer.torch.load is load_checkpoint
    assert recbole_trainer.torch.nn is torch.nn
    assert torch.load is torch.serialization.load


def test_recbole_load_data_and_model_is_the_plugins_safe_one():
    import recbole.quick_start
    import recbole.quick_start.quick_start as recbole_quick_start

    from recbole_hiertcn import quick_start

    assert recbole.quick_start.load_data_and_model is quick_start.load_data_and_model
    assert recbole_quick_start.load_data_and_model is quick_start.load_data_and_model


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


def _random_entries(seed=0, shape=(30, 40), count=200):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, shape[0], count)
    cols = rng.integers(0, shape[1], count)
    values = rng.integers(1, 5, count).astype(np.float32)
    # numpy integer keys, as RecBole builds them from a coo_matrix's row and col
    return dict(zip(zip(rows, cols), values))


def test_dok_update_sets_the_same_entries_as_element_wise_assignment():
    import scipy.sparse
    shape = (30, 40)
    entries = _random_entries(shape=shape)
    bulk = compat.DokMatrixWithUpdate(shape, dtype=np.float32)
    bulk[0, 0] = 7.0  # an entry set before the update is kept
    bulk._update(entries)
    reference = scipy.sparse.dok_matrix(shape, dtype=np.float32)
    reference[0, 0] = 7.0
    for (row, col), value in entries.items():
        reference[row, col] = value
    assert bulk.nnz == reference.nnz
    assert np.array_equal(bulk.toarray(), reference.toarray())
    assert np.array_equal(bulk.tocsr().toarray(), reference.toarray())
    assert (bulk != reference).nnz == 0


def test_scipy_dok_matrix_itself_is_untouched():
    import scipy.sparse
    import scipy.sparse._dok
    assert scipy.sparse.dok_matrix is scipy.sparse._dok.dok_matrix
    assert "_update" not in vars(scipy.sparse.dok_matrix)
    assert getattr(scipy.sparse.dok_matrix, "_update", None) is not \
        compat.DokMatrixWithUpdate._update


def test_only_recbole_graph_modules_get_the_scipy_stand_in():
    import importlib

    import scipy.sparse
    import recbole.model.general_recommender.itemknn as itemknn
    if hasattr(scipy.sparse.dok_matrix, "_update"):
        pytest.skip("this scipy still has dok_matrix._update; nothing is patched")
    for name in compat.DOK_UPDATE_MODULES:
        module = importlib.import_module(name)
        assert module.sp is not scipy.sparse
        assert module.sp.dok_matrix is compat.DokMatrixWithUpdate
        assert module.sp.coo_matrix is scipy.sparse.coo_matrix  # everything else is scipy's
    assert itemknn.sp is scipy.sparse


def test_lightgcn_builds_its_normalized_adjacency_matrix(data_root, in_tmp_dir):
    from recbole.config import Config
    from recbole.data import create_dataset
    from recbole.model.general_recommender import LightGCN
    config = Config(model="LightGCN", config_dict={
        "data_path": str(data_root), "dataset": "tiny_time",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "embedding_size": 8, "use_gpu": False, "state": "ERROR", "seed": 7,
    })
    dataset = create_dataset(config)
    model = LightGCN(config, dataset)
    adjacency = model.norm_adj_matrix.to_dense().numpy().astype(np.float64)
    # D^-1/2 A D^-1/2 of the symmetric user-item graph, computed densely here
    inter = dataset.inter_matrix(form="coo").astype(np.float64).toarray()
    n_users, n_items = inter.shape
    graph = np.zeros((n_users + n_items, n_users + n_items))
    graph[:n_users, n_users:] = (inter > 0)
    graph[n_users:, :n_users] = (inter > 0).T
    scale = np.power(graph.sum(axis=1) + 1e-7, -0.5)
    expected = scale[:, None] * graph * scale[None, :]
    assert adjacency.shape == expected.shape
    assert np.abs(adjacency).sum() > 0
    np.testing.assert_allclose(adjacency, expected, rtol=1e-5, atol=1e-6)


def test_after_import_runs_every_callback_waiting_for_a_module_once(tmp_path, monkeypatch):
    (tmp_path / "late_module_two_callbacks.py").write_text("SEEN = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def first(module):
        module.SEEN.append("first")

    compat.after_import("late_module_two_callbacks", first)
    compat.after_import("late_module_two_callbacks", lambda m: m.SEEN.append("second"))
    compat.after_import("late_module_two_callbacks", first)  # apply() called again
    import late_module_two_callbacks
    assert late_module_two_callbacks.SEEN == ["first", "second"]


def test_recbole_folder_creation_tolerates_a_folder_made_meanwhile(tmp_path, monkeypatch):
    """Two runs started together: the other run creates log/ between RecBole's existence check
    and its makedirs. RecBole's own ensure_dir then fails; the modules that create folders use
    the race-free one, and recbole.utils.ensure_dir itself is untouched."""
    import importlib

    import recbole.utils.utils as recbole_utils
    from recbole_hiertcn import compat

    folder = tmp_path / "log"
    monkeypatch.setattr("os.path.exists", lambda path: False)  # the check said: not there yet
    folder.mkdir()  # ... and then the other run made it
    with pytest.raises(FileExistsError):
        recbole_utils.ensure_dir(str(folder))
    for name in compat.ENSURE_DIR_MODULES:
        module = importlib.import_module(name)
        assert module.ensure_dir is compat.ensure_dir, name
        module.ensure_dir(str(folder))  # no error
    assert recbole_utils.ensure_dir is not compat.ensure_dir

"""Checkpoints load through an exact allowlist: real ones load, hostile ones run nothing.

Every hostile file below would run code under plain unpickling; each one writes a marker file
(or would, for the routes that need a compiler or a network), and the tests check that the
marker never appears while the load is refused through every door a user has: the plugin's
loader, RecBole's ``load_data_and_model``, the trainers' best-model reload and resume.
"""

import io
import os
import pickle
import threading
import zipfile

import numpy as np
import pytest
import torch
import yaml

from recbole.trainer import Trainer

from recbole_hiertcn import checkpoint
from recbole_hiertcn.checkpoint import CheckpointRefused, load_checkpoint
from recbole_hiertcn.model.sequential_recommender.hiertcn import HierTCN
from recbole_hiertcn.quick_start import run
from recbole_hiertcn.trainer import HierTCNTrainer

from tests.conftest import small_config


class Reduce:
    """Pickles as ``func(*args)``: what a hostile checkpoint's payload looks like."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_command(marker):
    return f"touch {marker}"


def _python_writing(marker):
    return f"open({str(marker)!r}, 'w').write('ran')"


def hostile_payloads(tmp_path, marker):
    """name -> object whose unpickling runs code (each writes ``marker`` if it runs)."""
    module_file = tmp_path / "evil_module.py"
    module_file.write_text(_python_writing(marker) + "\n")
    yaml_document = f"!!python/object/apply:os.system [{_touch_command(marker)!r}]"
    inner = io.BytesIO()
    torch.save(Reduce(os.system, _touch_command(marker)), inner)
    evil_yaml = tmp_path / "evil.yaml"
    evil_yaml.write_text(yaml_document + "\n")

    from numpy.testing._private.utils import runstring
    from recbole.config import Config
    from torch import hub, storage
    from torch.utils import cpp_extension

    return {
        "os.system": Reduce(os.system, _touch_command(marker)),
        "yaml.unsafe_load": Reduce(yaml.unsafe_load, yaml_document),
        "numpy runstring": Reduce(runstring, _python_writing(marker), {}),
        "torch.hub module loader": Reduce(hub._import_module, "evil_module",
                                          str(module_file)),
        "cpp_extension.load_inline": Reduce(cpp_extension.load_inline, "evil",
                                            "int x = 0;"),
        "nested full unpickling (torch.storage._load_from_bytes)": Reduce(
            storage._load_from_bytes, inner.getvalue()),
        "nested pickle.loads": Reduce(pickle.loads,
                                      pickle.dumps(Reduce(os.system, _touch_command(marker)))),
        "builtins.exec": Reduce(exec, _python_writing(marker)),
        "builtins.getattr": Reduce(getattr, np.ndarray, "tofile"),
        "tensor rebuild around os.system": Reduce(torch._tensor._rebuild_from_type_v2, os.system,
                                                  torch.Tensor, (_touch_command(marker),), {}),
        # Allowed classes called with arguments the file chose (a checkpoint only names them).
        "Config called on a hostile yaml": Reduce(Config, "HierTCN", "ml-100k",
                                                  [str(evil_yaml)]),
        "model class called": Reduce(HierTCN, None, None),
        "tensor rebuild calling Config": Reduce(torch._tensor._rebuild_from_type_v2, Config,
                                                torch.Tensor, ("HierTCN", "ml-100k",
                                                               [str(evil_yaml)]), {}),
    }


PAYLOAD_NAMES = [
    "os.system", "yaml.unsafe_load", "numpy runstring", "torch.hub module loader",
    "cpp_extension.load_inline", "nested full unpickling (torch.storage._load_from_bytes)",
    "nested pickle.loads", "builtins.exec", "builtins.getattr",
    "tensor rebuild around os.system", "Config called on a hostile yaml", "model class called",
    "tensor rebuild calling Config",
]


def write_hostile(tmp_path, name, protocol=4):
    """A checkpoint-shaped file whose ``config`` is the payload; returns (path, marker)."""
    marker = tmp_path / f"marker-{PAYLOAD_NAMES.index(name)}"
    payload = hostile_payloads(tmp_path, marker)[name]
    path = tmp_path / f"hostile-{PAYLOAD_NAMES.index(name)}.pth"
    torch.save({"config": payload, "state_dict": {}, "epoch": 0}, path, pickle_protocol=protocol)
    return path, marker


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """One tiny HierTCN run: its checkpoint, and the data and model rebuilt from it."""
    folder = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = run("HierTCN", "tiny_sess",
                     config_dict=small_config(data_root, "tiny_sess", epochs=2))
    finally:
        os.chdir(cwd)
    return {"model_file": os.path.join(folder, result["model_file"]), "result": result}


# ----------------------------------------------------------------------------- real checkpoints
def test_a_real_checkpoint_loads_with_its_config_and_weights(trained):
    loaded = load_checkpoint(trained["model_file"])
    assert loaded["config"]["model"] == "HierTCN"
    assert loaded["config"].model_class.__name__ == "HierTCN"
    assert any(isinstance(v, torch.Tensor) for v in loaded["state_dict"].values())
    assert loaded["optimizer"]["state"]  # Adam moments: tensors inside plain dicts


def test_reloaded_model_predicts_exactly_what_it_predicted_before_saving(trained, in_tmp_dir):
    from recbole.quick_start import load_data_and_model

    config, model, _, _, _, test_data = load_data_and_model(trained["model_file"])
    trainer = HierTCNTrainer(config, model)
    result = trainer.evaluate(test_data, load_best_model=False)
    assert dict(result) == pytest.approx(dict(trained["result"]["test_result"]), abs=1e-12)


def test_builtin_model_checkpoint_through_recbole_load_data_and_model(data_root, in_tmp_dir):
    from recbole.quick_start import load_data_and_model

    result = run("GRU4Rec", "tiny_sess", config_dict=small_config(data_root, "tiny_sess"))
    config, model, *_ = load_data_and_model(result["model_file"])
    assert type(model).__name__ == "GRU4Rec" and config["model"] == "GRU4Rec"


def test_checkpoint_in_recboles_own_format_still_loads(trained, in_tmp_dir):
    """A file RecBole's trainer writes (what this plugin wrote before run ids) loads too."""
    from recbole.quick_start import load_data_and_model

    config, model, _, _, _, test_data = load_data_and_model(trained["model_file"])
    plain = Trainer(config, model)  # RecBole's own trainer and checkpoint format
    plain.saved_model_file = str(in_tmp_dir / "recbole-format.pth")
    plain._save_checkpoint(0, verbose=False)
    assert "run_id" not in load_checkpoint(plain.saved_model_file)
    assert plain.evaluate(test_data)  # RecBole's trainer reloads it through the safe loader
    reloaded = load_data_and_model(plain.saved_model_file)[1]
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(),
                                                 model.state_dict().values()))


def test_plain_tensor_files_at_torchs_default_protocol_load(tmp_path):
    """torch.save's default protocol 2 writes Python 2 names (``__builtin__.set``) and bytes
    through ``_codecs.encode``; parameters, dtypes and sizes rebuild."""
    path = tmp_path / "plain.pth"
    data = {"w": torch.nn.Parameter(torch.arange(6.0).view(2, 3)), "ids": torch.tensor([1, 2]),
            "half": torch.ones(2, dtype=torch.bfloat16), "set": {1, 2}, "bytes": b"\x00\xff",
            "size": torch.Size([2, 3]), "dtype": torch.float64, "device": torch.device("cpu"),
            "array": np.arange(3.0), "scalar": np.float64(0.5), "complex": 1 + 2j}
    torch.save(data, path)
    loaded = load_checkpoint(path)
    assert isinstance(loaded["w"], torch.nn.Parameter) and torch.equal(loaded["w"], data["w"])
    assert loaded["half"].dtype == torch.bfloat16 and loaded["set"] == {1, 2}
    assert loaded["bytes"] == b"\x00\xff" and loaded["size"] == torch.Size([2, 3])
    assert loaded["dtype"] is torch.float64 and np.array_equal(loaded["array"], np.arange(3.0))
    assert loaded["scalar"] == 0.5 and loaded["complex"] == 1 + 2j


def test_numpy_1_names_of_scalars_and_arrays_are_understood():
    """numpy 1 pickled scalars and arrays under ``numpy.core.multiarray``."""
    data = pickle.dumps({"s": np.float64(2.5), "a": np.arange(4)}, protocol=2)
    renamed = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert renamed != data
    loaded = checkpoint._pickle_module({}).loads(renamed)
    assert loaded["s"] == 2.5 and np.array_equal(loaded["a"], np.arange(4))


# ----------------------------------------------------------------------------- hostile files
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_hostile_checkpoint_is_refused_by_the_plugin_loader(tmp_path, name):
    path, marker = write_hostile(tmp_path, name)
    with pytest.raises(CheckpointRefused):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_hostile_checkpoint_is_refused_at_torchs_default_protocol(tmp_path, name):
    path, marker = write_hostile(tmp_path, name, protocol=2)
    with pytest.raises(CheckpointRefused):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "yaml.unsafe_load", "numpy runstring",
                                  "torch.hub module loader"])
def test_each_payload_really_runs_code_when_unpickled_without_the_allowlist(tmp_path, name):
    """The payloads are real: full unpickling runs them (so the refusals above mean something)."""
    path, marker = write_hostile(tmp_path, name)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_refusal_names_the_global_and_how_to_load_a_trusted_file(tmp_path):
    path, _ = write_hostile(tmp_path, "yaml.unsafe_load")
    with pytest.raises(CheckpointRefused) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and "yaml.unsafe_load" in message
    assert "allow=" in message and "weights_only=False" in message


@pytest.mark.parametrize("name", ["os.system", "yaml.unsafe_load", "numpy runstring",
                                  "nested full unpickling (torch.storage._load_from_bytes)"])
def test_hostile_checkpoint_is_refused_by_load_data_and_model(tmp_path, in_tmp_dir, name):
    from recbole.quick_start import load_data_and_model

    path, marker = write_hostile(tmp_path, name)
    with pytest.raises(CheckpointRefused):
        load_data_and_model(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "yaml.unsafe_load", "torch.hub module loader"])
def test_hostile_checkpoint_is_refused_by_the_trainers_reload_and_resume(trained, tmp_path,
                                                                          in_tmp_dir, name):
    from recbole.quick_start import load_data_and_model

    config, model, _, _, _, test_data = load_data_and_model(trained["model_file"])
    path, marker = write_hostile(tmp_path, name)
    plugin = HierTCNTrainer(config, model)
    plugin.saved_model_file = str(path)
    with pytest.raises(CheckpointRefused):
        plugin.evaluate(test_data)  # best-model reload of the plugin's trainer
    with pytest.raises(CheckpointRefused):
        plugin.resume_checkpoint(path)
    plain = Trainer(config, model)  # RecBole's own trainer, as run_recbole uses it
    with pytest.raises(CheckpointRefused):
        plain.evaluate(test_data, model_file=str(path))
    with pytest.raises(CheckpointRefused):
        plain.resume_checkpoint(str(path))
    assert not marker.exists()


def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with zipfile.ZipFile(path) as archive:
        assert any(n.endswith("constants.pkl") for n in archive.namelist())
    with pytest.raises(CheckpointRefused, match="TorchScript"):
        load_checkpoint(path)


class _Custom:
    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return _Custom, (self.value,)


def test_allow_admits_an_exact_class_and_nothing_else(tmp_path):
    path = tmp_path / "custom.pth"
    torch.save({"x": _Custom(3)}, path)
    with pytest.raises(CheckpointRefused, match="_Custom"):
        load_checkpoint(path)
    assert load_checkpoint(path, allow=[_Custom])["x"].value == 3
    hostile, marker = write_hostile(tmp_path, "os.system")
    with pytest.raises(CheckpointRefused):
        load_checkpoint(hostile, allow=[_Custom])
    assert not marker.exists()


# ----------------------------------------------------------------------------- no global switch
_seen_during_load = []


def _record_torch_load(value):
    _seen_during_load.append((torch.load, threading.current_thread().name))
    return value


def test_torch_load_is_never_replaced_not_even_during_a_load(tmp_path):
    path = tmp_path / "probe.pth"
    torch.save({"probe": Reduce(_record_torch_load, 1)}, path)
    _seen_during_load.clear()
    assert load_checkpoint(path, allow=[_record_torch_load])["probe"] == 1
    assert _seen_during_load == [(torch.serialization.load, "MainThread")]
    assert torch.load is torch.serialization.load


def test_another_thread_keeps_torchs_default_while_load_data_and_model_runs(trained, tmp_path,
                                                                            in_tmp_dir):
    """While one thread loads a RecBole checkpoint, torch.load in another thread still refuses
    an arbitrary pickle (weights_only) - there is no process-wide switch, even briefly."""
    from recbole.quick_start import load_data_and_model

    hostile, marker = write_hostile(tmp_path, "os.system")
    stop, refusals = threading.Event(), []

    def other_thread():
        while not stop.is_set():
            try:
                torch.load(hostile)
            except pickle.UnpicklingError:
                refusals.append(True)
            else:  # pragma: no cover - the failure this test exists to catch
                refusals.append(False)

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        load_data_and_model(trained["model_file"])
    finally:
        stop.set()
        worker.join()
    assert refusals and all(refusals)
    assert not marker.exists()


# ------------------------------------------------------------------ paths inside a checkpoint
def _pickled_command(path, marker):
    """A file RecBole would unpickle (a saved dataset or split loaders) that runs a command."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Reduce(os.system, _touch_command(marker))))
    return path


def _with_config(checkpoint_file, path, **config):
    """A copy of a genuine checkpoint with config keys changed (only allow-listed globals)."""
    state = load_checkpoint(checkpoint_file)
    for key, value in config.items():
        state["config"][key] = value
    torch.save(state, path, pickle_protocol=4)
    return str(path)


def _export(checkpoint_file, output, *options):
    from recbole_hiertcn.serving.__main__ import main as serving_main

    assert serving_main(["export", checkpoint_file, "--output", str(output), *options]) == 0
    from recbole_hiertcn.serving import load_artifact

    return load_artifact(output).version


def test_a_checkpoint_naming_a_pickle_file_loads_and_exports_without_reading_it(
        trained, tmp_path, in_tmp_dir):
    from recbole.quick_start import load_data_and_model

    marker = tmp_path / "ran"
    evil = _pickled_command(tmp_path / "evil.pth", marker)
    crafted = _with_config(trained["model_file"], tmp_path / "crafted.pth",
                           dataloaders_save_path=str(evil), dataset_save_path=str(evil),
                           checkpoint_dir=str(tmp_path))
    config, *_ = load_data_and_model(crafted)
    assert config["dataloaders_save_path"] is None and config["dataset_save_path"] is None
    assert config["checkpoint_dir"] == "saved"
    _export(crafted, tmp_path / "plain")
    _export(crafted, tmp_path / "with-states", "--with-states")  # rebuilds the dataset
    assert not marker.exists()
    with open(evil, "rb") as handle:  # the payload is live: plain unpickling runs it
        pickle.load(handle)
    assert marker.exists()


def test_files_planted_under_recboles_default_names_are_never_unpickled(trained, tmp_path,
                                                                        in_tmp_dir):
    from recbole.quick_start import load_data_and_model

    marker = tmp_path / "ran"
    dataset = load_checkpoint(trained["model_file"])["config"]["dataset"]
    for name in (f"{dataset}-for-HierTCN-dataloader.pth", f"{dataset}-SequentialDataset.pth",
                 f"{dataset}-SessionDataset.pth", f"{dataset}-Dataset.pth"):
        _pickled_command(in_tmp_dir / "saved" / name, marker)
    load_data_and_model(trained["model_file"])
    _export(trained["model_file"], tmp_path / "served", "--with-states")
    assert not marker.exists()


def test_a_checkpoint_exports_without_its_dataset_as_it_does_with_it(trained, tmp_path,
                                                                     in_tmp_dir):
    """The checkpoint carries the token maps, session rule and history window: the export
    needs no data at all, and is the very export the rebuilt dataset gives (same version)."""
    from recbole_hiertcn.quick_start import load_data_and_model
    from recbole_hiertcn.serving.export import export_model

    _, model, data, *_ = load_data_and_model(trained["model_file"])
    with_dataset = export_model(model.eval(), data, tmp_path / "from-dataset")
    no_data = _with_config(trained["model_file"], tmp_path / "no-data.pth",
                           data_path=str(tmp_path / "nowhere"))
    assert _export(no_data, tmp_path / "from-checkpoint") == with_dataset
    # a checkpoint of an older version, without the serving description: the dataset is read
    state = load_checkpoint(trained["model_file"])
    del state["serving"]
    torch.save(state, tmp_path / "older.pth", pickle_protocol=4)
    assert _export(str(tmp_path / "older.pth"), tmp_path / "from-older") == with_dataset


def test_recboles_pretrained_file_loaders_go_through_the_allowlist(tmp_path):
    """RecBole models that read a file named in their config when built (NeuMF, S3Rec, ...)
    read it with the safe loader; LDiffRec's np.load never unpickles."""
    from recbole.model.general_recommender import ldiffrec, neumf
    from recbole.model.sequential_recommender import s3rec

    from recbole_hiertcn.compat import PRETRAINED_LOADING_MODULES

    assert {neumf.__name__, s3rec.__name__} <= set(PRETRAINED_LOADING_MODULES)
    path, marker = write_hostile(tmp_path, "os.system")
    for module in (neumf, s3rec):
        with pytest.raises(CheckpointRefused):
            module.torch.load(str(path), map_location="cpu")
    assert torch.load is not load_checkpoint
    array = tmp_path / "item_emb.npy"
    np.save(array, np.array([Reduce(os.system, _touch_command(marker))], dtype=object),
            allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        ldiffrec.np.load(str(array), allow_pickle=True)
    assert ldiffrec.np.load(_plain_array(tmp_path)).shape == (3, 2)
    assert not marker.exists()


def _plain_array(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros((3, 2), np.float32))
    return str(path)


def test_a_checkpoint_exports_without_importing_recbole_to_the_same_artifact(trained, tmp_path):
    """Serving reads a HierTCN checkpoint as data (``read_checkpoint_record``): ``export`` in a
    fresh interpreter loads no RecBole and none of the training stack, and writes the very
    artifact (same version) the full load gives."""
    import subprocess
    import sys

    from recbole_hiertcn.serving import load_artifact
    from recbole_hiertcn.serving.export import export_checkpoint

    # the full way: the record reader refuses, so export falls back to load_checkpoint
    monkey = pytest.MonkeyPatch()
    monkey.setattr(checkpoint, "read_checkpoint_record",
                   lambda *a, **k: (_ for _ in ()).throw(CheckpointRefused("forced")))
    try:
        full = export_checkpoint(trained["model_file"], tmp_path / "full")
    finally:
        monkey.undo()
    code = (
        "import sys\n"
        "from recbole_hiertcn.serving.__main__ import main\n"
        f"assert main(['export', {trained['model_file']!r}, '--output', "
        f"{str(tmp_path / 'lean')!r}]) == 0\n"
        "loaded = sorted(m for m in sys.modules if m == 'recbole' or m.startswith('recbole.')\n"
        "                or m in ('recbole_hiertcn.registry', 'recbole_hiertcn.compat',\n"
        "                         'recbole_hiertcn.trainer', 'recbole_hiertcn.quick_start'))\n"
        "print(loaded)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert load_artifact(tmp_path / "lean").version == full


def test_the_record_reader_names_recboles_globals_as_inert_records_only(trained, tmp_path):
    record = checkpoint.read_checkpoint_record(trained["model_file"])
    config = record["config"]
    assert isinstance(config, checkpoint.ConfigRecord)
    assert config["model"] == "HierTCN" and "model" in config and config["no such key"] is None
    assert config.model_class == checkpoint.ClassRecord(
        "recbole_hiertcn.model.sequential_recommender.hiertcn", "HierTCN")
    assert isinstance(config["MODEL_TYPE"], checkpoint.EnumRecord)
    full = load_checkpoint(trained["model_file"])
    assert config["MODEL_TYPE"].value == full["config"]["MODEL_TYPE"].value
    assert record["state_dict"].keys() == full["state_dict"].keys()
    assert all(torch.equal(record["state_dict"][k], full["state_dict"][k])
               for k in full["state_dict"])


@pytest.mark.parametrize("payload", [
    lambda marker: Reduce(os.system, _touch_command(marker)),
    # a call, with the file's arguments, of a class the record reader only names: RecBole's
    # Config (read as a ConfigRecord, never called)
    lambda marker: Reduce(__import__("recbole.config", fromlist=["Config"]).Config, "HierTCN"),
])
def test_the_record_reader_refuses_what_the_full_loader_refuses(tmp_path, payload):
    marker = tmp_path / "ran"
    path = tmp_path / "crafted.pth"
    torch.save({"config": payload(marker)}, path)
    with pytest.raises(CheckpointRefused, match="refusing to load it"):
        checkpoint.read_checkpoint_record(str(path))
    assert not marker.exists()


def test_the_record_reader_refuses_another_models_class(tmp_path):
    """Only HierTCN's class may be named: a GRU4Rec checkpoint is refused by the record reader
    (export then takes the full loader and says it exports HierTCN only)."""
    from recbole.model.sequential_recommender.gru4rec import GRU4Rec

    path = tmp_path / "other.pth"
    torch.save({"config": {"model_class": GRU4Rec}}, path)
    with pytest.raises(CheckpointRefused, match="GRU4Rec"):
        checkpoint.read_checkpoint_record(str(path))

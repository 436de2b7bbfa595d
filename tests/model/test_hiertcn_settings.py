"""HierTCN's settings: read once, defaults only from properties/model/HierTCN.yaml, bad values
named; the core and the serving side import no RecBole; checkpoints saved before the core was
split out still load."""

import ast
import os

import pytest
import torch
import yaml

import recbole_hiertcn
from recbole_hiertcn.model.hiertcn_settings import HierTCNSettings
from recbole_hiertcn.property_files import model_yaml
from tests.conftest import build_model

PACKAGE = os.path.dirname(os.path.abspath(recbole_hiertcn.__file__))


def yaml_values():
    with open(model_yaml("HierTCN"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_every_setting_has_its_default_in_the_yaml_and_nowhere_else():
    values = yaml_values()
    settings = HierTCNSettings.from_mapping({})
    for key, value in settings.to_dict().items():
        assert key in values, f"{key} has no default in HierTCN.yaml"
        expected = values[key]
        assert value == (float(expected) if isinstance(value, float) and expected is not None
                         else expected), key


def test_a_changed_yaml_default_is_what_the_settings_read(monkeypatch):
    import recbole_hiertcn.model.hiertcn_settings as module

    changed = dict(yaml_values(), kernel_size=7, hinge_margin=0.25, session_gap=60)
    monkeypatch.setattr(module, "yaml_defaults", lambda: changed)
    settings = HierTCNSettings.from_mapping({"hidden_size": 9})
    assert (settings.kernel_size, settings.hinge_margin, settings.session_gap,
            settings.hidden_size) == (7, 0.25, 60.0, 9)


@pytest.mark.parametrize("key, value, message", [
    ("kernel_size", 0, "kernel_size` must be a positive integer"),
    ("dilations", [1], "dilations` needs one entry per TCN block"),
    ("gap_decay", -5, "gap_decay` must be a positive number of seconds"),
    ("hinge_margin", None, "hinge_margin` must be a number"),
    ("freeze_pretrained", "yes", "freeze_pretrained` must be True or False"),
    ("output_mode", "embedding", "output_mode` 'embedding' regresses into the pretrained"),
    ("scoring", "cosine", "scoring` must be one of untied, tied"),
    ("pretrained_item_field", 3, "pretrained_item_field` must be a field name"),
])
def test_bad_values_are_refused_naming_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        HierTCNSettings.from_mapping({key: value})


def test_settings_survive_a_json_round_trip():
    import json

    settings = HierTCNSettings.from_mapping({"tcn_channels": [8, 16], "gap_decay": 30,
                                             "dilations": [1, 4]})
    assert HierTCNSettings.from_mapping(json.loads(json.dumps(settings.to_dict()))) == settings
    assert settings.receptive_field == 1 + 4 * 5


@pytest.mark.parametrize("module", [
    "model/hiertcn_core.py", "model/hiertcn_settings.py", "model/layers.py",
    "model/item_encoder.py", "model/config_values.py", "property_files.py",
    "serving/artifact.py", "serving/state.py", "serving/stream.py", "serving/store.py",
    "serving/retrieval.py", "serving/redis_store.py", "serving/service.py",
])
def test_the_core_and_serving_modules_import_no_recbole(module):
    with open(os.path.join(PACKAGE, module), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            assert not name.startswith("recbole.") and name != "recbole", (module, name)
            if name.startswith("recbole_hiertcn."):
                assert not name.startswith(("recbole_hiertcn.data", "recbole_hiertcn.trainer",
                                            "recbole_hiertcn.registry",
                                            "recbole_hiertcn.quick_start")), (module, name)


def test_a_checkpoint_saved_before_the_core_split_still_loads(data_root):
    """Its keys name the submodules without the ``core.`` prefix."""
    _, model, _, _ = build_model("HierTCN", data_root, "tiny_sess")
    _, fresh, _, _ = build_model("HierTCN", data_root, "tiny_sess", seed=99)
    old_style = {key.replace("core.", "", 1): value.clone()
                 for key, value in model.state_dict().items()}
    assert not any(key.startswith("core.") for key in old_style)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                      model.state_dict().values()))
    fresh.load_state_dict(old_style)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                  model.state_dict().values()))

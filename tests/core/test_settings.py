"""HierTCN's and HRNN's settings: read once, every default written once (in the settings
classes; ``properties/model/*.yaml`` repeat them for RecBole, held equal here), bad values
named."""

import dataclasses
import os

import pytest
import yaml

from recbole_hiertcn.core.session_rule import DEFAULT_SESSION_GAP
from recbole_hiertcn.core.settings import HierTCNSettings, HRNNSettings
from recbole_hiertcn.property_files import model_yaml, properties_dir

# Keys the session boundary reads for every session-aware model, and their defaults.
SESSION_DEFAULTS = {"session_gap": DEFAULT_SESSION_GAP, "session_field": "session_id",
                    "target_session_known": True, "time_field": None}


def yaml_values(model="HierTCN"):
    with open(model_yaml(model), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def plain(value):
    """A default as the yaml writes it (lists for tuples)."""
    return list(value) if isinstance(value, tuple) else value


def test_every_hiertcn_setting_reads_as_its_yaml_line():
    values = yaml_values()
    settings = HierTCNSettings.from_mapping({})
    for key, value in settings.to_dict().items():
        assert key in values, f"{key} has no default in HierTCN.yaml"
        expected = values[key]
        assert value == (float(expected) if isinstance(value, float) and expected is not None
                         else expected), key


@pytest.mark.parametrize("model, settings", [("HierTCN", HierTCNSettings),
                                             ("HRNN", HRNNSettings)])
def test_the_yaml_repeats_the_settings_defaults_for_every_key_they_share(model, settings):
    values = yaml_values(model)
    defaults = {field.name: plain(field.default) for field in dataclasses.fields(settings)}
    for key in settings.keys():
        assert key in values, f"{key} has no line in {model}.yaml"
    for key, value in dict(SESSION_DEFAULTS, **defaults).items():
        if key in values:
            assert values[key] == value, (model, key)


@pytest.mark.parametrize("settings", [HierTCNSettings, HRNNSettings])
def test_every_setting_has_one_default_and_an_empty_mapping_reads_them(settings):
    fields = dataclasses.fields(settings)
    assert all(field.default is not dataclasses.MISSING for field in fields)
    read = settings.from_mapping({})
    assert read == settings()
    assert all(getattr(read, field.name) == field.default for field in fields)


def test_every_model_yaml_with_session_keys_has_the_session_defaults():
    """SKNN, STAN, SessionPop ... read the same session rule as HierTCN."""
    folder = properties_dir()
    names = ["overall.yaml"] + [os.path.join("model", name)
                                for name in sorted(os.listdir(os.path.join(folder, "model")))]
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
        for key in ("session_gap", "session_field"):
            if key in values:
                assert values[key] == SESSION_DEFAULTS[key], (name, key)


def test_a_missing_key_takes_the_default_and_a_given_one_wins():
    settings = HierTCNSettings.from_mapping({"hidden_size": 9})
    assert (settings.kernel_size, settings.session_gap, settings.hidden_size) == (5, 1800.0, 9)
    assert HRNNSettings.from_mapping({"user_hidden_size": 7}).user_hidden_size == 7


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


def test_an_export_written_before_session_summary_was_removed_reads_the_same_settings():
    """An artifact's ``settings.json`` from before the removal carries ``session_summary:
    mean``: it reads as today's settings; ``tcn`` (never the kept behaviour) is refused."""
    written = HierTCNSettings.from_mapping({"hidden_size": 9}).to_dict()
    assert "session_summary" not in written
    assert (HierTCNSettings.from_mapping({**written, "session_summary": "mean"})
            == HierTCNSettings.from_mapping(written))
    with pytest.raises(ValueError, match="`session_summary` was removed"):
        HierTCNSettings.from_mapping({**written, "session_summary": "tcn"})

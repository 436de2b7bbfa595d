"""Registration with RecBole: get_model, Config defaults and precedence, error messages."""

import sys

import pytest
import yaml

import recbole.utils
from recbole.config import Config

from recbole_hiertcn import HierTCN, registry
from tests.conftest import small_config


def model_defaults():
    with open(registry.model_yaml("HierTCN"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_get_model_returns_the_plugin_class():
    assert recbole.utils.get_model("HierTCN") is HierTCN
    assert recbole.utils.utils.get_model("HierTCN") is HierTCN


def test_recbole_finds_the_model_module_by_its_own_rule():
    module = sys.modules["recbole.model.sequential_recommender.hiertcn"]
    assert module.HierTCN is HierTCN
    import recbole.model.sequential_recommender as family
    assert family.HierTCN is HierTCN


def test_builtin_models_are_untouched():
    from recbole.model.sequential_recommender.caser import Caser
    assert recbole.utils.get_model("Caser") is Caser


def test_gru4rec_nextitnet_and_sasrec_are_recboles_classes_with_sequence_training():
    """Their names give the plugin's subclasses (recbole_hiertcn.model.all_positions); RecBole's
    own modules and classes are left as they are."""
    from recbole.model.sequential_recommender import gru4rec, nextitnet, sasrec
    for module, name in ((gru4rec, "GRU4Rec"), (nextitnet, "NextItNet"), (sasrec, "SASRec")):
        model = recbole.utils.get_model(name)
        assert model is not getattr(module, name) and issubclass(model, getattr(module, name))
        assert model.__name__ == name and model.supports_sequence_training
        assert sys.modules[f"recbole.model.sequential_recommender.{name.lower()}"] is module


def test_config_reads_every_default_from_the_model_yaml(data_root):
    config = Config(model="HierTCN", dataset="tiny_time",
                    config_dict={"data_path": str(data_root)})
    defaults = model_defaults()
    for key, value in defaults.items():
        if key == "train_neg_sample_args":
            assert config[key]["distribution"] == "none"
        else:
            assert config[key] == value, key
    assert config["MODEL_TYPE"].name == "SEQUENTIAL"


def test_files_dicts_and_command_line_override_the_yaml(data_root, tmp_path, monkeypatch):
    user_file = tmp_path / "user.yaml"
    user_file.write_text("kernel_size: 3\nhidden_size: 32\nembedding_size: 24\n")
    monkeypatch.setattr(sys, "argv", ["run", "--embedding_size=40"])
    config = Config(model="HierTCN", dataset="tiny_time", config_file_list=[str(user_file)],
                    config_dict={"data_path": str(data_root), "hidden_size": 48,
                                 "embedding_size": 32})
    assert config["kernel_size"] == 3  # file over yaml
    assert config["hidden_size"] == 48  # dict over file
    assert config["embedding_size"] == 40  # command line over dict
    assert config["dilations"] == model_defaults()["dilations"]  # untouched default


def test_plugin_dataset_preset_applies_to_the_plugin_model_only_where_recbole_has_its_own():
    plugin = Config(model="HierTCN", dataset="ml-100k")
    assert plugin["normalize_all"] is False
    assert plugin["load_col"] == {"inter": ["user_id", "item_id", "timestamp"]}
    builtin = Config(model="GRU4Rec", dataset="ml-100k",
                     config_dict={"train_neg_sample_args": None})
    assert builtin["normalize_all"] is True  # RecBole's own preset, unchanged


@pytest.mark.parametrize("typo, suggestion", [("HeirTCN", "HierTCN"), ("gru4rec", "GRU4Rec")])
def test_a_misspelled_model_gets_a_clear_error(typo, suggestion):
    with pytest.raises(ValueError) as error:
        recbole.utils.get_model(typo)
    message = str(error.value)
    assert "No module named" not in message
    assert f"Did you mean {suggestion}" in message or suggestion in message.split("Did you")[1]
    assert "Available models:" in message and "NextItNet" in message and "HierTCN" in message


def test_config_with_a_misspelled_model_gets_the_same_error():
    with pytest.raises(ValueError, match="Available models:"):
        Config(model="SASrec2", dataset="ml-100k")


def test_available_models_lists_builtins_and_the_plugin():
    names = registry.available_models()
    for name in ("HierTCN", "GRU4Rec", "NextItNet", "SASRec", "BPR", "LightGBM"):
        assert name in names


def test_small_config_is_accepted(data_root):
    config = Config(model="HierTCN", dataset="tiny_sess",
                    config_dict=small_config(data_root, "tiny_sess"))
    assert config["tcn_channels"] == [16, 16]


def test_every_yaml_key_has_a_one_line_comment():
    import glob
    import os
    for path in glob.glob(os.path.join(registry.properties_dir(), "**", "*.yaml"),
                          recursive=True):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line and not line[0].isspace() and not line.startswith("#") and ":" in line:
                    assert "# (" in line, f"{path}: undocumented key in {line!r}"


def test_every_model_setting_is_a_yaml_key():
    import inspect
    import re
    from recbole_hiertcn.model.sequential_recommender import hiertcn
    source = inspect.getsource(hiertcn)
    read = set(re.findall(r'config\["([a-z_]+)"\]', source))
    read |= set(re.findall(r'_(?:positive_int|positive_int_list|choice)\(config, "([a-z_]+)"',
                           source))
    recbole_keys = {"normalize_field", "normalize_all"}
    assert read - recbole_keys <= set(model_defaults())

"""docs/config.md's table of keys matches the yaml files in properties/: every key of
properties/model/*.yaml and properties/overall.yaml has a row for its model with the same
default, and no row claims a key or default that the yaml files do not have. A key listed under
"Removed options" must not be in the table of keys."""

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_MD = os.path.join(ROOT, "docs", "config.md")
MODEL_DIR = os.path.join(ROOT, "properties", "model")
OVERALL = os.path.join(ROOT, "properties", "overall.yaml")

# Group names of the table's models column.
GROUPS = {
    "kNN": ["SR", "SKNN", "VSKNN", "STAN", "VSTAN"],
    "floors": ["SessionPop", "Repeat"],
    "baselines": ["GRU4Rec", "NextItNet", "SASRec"],
}
RUN = "run"  # properties/overall.yaml


def split_row(line):
    """The cells of a Markdown table row (escaped pipes kept inside their cell)."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def section_tables(text, heading):
    """The rows (lists of cells, header and rule excluded) of the first table under the
    ``## heading`` of a Markdown text."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"docs/config.md has no section '## {heading}'"
    rows = []
    in_table = False
    for line in match.group(1).splitlines():
        if line.startswith("|"):
            if in_table:
                rows.append(split_row(line))
            in_table = True
        elif in_table:
            break
    assert len(rows) > 1, f"no table under '## {heading}'"
    return rows[1:]  # the first is the rule under the header


def key_name(cell):
    return cell.strip().strip("`")


def models_of(cell):
    """The model names a models cell stands for."""
    names = []
    for word in (part.strip() for part in cell.split(",")):
        names += GROUPS.get(word, [word])
    return names


def default_of(cell):
    """A default cell's yaml value: one backticked yaml scalar, list or null."""
    match = re.fullmatch(r"`([^`]*)`", cell.strip())
    assert match, f"a default must be one backticked yaml value, got {cell!r}"
    return yaml.safe_load(match.group(1))


def table():
    """``{(key, model): default}`` of docs/config.md's table of keys, and the removed keys."""
    with open(CONFIG_MD, encoding="utf-8") as handle:
        text = handle.read()
    rows = {}
    for cells in section_tables(text, "Keys"):
        assert len(cells) == 4, f"a row needs key, models, default, meaning: {cells}"
        key, models, default, _ = cells
        for model in models_of(models):
            assert (key_name(key), model) not in rows, \
                f"{key_name(key)} has two rows for {model}"
            rows[(key_name(key), model)] = default_of(default)
    removed = {key_name(cells[0]).split()[0].strip("`")
               for cells in section_tables(text, "Removed options")}
    return rows, removed


def yaml_files():
    """``{model name: path}`` of every yaml file the table documents."""
    files = {name[:-5]: os.path.join(MODEL_DIR, name)
             for name in sorted(os.listdir(MODEL_DIR)) if name.endswith(".yaml")}
    files[RUN] = OVERALL
    return files


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def test_removed_key_parse():
    assert split_row("| `a` | b, kNN | `[1, 2]` | x \\| y |") == ["`a`", "b, kNN", "`[1, 2]`", "x | y"]
    assert models_of("HierTCN, kNN") == ["HierTCN", "SR", "SKNN", "VSKNN", "STAN", "VSTAN"]
    assert default_of("`~`") is None and default_of("`none`") == "none"
    with pytest.raises(AssertionError):
        default_of("128")


@pytest.mark.parametrize("model", sorted(yaml_files()))
def test_every_yaml_key_is_documented_with_its_default(model):
    rows, removed = table()
    for key, value in load(yaml_files()[model]).items():
        if key in removed:
            continue  # being removed: documented under "Removed options"
        assert (key, model) in rows, \
            f"docs/config.md: no row for {key} of {model} (default {value!r})"
        assert rows[(key, model)] == value, \
            f"docs/config.md: {key} of {model} says {rows[(key, model)]!r}, the yaml {value!r}"


def test_no_row_claims_a_key_the_yaml_lacks():
    rows, removed = table()
    files = yaml_files()
    for (key, model), _ in rows.items():
        assert key not in removed, f"docs/config.md: removed key {key} is in the table of keys"
        if model in files:
            assert key in load(files[model]), \
                f"docs/config.md: {key} is listed for {model}, whose yaml does not set it"

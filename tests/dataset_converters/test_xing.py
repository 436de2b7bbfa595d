"""XING converter: presets against an independent pandas computation, formats, errors, atomicity."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dataset_converters import xing, xing_sample
from dataset_converters.engine import ConversionError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = "user_id\titem_id\tinteraction_type\tcreated_at\n"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A small synthetic log (2016 format) and its DataFrame in file order."""
    frame, items = xing_sample.generate(n_users=400, n_items=300, seed=3)
    folder = tmp_path_factory.mktemp("raw")
    xing_sample.write(frame, items, str(folder))
    return folder, frame, items


def read_inter(folder, name="xing"):
    frame = pd.read_csv(os.path.join(folder, name, f"{name}.inter"), sep="\t")
    assert list(frame.columns) == list(xing.INTER_HEADER)
    frame.columns = ["user_id", "item_id", "created_at", "session_id", "interaction_type"]
    return frame


# ----------------------------------------------------------------------------- independent reference
def sessions(frame, gap, rule):
    frame = frame.sort_values(["user_id", "created_at", "line"], kind="stable")
    delta = frame.groupby("user_id")["created_at"].diff()
    opens = delta.isna() | ((delta >= gap) if rule == ">=" else (delta > gap))
    return frame.assign(session_id=opens.astype(int).cumsum())


def keep_groups(frame, key, low=None, high=None, distinct=None):
    size = frame.groupby(key)[distinct].nunique() if distinct else frame.groupby(key).size()
    keep = size[(size >= (low if low is not None else -np.inf))
                & (size <= (high if high is not None else np.inf))].index
    return frame[frame[key].isin(keep)]


def reference_hiertcn(raw):
    frame = raw.assign(line=np.arange(len(raw)))
    frame = frame[frame.interaction_type.isin([1, 2, 3])]
    frame = keep_groups(frame, "item_id", low=50)
    frame = keep_groups(frame, "user_id", low=10, high=500)
    return sessions(frame, 1800, ">=")


def reference_hrnn(raw):
    frame = raw.assign(line=np.arange(len(raw)))
    frame = frame[frame.interaction_type.isin([1, 2, 3])]
    frame = sessions(frame, 1800, ">")
    frame = frame.drop_duplicates(["session_id", "item_id", "interaction_type"], keep="first")
    frame = keep_groups(frame, "item_id", low=20)
    frame = keep_groups(frame, "session_id", low=3)
    return keep_groups(frame, "user_id", low=5, high=199, distinct="session_id")


def as_rows(frame):
    columns = ["user_id", "item_id", "created_at", "session_id", "interaction_type"]
    ordered = frame.sort_values(["user_id", "created_at", "line"], kind="stable") \
        if "line" in frame else frame
    return ordered[columns].to_numpy().tolist()


@pytest.mark.parametrize("preset, reference", [("hiertcn", reference_hiertcn),
                                               ("hrnn", reference_hrnn)])
def test_presets_match_an_independent_computation(sample, tmp_path, preset, reference):
    folder, frame, _ = sample
    stats = xing.convert(str(folder / "interactions.csv"), str(tmp_path), preset=preset, echo=None)
    expected = reference(frame)
    produced = read_inter(tmp_path)
    assert as_rows(produced) == as_rows(expected)
    last = stats.rows[-1]
    assert last[1:] == (len(expected), expected.user_id.nunique(), expected.item_id.nunique(),
                        expected.session_id.nunique())
    assert len(stats.rows) == (5 if preset == "hiertcn" else 7)
    assert os.path.isfile(tmp_path / "xing" / "xing.stats.md")


def test_gap_rule_ge_versus_gt(tmp_path):
    raw = tmp_path / "interactions.csv"
    raw.write_text(HEADER + "1\t10\t1\t1000\n1\t11\t1\t2800\n1\t12\t1\t2801\n1\t13\t1\t4602\n")
    options = dict(min_item_count=xing.OFF, min_user_count=xing.OFF, max_user_count=xing.OFF,
                   echo=None)
    xing.convert(str(raw), str(tmp_path / "ge"), **options)
    xing.convert(str(raw), str(tmp_path / "gt"), gap_rule=">", **options)
    assert read_inter(tmp_path / "ge").session_id.tolist() == [1, 2, 2, 3]  # gaps 1800, 1, 1801
    assert read_inter(tmp_path / "gt").session_id.tolist() == [1, 1, 1, 2]


def test_ties_keep_their_order_in_the_file(tmp_path):
    raw = tmp_path / "interactions.csv"
    rows = [f"7\t{item}\t1\t5000\n" for item in (30, 10, 20)] + ["7\t5\t1\t4000\n"]
    raw.write_text(HEADER + "".join(rows))
    xing.convert(str(raw), str(tmp_path), min_item_count=xing.OFF, min_user_count=xing.OFF,
                 echo=None)
    assert read_inter(tmp_path).item_id.tolist() == [5, 30, 10, 20]


def test_2017_headers_and_gzip_give_the_same_result(sample, tmp_path):
    _, frame, items = sample
    xing_sample.write(frame, items, str(tmp_path / "raw17"), year=2017, compress=True)
    with gzip.open(tmp_path / "raw17" / "interactions.csv.gz", "rt") as handle:
        assert handle.readline().startswith("interactions.user_id\tinteractions.item_id")
    xing_sample.write(frame, items, str(tmp_path / "raw16"), year=2016)
    xing.convert(str(tmp_path / "raw17" / "interactions.csv.gz"), str(tmp_path / "o17"),
                 items=str(tmp_path / "raw17" / "items.csv"), echo=None)
    xing.convert(str(tmp_path / "raw16" / "interactions.csv"), str(tmp_path / "o16"),
                 items=str(tmp_path / "raw16" / "items.csv"), echo=None)
    for suffix in ("inter", "item"):
        a = (tmp_path / "o17" / "xing" / f"xing.{suffix}").read_text()
        b = (tmp_path / "o16" / "xing" / f"xing.{suffix}").read_text()
        assert a == b, suffix


def test_items_become_recbole_features_of_kept_items(sample, tmp_path):
    folder, _, items = sample
    xing.convert(str(folder / "interactions.csv"), str(tmp_path), items=str(folder / "items.csv"),
                 echo=None)
    table = pd.read_csv(tmp_path / "xing" / "xing.item", sep="\t", dtype=str)
    assert table.columns[0] == "item_id:token"
    assert "title:token_seq" in table.columns and "tags:token_seq" in table.columns
    assert "latitude:float" in table.columns
    kept = set(read_inter(tmp_path).item_id.astype(str))
    assert set(table["item_id:token"]) == kept
    first = items.set_index("id").loc[int(table["item_id:token"][0])]
    assert table["title:token_seq"][0] == first.title.replace(",", " ")


def test_impressions_go_to_their_own_file(sample, tmp_path):
    _, frame, items = sample
    frame17, items17 = xing_sample.generate(n_users=400, n_items=300, year=2017, seed=3)
    xing_sample.write(frame17, items17, str(tmp_path / "raw"), year=2017)
    xing.convert(str(tmp_path / "raw" / "interactions.csv"), str(tmp_path), impressions=True,
                 echo=None)
    shown = pd.read_csv(tmp_path / "xing" / "xing.impression", sep="\t")
    assert list(shown.columns) == ["user_id:token", "item_id:token", "timestamp:float",
                                   "session_id:token"]
    inter = read_inter(tmp_path)
    assert len(shown) > 0 and 0 not in set(inter.interaction_type)
    assert set(shown["user_id:token"]) <= set(inter.user_id)
    assert set(shown["item_id:token"]) <= set(inter.item_id)
    owner = inter.groupby("session_id").user_id.first()  # each session is its user's
    assert (owner[shown["session_id:token"]].to_numpy() == shown["user_id:token"]).all()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("content, message", [
    ("user_id\titem_id\tcreated_at\n1\t2\t3\n", r"line 1: missing column\(s\) interaction_type"),
    (HEADER + "1\t2\t1\t100\n1\tx7\t1\t200\n", r"line 3: column item_id: 'x7' is not an integer"),
    (HEADER + "1\t2\t1\t100\n1\t3\t1\tyesterday\n",
     r"line 3: column created_at: 'yesterday' is not an integer"),
    (HEADER.replace("\t", ",") + "1,2,1,100\n", r"line 1: expected tab-separated .* comma"),
    ("", r"the file is empty"),
    (HEADER, r"no interactions after the header"),
    (HEADER + "1\t2\t1\t100\n2\t3\t1\n", r"line 3: expected 4 tab-separated fields, found 3"),
    (HEADER + "1\t2\t1\t100\n2\t\t1\t5\n", r"line 3: column item_id is empty"),
])
def test_bad_input_is_reported_with_file_and_line(tmp_path, content, message):
    raw = tmp_path / "interactions.csv"
    raw.write_text(content)
    with pytest.raises(ConversionError, match=message) as error:
        xing.convert(str(raw), str(tmp_path / "out"), echo=None)
    assert str(raw) in str(error.value)
    assert not (tmp_path / "out" / "xing").exists()
    assert [p for p in os.listdir(tmp_path / "out")] == []  # nothing half-written


def test_truncated_gzip_is_reported(sample, tmp_path):
    folder, _, _ = sample
    data = gzip.compress((folder / "interactions.csv").read_bytes())
    raw = tmp_path / "interactions.csv.gz"
    raw.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="gzip") as error:
        xing.convert(str(raw), str(tmp_path / "out"), echo=None)
    assert str(raw) in str(error.value)


def test_failed_conversion_keeps_the_previous_output(sample, tmp_path):
    folder, _, _ = sample
    xing.convert(str(folder / "interactions.csv"), str(tmp_path), echo=None)
    before = (tmp_path / "xing" / "xing.inter").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "1\tnope\t1\t1\n")
    with pytest.raises(ConversionError):
        xing.convert(str(bad), str(tmp_path), echo=None)
    assert (tmp_path / "xing" / "xing.inter").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "xing"]
    # a successful run replaces it completely
    xing.convert(str(folder / "interactions.csv"), str(tmp_path), preset="hrnn", echo=None)
    assert (tmp_path / "xing" / "xing.inter").read_text() != before
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "xing"]


def test_filters_that_leave_nothing_are_an_error(sample, tmp_path):
    folder, _, _ = sample
    with pytest.raises(ConversionError, match="no interactions are left"):
        xing.convert(str(folder / "interactions.csv"), str(tmp_path), min_item_count=10**9,
                     echo=None)


def run_cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "dataset_converters.xing", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_command_line_prints_statistics_and_reports_errors_without_traceback(sample, tmp_path):
    folder, _, _ = sample
    done = run_cli(["--input", str(folder / "interactions.csv"), "--output-dir", "out",
                    "--preset", "hrnn", "--min-user-sessions", "none", "--max-user-sessions",
                    "none"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sessions of length >= 3" in done.stdout and "users with" not in done.stdout
    assert (tmp_path / "out" / "xing" / "xing.inter").is_file()
    bad = run_cli(["--input", str(tmp_path / "missing.csv")], tmp_path)
    assert bad.returncode == 2 and "missing.csv: no such file" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_end_to_end_convert_then_train_hiertcn_for_an_epoch(sample, tmp_path, monkeypatch):
    from recbole_hiertcn.quick_start import run
    from tests.conftest import reload_and_test, small_config

    folder, _, _ = sample
    xing.convert(str(folder / "interactions.csv"), str(tmp_path / "dataset"), echo=None)
    monkeypatch.chdir(tmp_path)
    config = small_config(tmp_path / "dataset", "xing")
    del config["load_col"]  # the xing preset's fields
    result = run(model="HierTCN", dataset="xing", config_dict=config)
    assert result["config"]["session_field"] == "session_id"
    assert result["config"]["load_col"]["inter"] == ["user_id", "item_id", "timestamp",
                                                     "session_id"]
    # Reloading the checkpoint rebuilds the converted data the same way: the same metrics.
    *_, again = reload_and_test(result["model_file"])
    assert dict(again) == dict(result["test_result"])


def test_missing_xing_data_says_how_to_get_it(tmp_path, monkeypatch):
    from recbole_hiertcn.quick_start import DatasetMissing, run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetMissing, match="dataset_converters.xing --input"):
        run(model="HierTCN", dataset="xing", config_dict={"data_path": str(tmp_path)})

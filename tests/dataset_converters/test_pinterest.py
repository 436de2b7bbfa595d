"""Pinterest-style converter: shards, time units, renames, routing, vectors, errors, atomicity."""

import gzip
import os
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from dataset_converters import pinterest, pinterest_sample
from dataset_converters.engine import ConversionError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = 1_700_000_000  # seconds


def log_rows():
    """Two users, two feed views each, every action kind."""
    rows = []
    for user, start in (("alice", BASE), ("bob", BASE + 50)):
        for view, offset in (("fv1", 0), ("fv2", 7200)):
            t = start + offset
            fv = f"{user}-{view}"
            rows += [(user, "p1", t, "impression", None, "homefeed", fv),
                     (user, "p2", t + 1, "impression", None, "homefeed", fv),
                     (user, "p3", t + 2, "impression", None, "homefeed", fv),
                     (user, "p1", t + 10, "closeup", None, "homefeed", fv),
                     (user, "p1", t + 20, "repin", "b1", "homefeed", fv),
                     (user, "p2", t + 30, "hide", None, "homefeed", fv),
                     (user, "p4", t + 40, "click", None, "search", fv)]
    return pd.DataFrame(rows, columns=["user_id", "pin_id", "timestamp", "action", "board_id",
                                       "surface", "feedview_id"])


def write_frame(frame, path, kind):
    con = duckdb.connect()
    con.register("f", frame)
    if kind == "parquet":
        con.execute(f"COPY f TO '{path}' (FORMAT parquet)")
    elif kind == "csv":
        con.execute(f"COPY f TO '{path}' (HEADER{', COMPRESSION gzip' if path.endswith('.gz') else ''})")
    elif kind == "tsv":
        con.execute(f"COPY f TO '{path}' (HEADER, DELIMITER '\t')")
    else:
        con.execute(f"COPY f TO '{path}' (FORMAT json)")
    con.close()
    return path


def vectors(tmp_path, ids=("p1", "p2", "p3", "p4"), dim=4, name="pins.parquet"):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"pin_id": list(ids),
                          "embedding": [rng.normal(size=dim).round(3).tolist() for _ in ids]})
    path = str(tmp_path / name)
    con = duckdb.connect()
    con.register("v", frame)
    con.execute(f"COPY (SELECT pin_id, CAST(embedding AS DOUBLE[]) AS embedding FROM v) TO "
                f"'{path}' (FORMAT parquet)")
    con.close()
    return path, frame


def read(folder, suffix, name="pinterest"):
    return pd.read_csv(os.path.join(folder, name, f"{name}.{suffix}"), sep="\t", dtype=str)


def convert(inputs, out, **options):
    options.setdefault("echo", None)
    return pinterest.convert(inputs, str(out), **options)


# ----------------------------------------------------------------------------- shards and units
def test_mixed_shards_give_the_same_output_as_one_file(tmp_path):
    frame = log_rows()
    single = write_frame(frame, str(tmp_path / "all.parquet"), "parquet")
    shards = tmp_path / "shards"
    shards.mkdir()
    write_frame(frame.iloc[:5], str(shards / "a.parquet"), "parquet")
    write_frame(frame.iloc[5:12], str(shards / "b.csv.gz"), "csv")
    write_frame(frame.iloc[12:20], str(shards / "c.jsonl"), "json")
    write_frame(frame.iloc[20:], str(shards / "d.tsv"), "tsv")
    convert([single], tmp_path / "one")
    convert([str(shards)], tmp_path / "many")
    for suffix in ("inter", "impression"):
        assert read(tmp_path / "one", suffix).equals(read(tmp_path / "many", suffix)), suffix


@pytest.mark.parametrize("unit, scale", [("s", 1), ("ms", 1000), ("us", 1_000_000)])
def test_epoch_units_are_detected_and_converted_to_seconds(tmp_path, unit, scale):
    frame = log_rows()
    frame["timestamp"] = frame["timestamp"] * scale
    path = write_frame(frame, str(tmp_path / "log.parquet"), "parquet")
    convert([path], tmp_path / "auto")
    convert([path], tmp_path / "set", time_unit=unit)
    for out in ("auto", "set"):
        times = read(tmp_path / out, "inter")["timestamp:float"].astype(float)
        assert times.min() == BASE + 10 and times.max() == BASE + 50 + 7240


def test_iso_timestamps(tmp_path):
    frame = log_rows()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s").dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    path = write_frame(frame, str(tmp_path / "log.jsonl"), "json")
    convert([path], tmp_path)
    times = read(tmp_path, "inter")["timestamp:float"].astype(float)
    assert times.min() == BASE + 10


def test_column_renames(tmp_path):
    frame = log_rows().rename(columns={"user_id": "viewer", "pin_id": "pin", "timestamp": "ts",
                                       "action": "event", "feedview_id": "view"})
    path = write_frame(frame, str(tmp_path / "log.csv"), "csv")
    columns = {"user": "viewer", "pin": "pin", "time": "ts", "action": "event",
               "feedview": "view"}
    convert([path], tmp_path, columns=columns)
    inter = read(tmp_path, "inter")
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float",
                                   "session_id:token", "action:token", "board_id:token",
                                   "surface:token", "feedview_id:token"]
    assert set(inter["user_id:token"]) == {"alice", "bob"}


# ----------------------------------------------------------------------------- routing
def test_actions_are_routed(tmp_path):
    path = write_frame(log_rows(), str(tmp_path / "log.parquet"), "parquet")
    convert([path], tmp_path)
    inter, shown = read(tmp_path, "inter"), read(tmp_path, "impression")
    assert sorted(set(inter["action:token"])) == ["click", "closeup", "repin"]
    assert len(inter) == 2 * 2 * 3
    # p1 was engaged in its feed view, so only p2 and p3 stay as shown-but-not-engaged
    assert sorted(set(shown["item_id:token"])) == ["p2", "p3"]
    assert list(shown.columns) == ["user_id:token", "item_id:token", "timestamp:float",
                                   "feedview_id:token"]
    # sessions: each feed view is its own session (2 h apart), per user
    assert inter.groupby("user_id:token")["session_id:token"].nunique().tolist() == [2, 2]


def test_unknown_actions_are_an_error_or_dropped(tmp_path):
    frame = log_rows()
    frame.loc[3, "action"] = "zoom"
    path = write_frame(frame, str(tmp_path / "log.csv"), "csv")
    with pytest.raises(ConversionError, match=r"log.csv: line 5: unknown action\(s\) 'zoom'"):
        convert([path], tmp_path / "a")
    convert([path], tmp_path / "b", unknown_actions="drop")
    assert len(read(tmp_path / "b", "inter")) == 11


def test_action_sets_are_options(tmp_path):
    path = write_frame(log_rows(), str(tmp_path / "log.parquet"), "parquet")
    convert([path], tmp_path, engagements=("closeup",), impressions=(), dropped=(
        "hide", "click", "repin", "impression"))
    assert set(read(tmp_path, "inter")["action:token"]) == {"closeup"}
    assert not os.path.exists(tmp_path / "pinterest" / "pinterest.impression")


# ----------------------------------------------------------------------------- vectors
def test_item_vectors_are_written_for_kept_pins(tmp_path):
    path = write_frame(log_rows(), str(tmp_path / "log.parquet"), "parquet")
    source, frame = vectors(tmp_path)
    convert([path], tmp_path / "out", item_embeddings=source)
    items = read(tmp_path / "out", "item")
    assert list(items.columns) == ["item_id:token", "item_emb:float_seq"]
    assert list(items["item_id:token"]) == ["p1", "p2", "p3", "p4"]  # engaged and shown pins
    first = [float(x) for x in items["item_emb:float_seq"][0].split(" ")]
    assert first == pytest.approx(frame["embedding"][0])


def test_npy_and_csv_vectors(tmp_path):
    path = write_frame(log_rows(), str(tmp_path / "log.parquet"), "parquet")
    matrix = np.arange(16, dtype=np.float32).reshape(4, 4) / 10
    np.save(tmp_path / "v.npy", matrix)
    (tmp_path / "ids.txt").write_text("p1\np2\np3\np4\n")
    convert([path], tmp_path / "npy", item_embeddings=str(tmp_path / "v.npy"),
            embedding_ids=str(tmp_path / "ids.txt"))
    wide = pd.DataFrame(matrix, columns=["a", "b", "c", "d"])
    wide.insert(0, "id", ["p1", "p2", "p3", "p4"])
    wide.to_csv(tmp_path / "v.csv", index=False)
    convert([path], tmp_path / "csv", item_embeddings=str(tmp_path / "v.csv"))
    a, b = read(tmp_path / "npy", "item"), read(tmp_path / "csv", "item")
    for row in range(4):
        left = [float(x) for x in a["item_emb:float_seq"][row].split()]
        right = [float(x) for x in b["item_emb:float_seq"][row].split()]
        assert left == pytest.approx(matrix[row].tolist(), rel=1e-6)
        assert right == pytest.approx(matrix[row].tolist(), rel=1e-6)


def test_missing_or_wrong_vectors_are_an_error_or_dropped(tmp_path):
    path = write_frame(log_rows(), str(tmp_path / "log.parquet"), "parquet")
    missing, _ = vectors(tmp_path, ids=("p1", "p2", "p3"), name="missing.parquet")
    with pytest.raises(ConversionError, match=r"1 engaged pin\(s\) have no vector \(e.g. p4\)"):
        convert([path], tmp_path / "a", item_embeddings=missing)
    stats = convert([path], tmp_path / "b", item_embeddings=missing, missing_embeddings="drop")
    assert "p4" not in set(read(tmp_path / "b", "inter")["item_id:token"])
    assert any("1 dropped" in str(row[0]) for row in stats.rows)
    # a wrong dimension
    frame = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4"],
                          "embedding": [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [1.0, 2.0, 3.0]]})
    con = duckdb.connect()
    con.register("v", frame)
    con.execute(f"COPY (SELECT pin_id, CAST(embedding AS DOUBLE[]) AS embedding FROM v) TO "
                f"'{tmp_path / 'dims.parquet'}' (FORMAT parquet)")
    with pytest.raises(ConversionError, match=r"another dimension than 2 \(e.g. p4: 3\)"):
        convert([path], tmp_path / "c", item_embeddings=str(tmp_path / "dims.parquet"))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns=["action"]), r"log.csv: line 1: missing column\(s\) action"),
    (lambda f: f.assign(pin_id=[None] + list(f.pin_id[1:])), r"log.csv: line 2: column pin_id is empty"),
    (lambda f: f.assign(timestamp=list(f.timestamp[:6].astype(str)) + ["soon"]
                        + list(f.timestamp[7:].astype(str))),
     r"log.csv: line 8: column timestamp: 'soon' is not"),
])
def test_bad_input_names_file_line_and_column(tmp_path, mutate, message):
    path = write_frame(mutate(log_rows()), str(tmp_path / "log.csv"), "csv")
    with pytest.raises(ConversionError, match=message):
        convert([path], tmp_path / "out")
    assert os.listdir(tmp_path / "out") == []


def test_truncated_gzip_and_empty_and_unknown_inputs(tmp_path):
    good = write_frame(log_rows(), str(tmp_path / "log.csv"), "csv")
    data = gzip.compress(open(good, "rb").read() * 200)
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="cut.csv.gz"):
        convert([str(tmp_path / "cut.csv.gz")], tmp_path / "out")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConversionError, match="empty.csv"):
        convert([str(tmp_path / "empty.csv")], tmp_path / "out")
    with pytest.raises(ConversionError, match="nothing matches"):
        convert([str(tmp_path / "none-*.parquet")], tmp_path / "out")
    (tmp_path / "log.xml").write_text("<x/>")
    with pytest.raises(ConversionError, match="unknown format"):
        convert([str(tmp_path / "log.xml")], tmp_path / "out")


def test_failed_conversion_keeps_the_previous_output(tmp_path):
    good = write_frame(log_rows(), str(tmp_path / "log.parquet"), "parquet")
    convert([good], tmp_path / "out")
    before = (tmp_path / "out" / "pinterest" / "pinterest.inter").read_text()
    bad = log_rows()
    bad.loc[0, "action"] = "zoom"
    bad_path = write_frame(bad, str(tmp_path / "bad.parquet"), "parquet")
    with pytest.raises(ConversionError, match="bad.parquet: row 1"):
        convert([bad_path], tmp_path / "out")
    assert (tmp_path / "out" / "pinterest" / "pinterest.inter").read_text() == before
    assert os.listdir(tmp_path / "out") == ["pinterest"]


# ----------------------------------------------------------------------------- sample and CLI
def test_sample_generator_has_feed_views_and_vectors(tmp_path):
    frame, pins, vecs = pinterest_sample.generate(n_users=60, n_pins=300, seed=2)
    views = frame[frame.action == "impression"].groupby("feedview_id").size()
    assert 15 <= views.median() <= 25
    engaged = frame[frame.action.isin(pinterest.ENGAGEMENTS)]
    assert 0 < len(engaged) < len(frame) / 2
    assert vecs.shape == (300, 64) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_command_line_converts_the_sample(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    made = subprocess.run([sys.executable, "-m", "dataset_converters.pinterest_sample",
                           "--output-dir", "raw", "--users", "80", "--pins", "400",
                           "--format", "mixed"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, "-m", "dataset_converters.pinterest", "--input",
                           "raw/logs", "--item-embeddings", "raw/pins.parquet", "--output-dir",
                           "dataset"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "engagements (closeup, click, repin, save)" in done.stdout
    for suffix in ("inter", "impression", "item", "stats.md"):
        assert (tmp_path / "dataset" / "pinterest" / f"pinterest.{suffix}").is_file()
    bad = subprocess.run([sys.executable, "-m", "dataset_converters.pinterest", "--input",
                          "nowhere/*.parquet"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "nothing matches" in bad.stderr and "Traceback" not in bad.stderr

"""Both converters: a UTF-8 byte-order mark is read like plain text; impossible timestamps are
refused with file, line and column, or dropped and counted with --bad-timestamps drop."""

import gzip

import pandas as pd
import pytest

from dataset_converters import pinterest, xing, xing_sample
from dataset_converters.engine import LATEST_TIMESTAMP, ConversionError
from tests.dataset_converters.test_pinterest import log_rows, vectors, write_frame
from tests.dataset_converters.test_xing import HEADER, read_inter

BOM = "\ufeff".encode("utf-8")
NO_FILTERS = dict(min_item_count=xing.OFF, min_user_count=xing.OFF, max_user_count=xing.OFF,
                  echo=None)


def with_bom(source, target):
    """``target``: ``source`` with a byte-order mark in front (inside the gzip stream)."""
    data = source.read_bytes()
    if source.name.endswith(".gz"):
        target.write_bytes(gzip.compress(BOM + gzip.decompress(data)))
    else:
        target.write_bytes(BOM + data)
    return target


def output(folder, name, suffix):
    return (folder / name / f"{name}.{suffix}").read_text()


# ----------------------------------------------------------------------------- byte-order mark
@pytest.mark.parametrize("year, compress", [(2016, False), (2017, True)])
def test_xing_reads_files_with_a_byte_order_mark_like_plain_ones(tmp_path, year, compress):
    frame, items = xing_sample.generate(n_users=60, n_items=80, year=year, seed=1)
    plain = tmp_path / "plain"
    xing_sample.write(frame, items, str(plain), year=year, compress=compress)
    name = "interactions.csv.gz" if compress else "interactions.csv"
    marked = tmp_path / "marked"
    marked.mkdir()
    with_bom(plain / name, marked / name)
    with_bom(plain / "items.csv", marked / "items.csv")
    for folder in (plain, marked):
        xing.convert(str(folder / name), str(folder / "out"), items=str(folder / "items.csv"),
                     **NO_FILTERS)
    for suffix in ("inter", "item"):
        assert output(marked / "out", "xing", suffix) == output(plain / "out", "xing", suffix)
    # every engagement made it, the first data line included
    engaged = frame[frame.interaction_type.isin([1, 2, 3])]
    inter = read_inter(marked / "out")
    assert len(inter) == len(engaged)
    assert inter.user_id.iloc[0] == engaged.sort_values(["user_id", "created_at"]).user_id.iloc[0]


@pytest.mark.parametrize("kind, name", [("csv", "log.csv"), ("tsv", "log.tsv"),
                                        ("csv", "log.csv.gz")])
def test_pinterest_reads_shards_and_vector_tables_with_a_byte_order_mark(tmp_path, kind, name):
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    plain.mkdir()
    marked.mkdir()
    write_frame(log_rows(), str(plain / name), kind)
    _, table = vectors(tmp_path)
    wide = pd.DataFrame(table["embedding"].tolist(), columns=["a", "b", "c", "d"])
    wide.insert(0, "pin_id", table["pin_id"])
    wide.to_csv(plain / "pins.csv", index=False)
    with_bom(plain / name, marked / name)
    with_bom(plain / "pins.csv", marked / "pins.csv")
    for folder in (plain, marked):
        pinterest.convert([str(folder / name)], str(folder / "out"),
                          item_embeddings=str(folder / "pins.csv"), echo=None)
    for suffix in ("inter", "impression", "item"):
        assert output(marked / "out", "pinterest", suffix) == \
            output(plain / "out", "pinterest", suffix), suffix
    assert "alice" in output(marked / "out", "pinterest", "inter")


# ----------------------------------------------------------------------------- XING timestamps
def xing_log(tmp_path, times):
    """One user, item i at times[i]; the header and each row on their own line."""
    raw = tmp_path / "interactions.csv"
    raw.write_text(HEADER + "".join(f"5\t{10 + i}\t1\t{t}\n" for i, t in enumerate(times)))
    return raw


@pytest.mark.parametrize("times, line, value, count", [
    ([1000, -1, 2000], 3, "-1", 1),
    ([1000, 2000, LATEST_TIMESTAMP, -7], 4, str(LATEST_TIMESTAMP), 2),
])
def test_xing_refuses_impossible_timestamps_with_line_and_column(tmp_path, times, line, value,
                                                                 count):
    raw = xing_log(tmp_path, times)
    with pytest.raises(ConversionError) as error:
        xing.convert(str(raw), str(tmp_path / "out"), **NO_FILTERS)
    message = str(error.value)
    assert message.startswith(f"{raw}: line {line}: column created_at: {value} ")
    assert f"{count} row(s)" in message and "--bad-timestamps drop" in message
    assert list((tmp_path / "out").iterdir()) == []  # nothing written


def test_xing_accepts_the_last_second_before_the_year_3000(tmp_path):
    raw = xing_log(tmp_path, [0, LATEST_TIMESTAMP - 1])
    xing.convert(str(raw), str(tmp_path / "out"), **NO_FILTERS)
    assert read_inter(tmp_path / "out").created_at.tolist() == [0, LATEST_TIMESTAMP - 1]


def test_xing_drops_and_counts_impossible_timestamps(tmp_path):
    raw = xing_log(tmp_path, [1000, -1, 1500, LATEST_TIMESTAMP + 5, 9000])
    stats = xing.convert(str(raw), str(tmp_path / "out"), bad_timestamps="drop", **NO_FILTERS)
    inter = read_inter(tmp_path / "out")
    assert inter.item_id.tolist() == [10, 12, 14]  # the file order of the good rows
    assert inter.session_id.tolist() == [1, 1, 2]
    assert stats.rows[:2] == [("read interactions.csv", 5, 1, 5, None),
                              ("drop 2 row(s) with impossible timestamps", 3, 1, 3, None)]


# ----------------------------------------------------------------------------- Pinterest timestamps
def pinterest_log(tmp_path, bad, scale=1, kind="csv"):
    """log_rows() with times as text in ``scale`` units per second; ``bad``: {row: text}."""
    frame = log_rows()
    frame["timestamp"] = (frame["timestamp"] * scale).astype(str)
    for row, text in bad.items():
        frame.loc[row, "timestamp"] = text
    return write_frame(frame, str(tmp_path / f"log.{kind}"), kind), frame


@pytest.mark.parametrize("bad, scale, where, value, reading", [
    ({3: "-5"}, 1, "line 5", "'-5'", "read as s since the epoch"),
    ({6: "NaN", 9: "-1"}, 1000, "line 8", "'NaN'", "read as ms since the epoch"),
    ({2: "inf"}, 1, "line 4", "'inf'", "read as s since the epoch"),
    ({4: str(40_000_000_000_000)}, 1000, "line 6", "'40000000000000'",
     "read as ms since the epoch"),  # the year 3237 once read as milliseconds
])
def test_pinterest_refuses_impossible_timestamps_with_file_line_and_column(
        tmp_path, bad, scale, where, value, reading):
    path, _ = pinterest_log(tmp_path, bad, scale)
    with pytest.raises(ConversionError) as error:
        pinterest.convert([path], str(tmp_path / "out"), echo=None)
    message = str(error.value)
    assert message.startswith(f"{path}: {where}: column timestamp: {value} ({reading}) ")
    assert f"{len(bad)} row(s)" in message
    assert list((tmp_path / "out").iterdir()) == []


def test_pinterest_names_the_parquet_row_of_an_impossible_time(tmp_path):
    path, _ = pinterest_log(tmp_path, {0: "1700000000", 3: "-20"}, kind="parquet")
    with pytest.raises(ConversionError, match=r"log.parquet: row 4: column timestamp: '-20'"):
        pinterest.convert([path], str(tmp_path / "out"), echo=None)


def test_pinterest_drops_and_counts_impossible_timestamps(tmp_path):
    path, frame = pinterest_log(tmp_path, {0: "-5", 3: "NaN", 10: "9e99"})
    stats = pinterest.convert([path], str(tmp_path / "dropped"), bad_timestamps="drop",
                              echo=None)
    clean = write_frame(frame.drop(index=[0, 3, 10]), str(tmp_path / "clean.csv"), "csv")
    pinterest.convert([clean], str(tmp_path / "clean"), echo=None)
    for suffix in ("inter", "impression"):
        assert output(tmp_path / "dropped", "pinterest", suffix) == \
            output(tmp_path / "clean", "pinterest", suffix), suffix
    assert stats.rows[0][:2] == ("read 1 file(s)", 28)
    assert stats.rows[1][:2] == ("drop 3 row(s) with impossible timestamps", 25)


# ----------------------------------------------------------------------------- the option
def test_bad_timestamps_option_is_checked_and_on_the_command_line(tmp_path, capsys):
    raw = xing_log(tmp_path, [1000, -1])
    with pytest.raises(ConversionError, match="--bad-timestamps: choose error or drop"):
        xing.convert(str(raw), str(tmp_path / "out"), bad_timestamps="skip", **NO_FILTERS)
    with pytest.raises(ConversionError, match="--bad-timestamps: choose error or drop"):
        pinterest.convert([str(raw)], str(tmp_path / "out"), bad_timestamps="skip")
    assert xing.main(["--input", str(raw), "--output-dir", str(tmp_path / "out"),
                      "--min-user-count", "none", "--min-item-count", "none",
                      "--bad-timestamps", "drop"]) == 0
    assert "drop 1 row(s) with impossible timestamps" in capsys.readouterr().out
    assert xing.main(["--input", str(raw), "--output-dir", str(tmp_path / "again")]) == 2
    assert "line 3: column created_at: -1" in capsys.readouterr().err
    path, _ = pinterest_log(tmp_path, {3: "-5"})
    assert pinterest.main(["--input", path, "--output-dir", str(tmp_path / "pin"),
                           "--bad-timestamps", "drop"]) == 0
    assert "drop 1 row(s) with impossible timestamps" in capsys.readouterr().out

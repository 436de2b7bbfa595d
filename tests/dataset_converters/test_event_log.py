"""Event-log converter: the online-retail preset against an independent pandas computation,
session columns versus idle gaps, formats, and bad input named by file and line."""

import gzip
import os

import numpy as np
import pandas as pd
import pytest

from dataset_converters import event_log
from dataset_converters.engine import ConversionError

RETAIL_HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                 "UnitPrice", "CustomerID", "Country"]
NON_PRODUCTS = ["POST", "DOT", "M", "D"]


def retail_log(n_customers=60, n_invoices=400, n_codes=80, seed=0):
    """A log in the Online Retail layout: cancellations (C...), rows without a customer,
    customer ids written as floats, non-product codes, repeated codes inside a basket, and
    two baskets of one customer in the same minute."""
    rng = np.random.default_rng(seed)
    rows, clock = [], pd.Timestamp("2010-12-01 08:00")
    for number in range(536000, 536000 + n_invoices):
        clock += pd.Timedelta(minutes=int(rng.integers(0, 90)))
        customer = "" if rng.random() < 0.1 else f"{int(rng.integers(12000, 12000 + n_customers))}.0"
        invoice = ("C" if rng.random() < 0.05 else "") + str(number)
        for _ in range(int(rng.integers(1, 12))):
            code = (NON_PRODUCTS[int(rng.integers(len(NON_PRODUCTS)))] if rng.random() < 0.03
                    else f"{int(rng.zipf(1.3)) % n_codes + 20000}{'A' if rng.random() < .2 else ''}")
            rows.append([invoice, code, "A THING", 1.0, clock.strftime("%Y-%m-%d %H:%M:%S"),
                         1.5, customer, "United Kingdom"])
    return pd.DataFrame(rows, columns=RETAIL_HEADER)


def write_csv(frame, path):
    frame.to_csv(path, index=False)
    return path


def reference_online_retail(raw):
    """The preset's steps, computed independently with pandas."""
    frame = raw.assign(line=np.arange(len(raw)))
    frame = frame[frame.CustomerID.astype(str).str.strip().ne("") & frame.CustomerID.notna()]
    frame = frame[~frame.InvoiceNo.astype(str).str.startswith("C")]
    frame = frame[~frame.StockCode.isin(event_log.PRESETS["online-retail"].drop_items)]
    frame = frame.assign(
        user_id=frame.CustomerID.astype(float).astype(int).astype(str),
        item_id=frame.StockCode.astype(str),
        timestamp=pd.to_datetime(frame.InvoiceDate).astype("int64") // 10**9)
    frame = frame.sort_values(["user_id", "timestamp", "line"], kind="stable")
    opens = frame.InvoiceNo.ne(frame.InvoiceNo.shift()) | frame.user_id.ne(frame.user_id.shift())
    frame = frame.assign(session_id=opens.cumsum())
    frame = frame.drop_duplicates(["session_id", "item_id"], keep="first")
    frame = frame[frame.groupby("item_id").item_id.transform("size") >= 5]
    frame = frame[frame.groupby("user_id").user_id.transform("size") >= 5]
    return frame


def read_inter(folder, name):
    frame = pd.read_csv(os.path.join(folder, name, f"{name}.inter"), sep="\t",
                        dtype={"user_id:token": str, "item_id:token": str})
    assert list(frame.columns) == list(event_log.INTER_HEADER)
    frame.columns = ["user_id", "item_id", "timestamp", "session_id"]
    return frame


def test_online_retail_preset_matches_an_independent_computation(tmp_path):
    raw = retail_log()
    path = write_csv(raw, tmp_path / "retail.csv")
    gz = tmp_path / "retail.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    stats = event_log.convert(str(gz), str(tmp_path / "out"), preset="online-retail", echo=None)
    produced = read_inter(tmp_path / "out", "online-retail")
    expected = reference_online_retail(raw)
    columns = ["user_id", "item_id", "timestamp"]
    assert produced[columns].values.tolist() == expected[columns].values.tolist()
    # same partition into sessions (ids may be numbered differently)
    assert (produced.session_id.diff().fillna(1).ne(0).to_numpy()
            == expected.session_id.diff().fillna(1).ne(0).to_numpy()).all()
    assert stats.rows[-1][1:] == (len(expected), expected.user_id.nunique(),
                                  expected.item_id.nunique(), expected.session_id.nunique())
    assert not produced.user_id.str.endswith(".0").any()
    assert (tmp_path / "out" / "online-retail" / "online-retail.stats.md").is_file()


def test_a_basket_interrupted_by_another_is_two_sessions(tmp_path):
    # invoice 1 and 2 of one customer share a minute and alternate in the file
    text = ("InvoiceNo,StockCode,InvoiceDate,CustomerID\n"
            "1,a,2011-01-01 10:00:00,7\n2,b,2011-01-01 10:00:00,7\n"
            "1,c,2011-01-01 10:00:00,7\n3,d,2011-01-01 12:00:00,7\n")
    path = tmp_path / "log.csv"
    path.write_text(text)
    event_log.convert(str(path), str(tmp_path), name="t", preset="online-retail",
                      min_item_count=0, min_user_count=0, echo=None)
    inter = read_inter(tmp_path, "t")
    assert inter.item_id.tolist() == ["a", "b", "c", "d"]
    assert inter.session_id.diff().fillna(1).ne(0).tolist() == [True, True, True, True]


def test_sessions_from_idle_gaps_without_a_session_column(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("u\ti\tt\n1\tx\t1000\n1\ty\t2799\n1\tz\t4599\n2\tx\t5\n")
    event_log.convert(str(path), str(tmp_path), name="g", separator="\t", user_column="u",
                      item_column="i", time_column="t", session_gap=1800, echo=None)
    inter = read_inter(tmp_path, "g")
    assert inter.user_id.tolist() == ["1", "1", "1", "2"]
    assert inter.timestamp.tolist() == [1000, 2799, 4599, 5]
    opens = inter.session_id.diff().fillna(1).ne(0).tolist()
    assert opens == [True, False, True, True]  # gaps 1799 (same), 1800 (new), new user


def test_millisecond_times(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n1,a,1500000000000\n1,b,1500000001500\n")
    event_log.convert(str(path), str(tmp_path), name="ms", time_format="milliseconds",
                      echo=None)
    assert read_inter(tmp_path, "ms").timestamp.tolist() == [1500000000.0, 1500000001.5]


@pytest.mark.parametrize("content, options, message", [
    ("user,item,timestamp\n1,a,5\n", {}, r"line 1: missing column\(s\) user_id, item_id; the header has "
                                         r"user, item, timestamp"),
    ("user_id;item_id;timestamp\n1;a;5\n", {}, r"line 1: expected ','-separated .* semicolon"),
    ("user_id,item_id,timestamp\n1,a,5\n1,b,soon\n", {},
     r"line 3: column timestamp: 'soon' is not a time in --time-format 'seconds'"),
    ("user_id,item_id,timestamp\n1,a,5\n1,b,-3\n", {}, r"line 3: column timestamp: '-3'"),
    ("user_id,item_id,timestamp\n1,a,2011-01-01\n", {"time_format": "%d/%m/%Y"},
     r"line 2: column timestamp: '2011-01-01' is not a time in --time-format '%d/%m/%Y'"),
    ("user_id,item_id,timestamp\n1,a,5\n2,b\n", {}, r"line 3: expected 3 ','-separated fields"),
    ("user_id,item_id,timestamp\n", {}, r"no events after the header"),
    ("user_id,item_id,timestamp\n1,a,5\n", {"time_format": "unix"}, r"--time-format: seconds"),
])
def test_bad_input_is_reported_with_file_and_line(tmp_path, content, options, message):
    path = tmp_path / "log.csv"
    path.write_text(content)
    with pytest.raises(ConversionError, match=message):
        event_log.convert(str(path), str(tmp_path / "out"), echo=None, **options)
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_bad_times_can_be_dropped_and_counted(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n1,a,5\n1,b,soon\n1,c,-1\n1,d,7\n")
    stats = event_log.convert(str(path), str(tmp_path), name="d", bad_timestamps="drop",
                              echo=None)
    assert read_inter(tmp_path, "d").item_id.tolist() == ["a", "d"]
    assert any("drop 2 row(s) with unreadable or impossible times" in row[0]
               for row in stats.rows)


def test_command_line_writes_the_dataset(tmp_path, capsys):
    path = write_csv(retail_log(n_invoices=120), tmp_path / "retail.csv")
    assert event_log.main(["--preset", "online-retail", "--input", str(path),
                           "--output-dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "sessions from InvoiceNo" in printed and "drop InvoiceNo starting with 'C'" in printed
    assert event_log.main(["--input", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err

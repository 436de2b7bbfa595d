"""The columnar loader against RecBole's own: same fields, values, ids and token tables.

Generated atomic files exercise what RecBole's reader does to text: missing values (empty and
pandas' NA words), quoted tokens, tokens with spaces, floats only Python parses, token_seq and
float_seq fields split at the separator with empty pieces dropped, a .user and an .item file
that know users and items the interactions do not (and the reverse).
"""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.config import Config
from recbole.data.dataset import Dataset, SequentialDataset

from recbole_hiertcn.data.dataset import ColumnarDataset, SessionDataset
from recbole_hiertcn.data.dataset.columnar import TokenIds
from tests.conftest import small_config, write_session_dataset

NAME = "mixed"


def write_mixed_dataset(root, seed=0, n_rows=600, missing_items=False):
    """``root/mixed/mixed.{inter,user,item}`` with every field type and awkward text.

    Some rows have no user. ``missing_items``: some have no item either - RecBole 1.2.1 then
    drops rows by position where it means labels (an IndexError or the wrong rows), so the
    equality tests leave them out."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, NAME)
    os.makedirs(folder, exist_ok=True)
    users = [f"u{i}" for i in range(30)] + ["NA", "null", '"quoted user"', "u 31"]
    items = [str(i) for i in range(40)] + ["007", "7.0", "item with space"]
    items += ["nan"] if missing_items else []
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float\t"
             "session_id:token\tprev_item:token\ttags:token_seq\tscores:float_seq"]
    for row in range(n_rows):
        user = users[int(rng.integers(len(users)))] if row % 97 else ""
        item = items[int(rng.integers(len(items)))] if row % 89 or not missing_items else "None"
        rating = ["", "1_0", " 3 ", "4.5", "NA", "2e0"][row % 6] if row % 5 == 0 \
            else str(float(rng.integers(1, 6)))
        timestamp = str(1_600_000_000 + int(rng.integers(0, 10_000)))
        session = f"s{int(rng.integers(80))}" if row % 7 else ""
        prev = items[int(rng.integers(len(items)))]
        tags = " ".join(f"t{int(t)}" for t in rng.integers(0, 12, int(rng.integers(0, 5))))
        tags = tags.replace(" ", "  ", 1) if row % 3 == 0 else tags  # an empty piece
        scores = " ".join(f"{v:.3f}" for v in rng.random(int(rng.integers(0, 4))))
        lines.append("\t".join([user, item, rating, timestamp, session, prev, tags, scores]))
    with open(os.path.join(folder, f"{NAME}.inter"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n\n")  # a trailing blank line, skipped by both
    user_lines = ["user_id:token\tage:float\tgender:token"]
    for user in users[::2] + ["ghost"]:
        user_lines.append(f"{user}\t{int(rng.integers(18, 70))}\t{'MF'[int(rng.integers(2))]}")
    user_lines.append("u0\t99\tX")  # duplicate user: the first row wins
    with open(os.path.join(folder, f"{NAME}.user"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(user_lines) + "\n")
    item_lines = ["item_id:token\tgenre:token_seq\tprice:float\tvec:float_seq"]
    for item in items[1:] + ["orphan"]:
        genre = " ".join(f"g{int(g)}" for g in rng.integers(0, 6, int(rng.integers(0, 4))))
        vec = " ".join(f"{v:.4f}" for v in rng.random(3))
        price = "" if item == "7.0" else f"{rng.random() * 100:.2f}"
        item_lines.append(f"{item}\t{genre}\t{price}\t{vec}")
    with open(os.path.join(folder, f"{NAME}.item"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(item_lines) + "\n")
    entity_lines = ["ent_id:token\tent_emb:float_seq"]
    entity_lines += [f"{item}\t" + " ".join(f"{v:.3f}" for v in rng.random(int(rng.integers(1, 4))))
                     for item in items[::3] + ["unseen"]]
    with open(os.path.join(folder, f"{NAME}.ent"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(entity_lines) + "\n")
    return folder


def mixed_config(root, model="BPR", **overrides):
    settings = {"data_path": str(root), "dataset": NAME, "load_col": None,
                "TIME_FIELD": "timestamp", "RATING_FIELD": "rating", "state": "ERROR",
                "use_gpu": False, "show_progress": False, "normalize_all": False}
    settings.update(overrides)
    return Config(model=model, dataset=NAME, config_dict=settings)


SETTINGS = {
    "plain": {},
    "k-core": {"user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[6,40]"},
    "value filters": {"val_interval": {"rating": "[2,4.5]", "session_id": ["s1", "s2", "s3",
                                                                          "s40", 7]}},
    "duplicates": {"rm_dup_inter": "first"},
    "keep unknown ids": {"filter_inter_by_user_or_item": False},
    "seq_len and alias": {"seq_len": {"tags": 2, "genre": 1},
                          "alias_of_item_id": ["prev_item"]},
    "columns": {"load_col": {"inter": ["user_id", "item_id", "timestamp", "tags"],
                             "item": ["item_id", "vec"]},
                "unload_col": None},
    "unload": {"unload_col": {"inter": ["scores"], "user": ["gender"]}},
    "normalised": {"normalize_all": True},
    "additional file, preloaded": {"additional_feat_suffix": ["ent"],
                                   "alias_of_item_id": ["ent_id"],
                                   "preload_weight": {"ent_id": "ent_emb"}},
}


def assert_same_frame(ours, theirs, where):
    assert list(ours.columns) == list(theirs.columns), where
    assert len(ours) == len(theirs), where
    for column in theirs.columns:
        a, b = ours[column].to_numpy(), theirs[column].to_numpy()
        if b.dtype == object:
            assert len(a) == len(b)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=where)
                assert np.asarray(x).dtype.kind == np.asarray(y).dtype.kind or len(y) == 0
        else:
            assert a.dtype == b.dtype, f"{where} {column}: {a.dtype} != {b.dtype}"
            np.testing.assert_array_equal(a, b, err_msg=f"{where} {column}")


def assert_same_dataset(ours, theirs):
    for name in ("inter_feat", "user_feat", "item_feat"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if b is not None:
            assert_same_frame(a, b, name)
    for table in ("field2type", "field2source", "field2seqlen", "field2bucketnum"):
        assert getattr(ours, table) == getattr(theirs, table), table
    assert ours.field2id_token.keys() == theirs.field2id_token.keys()
    for field, tokens in theirs.field2id_token.items():
        assert ours.field2id_token[field].dtype == tokens.dtype, field
        np.testing.assert_array_equal(ours.field2id_token[field], tokens, err_msg=field)
        assert dict(ours.field2token_id[field]) == theirs.field2token_id[field], field
    for field, matrix in theirs._preloaded_weight.items():
        np.testing.assert_array_equal(ours._preloaded_weight[field], matrix)
    assert ours.user_counter == theirs.user_counter
    assert list(ours.item_counter.items()) == list(theirs.item_counter.items())  # key order
    assert ours.avg_actions_of_users == theirs.avg_actions_of_users
    assert ours.avg_actions_of_items == theirs.avg_actions_of_items


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_columnar_dataset_equals_recboles_field_by_field(tmp_path, setting):
    write_mixed_dataset(tmp_path)
    config = mixed_config(tmp_path, **SETTINGS[setting])
    assert_same_dataset(ColumnarDataset(config), Dataset(config))


def test_built_interactions_equal_recboles(tmp_path):
    """After RecBole's own conversion to tensors (padding of seq fields included)."""
    write_mixed_dataset(tmp_path, seed=3)
    config = mixed_config(tmp_path, user_inter_num_interval="[3,inf)")
    ours, theirs = ColumnarDataset(config), Dataset(config)
    for name in ("inter_feat", "user_feat", "item_feat"):
        a = ours._dataframe_to_interaction(getattr(ours, name))
        b = theirs._dataframe_to_interaction(getattr(theirs, name))
        assert a.columns == b.columns
        for field in b.columns:
            assert torch.equal(a[field], b[field]), (name, field)


def test_session_dataset_loads_what_recboles_sequential_dataset_loads(tmp_path):
    write_session_dataset(str(tmp_path), "tiny")
    config = Config(model="GRU4Rec", dataset="tiny",
                    config_dict=small_config(tmp_path, "tiny", user_inter_num_interval="[5,inf)",
                                             item_inter_num_interval="[3,inf)",
                                             train_neg_sample_args=None))
    ours, theirs = SessionDataset(config), SequentialDataset(config)
    assert_same_dataset(ours, theirs)


def test_rows_without_a_user_or_an_item_are_dropped_and_no_others(tmp_path):
    write_mixed_dataset(tmp_path, missing_items=True)
    dataset = ColumnarDataset(mixed_config(tmp_path, load_col={"inter": ["user_id", "item_id",
                                                                        "timestamp"]}))
    with open(os.path.join(tmp_path, NAME, f"{NAME}.inter"), encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t")[:2] for line in handle.readlines()[1:]]
    missing = {"", "NA", "null", "nan", "None"}
    kept = [(u.strip('"'), i) for u, i in rows[:-1] if u not in missing and i not in missing]
    assert 0 < len(kept) < len(rows) - 1
    got = list(zip(dataset.id2token("user_id", dataset.inter_feat["user_id"].to_numpy()),
                   dataset.id2token("item_id", dataset.inter_feat["item_id"].to_numpy())))
    assert got == kept


def test_token_ids_look_up_like_recboles_dict_and_pickle_without_it():
    import pickle

    tokens = np.array(["[PAD]", "a", "b c"])
    ids = TokenIds(tokens)
    assert len(ids) == 3 and ids["b c"] == 2 and "a" in ids and "z" not in ids
    assert dict(ids) == {"[PAD]": 0, "a": 1, "b c": 2}
    copy = pickle.loads(pickle.dumps(ids))
    assert copy._ids is None and dict(copy) == dict(ids)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def bad_config(tmp_path, inter_text, **overrides):
    write(os.path.join(tmp_path, "bad", "bad.inter"), inter_text)
    settings = {"data_path": str(tmp_path), "load_col": None, "state": "ERROR",
                "use_gpu": False, "TIME_FIELD": "timestamp"}
    settings.update(overrides)
    return Config(model="BPR", dataset="bad", config_dict=settings)


@pytest.mark.parametrize("text, message", [
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t12\nu\ti\tsoon\n",
     r"bad\.inter: line 3: column timestamp:float: 'soon' is not a number"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t12\nu\ti\n",
     r"bad\.inter: line 3: expected 3 fields \(the header's\), found 2"),
    ("user_id:token\titem_id\ttimestamp:float\nu\ti\t12\n",
     r"bad\.inter: line 1: column 'item_id' is not name:type"),
    ("user_id:token\titem_id:tokn\ttimestamp:float\nu\ti\t12\n",
     r"bad\.inter: line 1: column 'item_id:tokn' is not name:type"),
])
def test_unreadable_files_are_refused_naming_file_line_and_column(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        ColumnarDataset(bad_config(tmp_path, text))


def test_a_bad_float_in_a_float_seq_names_its_line(tmp_path):
    text = "user_id:token\titem_id:token\tv:float_seq\tts:float\nu\ti\t1 2\t1\nu\tj\t3 x\t2\n"
    with pytest.raises(ValueError, match=r"line 3: column v:float_seq: 'x' is not a number"):
        ColumnarDataset(bad_config(tmp_path, text, TIME_FIELD="ts"))


def test_a_multi_character_separator_is_refused_with_the_option_named(tmp_path):
    text = "user_id:token::item_id:token\nu::i\n"
    with pytest.raises(ValueError, match=r"`field_separator`: the columnar reader needs one"):
        ColumnarDataset(bad_config(tmp_path, text, field_separator="::", TIME_FIELD=None))


def test_a_byte_order_mark_is_not_part_of_the_first_field(tmp_path):
    write_mixed_dataset(tmp_path)
    path = os.path.join(tmp_path, NAME, f"{NAME}.inter")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "w", encoding="utf-8-sig") as handle:
        handle.write(text)
    dataset = ColumnarDataset(mixed_config(tmp_path))
    assert "user_id" in dataset.inter_feat and dataset.user_num > 10


def test_run_script_builds_columnar_datasets_for_general_models(tmp_path):
    from recbole_hiertcn.quick_start import make_dataset

    write_mixed_dataset(tmp_path)
    assert type(make_dataset(mixed_config(tmp_path))) is ColumnarDataset
    sequential = {"model": "GRU4Rec", "train_neg_sample_args": None}
    assert type(make_dataset(mixed_config(tmp_path, use_session_dataset=True,
                                          **sequential))) is SessionDataset
    frame = make_dataset(mixed_config(tmp_path, use_session_dataset=False, **sequential))
    assert type(frame) is SequentialDataset
    assert isinstance(frame.inter_feat, pd.DataFrame)


def test_ml_100k_with_every_field_equals_recboles():
    """The real ml-100k in RecBole's wheel: .inter, .user and .item with token_seq titles and
    genres."""
    import recbole

    root = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
    config = Config(model="BPR", dataset="ml-100k", config_dict={
        "data_path": root, "load_col": None, "state": "ERROR", "use_gpu": False,
        "user_inter_num_interval": "[10,inf)", "item_inter_num_interval": "[5,inf)"})
    assert_same_dataset(ColumnarDataset(config), Dataset(config))


def test_loaded_columns_are_writable_arrays(tmp_path):
    """torch warns on (and may share memory with) read-only numpy arrays; Arrow's are."""
    write_mixed_dataset(tmp_path)
    dataset = ColumnarDataset(mixed_config(tmp_path))
    for feat in (dataset.inter_feat, dataset.user_feat, dataset.item_feat):
        for column in feat.columns:
            values = feat[column].to_numpy()
            rows = values if values.dtype == object else [values]  # seq fields: one per row
            assert all(np.asarray(row).flags.writeable for row in rows), column

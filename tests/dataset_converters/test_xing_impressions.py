"""XING impressions tied to sessions: the rule, the counts, and HierTCN drawing its negatives
from the impressions of the target's session."""

import pandas as pd
import pytest
import torch

from recbole.data import data_preparation
from recbole.utils import init_seed

from dataset_converters import xing, xing_sample
from recbole_hiertcn import HierTCN
from recbole_hiertcn.quick_start import build_config, make_dataset
from tests.dataset_converters.test_xing import HEADER

NO_FILTERS = dict(min_item_count=xing.OFF, min_user_count=xing.OFF, max_user_count=xing.OFF,
                  echo=None)
# (user, item, type, time). User 1 has session A (11000-11100) and B (14000), 2900 s apart;
# user 2 engages items 20-26 in session C; user 3 engages nothing.
ENGAGEMENTS = [(1, 10, 1, 11000), (1, 11, 1, 11100), (1, 12, 1, 14000)] + \
              [(2, item, 1, 11000 + item - 20) for item in range(20, 27)]
IMPRESSIONS = [
    (1, 26, 0, 5000),   # 6000 s before A: outside every session, dropped
    (1, 20, 0, 10900),  # just before A: A
    (1, 21, 0, 11050),  # inside A
    (1, 12, 0, 11080),  # inside A (12 is engaged in B, not in A): A
    (1, 11, 0, 11090),  # inside A, but engaged there: left out
    (1, 22, 0, 12899),  # 1799 s after A and 1101 s before B: the earlier one, A
    (1, 23, 0, 12900),  # 1800 s after A (a new session at >= 1800) and 1100 s before B: B
    (1, 24, 0, 13900),  # just before B
    (1, 25, 0, 19000),  # 5000 s after B: dropped
    (2, 10, 0, 10500),  # 500 s before C
    (3, 10, 0, 11000),  # user 3 has no engagements: not a kept user
]


def write_log(path, rows):
    path.write_text(HEADER + "".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path


def read_impressions(folder):
    shown = pd.read_csv(folder / "xing" / "xing.impression", sep="\t")
    assert list(shown.columns) == ["user_id:token", "item_id:token", "timestamp:float",
                                   "session_id:token"]
    return [tuple(row) for row in shown.to_numpy().tolist()]


@pytest.mark.parametrize("rule, item_23_session", [(">=", 2), (">", 1)])
def test_each_impression_gets_the_session_it_falls_in(tmp_path, rule, item_23_session):
    # file order mixes impressions and engagements; the output is by user and time
    raw = write_log(tmp_path / "interactions.csv", IMPRESSIONS[::-1] + ENGAGEMENTS)
    stats = xing.convert(str(raw), str(tmp_path), impressions=True, gap_rule=rule, **NO_FILTERS)
    a, b, c = 1, 2, 3  # sessions are numbered by user, then time
    assert read_impressions(tmp_path) == [
        (1, 20, 10900, a), (1, 21, 11050, a), (1, 12, 11080, a), (1, 22, 12899, a),
        (1, 23, 12900, item_23_session), (1, 24, 13900, b), (2, 10, 10500, c)]
    rows = {row[0].strip(): row[1:] for row in stats.rows}
    assert rows["impressions of kept users and items"] == (10, 2, 10, None)
    assert rows["impressions within 1800 s of a session"] == (8, 2, 8, 3)
    assert rows["impressions not engaged in session"] == (7, 2, 7, 3)


def test_session_gap_option_widens_the_span(tmp_path):
    raw = write_log(tmp_path / "interactions.csv", ENGAGEMENTS + IMPRESSIONS)
    xing.convert(str(raw), str(tmp_path), impressions=True, session_gap=6000, **NO_FILTERS)
    # A and B are one session now: 26 (6000 s before it) is still out, 25 (5000 s after) in,
    # and 12 (engaged in it) out
    shown = read_impressions(tmp_path)
    assert [row[1] for row in shown if row[0] == 1] == [20, 21, 22, 23, 24, 25]
    assert {row[3] for row in shown if row[0] == 1} == {1}


@pytest.fixture(scope="module")
def xing_with_impressions(tmp_path_factory):
    """A generated 2017-format log (type-0 rows included) converted on the command line."""
    root = tmp_path_factory.mktemp("xing17")
    frame, items = xing_sample.generate(n_users=150, n_items=120, year=2017, seed=5)
    xing_sample.write(frame, items, str(root / "raw"), year=2017)
    assert (frame.interaction_type == 0).sum() > 0
    assert xing.main(["--input", str(root / "raw" / "interactions.csv"), "--output-dir",
                      str(root / "dataset"), "--impressions", "--min-item-count", "none"]) == 0
    return root / "dataset"


def test_hiertcn_negatives_are_impressions_of_the_targets_session(xing_with_impressions):
    settings = {"data_path": str(xing_with_impressions), "impression_negatives": True,
                "feedview_field": "session_id", "loss_type": "BPR",
                "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
                "embedding_size": 16, "hidden_size": 16, "tcn_channels": [16, 16],
                "train_batch_size": 256, "show_progress": False, "state": "ERROR",
                "use_gpu": False, "seed": 3}
    config = build_config("HierTCN", "xing", config_dict=settings)
    assert config["train_mode"] == "sequence"
    init_seed(config["seed"], True)
    data = make_dataset(config)
    train, _, _ = data_preparation(config, data)
    index = data.impressions
    assert index["field"] == "session_id"

    # the index holds exactly the file's impressions, grouped by session
    shown = pd.read_csv(xing_with_impressions / "xing" / "xing.impression", sep="\t", dtype=str)
    session_ids, item_ids = data.field2token_id["session_id"], data.field2token_id["item_id"]
    expected = {}
    for session, item in zip(shown["session_id:token"], shown["item_id:token"]):
        expected.setdefault(session_ids[session], []).append(item_ids[item])
    for session, items in expected.items():
        start, count = int(index["starts"][session]), int(index["counts"][session])
        assert index["items"][start:start + count].tolist() == items
    assert int(index["counts"].sum()) == len(shown)

    checked = 0
    for batch in train:
        mask, sessions = batch["seq_target_mask"], batch["seq_session_id"]
        negatives = batch["seq_neg_item_id"]
        assert negatives.shape == mask.shape + (1,)
        for row, col in mask.nonzero().tolist():
            session = int(sessions[row, col])
            if session in expected:
                assert int(negatives[row, col, 0]) in expected[session]
                assert int(negatives[row, col, 0]) != int(batch["seq_item_id"][row, col])
                checked += 1
    assert checked > 100
    init_seed(config["seed"], True)
    loss = HierTCN(config, train._dataset).calculate_loss(batch)  # BPR against them
    assert torch.isfinite(loss) and loss > 0

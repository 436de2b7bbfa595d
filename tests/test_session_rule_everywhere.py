"""The dataset, the ``last_session`` protocol, the session-kNN index, the models and the served
stream cut a log into the same sessions as :class:`~recbole_hiertcn.core.session_rule.
SessionRule` (gaps of exactly ``session_gap`` included)."""

import os

import numpy as np
import pytest
import torch

from recbole_hiertcn.core.session_rule import DEFAULT_SESSION_GAP, SessionRule
from recbole_hiertcn.data import protocols
from recbole_hiertcn.model.session_knn.index import SessionIndex, TrainingLog
from tests.conftest import small_config
from tests.serving.helpers import N_ITEMS, served_model

NAME = "edge_gaps"


def generated_log(n_users=12, seed=4):
    """Sorted by (user, time): ``users``, ``items``, integer ``times`` whose gaps sit on both
    sides of the default rule and on it (1799, 1800, 1801 s), and 0-second gaps."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for user in range(1, n_users + 1):
        now = 1_000_000 + int(rng.integers(0, 1000))  # exact in float32 too
        for _ in range(int(rng.integers(6, 20))):
            users.append(user)
            items.append(int(rng.integers(1, N_ITEMS)))
            times.append(now)
            now += int(rng.choice([0, 60, 1799, 1800, 1801, 9000]))
    return np.array(users), np.array(items), np.array(times, dtype=np.int64)


def reference_opens(users, times, gap=DEFAULT_SESSION_GAP):
    """The rule in words: a user's first event, or at least ``gap`` seconds idle."""
    return np.array([i == 0 or users[i] != users[i - 1] or times[i] - times[i - 1] >= gap
                     for i in range(len(users))])


@pytest.fixture(scope="module")
def log():
    users, items, times = generated_log()
    expected = reference_opens(users, times)
    assert 0 < expected.sum() < len(users)
    assert np.any(np.diff(times)[users[1:] == users[:-1]] == DEFAULT_SESSION_GAP)
    return users, items, times, expected


def test_the_rule_is_the_reference(log):
    users, _, times, expected = log
    starts, _ = protocols.user_layout(users)
    assert SessionRule(by_time=True).opens(times.astype(np.float64), starts).tolist() == \
        expected.tolist()


def test_the_model_batches_agree(log):
    users, _, times, expected = log
    starts, lengths = protocols.user_layout(users)
    rule = SessionRule(by_time=True)
    for start, length in zip(starts, lengths):
        row = torch.from_numpy(times[start:start + length].astype(np.float64)).unsqueeze(0)
        assert rule.opens_rows(row)[0].tolist() == expected[start:start + length].tolist()


def test_the_last_session_protocol_holds_out_the_rules_last_sessions(log):
    users, _, times, expected = log
    starts, lengths = protocols.user_layout(users)
    _, _, test = protocols.split(starts, lengths, "last_session", "test_only",
                                 opens=SessionRule(by_time=True).opens(times, starts))
    wanted = []
    for start, length in zip(starts, lengths):
        opens = np.flatnonzero(expected[start:start + length])
        if len(opens) > 1:  # a user keeps at least one session for training
            wanted += range(start + max(opens[-1], 1), start + length)
    assert test.tolist() == wanted


def test_the_knn_index_cuts_the_same_sessions(log):
    users, items, times, expected = log
    training = TrainingLog(users=users, items=items, boundary=times.astype(np.float64),
                           times=times.astype(np.float64), by_time=True)
    assert training.gap == DEFAULT_SESSION_GAP
    assert training.session_opens().tolist() == expected.tolist()
    index = SessionIndex(training, N_ITEMS)
    assert index.n_sessions == int(expected.sum())
    # a row whose last history event comes after a user's last training event continues the
    # user's last session while the gap is below session_gap
    starts, lengths = protocols.user_layout(users)
    ends = starts + lengths - 1
    last_user, last_time = users[ends], times[ends].astype(np.float64)
    for offset, continues in ((0.0, True), (DEFAULT_SESSION_GAP - 1, True),
                              (DEFAULT_SESSION_GAP, False)):
        found = index.own_session(last_user, last_time + offset, np.ones(len(ends), bool))
        assert bool(np.all(found >= 0)) is continues and bool(np.any(found >= 0)) is continues


def test_the_stream_opens_the_same_sessions(log):
    from recbole_hiertcn.serving.stream import StreamingHierTCN

    users, items, times, expected = log
    model = served_model()
    assert model.settings.session_gap == DEFAULT_SESSION_GAP
    stream = StreamingHierTCN(model)
    opened = []
    for user, item, time in zip(users, items, times):
        stream.observe(f"u{user}", f"i{item}", float(time))
        opened.append(stream.state(f"u{user}").session_count == 1)
    assert opened == expected.tolist()


def test_the_dataset_cuts_the_same_sessions(log, tmp_path):
    from recbole.config import Config

    from recbole_hiertcn.quick_start import make_dataset

    users, items, times, expected = log
    folder = tmp_path / NAME
    os.makedirs(folder)
    with open(folder / f"{NAME}.inter", "w", encoding="utf-8") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        handle.writelines(f"{u}\t{i}\t{t}\n" for u, i, t in zip(users, items, times))
    config = Config(model="HierTCN", dataset=NAME, config_dict=small_config(
        tmp_path, NAME, with_session_field=False, eval_args={
            "split": {"last_session": "valid_and_test"}, "order": "TO", "mode": "full"},
        user_inter_num_interval="[0,inf)", item_inter_num_interval="[0,inf)"))
    dataset = make_dataset(config)
    dataset.build()  # the views read the opens of the built log
    uid, tid = dataset.uid_field, dataset.time_field
    tokens = dataset.field2id_token[uid]
    feat = dataset.inter_feat
    order_users = np.array([int(tokens[u]) for u in feat[uid].numpy()])
    order_times = feat[tid].numpy().astype(np.int64)
    assert dataset.session_opens().tolist() == reference_opens(order_users,
                                                               order_times).tolist()
    assert int(dataset.session_opens().sum()) == int(expected.sum())

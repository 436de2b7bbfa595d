"""Session-kNN models, sequential rules and floors: hand-computed scores per model, the
extensions, the own-session rule, batch against row-by-row and against a slow reference of the
formulas, training data only, and the RecBole side (every protocol, both train modes, reload)."""

import json
import math
import os

import numpy as np
import pytest
import torch

from recbole_hiertcn.data.protocols import PROTOCOLS, eval_args
from recbole_hiertcn.model.session_knn import (
    SKNN,
    STAN,
    VSKNN,
    VSTAN,
    Extensions,
    Popularity,
    Repeat,
    Rows,
    SequentialRules,
    SessionIndex,
    TrainingLog,
)
from recbole_hiertcn.model.session_knn.neighbours import top_per_row
from tests.conftest import assert_reload_reproduces, build_model, small_config
from tests.model.sequential_recommender.knn_reference import final_scores

N_ITEMS = 7
E = math.exp


# ----------------------------------------------------------------------------- a hand example
def hand_log():
    """Three training sessions (ids as boundaries): A = user 1 [1, 2, 3] ending at t=100,
    B = user 2 [2, 4] at t=200, C = user 3 [3, 4, 5] at t=300 (numbers by recency 0, 1, 2)."""
    return TrainingLog(users=np.array([1, 1, 1, 2, 2, 3, 3, 3]),
                       items=np.array([1, 2, 3, 2, 4, 3, 4, 5]),
                       boundary=np.array([1, 1, 1, 2, 2, 3, 3, 3]),
                       times=np.array([98, 99, 100, 199, 200, 298, 299, 300], dtype=float),
                       by_time=False)


def one_row(items, ids, user=9, opens_target=False, times=None):
    """A row whose history has these items and session ids; the target continues the last
    session unless ``opens_target``."""
    n = len(items)
    opens = np.zeros((1, n + 1), dtype=bool)
    opens[0, 0] = True
    for j in range(1, n):
        opens[0, j] = ids[j] != ids[j - 1]
    opens[0, n] = opens_target
    times = np.arange(400, 400 + n, dtype=float) if times is None else np.asarray(times, float)
    return Rows(items=np.array([items]), lengths=np.array([n]), opens=opens,
                users=np.array([user]), boundary=np.array([ids]), times=times[None, :])


def normalised(raw):
    """``f`` without the tie-break: raw scores over their maximum, padding -inf."""
    raw = np.asarray(raw, dtype=float)
    out = raw / raw.max()
    out[0] = -np.inf
    return out


def assert_scores(scores, expected, atol=1e-8):
    """Equal up to the popularity tie-break (< 1e-9)."""
    scores, expected = np.asarray(scores[0]), np.asarray(expected)
    assert np.isneginf(scores[0]) and np.isneginf(expected[0])
    assert np.allclose(scores[1:], expected[1:], atol=atol), (scores, expected)


ROW = one_row([2, 3], [50, 50])  # query s = (2, 3): item 3 one step back, item 2 two


def test_sknn_hand_example():
    # sim: A |{2,3}|/sqrt(2*3), B 1/sqrt(2*2), C 1/sqrt(2*3); k = 2 keeps A and B
    a, b = 2 / math.sqrt(6), 1 / 2
    raw = [0, a, a + b, a, b, 0, 0]
    assert_scores(SKNN(SessionIndex(hand_log(), N_ITEMS), k=2).scores(ROW), normalised(raw))


def test_sknn_jaccard_hand_example():
    # Jaccard: A 2/3, B 1/3, C 1/4; k = 2 keeps A and B
    a, b = 2 / 3, 1 / 3
    raw = [0, a, a + b, a, b, 0, 0]
    model = SKNN(SessionIndex(hand_log(), N_ITEMS), k=2, similarity="jaccard")
    assert_scores(model.scores(ROW), normalised(raw))


def test_vsknn_hand_example():
    # w(x) = 1/x: item 3 weighs 1, item 2 weighs 1/2; sim A 1.5/sqrt6, B 0.5/2, C 1/sqrt6;
    # k = 2 keeps A and C, both anchored at item 3 (x = 1, score weight 1)
    a, c = 1.5 / math.sqrt(6), 1 / math.sqrt(6)
    raw = [0, a, a, a + c, c, c, 0]
    model = VSKNN(SessionIndex(hand_log(), N_ITEMS), k=2, weighting="div",
                  score_weighting="div", idf_weight=0.0)
    assert_scores(model.scores(ROW), normalised(raw))


def test_vsknn_score_weighting_and_idf_hand_example():
    # k = 3: B is anchored at item 2 (x = 2): its contribution times 1/2; idf = log(3 / S_i)
    a, b, c = 1.5 / math.sqrt(6), 0.5 / 2 * 0.5, 1 / math.sqrt(6)
    idf = [0, math.log(3), math.log(1.5), math.log(1.5), math.log(1.5), math.log(3), 0]
    raw = np.array([0, a, a + b, a + c, b + c, c, 0]) * (1 + 2.0 * np.array(idf))
    model = VSKNN(SessionIndex(hand_log(), N_ITEMS), k=3, weighting="div",
                  score_weighting="div", idf_weight=2.0)
    assert_scores(model.scores(ROW), normalised(raw))


def test_stan_hand_example():
    # w1: item 3 e^0, item 2 e^-1; sim A (1 + e^-1)/sqrt6, B e^-1/2, C 1/sqrt6 -> A, C;
    # both anchored at item 3: position 3 in A, 1 in C; item weights e^-|p - p_a|
    a, c = (1 + E(-1)) / math.sqrt(6), 1 / math.sqrt(6)
    raw = [0, a * E(-2), a * E(-1), a + c, c * E(-1), c * E(-2), 0]
    model = STAN(SessionIndex(hand_log(), N_ITEMS), k=2, lambda_spw=1.0, lambda_snh=None,
                 lambda_inh=1.0)
    assert_scores(model.scores(ROW), normalised(raw))


def test_stan_recency_hand_example():
    # the row's last event is at t = 401; gaps to A, B, C: 301, 201, 101 s; lambda_snh 0.001
    # days = 86.4 s (relative to the nearest, C): A x e^(-200/86.4), B x e^(-100/86.4) -> C, B
    lam = 86.4
    a = (1 + E(-1)) / math.sqrt(6) * E(-200 / lam)
    b = E(-1) / 2 * E(-100 / lam)
    c = 1 / math.sqrt(6)
    assert b > a
    # B anchored at item 2 (position 1 of B): item 4 at distance 1
    raw = [0, 0, b, c, c * E(-1) + b * E(-1), c * E(-2), 0]
    model = STAN(SessionIndex(hand_log(), N_ITEMS), k=2, lambda_spw=1.0, lambda_snh=0.001,
                 lambda_inh=1.0)
    assert_scores(model.scores(ROW), normalised(raw))


def test_vstan_hand_example():
    # sample_size 2: the two most recent candidates, B and C (A is left out before k);
    # lambda_ipw 1: B anchored 2 steps back (e^-1), C 1 step back (1); lambda_inh off
    b, c = E(-1) / 2 * E(-1), 1 / math.sqrt(6)
    idf = [0, math.log(3), math.log(1.5), math.log(1.5), math.log(1.5), math.log(3), 0]
    raw = np.array([0, 0, b, c, b + c, c, 0]) * (1 + 0.5 * np.array(idf))
    model = VSTAN(SessionIndex(hand_log(), N_ITEMS), k=3, sample_size=2, lambda_spw=1.0,
                  lambda_snh=None, lambda_inh=None, lambda_ipw=1.0, lambda_idf=0.5)
    assert_scores(model.scores(ROW), normalised(raw))


def test_sr_hand_example():
    # rules within 2 steps, 1/d: 1->2 1, 1->3 1/2, 2->3 1, 2->4 1, 3->4 1, 3->5 1/2, 4->5 1
    index = SessionIndex(hand_log(), N_ITEMS)
    assert_scores(SequentialRules(index, steps=2).scores(ROW), normalised([0, 0, 0, 0, 1, .5, 0]))
    # last_items 2: + w(2) = 1/2 times the rules of item 2
    assert_scores(SequentialRules(index, steps=2, last_items=2).scores(ROW),
                  normalised([0, 0, 0, .5, 1.5, .5, 0]))
    # pruning 1: item 3 keeps only its heaviest rule (3 -> 4)
    assert_scores(SequentialRules(index, steps=2, pruning=1).scores(ROW),
                  normalised([0, 0, 0, 0, 1, 0, 0]))


def test_popularity_hand_example():
    scores = Popularity(SessionIndex(hand_log(), N_ITEMS)).scores(ROW)
    assert_scores(scores, normalised([0, 1, 2, 2, 2, 1, 0]))


def test_repeat_ranks_the_most_frequent_history_items_first_ties_by_popularity():
    # history 4, 1, 4, 2: item 4 twice; 1 and 2 once (2 is more popular); then the rest by
    # popularity (3 before 5), item 6 never seen anywhere last
    row = one_row([4, 1, 4, 2], [7, 7, 8, 8])
    scores = Repeat(SessionIndex(hand_log(), N_ITEMS)).scores(row)[0]
    assert list(np.argsort(-scores[1:]) + 1) == [4, 2, 1, 3, 5, 6]
    raw = [0, 1 + 1 / 3, 1 + 2 / 3, 2 / 3, 2 + 2 / 3, 1 / 3, 0]
    assert_scores(scores[None], normalised(raw))


def test_ties_between_neighbours_go_to_the_more_recent_session():
    # query {3}: A and C tie (1/sqrt3); k = 1 keeps C (more recent): items 3, 4, 5
    row = one_row([3], [50])
    scores = SKNN(SessionIndex(hand_log(), N_ITEMS), k=1).scores(row)
    assert_scores(scores, normalised([0, 0, 0, 1, 1, 1, 0]))


# ----------------------------------------------------------------------------- the own session
def test_the_running_sessions_own_training_part_is_never_a_neighbour():
    # user 1 continues session A (id 1): A is its own session, only B is left
    own = SKNN(SessionIndex(hand_log(), N_ITEMS), k=5).scores(one_row([1, 2], [1, 1], user=1))
    assert_scores(own, normalised([0, 0, 1, 0, 1, 0, 0]))
    # another user (or user 1 in another session) has A as a neighbour
    other = SKNN(SessionIndex(hand_log(), N_ITEMS), k=5).scores(one_row([1, 2], [1, 1], user=9))
    assert other[0, 1] > 0
    new_session = SKNN(SessionIndex(hand_log(), N_ITEMS), k=5).scores(
        one_row([1, 2], [4, 4], user=1))
    assert new_session[0, 1] > 0


def test_the_own_session_by_time_gaps():
    log = hand_log()
    log = TrainingLog(log.users, log.items, log.times, log.times, by_time=True, gap=30.0)
    index = SessionIndex(log, N_ITEMS)
    # user 1's row continues A (last event at 100; the row's last event at 120 < 100 + 30)
    continuing = SKNN(index, k=5).scores(one_row([1, 2], [110, 120], user=1, times=[110, 120]))
    assert_scores(continuing, normalised([0, 0, 1, 0, 1, 0, 0]))
    # 30 s after A's end is a new session: A is a neighbour again
    later = SKNN(index, k=5).scores(one_row([1, 2], [130, 131], user=1, times=[130, 131]))
    assert later[0, 1] > 0


# ----------------------------------------------------------------------------- extensions
# history: E2 = [1, 5] (ids 60), E1 = [5, 4] (61), running [3] (62)
EXT_ROW = one_row([1, 5, 5, 4, 3], [60, 60, 61, 61, 62])


def scores_with(model_class, row=EXT_ROW, **extensions):
    index = SessionIndex(hand_log(), N_ITEMS)
    kwargs = {"k": 2} if model_class is SKNN else {}
    return model_class(index, extensions=Extensions(**extensions), **kwargs).scores(row)[0]


def test_extend_fills_a_short_running_session_from_the_earlier_sessions():
    # without: query {3}, A and C tie, k = 2 keeps both
    plain = scores_with(SKNN)
    assert_scores(plain[None], normalised([0, 1, 1, 2, 1, 1, 0]))
    # extend_length 3: query = the last 3 events {5, 4, 3}: C 3/3, B 1/sqrt6 (A 1/3 is 3rd)
    b, c = 1 / math.sqrt(6), 1.0
    extended = scores_with(SKNN, extend=True, extend_length=3)
    assert_scores(extended[None], normalised([0, 0, b, c, b + c, c, 0]))
    # a running session as long as extend_length is left alone
    assert np.array_equal(scores_with(SKNN, extend=True, extend_length=1), plain)


def test_extend_matters_when_the_target_opens_a_session():
    row = one_row([1, 5, 5, 4], [60, 60, 61, 61], opens_target=True)
    empty = scores_with(SKNN, row=row)
    assert np.allclose(empty[1:], scores_with(Popularity, row=row)[1:] * 0, atol=1e-8)
    extended = scores_with(SKNN, row=row, extend=True, extend_length=2)  # query {5, 4}
    b, c = 1 / 2, 2 / math.sqrt(6)  # B {2,4}, C {3,4,5}
    assert_scores(extended[None], normalised([0, 0, b, c, b + c, c, 0]))


def test_boost_adds_the_log_count_of_earlier_sessions():
    plain, boosted = scores_with(SKNN), scores_with(SKNN, boost=True, boost_weight=0.5)
    h = np.zeros(N_ITEMS)
    h[5] = 1.0  # in both earlier sessions
    h[1] = h[4] = math.log(2) / math.log(3)  # in one
    assert np.allclose(boosted[1:] - plain[1:], 0.5 * h[1:])


def test_remind_by_recency():
    plain = scores_with(SKNN)
    reminded = scores_with(SKNN, remind=True, remind_weight=0.25, remind_sessions=3)
    m = np.zeros(N_ITEMS)
    m[5] = m[4] = 1.0  # in E1
    m[1] = 0.5  # only in E2
    assert np.allclose(reminded[1:] - plain[1:], 0.25 * m[1:])
    only_last = scores_with(SKNN, remind=True, remind_weight=0.25, remind_sessions=1)
    m[1] = 0.0
    assert np.allclose(only_last[1:] - plain[1:], 0.25 * m[1:])


def test_remind_by_session_similarity():
    base = {"extend": True, "extend_length": 3}  # query {5, 4, 3}
    plain = scores_with(SKNN, **base)
    reminded = scores_with(SKNN, remind=True, remind_strategy="session_similarity", **base)
    e1, e2 = 2 / math.sqrt(6), 1 / math.sqrt(6)  # cos(s, {5,4}), cos(s, {1,5})
    m = np.zeros(N_ITEMS)
    m[5], m[4], m[1] = e1 + e2, e1, e2
    assert np.allclose(reminded[1:] - plain[1:], m[1:] / m.max())


def test_exclude_running_items():
    scores = scores_with(SKNN, exclude_running_items=True)
    assert np.isneginf(scores[3]) and np.all(np.isfinite(scores[1:3]))
    assert np.array_equal(np.delete(scores, 3), np.delete(scores_with(SKNN), 3))


def test_switches_off_change_nothing():
    off = Extensions(boost_weight=5.0, remind_weight=5.0, extend_length=4)
    index = SessionIndex(hand_log(), N_ITEMS)
    assert np.array_equal(SKNN(index, k=2, extensions=off).scores(EXT_ROW),
                          SKNN(index, k=2).scores(EXT_ROW))


# ----------------------------------------------------------------------------- against the formulas
def random_log(rng, by_time, n_users=8):
    users, items, bound, times = [], [], [], []
    for user in range(1, n_users + 1):
        t, sid = float(rng.integers(0, 10**6)), 0
        for _ in range(rng.integers(1, 5)):
            for _ in range(rng.integers(1, 6)):
                users.append(user)
                items.append(int(rng.integers(1, 12)))
                times.append(t)
                bound.append(t if by_time else user * 100 + sid)
                t += float(rng.integers(10, 600))
            t += float(rng.integers(2000, 10**6))
            sid += 1
    return TrainingLog(np.array(users), np.array(items), np.array(bound), np.array(times),
                       by_time, 1800.0)


def random_rows(rng, log, n_rows=7, width=8):
    """Random rows; the first two continue a training session of their user (as under LS)."""
    items = np.zeros((n_rows, width), np.int64)
    lengths = rng.integers(1, width + 1, n_rows)
    opens = np.zeros((n_rows, width + 1), bool)
    bound, times = np.zeros((n_rows, width)), np.zeros((n_rows, width))
    users = rng.integers(1, 10, n_rows)
    for b in range(n_rows):
        t, sid = float(rng.integers(0, 10**6)), 5000 + 10 * b
        for j in range(lengths[b] + 1):
            new = j == 0 or rng.random() < 0.3
            t, sid = (t + 5000, sid + 1) if new and j else (t + 60, sid)
            opens[b, j] = new
            if j < lengths[b]:
                items[b, j], times[b, j] = rng.integers(1, 12), t
                bound[b, j] = t if log.by_time else sid
    for b in range(2):
        g = int(rng.integers(0, len(log.items)))
        first = int(np.flatnonzero(log.users == log.users[g])[0])
        hist = list(range(max(first, g - width + 1), g + 1))
        n = len(hist)
        lengths[b], users[b] = n, log.users[g]
        items[b], opens[b] = 0, False
        items[b, :n], bound[b, :n], times[b, :n] = (log.items[hist], log.boundary[hist],
                                                    log.times[hist])
        opens[b, 0] = True
        for j in range(1, n):
            step = log.boundary[hist[j]] - log.boundary[hist[j - 1]]
            opens[b, j] = step >= log.gap if log.by_time else step != 0
    return Rows(items, lengths, opens, users, bound, times)


MODELS = [
    ("SKNN", SKNN, {"k": 3}),
    ("SKNN", SKNN, {"k": 2, "sample_size": 3, "similarity": "jaccard"}),
    ("VSKNN", VSKNN, {"k": 3, "sample_size": 4, "weighting": "linear", "score_weighting": "div",
                      "idf_weight": 1.0}),
    ("VSKNN", VSKNN, {"k": 5, "weighting": "quadratic", "score_weighting": "log",
                      "similarity": "jaccard"}),
    ("STAN", STAN, {"k": 3, "lambda_spw": 1.5, "lambda_snh": 2.0, "lambda_inh": 1.3}),
    ("STAN", STAN, {"k": 4, "lambda_spw": None, "lambda_snh": None, "lambda_inh": None}),
    ("VSTAN", VSTAN, {"k": 3, "sample_size": 4, "lambda_spw": 1.0, "lambda_snh": 3.0,
                      "lambda_inh": 2.0, "lambda_ipw": 0.7, "lambda_idf": 0.5,
                      "similarity": "jaccard"}),
    ("SR", SequentialRules, {"steps": 3, "weighting": "div", "pruning": 2, "last_items": 2}),
    ("SR", SequentialRules, {"steps": 10, "weighting": "linear"}),
    ("Popularity", Popularity, {}),
    ("Repeat", Repeat, {}),
]
EXTENSIONS = [
    {},
    {"extend": True, "extend_length": 3},
    {"boost": True, "boost_weight": 0.7},
    {"remind": True, "remind_sessions": 2, "remind_weight": 0.5},
    {"remind": True, "remind_strategy": "session_similarity", "remind_sessions": 3},
    {"exclude_running_items": True, "extend": True, "extend_length": 4, "boost": True},
]


@pytest.mark.parametrize("name, scorer, params", MODELS)
def test_equals_a_row_by_row_reading_of_the_formulas(name, scorer, params):
    rng = np.random.default_rng(len(name) + len(params))
    for trial in range(6):
        log = random_log(rng, by_time=trial % 2 == 0)
        rows = random_rows(rng, log)
        index = SessionIndex(log, 12)
        for ext in EXTENSIONS:
            got = scorer(index, extensions=Extensions(**ext), **params).scores(rows)
            expected = final_scores(name, dict(params, n_items=12), log, rows, ext)
            assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), (trial, ext)


@pytest.mark.parametrize("name, scorer, params", MODELS[::2])
def test_a_batch_equals_each_row_alone(name, scorer, params):
    rng = np.random.default_rng(3)
    log = random_log(rng, by_time=True, n_users=12)
    rows = random_rows(rng, log, n_rows=12)
    ext = Extensions(boost=True, remind=True, extend=True, extend_length=2)
    model = scorer(SessionIndex(log, 12), extensions=ext, chunk_rows=5, **params)
    batch = model.scores(rows)
    for b in range(len(rows)):
        assert np.array_equal(batch[b], model.scores(rows.take(np.array([b])))[0])


def test_top_per_row_keeps_the_k_largest_ties_to_the_larger_tie_value():
    rng = np.random.default_rng(1)
    for _ in range(200):
        counts = rng.integers(0, 40, rng.integers(1, 6))
        row = np.repeat(np.arange(len(counts)), counts)
        value = rng.integers(0, 6, len(row)) / rng.integers(1, 4)
        tie = np.concatenate([rng.permutation(c) for c in counts]).astype(np.int64)
        k = int(rng.integers(1, 10))
        expected = np.zeros(len(row), bool)
        for r in range(len(counts)):
            at = np.flatnonzero(row == r)
            expected[sorted(at, key=lambda j: (-value[j], -tie[j]))[:k]] = True
        assert np.array_equal(top_per_row(row, value, tie, k, len(counts)), expected)


def test_anchors_beyond_the_code_window_are_exact():
    # a query of 600 events whose only shared item is 550 steps back
    items = [6] * 600
    items[49] = 5  # 551 steps back from the end ... the anchor
    log = TrainingLog(np.array([1, 1]), np.array([5, 4]), np.array([1, 1]),
                      np.array([1.0, 2.0]), by_time=False)
    row = one_row(items, [9] * 600)
    model = VSKNN(SessionIndex(log, N_ITEMS), k=1, weighting="same", score_weighting="div")
    found = model.neighbours(model.sessions_of(row))
    assert found.anchor.tolist() == [551]


# ----------------------------------------------------------------------------- RecBole side
KNN_MODELS = ["SR", "SKNN", "VSKNN", "STAN", "VSTAN", "SessionPop", "Repeat"]
def write_held_out_items(root, name="tiny_held_out", seed=3):
    """Users with 3-5 sessions whose last session ends with items 62, 61 (the last two
    events: the validation and test targets under LS; test items under last_session) and
    whose session before it ends with item 63 (a validation item under last_session)."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float\tsession_id:token"]
    for user in range(1, 31):
        time = 1_500_000_000 + user * 1000
        sessions = int(rng.integers(3, 6))
        for session in range(sessions):
            events = [int(rng.integers(1, 25)) for _ in range(int(rng.integers(2, 5)))]
            if session == sessions - 2:
                events.append(63)
            if session == sessions - 1:
                events += [62, 61]
            for item in events:
                lines.append(f"{user}\t{item}\t{time}\t{user}_{session}")
                time += 60
            time += 86_400
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return name


@pytest.mark.parametrize("protocol", ["LS", "last_session"])
@pytest.mark.parametrize("model", ["SR", "SKNN", "VSKNN", "STAN", "VSTAN", "SessionPop"])
def test_items_only_in_held_out_sessions_get_no_score(data_root, model, protocol):
    name = write_held_out_items(data_root)
    _, network, _, test = build_model(model, data_root, name, eval_args=eval_args(protocol),
                                      load_col={"inter": ["user_id", "item_id", "timestamp",
                                                          "session_id"]})
    dataset = test._dataset
    tokens = ("61", "62") if protocol == "LS" else ("61", "62", "63")
    held = [dataset.token2id(dataset.iid_field, token) for token in tokens]
    index = network.index
    assert index.popularity[held].tolist() == [0] * len(held)
    assert np.diff(index.XT.indptr)[held].tolist() == [0] * len(held)  # no session holds them
    for batch in test:
        scores = network.full_sort_predict(batch[0])
        assert torch.all(scores[:, held] == 0)
        assert torch.all(scores[:, 1:].max(dim=1).values > 0)
    if protocol == "last_session":  # 63 is kept out of training too, though not a test item
        assert "63" in dataset.field2id_token[dataset.iid_field]


def test_the_index_holds_exactly_the_training_interactions(data_root):
    from recbole_hiertcn.model.knn_recommender import training_positions

    for protocol in PROTOCOLS:
        for mode in ("prefix", "sequence"):
            _, network, train, test = build_model("SKNN", data_root, "tiny_sess",
                                                  eval_args=eval_args(protocol),
                                                  train_mode=mode, max_history=20)
            data = train._dataset
            positions = training_positions(data)
            held = set(test._dataset.targets.tolist())
            assert held.isdisjoint(positions.tolist())
            assert network.index.popularity.sum() == len(positions)
            if mode == "prefix":  # every training target and its history, nothing else
                targets = set(data.targets.tolist())
                assert targets <= set(positions.tolist())
                starts = data.position_user_start[data.targets].tolist()
                assert set(positions.tolist()) == targets | set(starts) | {
                    p for t, s in zip(data.targets.tolist(), starts) for p in range(s, t)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", KNN_MODELS)
def test_runs_on_every_protocol(data_root, in_tmp_dir, model, protocol):
    from recbole_hiertcn.quick_start import run

    result = run(model, "tiny_time", config_dict=small_config(
        data_root, "tiny_time", False, eval_args=eval_args(protocol), epochs=5))
    assert result["test_result"]["recall@10"] > 0
    assert type(result["model"]).__name__ == model


@pytest.mark.parametrize("model", ["VSTAN", "Repeat"])
def test_reload_reproduces_the_test_result(data_root, in_tmp_dir, model):
    from recbole_hiertcn.quick_start import run

    result = run(model, "tiny_sess", config_dict=small_config(
        data_root, "tiny_sess", True, eval_args=eval_args("last_session"),
        boost=True, remind=True, extend=True))
    assert_reload_reproduces(result["test_result"], result["model_file"])


def test_a_checkpoint_of_other_training_sessions_is_refused(data_root):
    _, ls_model, _, _ = build_model("SKNN", data_root, "tiny_sess", eval_args=eval_args("LS"))
    _, other, _, _ = build_model("SKNN", data_root, "tiny_sess",
                                 eval_args=eval_args("last_session"))
    with pytest.raises(ValueError, match="other training sessions"):
        other.load_state_dict(ls_model.state_dict())
    other.load_state_dict(other.state_dict())


def test_the_trainer_reads_no_training_batch_and_runs_one_epoch(data_root, in_tmp_dir,
                                                                monkeypatch):
    from recbole_hiertcn.quick_start import prepare_run

    prepared = prepare_run("SKNN", "tiny_sess", config_dict=small_config(
        data_root, "tiny_sess", True, epochs=7))

    def no_batches(self):
        raise AssertionError("a training batch was read")

    monkeypatch.setattr(type(prepared.train_data), "__iter__", no_batches)
    score, _ = prepared.trainer.fit(prepared.train_data, prepared.valid_data, saved=True)
    assert prepared.trainer.epochs == 1 and list(prepared.trainer.train_loss_dict) == [0]
    assert score > 0


@pytest.mark.parametrize("model", ["VSKNN", "Repeat"])
def test_sequence_train_mode_gives_the_prefix_mode_scores(data_root, model):
    _, prefix, _, test = build_model(model, data_root, "tiny_sess", train_mode="prefix",
                                     MAX_ITEM_LIST_LENGTH=20)
    _, sequence, _, test_seq = build_model(model, data_root, "tiny_sess", train_mode="sequence",
                                           max_history=20, MAX_ITEM_LIST_LENGTH=20)
    assert torch.equal(prefix.index_fingerprint, sequence.index_fingerprint)
    batch, batch_seq = next(iter(test))[0], next(iter(test_seq))[0]
    assert torch.equal(prefix.full_sort_predict(batch), sequence.full_sort_predict(batch_seq))


def test_predict_reads_the_full_sort_scores(data_root):
    _, network, _, test = build_model("STAN", data_root, "tiny_time")
    batch = next(iter(test))[0]
    full = network.full_sort_predict(batch)
    items = torch.randint(1, full.size(1), (len(batch),))
    batch.update(type(batch)({network.ITEM_ID: items}))
    assert torch.equal(network.predict(batch), full[torch.arange(len(batch)), items])


def test_withheld_target_sessions_continue_the_running_session(data_root):
    _, known, _, test = build_model("SKNN", data_root, "tiny_sess",
                                    eval_args=eval_args("last_session"))
    _, withheld, _, _ = build_model("SKNN", data_root, "tiny_sess",
                                    eval_args=eval_args("last_session"),
                                    target_session_known=False)
    batch = next(iter(test))[0]
    opens = known.rows(batch).opens[np.arange(len(batch)), known.rows(batch).lengths]
    assert opens.any() and not withheld.rows(batch).opens[
        np.arange(len(batch)), withheld.rows(batch).lengths].any()
    differs = ~torch.all(known.full_sort_predict(batch) == withheld.full_sort_predict(batch),
                         dim=1)
    assert torch.equal(differs, torch.from_numpy(opens))


def test_session_pop_leaves_recboles_pop_alone():
    from recbole.utils import get_model
    from recbole.model.general_recommender.pop import Pop

    assert get_model("Pop") is Pop
    assert get_model("SessionPop").__name__ == "SessionPop"


@pytest.mark.parametrize("model, key, value", [
    ("SKNN", "k", 0), ("SKNN", "similarity", "dice"), ("VSKNN", "weighting", "cubic"),
    ("SR", "steps", -1), ("STAN", "lambda_inh", 0), ("VSTAN", "sample_size", -5),
    ("SKNN", "boost", "yes"), ("VSKNN", "remind_strategy", "often"),
    ("SessionPop", "exclude_running_items", 1)])
def test_invalid_settings_name_the_key(data_root, model, key, value):
    with pytest.raises(ValueError, match=f"{model}: config key `{key}`"):
        build_model(model, data_root, "tiny_sess", **{key: value})


def test_the_comparison_tool_tunes_runs_and_reloads_them(data_root, tmp_path, monkeypatch):
    """A plan of these models alone (no HierTCN), tuned on validation (each run is a child
    process: one protocol keeps it short; the protocols are covered above)."""
    import csv

    import yaml

    from benchmarks import compare
    from tests.conftest import reload_and_test

    monkeypatch.chdir(tmp_path)
    plan = {
        "dataset": "tiny_sess", "data_path": str(data_root),
        "protocols": ["user_holdout"], "seeds": [1], "threads": 1,
        "tuning": {"seed": 1, "grid": {"STAN": {"k": [5, 50]}}},
        "models": {"STAN": {"model": "STAN", "boost": True}, "Repeat": {"model": "Repeat"}},
        "shared": {"load_col": {"inter": ["user_id", "item_id", "timestamp", "session_id"]},
                   "MAX_ITEM_LIST_LENGTH": 10, "epochs": 30, "metrics": ["Recall", "MRR", "NDCG"],
                   "topk": [5, 10, 20], "valid_metric": "MRR@10", "show_progress": False,
                   "state": "ERROR", "checkpoint_dir": str(tmp_path / "saved")},
    }
    path = tmp_path / "knn.yaml"
    path.write_text(yaml.safe_dump(plan))
    out = tmp_path / "results"
    assert compare.main([str(path), "--out", str(out)]) == 0
    with open(out / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["model"] for r in rows} == {"STAN", "Repeat"}
    assert all(r["status"] == "ok" and r["epochs"] == "1" for r in rows)  # one epoch, any cap
    report = (out / "results.md").read_text()
    assert "| STAN | " in report or "| **STAN** | " in report  # in bold when it leads
    for name in sorted(os.listdir(out / "curves")):
        curve = json.loads((out / "curves" / name).read_text())
        row = next(r for r in rows if r["model"] == curve["model"])
        *_, metrics = reload_and_test(curve["model_file"])
        assert f"{metrics['mrr@10']:.4f}" == row["mrr@10"], name


def test_recboles_own_sequential_dataset_gives_the_same_index_and_scores(data_root):
    """Built from RecBole's own ``SequentialDataset`` (augmented rows, LS only), the index
    comes from the training rows' targets and first histories: the same sessions, the same
    scores."""
    from recbole.config import Config
    from recbole.data import data_preparation
    from recbole.data.dataset import SequentialDataset

    from recbole_hiertcn.model.sequential_recommender.stan import STAN as STANModel

    config, ours, _, test = build_model("STAN", data_root, "tiny_sess",
                                        eval_args=eval_args("LS"))
    rb_config = Config(model="STAN", dataset="tiny_sess", config_dict=small_config(
        data_root, "tiny_sess", True, eval_args=eval_args("LS")))
    train_rb, _, test_rb = data_preparation(rb_config, SequentialDataset(rb_config))
    assert type(train_rb._dataset) is SequentialDataset
    theirs = STANModel(rb_config, train_rb._dataset)

    def sessions(model, dataset):
        users, items = (dataset.field2id_token[f] for f in (dataset.uid_field,
                                                            dataset.iid_field))
        index, out = model.index, []
        for n in range(index.n_sessions):
            at = slice(index.X.indptr[n], index.X.indptr[n + 1])
            by_position = sorted(zip(index.positions[at], index.X.indices[at]))
            out.append((users[index.users[n]], tuple(items[i] for _, i in by_position)))
        return sorted(out)

    assert sessions(ours, test._dataset) == sessions(theirs, test_rb._dataset)
    batch, batch_rb = next(iter(test))[0], next(iter(test_rb))[0]
    tokens = [test._dataset.id2token("user_id", int(u)) for u in batch["user_id"]]
    tokens_rb = [test_rb._dataset.id2token("user_id", int(u)) for u in batch_rb["user_id"]]
    assert sorted(tokens) == sorted(tokens_rb)
    items = test._dataset.field2id_token["item_id"][1:]
    columns = torch.tensor([test_rb._dataset.token2id("item_id", t) for t in items])
    ours_scores = ours.full_sort_predict(batch)[:, 1:]
    theirs_scores = theirs.full_sort_predict(batch_rb)[:, columns]
    for row, token in enumerate(tokens):
        assert torch.allclose(ours_scores[row], theirs_scores[tokens_rb.index(token)],
                              rtol=1e-12, atol=0)

"""Streaming equals batched: after every event, the streamed user embedding is the batched
model's output on the whole, untruncated history (eval mode, 1e-5)."""

import math

import numpy as np
import pytest
import torch

from recbole_hiertcn.core.seen_items import seen_items
from recbole_hiertcn.serving import (
    BadEvent,
    Event,
    OutOfOrderEvent,
    StreamingHierTCN,
    UnknownItem,
)
from recbole_hiertcn.serving.stream import MAX_ABS_TIME, InvalidValue
from tests.serving.helpers import GAP, N_ITEMS, history, served_model

CASES = {
    "untied, time gaps": dict(),
    "tied, session ids": dict(session_rule="session_id", scoring="tied"),
    "untied, time gaps, gap_decay": dict(gap_decay=86_400.0),
    "embedding output, session ids, gap_decay": dict(
        session_rule="session_id", pretrained_item_field="vec", gap_decay=20_000.0),
    "pretrained input, tied scores": dict(pretrained_item_field="vec", output_mode="scores",
                                          scoring="tied"),
    "target session withheld": dict(target_session_known=False),
    "withheld, session ids, gap_decay": dict(session_rule="session_id",
                                             target_session_known=False, gap_decay=50_000.0),
    "no high level": dict(high_level="none"),
    "one conv per position (kernel 1)": dict(kernel_size=1),
    "two convs per block": dict(convs_per_block=2, dropout_prob=0.3, embedding_dropout=0.2,
                                output_dropout=0.2),
    "gap_decay, embedding dropout": dict(gap_decay=86_400.0, embedding_dropout=0.2),
    "session ids, two convs": dict(session_rule="session_id", convs_per_block=2),
    "layer norm, two convs": dict(tcn_norm="layer", convs_per_block=2, embedding_dropout=0.2),
}


def batched_outputs(model, items, times, sessions):
    """What the batched model predicts for each event ``t`` from events ``< t``: ``[T, C]``."""
    items_t = torch.tensor([items])
    times_t = torch.tensor([times], dtype=torch.float64)
    values = torch.tensor([sessions]) if model.session_rule == "session_id" else times_t
    opens = torch.ones_like(items_t, dtype=torch.bool)
    if model.session_rule == "session_id":
        opens[:, 1:] = values[:, 1:] != values[:, :-1]
    else:
        opens[:, 1:] = (values[:, 1:] - values[:, :-1]) >= GAP
    with torch.no_grad():
        full = model.core.encode(items_t, opens, times=times_t)[0]
        if model.settings.target_session_known:
            return full
        # withheld: a target that opens a session is predicted as the running session's next
        # step (the RecBole row path with the target's own signal replaced)
        for t in torch.nonzero(opens[0]).flatten().tolist():
            if t == 0:
                continue
            row_items = torch.cat([items_t[:, :t], items_t.new_zeros(1, 1)], dim=1)
            row_opens = torch.cat([opens[:, :t], opens.new_zeros(1, 1)], dim=1)
            row_times = torch.cat([times_t[:, :t], times_t[:, t - 1:t]], dim=1)
            full[t] = model.core.encode(row_items, row_opens, query=torch.tensor([t]),
                                        times=row_times)[0]
        return full


def observed(n_sessions, seed):
    """A stream of a default served model after user u1's generated history (time gaps)."""
    model = served_model()
    stream = StreamingHierTCN(model)
    items, times, sessions = history(n_sessions, seed=seed)
    for item, time in zip(items, times):
        stream.observe("u1", model.item_tokens[item], float(time))
    return model, stream, (items, times, sessions)


def stream_and_compare(stream, user, items, times, sessions, expected, batch_every=None):
    model = stream.model
    for t, (item, time, session) in enumerate(zip(items, times, sessions)):
        streamed = stream.embedding(user, time=float(time), session=str(session))
        assert torch.allclose(streamed, expected[t], atol=1e-5), (
            f"event {t}: max diff {(streamed - expected[t]).abs().max():.2e}")
        stream.observe(user, model.item_tokens[item], float(time), str(session))


@pytest.mark.parametrize("case", list(CASES))
def test_streamed_embedding_equals_the_batched_model_after_every_event(case):
    settings = dict(CASES[case])
    model = served_model(**settings)
    stream = StreamingHierTCN(model)
    items, times, sessions = history(220, seed=1)  # ~1,300 events, 220 sessions
    expected = batched_outputs(model, items, times, sessions)
    stream_and_compare(stream, "u1", items, times, sessions, expected)
    assert stream.state("u1").events == len(items)


def batched_seen_offsets(model, items, sessions, times, t, hidden):
    """The batched model's seen-item offsets for the event at ``t`` (``[n_items]``): its last
    ``history_window`` items, the running session's told apart as the RecBole row path does
    (a withheld target continues the running session)."""
    values = sessions if model.session_rule == "session_id" else times
    opens = [True] + [(b != a) if model.session_rule == "session_id" else (b - a >= GAP)
                      for a, b in zip(values, values[1:])]
    if not model.settings.target_session_known and t > 0:
        opens[t] = False
    seen = seen_items(torch.tensor([items]), torch.tensor([opens]), torch.tensor([0]),
                      torch.tensor([t]), window=model.history_window)
    with torch.no_grad():
        return model.core.seen_item_bias.all(seen, hidden.unsqueeze(0))[0]


@pytest.mark.parametrize("rule, known, gate", [("time_gap", True, False),
                                               ("session_id", True, False),
                                               ("time_gap", False, False),
                                               ("session_id", True, True)])
def test_streamed_recommendations_carry_the_batched_models_seen_item_offsets(rule, known, gate):
    """After every event, every item's served score (its rank list over the whole catalogue)
    is the batched model's score plus the offsets for what the row's history has seen (with
    ``seen_item_gate``, scaled by the gate of the event's own vector)."""
    model = served_model(session_rule=rule, seen_item_bias=True, target_session_known=known,
                         history_window=9, seen_item_gate=gate)
    with torch.no_grad():
        model.core.seen_item_bias.current.fill_(-2.0)
        model.core.seen_item_bias.earlier.fill_(1.5)
    stream = StreamingHierTCN(model)
    items, times, sessions = history(40, seed=5)
    expected = batched_outputs(model, items, times, sessions)
    for t, (item, time, session) in enumerate(zip(items, times, sessions)):
        with torch.no_grad():
            scores = model.core.score_all(expected[t])
        if t > 0:
            scores = scores + batched_seen_offsets(model, items, sessions, times, t,
                                                   expected[t])
        served = dict(stream.recommend("u1", k=N_ITEMS, time=float(time), session=str(session)))
        got = torch.tensor([served[model.item_tokens[i]] for i in range(1, N_ITEMS)])
        assert torch.allclose(got, scores[1:], atol=1e-5), f"event {t}"
        stream.observe("u1", model.item_tokens[item], float(time), str(session))


def test_a_seen_item_model_needs_its_history_window_and_a_long_enough_seen_window():
    from recbole_hiertcn.serving.artifact import ServedModel

    model = served_model(seen_item_bias=True, history_window=30)
    with pytest.raises(ValueError, match="history_window"):
        ServedModel(model.core, "v", "time_gap", model.item_tokens, model.user_tokens)
    with pytest.raises(ValueError, match="seen_window 20 is shorter than the 30"):
        StreamingHierTCN(model, seen_window=20)


def test_a_model_with_seen_item_counts_is_refused_not_served_without_them():
    with pytest.raises(ValueError, match="seen_item_counts is not served"):
        served_model(seen_item_bias=True, seen_item_counts=True)


def test_a_model_with_seen_item_cooccurrence_is_refused_not_served_without_them():
    with pytest.raises(ValueError, match="seen_item_cooccurrence is not served"):
        served_model(seen_item_bias=True, seen_item_cooccurrence=True)


def test_batched_observe_of_many_users_equals_one_event_at_a_time():
    model = served_model(gap_decay=86_400.0)
    one, many = StreamingHierTCN(model), StreamingHierTCN(model)
    users = {f"user{n}": history(20 + 15 * n, seed=n) for n in range(6)}
    events = []
    for user, (items, times, sessions) in users.items():
        events += [Event(user, model.item_tokens[i], float(t)) for i, t in zip(items, times)]
    events.sort(key=lambda e: e.time)  # users interleaved
    for event in events:
        one.observe(event.user, event.item, event.time)
    for start in range(0, len(events), 97):  # batches that cut users' sessions anywhere
        many.observe_many(events[start:start + 97])
    for user, (items, times, sessions) in users.items():
        a, b = one.state(user), many.state(user)
        assert a.events == b.events == len(items)
        np.testing.assert_allclose(a.long_term, b.long_term, atol=1e-6)
        np.testing.assert_array_equal(a.recent, b.recent)
        later = float(times[-1]) + 10
        assert torch.allclose(many.embedding(user, time=later), one.embedding(user, time=later),
                              atol=1e-6)
        # the next event of the same session: the batched output one step past the history
        extended = batched_outputs(model, items + [1], times + [times[-1] + 10],
                                   sessions + [sessions[-1]])
        assert torch.allclose(many.embedding(user, time=later), extended[-1], atol=1e-5)


def test_a_request_after_the_gap_predicts_a_new_session_without_committing_it():
    _, stream, (_, times, _) = observed(5, seed=3)
    before = stream.state("u1")
    new_session = stream.embedding("u1", time=times[-1] + GAP)
    same_session = stream.embedding("u1", time=times[-1] + GAP - 1)
    assert not torch.allclose(new_session, same_session)
    assert torch.equal(stream.embedding("u1"), same_session)  # no time: the running session
    after = stream.state("u1")
    np.testing.assert_array_equal(before.long_term, after.long_term)
    assert before.session_count == after.session_count and before.events == after.events


def test_unknown_user_starts_empty_and_equals_a_history_of_nothing():
    model = served_model()
    stream = StreamingHierTCN(model)
    expected = batched_outputs(model, [5], [1_000_000], [0])[0]
    assert torch.allclose(stream.embedding("never-seen", time=1_000_000.0), expected, atol=1e-6)


def test_recommend_returns_the_top_items_of_the_batched_scores_without_padding():
    model, stream, (items, times, sessions) = observed(8, seed=4)
    scores = model.core.score_all(batched_outputs(model, items + [1], times + [times[-1] + 5],
                                                  sessions + [sessions[-1]])[-1])
    scores[0] = -math.inf
    expected = [model.item_tokens[i] for i in torch.argsort(scores, descending=True)[:10]]
    got = stream.recommend("u1", k=10, time=times[-1] + 5)
    assert [token for token, _ in got] == expected
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    everything = stream.recommend("u1", k=1000)
    assert len(everything) == model.core.n_items - 1 and "[PAD]" not in dict(everything)


def test_exclude_seen_drops_the_users_recent_items():
    model = served_model()
    stream = StreamingHierTCN(model, seen_window=5)
    for n, item in enumerate([3, 4, 5, 6, 7, 8, 9]):
        stream.observe("u1", f"i{item}", 1_000_000.0 + n)
    kept = dict(stream.recommend("u1", k=30, exclude_seen=True))
    assert not {"i5", "i6", "i7", "i8", "i9"} & set(kept)  # the last 5
    assert len(stream.recommend("u1", k=1000, exclude_seen=True)) == model.core.n_items - 1 - 5


@pytest.mark.parametrize("event, error", [
    (("u1", "no-such-item", 1_000_100.0), UnknownItem),
    (("u1", "i3", float("nan")), BadEvent),
    (("u1", "i3", "yesterday"), BadEvent),
    (("u1", "i3", 999_999.0), OutOfOrderEvent),
    (("u1", "i3", 10 ** 400), InvalidValue),  # float() would overflow
    (("u1", "i3", -10 ** 400), InvalidValue),
    (("u1", "i3", 2 ** 53 + 1), InvalidValue),  # would round to 2**53 as a float
    (("u1", "i3", float("inf")), InvalidValue),
    ((7, "i3", 1_000_100.0), InvalidValue),  # would be user "7"
    ((b"u1", "i3", 1_000_100.0), InvalidValue),
    (("u1", "i3", 1_000_100.0, 5), InvalidValue),  # session ids are str too
    (("u" * 257, "i3", 1_000_100.0), InvalidValue),
    (("u1", "i" * 257, 1_000_100.0), InvalidValue),
    (("u1", "i3", 1_000_100.0, "s" * 257), InvalidValue),
    (("u1", 3.0, 1_000_100.0), InvalidValue),
    (("u1", True, 1_000_100.0), InvalidValue),
])
def test_a_bad_event_is_refused_and_changes_nothing(event, error):
    model = served_model()
    stream = StreamingHierTCN(model)
    stream.observe("u1", "i2", 1_000_000.0)
    stream.observe("u2", "i2", 1_000_000.0)
    before = (stream.state("u1").to_bytes(), stream.state("u2").to_bytes())
    with pytest.raises(error):
        # the good event of u2 in the same batch is not applied either
        stream.observe_many([("u2", "i4", 1_000_050.0), event])
    assert (stream.state("u1").to_bytes(), stream.state("u2").to_bytes()) == before


def test_a_model_trained_on_session_ids_needs_them_in_every_event():
    stream = StreamingHierTCN(served_model(session_rule="session_id"))
    with pytest.raises(BadEvent, match="session is required"):
        stream.observe("u1", "i3", 1_000_000.0)
    stream.observe("u1", "i3", 1_000_000.0, session="a")
    assert stream.state("u1").last_session == "a"


def test_an_empty_batch_changes_nothing():
    stream = StreamingHierTCN(served_model())
    stream.observe_many([])
    assert stream.state("u1").events == 0 and len(stream.store) == 0


def test_a_stored_state_of_another_shape_is_refused():
    from recbole_hiertcn.serving.state import StateFormatError

    model = served_model()
    store = StreamingHierTCN(model, seen_window=10).store
    StreamingHierTCN(model, store=store, seen_window=10).observe("u1", "i3", 1_000_000.0)
    with pytest.raises(StateFormatError, match="seen_window"):
        StreamingHierTCN(model, store=store).recommend("u1")


def test_numpy_numbers_are_numbers():
    stream = StreamingHierTCN(served_model())
    stream.observe("u1", "i3", np.float64(1_000_000.0))
    assert len(stream.recommend("u1", k=np.int64(3), time=np.float32(1_000_010.0))) == 3


def test_events_of_one_batch_out_of_time_order_are_refused():
    stream = StreamingHierTCN(served_model())
    with pytest.raises(OutOfOrderEvent):
        stream.observe_many([("u1", "i2", 1_000_100.0), ("u1", "i3", 1_000_000.0)])
    assert stream.state("u1").events == 0


def test_state_size_does_not_grow_with_history():
    """The state has a fixed size whatever the history (all an event or a request reads)."""
    model = served_model()
    stream = StreamingHierTCN(model)
    sizes = []
    for n_sessions in (1, 300):
        items, times, _ = history(n_sessions, seed=n_sessions)
        stream.observe_many([(f"h{n_sessions}", model.item_tokens[i], float(t))
                             for i, t in zip(items, times)])
        sizes.append(len(stream.state(f"h{n_sessions}").to_bytes()))
    assert sizes[0] == sizes[1]


def test_refusals_of_hostile_values_say_why_in_one_short_line():
    stream = StreamingHierTCN(served_model())
    for call, reason in [
            (lambda: stream.observe("u", "i3", 10 ** 400), "time must be a finite number"),
            (lambda: stream.observe(7, "i3", 1e6), "user must be a str, got int"),
            (lambda: stream.observe("u", "i3", 1e6, session=7), "session must be a str"),
            (lambda: stream.observe("x" * 10 ** 7, "i3", 1e6),
             "user is 10000000 characters long; at most 256"),
            (lambda: stream.recommend(7), "user must be a str"),
            (lambda: stream.embedding("u", session=7.5), "session must be a str"),
            (lambda: stream.state(None), "user must be a str")]:
        with pytest.raises(BadEvent, match=reason) as refused:
            call()
        assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    assert len(stream.store) == 0


def test_times_up_to_2_to_the_53_are_exact_and_accepted():
    stream = StreamingHierTCN(served_model())
    stream.observe("u1", "i3", -MAX_ABS_TIME)
    stream.observe("u1", "i4", 1_700_000_000_123)  # a Unix time in milliseconds
    stream.observe("u1", "i5", MAX_ABS_TIME)
    assert stream.state("u1").last_time == float(MAX_ABS_TIME) and stream.state("u1").events == 3
    assert len(stream.recommend("u1", k=3, time=MAX_ABS_TIME)) == 3


def test_the_id_length_limit_is_configurable():
    stream = StreamingHierTCN(served_model(), max_id_length=4)
    stream.observe("abcd", "i3", 1e6)
    with pytest.raises(InvalidValue, match="at most 4"):
        stream.observe("abcde", "i3", 1e6)
    with pytest.raises(ValueError, match="max_id_length"):
        StreamingHierTCN(served_model(), max_id_length=0)

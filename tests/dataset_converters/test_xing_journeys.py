"""The journeys generator: XING format, order inside sessions, drifting interests, revisits."""

import numpy as np
import pandas as pd
import pytest

from dataset_converters import xing, xing_journeys, xing_sample

SMALL = dict(n_users=1500, n_items=3000, seed=5)


@pytest.fixture(scope="module")
def log():
    frame, items = xing_journeys.generate(**SMALL)
    return sessions(frame), items


def sessions(frame):
    """Engagements (types 1-3) in (user, time) order with session numbers at the 1800 s rule."""
    frame = frame[frame.interaction_type.isin([1, 2, 3])]
    frame = frame.sort_values(["user_id", "created_at"], kind="stable").reset_index(drop=True)
    gap = frame.groupby("user_id").created_at.diff()
    return frame.assign(session=(gap.isna() | (gap >= 1800)).cumsum())


def successor_share(frame, top=4):
    """Share of in-session steps whose next item is among the ``top`` most frequent next
    items of the current one: high when sessions walk a fixed graph of related jobs."""
    same = frame.session.eq(frame.session.shift(-1))
    pairs = pd.DataFrame({"a": frame.item_id[same].to_numpy(),
                          "b": frame.item_id.shift(-1)[same].to_numpy()})
    pairs = pairs[pairs.a != pairs.b]  # bookmarks of the same job say nothing about order
    counts = pairs.value_counts().rename("n").reset_index()
    counts["rank"] = counts.groupby("a").n.rank(method="first", ascending=False)
    return counts.n[counts["rank"] <= top].sum() / counts.n.sum()


def test_the_format_is_xings_and_the_converter_reads_it(tmp_path):
    frame, items = xing_journeys.generate(n_users=300, n_items=800, seed=1)
    assert list(frame.columns) == ["user_id", "item_id", "interaction_type", "created_at"]
    assert set(frame.item_id) <= set(items.id)
    xing_sample.write(frame, items, str(tmp_path / "raw"))
    stats = xing.convert(str(tmp_path / "raw" / "interactions.csv"), str(tmp_path / "out"),
                         min_item_count=2, echo=None)
    assert stats.rows[-1][1] > 0.5 * frame.interaction_type.isin([1, 2, 3]).sum()


def in_random_order(frame, seed=0):
    """The same sessions with their events in a random order."""
    key = np.random.default_rng(seed).random(len(frame))
    return frame.assign(key=key).sort_values(["session", "key"]).drop(columns="key")


def test_order_inside_sessions_carries_the_next_job(log):
    """Successors concentrate far more in the real order than with each session's events
    shuffled; without walks (follow 0) the order makes no difference."""
    frame, _ = log
    gain = successor_share(frame) - successor_share(in_random_order(frame))
    plain = sessions(xing_journeys.generate(**SMALL, follow=0.0)[0])
    no_gain = successor_share(plain) - successor_share(in_random_order(plain))
    assert gain > 0.2 and abs(no_gain) < 0.05, (gain, no_gain)


def test_interests_drift_more_over_longer_gaps(log):
    frame, items = log
    discipline = dict(zip(items.id, items.discipline_id))
    per_session = frame.assign(d=frame.item_id.map(discipline)).groupby("session").agg(
        user=("user_id", "first"), d=("d", lambda d: d.mode().iloc[0]),
        start=("created_at", "min"))
    previous = per_session.groupby("user").shift(1)
    known = previous.d.notna()
    gap = (per_session.start - previous.start)[known]
    changed = (per_session.d != previous.d)[known]
    short, long = changed[gap < 86_400].mean(), changed[gap > 4 * 7 * 86_400].mean()
    assert long > short + 0.15, (short, long)


def revisit_share(frame):
    """Share of later sessions that open on a job their user saw before."""
    revisited = total = 0
    last_user = current = None
    for user, item, session in zip(frame.user_id, frame.item_id, frame.session):
        if user != last_user:
            last_user, history = user, set()
        if session != current:  # a session opens
            if history:
                total += 1
                revisited += item in history
            current = session
        history.add(item)
    return revisited / total


def test_sessions_revisit_earlier_jobs(log):
    frame, _ = log
    without = revisit_share(sessions(xing_journeys.generate(**SMALL, revisit=0.0)[0]))
    # 15 % of openings revisit on purpose; the others hit a seen job by chance as often as
    # without revisits
    extra = revisit_share(frame) - without
    assert 0.07 < extra < 0.2, (revisit_share(frame), without)


def test_the_seed_decides_the_log():
    a, _ = xing_journeys.generate(n_users=200, n_items=500, seed=3)
    b, _ = xing_journeys.generate(n_users=200, n_items=500, seed=3)
    c, _ = xing_journeys.generate(n_users=200, n_items=500, seed=4)
    assert a.equals(b) and not a.equals(c)


def test_related_jobs_stay_in_their_discipline_and_never_point_to_themselves():
    rng = np.random.default_rng(0)
    discipline = rng.integers(0, 24, size=2000)
    related = xing_journeys.related_jobs(discipline, rng)
    assert related.shape == (2000, xing_journeys.RELATED)
    assert (discipline[related] == discipline[:, None]).all()
    assert not (related == np.arange(2000)[:, None]).any()

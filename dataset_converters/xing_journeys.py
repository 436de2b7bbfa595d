"""Generate a SYNTHETIC XING-format log in which the order of events carries information.

    python -m dataset_converters.xing_journeys --output-dir raw/xing-journeys [--users 20000]

Same files and format as :mod:`dataset_converters.xing_sample` (whose output stays as it was),
but made so that models can be told apart:

* a catalogue in the tens of thousands (30,000 jobs by default) in 24 disciplines; the
  disciplines sit on a ring, neighbours are related;
* order inside sessions: every job has a few related jobs (same discipline), and a session is a
  walk - the next job is a related job of the current one with probability ``follow``, else a
  popular job of the session's discipline. Who knows the last job knows much of the next;
* interests that drift over weeks: a user's discipline moves to a neighbour on the ring with a
  probability that grows with the time since the previous session (half-life ``drift_weeks``);
* repeat visits: a session opens on a job the user saw before with probability ``revisit``.

Interaction types, gaps inside and between sessions and the item table follow
:mod:`dataset_converters.xing_sample`. The data are made up; the shares are this generator's.
"""

import argparse
import sys

import numpy as np

from dataset_converters.xing_sample import (
    DISCIPLINES,
    START,
    TYPE_SHARES_2016,
    TYPE_SHARES_2017,
    ItemSampler,
    _event_types,
    _item_table,
    _normalise,
    _segmented_cumsum,
    _zipf_weights,
    log_frame,
    times_in_sessions,
    write,
)

RELATED = 4  # related jobs per job
WEEK = 7 * 86_400


def related_jobs(discipline, rng):
    """``[n_items, RELATED]``: each job's related jobs, drawn inside its discipline (a job is
    never its own relation unless its discipline has a single job)."""
    n = len(discipline)
    order = np.argsort(discipline, kind="stable")
    starts = np.searchsorted(discipline[order], np.arange(DISCIPLINES))
    sizes = np.bincount(discipline, minlength=DISCIPLINES)
    own = discipline.repeat(RELATED)
    size = sizes[own]
    # uniform over the other jobs of the discipline: draw 0 .. size - 2 and skip the job itself
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[discipline[order]]
    draw = (rng.random(n * RELATED) * np.maximum(size - 1, 1)).astype(np.int64)
    draw = np.where(size > 1, draw + (draw >= rank.repeat(RELATED)), 0)
    return order[starts[own] + draw].reshape(n, RELATED)


def _session_plan(n_users, mean_sessions, drift_weeks, rng, disc_weights):
    """Per session: its user, start time and discipline (a drifting walk on the ring)."""
    sessions_per_user = 1 + rng.negative_binomial(2, 2 / (2 + mean_sessions - 1), size=n_users)
    session_user = np.repeat(np.arange(n_users), sessions_per_user)
    first = np.r_[True, session_user[1:] != session_user[:-1]]
    gaps = rng.lognormal(np.log(2.5 * 86_400), 1.1, size=len(session_user))
    gaps = np.where(rng.random(len(gaps)) < 0.1, rng.uniform(1500, 2400, len(gaps)), gaps)
    gaps[first] = rng.integers(0, 4 * WEEK, size=int(first.sum()))
    start = START + _segmented_cumsum(gaps.astype(np.int64), first)
    # drift: after a gap g the discipline moves one step along the ring with probability
    # 1 - 2 ** (-g / half-life); the steps accumulate per user
    moves = rng.random(len(gaps)) < 1 - 2.0 ** (-gaps / (drift_weeks * WEEK))
    steps = np.where(moves & ~first, rng.choice([-1, 1], size=len(gaps)), 0)
    home = rng.choice(DISCIPLINES, size=n_users, p=disc_weights)
    discipline = (home[session_user] + _segmented_cumsum(steps, first)) % DISCIPLINES
    return session_user, start, discipline


def _walks(session_of_event, session_user, discipline, sampler, related, follow, revisit, rng):
    """Items of every event, in (user, session, event) order: a session opens on a job the user
    saw before (probability ``revisit``) or on a popular job of its discipline, then walks to a
    related job of the current one (probability ``follow``) or jumps to a popular one."""
    n = len(session_of_event)
    jumps = sampler.draw(discipline[session_of_event], rng)
    opens = np.r_[True, session_of_event[1:] != session_of_event[:-1]]
    user = session_user[session_of_event]
    new_user = np.r_[True, user[1:] != user[:-1]]
    user_first = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    follows = rng.random(n) < follow
    revisits = (rng.random(n) < revisit) & opens & ~new_user
    pick = rng.integers(0, RELATED, size=n)
    back = rng.random(n)
    items = np.empty(n, dtype=np.int64)
    for t in range(n):  # sequential by nature: each step reads earlier items of the user
        if revisits[t]:
            items[t] = items[user_first[t] + int(back[t] * (t - user_first[t]))]
        elif not opens[t] and follows[t]:
            items[t] = related[items[t - 1], pick[t]]
        else:
            items[t] = jumps[t]
    return items


def generate(n_users=20_000, n_items=30_000, year=2016, seed=0, mean_sessions=8.0,
             mean_session_length=5.0, follow=0.7, drift_weeks=3.0, revisit=0.15):
    """Interactions (a DataFrame in file order) and items (a DataFrame) of a synthetic log."""
    rng = np.random.default_rng(seed)
    disc_weights = _normalise(_zipf_weights(DISCIPLINES, 0.8, rng))
    item_discipline = rng.choice(DISCIPLINES, size=n_items, p=disc_weights)
    popularity = _zipf_weights(n_items, 0.9, rng)
    item_ids = np.sort(rng.choice(np.arange(1_000, 1_000 + 60 * n_items), size=n_items,
                                  replace=False))
    sampler = ItemSampler(item_discipline, popularity)
    related = related_jobs(item_discipline, rng)

    session_user, session_start, discipline = _session_plan(
        n_users, mean_sessions, drift_weeks, rng, disc_weights)
    lengths = 1 + np.minimum(rng.geometric(1 / mean_session_length, size=len(session_user)) - 1,
                             19)
    session_of_event = np.repeat(np.arange(len(session_user)), lengths)
    items = _walks(session_of_event, session_user, discipline, sampler, related, follow, revisit,
                   rng)
    opens = np.r_[True, session_of_event[1:] != session_of_event[:-1]]

    shares = TYPE_SHARES_2016 if year == 2016 else TYPE_SHARES_2017
    follow_up = ~opens & (rng.random(len(items)) < 0.05)
    items = np.where(follow_up, np.r_[items[:1], items[:-1]], items)  # bookmark after a click
    types = _event_types(shares, follow_up, rng)
    outside = (types == 4) | (types == 0)  # deletes and impressions: not what the user seeks
    items = np.where(outside, sampler.draw(rng.choice(DISCIPLINES, size=len(items),
                                                      p=disc_weights), rng), items)
    times = times_in_sessions(session_start, session_of_event, opens, rng)
    user_ids = np.sort(rng.choice(np.arange(10, 40 * n_users + 10), size=n_users, replace=False))
    frame = log_frame(user_ids[session_user[session_of_event]], item_ids[items], types, times)
    return frame, _item_table(item_ids, item_discipline, rng)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dataset_converters.xing_journeys",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=30_000)
    parser.add_argument("--year", type=int, choices=(2016, 2017), default=2016)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--follow", type=float, default=0.7,
                        help="chance that the next job is related to the current one (0.7)")
    parser.add_argument("--drift-weeks", type=float, default=3.0,
                        help="half-life of a user's discipline, in weeks (3)")
    parser.add_argument("--revisit", type=float, default=0.15,
                        help="chance that a session opens on a job seen before (0.15)")
    parser.add_argument("--gzip", action="store_true", help="write interactions.csv.gz")
    args = parser.parse_args(argv)
    frame, items = generate(args.users, args.items, args.year, args.seed, follow=args.follow,
                            drift_weeks=args.drift_weeks, revisit=args.revisit)
    path = write(frame, items, args.output_dir, args.year, args.gzip)
    print(f"wrote {path} ({len(frame):,} synthetic interactions) and items.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

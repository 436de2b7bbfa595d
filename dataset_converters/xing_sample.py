"""Generate a SYNTHETIC interaction log in the exact XING RecSys Challenge format.

    python -m dataset_converters.xing_sample --output-dir raw/xing [--users 3000] [--year 2016]

Writes ``interactions.csv`` and ``items.csv`` (tab-separated, with the challenge's headers; 2017
headers carry the ``interactions.`` / ``items.`` table prefix and a different column order).
The data is made up - no real XING data is involved - but has the structure the converters and
models care about:

* users keep lasting interests: most sessions are about the user's main job discipline, some
  about a second one, and a user's main interest changes at most once;
* popularity is skewed: inside a discipline, items are drawn with Zipf-like weights;
* sessions: a few to a few dozen per user, 1 to ~15 events each; gaps inside a session are
  seconds to minutes (some ties in the same second), gaps between sessions hours to days, and
  a share of gaps falls around 30 minutes, on both sides of the 1800 s rule;
* interaction types in roughly the challenge's shares (clicks dominate; bookmarks and replies
  mostly follow a click on the same item; deletes hit items outside the user's interest;
  2017 adds impressions, type 0, and recruiter interest, type 5). The shares are an
  approximation chosen for this generator, not statistics of the real data.
"""

import argparse
import os
import sys

import duckdb
import numpy as np
import pandas as pd

TYPE_SHARES_2016 = {1: 0.85, 2: 0.035, 3: 0.035, 4: 0.08}
TYPE_SHARES_2017 = {0: 0.30, 1: 0.58, 2: 0.025, 3: 0.025, 4: 0.05, 5: 0.02}
START = 1_440_000_000  # August 2015, as in the 2016 challenge
DISCIPLINES = 24


def _zipf_weights(n, exponent, rng):
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(weights)


def make_items(n_items, rng):
    """Item table with a discipline per item and a Zipf-like popularity inside it."""
    discipline = rng.choice(DISCIPLINES, size=n_items, p=_normalise(_zipf_weights(DISCIPLINES, 0.8, rng)))
    popularity = _zipf_weights(n_items, 0.7, rng)
    ids = np.sort(rng.choice(np.arange(1_000, 1_000 + 60 * n_items), size=n_items, replace=False))
    return ids, discipline, popularity


def _normalise(weights):
    return weights / weights.sum()


class ItemSampler:
    """Draws items of given disciplines, by popularity, fully vectorised."""

    def __init__(self, discipline, popularity):
        order = np.lexsort((np.arange(len(discipline)), discipline))
        self.order = order
        sorted_disc = discipline[order]
        self.starts = np.searchsorted(sorted_disc, np.arange(DISCIPLINES))
        self.ends = np.searchsorted(sorted_disc, np.arange(DISCIPLINES), side="right")
        weights = popularity[order]
        cumulative = np.cumsum(weights)
        base = np.concatenate([[0.0], cumulative])
        self.cumulative = cumulative
        self.low = base[self.starts]
        self.high = base[self.ends]

    def draw(self, disciplines, rng):
        empty = self.starts[disciplines] == self.ends[disciplines]
        disciplines = np.where(empty, int(np.argmax(self.ends - self.starts)), disciplines)
        u = rng.random(len(disciplines))
        target = self.low[disciplines] + u * (self.high[disciplines] - self.low[disciplines])
        position = np.searchsorted(self.cumulative, target, side="right")
        position = np.clip(position, self.starts[disciplines], self.ends[disciplines] - 1)
        return self.order[position]


def generate(n_users=3000, n_items=3000, year=2016, seed=0, mean_sessions=8.0,
             mean_session_length=4.0):
    """Interactions (a DataFrame in file order) and items (a DataFrame) of a synthetic log."""
    rng = np.random.default_rng(seed)
    item_ids, item_discipline, popularity = make_items(n_items, rng)
    sampler = ItemSampler(item_discipline, popularity)
    disc_weights = _normalise(_zipf_weights(DISCIPLINES, 0.8, rng))

    # users: ids, interests, sessions
    user_ids = np.sort(rng.choice(np.arange(10, 40 * n_users + 10), size=n_users, replace=False))
    main = rng.choice(DISCIPLINES, size=n_users, p=disc_weights)
    second = rng.choice(DISCIPLINES, size=n_users, p=disc_weights)
    sessions_per_user = 1 + rng.negative_binomial(2, 2 / (2 + mean_sessions - 1), size=n_users)
    switch_at = rng.integers(1, 3 * sessions_per_user + 2)  # main interest changes once (or not)
    session_user = np.repeat(np.arange(n_users), sessions_per_user)
    session_rank = np.arange(len(session_user)) - np.repeat(
        np.cumsum(sessions_per_user) - sessions_per_user, sessions_per_user)
    current_main = np.where(session_rank < switch_at[session_user], main[session_user],
                            second[session_user])
    other = np.where(current_main == main[session_user], second[session_user], main[session_user])
    roll = rng.random(len(session_user))
    topic = np.where(roll < 0.75, current_main,
                     np.where(roll < 0.9, other, rng.choice(DISCIPLINES, size=len(session_user))))

    # events of each session
    lengths = 1 + np.minimum(rng.geometric(1 / mean_session_length, size=len(session_user)) - 1, 14)
    event_session = np.repeat(np.arange(len(session_user)), lengths)
    first_in_session = np.r_[True, event_session[1:] != event_session[:-1]]
    items = sampler.draw(topic[event_session], rng)
    # a follow-up action on the item just seen (bookmark / reply after a click)
    follow_up = ~first_in_session & (rng.random(len(items)) < 0.05)
    for _ in range(3):  # chains of follow-ups
        items = np.where(follow_up, np.r_[items[:1], items[:-1]], items)
    shares = TYPE_SHARES_2016 if year == 2016 else TYPE_SHARES_2017
    types = _event_types(shares, follow_up, rng)
    outside = (types == 4) | (types == 0)  # deletes and impressions: not what the user seeks
    if outside.any():
        items = np.where(outside, sampler.draw(rng.choice(DISCIPLINES, size=len(items),
                                                          p=disc_weights), rng), items)

    times = _event_times(session_user, sessions_per_user, event_session, first_in_session, rng)
    frame = log_frame(user_ids[session_user[event_session]], item_ids[items], types, times)
    return frame, _item_table(item_ids, item_discipline, rng)


def log_frame(users, items, types, times):
    """The interactions as a log file orders them: by time (ties keep their order)."""
    frame = pd.DataFrame({"user_id": users, "item_id": items, "interaction_type": types,
                          "created_at": times})
    return frame.iloc[np.argsort(times, kind="stable")].reset_index(drop=True)


def _event_types(shares, follow_up, rng):
    kinds = np.array(list(shares))
    probs = np.array(list(shares.values()))
    base = rng.choice(kinds, size=len(follow_up), p=probs)
    # follow-ups are bookmarks or replies; the rest keep the drawn type (mostly clicks)
    follow_kind = rng.choice([2, 3], size=len(follow_up))
    rescale = follow_up & np.isin(base, [1])
    return np.where(rescale, follow_kind, base)


def _event_times(session_user, sessions_per_user, event_session, first_in_session, rng):
    n_sessions = len(session_user)
    # between sessions: hours to days, 15 % around the 30-minute rule
    long_gaps = rng.lognormal(np.log(26 * 3600), 1.0, size=n_sessions)
    near_rule = rng.uniform(1500, 2400, size=n_sessions)
    session_gap = np.where(rng.random(n_sessions) < 0.15, near_rule, long_gaps).astype(np.int64)
    starts_of_user = np.cumsum(sessions_per_user) - sessions_per_user
    first_session = np.zeros(n_sessions, dtype=bool)
    first_session[starts_of_user] = True
    user_start = rng.integers(0, 6 * 7 * 86_400, size=len(sessions_per_user))
    session_gap[first_session] = user_start
    session_start = START + _segmented_cumsum(session_gap, first_session)
    return times_in_sessions(session_start, event_session, first_in_session, rng)


def times_in_sessions(session_start, event_session, first_in_session, rng):
    """Event times from their sessions' starts: gaps of seconds to minutes, 3 % ties, a few
    long pauses, all under 30 minutes."""
    inner = rng.lognormal(np.log(75), 0.9, size=len(event_session)).astype(np.int64)
    inner = np.where(rng.random(len(inner)) < 0.03, 0, inner)
    inner = np.minimum(inner, 1700)
    inner[first_in_session] = 0
    return session_start[event_session] + _segmented_cumsum(inner, first_in_session)


def _segmented_cumsum(values, starts):
    """Cumulative sum that restarts where ``starts`` is True."""
    total = np.cumsum(values)
    offsets = np.maximum.accumulate(np.where(starts, total - values, 0))
    return total - offsets


def _item_table(item_ids, discipline, rng):
    n = len(item_ids)

    def concept_lists(max_terms):
        counts = rng.integers(1, max_terms + 1, size=n)
        terms = rng.integers(1, 90_000, size=int(counts.sum()))
        splits = np.split(terms, np.cumsum(counts)[:-1])
        return [",".join(map(str, t)) for t in splits]

    country = rng.choice(["de", "at", "ch", "non_dach"], size=n, p=[0.8, 0.08, 0.08, 0.04])
    return pd.DataFrame({
        "id": item_ids,
        "title": concept_lists(4),
        "career_level": rng.integers(0, 7, size=n),
        "discipline_id": discipline,
        "industry_id": rng.integers(0, 24, size=n),
        "country": country,
        "region": np.where(country == "de", rng.integers(0, 17, size=n), 0),
        "latitude": np.round(rng.uniform(47.3, 55.0, size=n), 1),
        "longitude": np.round(rng.uniform(5.9, 15.0, size=n), 1),
        "employment": rng.integers(0, 6, size=n),
        "tags": concept_lists(8),
        "created_at": START - rng.integers(0, 90 * 86_400, size=n),
        "active_during_test": rng.integers(0, 2, size=n),
    })


INTERACTION_ORDER = {
    2016: ("user_id", "item_id", "interaction_type", "created_at"),
    2017: ("user_id", "item_id", "created_at", "interaction_type"),
}


def write(frame, items, output_dir, year=2016, compress=False):
    """Write ``interactions.csv[.gz]`` and ``items.csv`` in the challenge's format."""
    os.makedirs(output_dir, exist_ok=True)
    prefix_i, prefix_t = ("interactions.", "items.") if year == 2017 else ("", "")
    con = duckdb.connect()
    con.register("interactions", frame)
    con.register("items", items)
    columns = ", ".join(f'{c} AS "{prefix_i}{c}"' for c in INTERACTION_ORDER[year])
    suffix = ".gz" if compress else ""
    path = os.path.join(output_dir, f"interactions.csv{suffix}")
    options = "HEADER, DELIMITER '\t', QUOTE ''" + (", COMPRESSION gzip" if compress else "")
    con.execute(f"COPY (SELECT {columns} FROM interactions) TO '{path}' ({options})")
    item_columns = ", ".join(f'{c} AS "{prefix_t}{c}"' for c in items.columns)
    con.execute(f"COPY (SELECT {item_columns} FROM items) TO "
                f"'{os.path.join(output_dir, 'items.csv')}' (HEADER, DELIMITER '\t', QUOTE '')")
    con.close()
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dataset_converters.xing_sample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--year", type=int, choices=(2016, 2017), default=2016)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true", help="write interactions.csv.gz")
    args = parser.parse_args(argv)
    print(f"generating {args.users:,} users and {args.items:,} items ...", file=sys.stderr,
          flush=True)
    frame, items = generate(args.users, args.items, args.year, args.seed)
    path = write(frame, items, args.output_dir, args.year, args.gzip)
    print(f"wrote {path} ({len(frame):,} synthetic interactions) and items.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

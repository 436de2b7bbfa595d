"""Generate a SYNTHETIC Pinterest-style engagement log and pin vectors.

    python -m dataset_converters.pinterest_sample --output-dir raw/pinterest [--users 1500] [--format parquet]

Writes ``logs/part-*.{parquet,csv.gz,jsonl}`` (columns ``user_id, pin_id, timestamp, action,
board_id, surface, feedview_id``; timestamps in milliseconds) and ``pins.parquet`` (``pin_id``
and a ``embedding`` list of ``--dim`` floats). Nothing here comes from Pinterest; the structure
is what the converter and HierTCN's Pinterest setting need:

* pins belong to topics; a pin's vector is its topic's direction plus noise, so vectors carry
  the similarity a pretrained embedding would;
* users keep lasting interests (two or three topics, one dominant) over many sessions;
* a session is a few feed views (homefeed, related pins, search); a feed view shows about 20
  pins (``impression`` rows), mostly from the user's topics; the user engages with a few of
  them - a ``closeup``, often followed by ``click``, ``repin`` or ``save`` (repins and saves
  name a board) - and hides one now and then;
* sessions are minutes long and hours to days apart.
"""

import argparse
import os
import sys

import duckdb
import numpy as np
import pandas as pd

START_MS = 1_700_000_000_000
SURFACES = ("homefeed", "related_pins", "search")
FOLLOW_UPS = ("click", "repin", "save")


def generate(n_users=1500, n_pins=4000, n_topics=30, dim=64, seed=0, mean_sessions=6.0):
    """(log DataFrame in time order, pins DataFrame with vectors)."""
    rng = np.random.default_rng(seed)
    topic_of_pin = rng.integers(0, n_topics, size=n_pins)
    directions = rng.normal(size=(n_topics, dim))
    vectors = directions[topic_of_pin] + 0.6 * rng.normal(size=(n_pins, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    popularity = 1.0 / np.arange(1, n_pins + 1) ** 0.8
    popularity = rng.permutation(popularity)
    by_topic = [np.flatnonzero(topic_of_pin == t) for t in range(n_topics)]
    weights = [popularity[p] / popularity[p].sum() for p in by_topic]
    pin_ids = rng.choice(np.arange(10**6, 10**6 + 50 * n_pins), size=n_pins, replace=False)

    rows = []
    feedview = 0
    for user in range(n_users):
        interests = rng.choice(n_topics, size=rng.integers(2, 4), replace=False)
        mix = rng.dirichlet(np.r_[4.0, np.ones(len(interests) - 1)])
        time = START_MS + int(rng.integers(0, 14 * 86_400_000))
        for _ in range(1 + rng.poisson(mean_sessions - 1)):
            for _ in range(1 + rng.poisson(1.5)):  # feed views of the session
                feedview += 1
                surface = SURFACES[rng.choice(3, p=[0.6, 0.3, 0.1])]
                topic = interests[rng.choice(len(interests), p=mix)]
                shown = _show(rng, by_topic, weights, topic, n_pins, popularity)
                for pin in shown:
                    rows.append((user, pin, time, "impression", None, surface, feedview))
                    time += int(rng.integers(50, 400))
                liked = [p for p in shown if topic_of_pin[p] in interests and rng.random() < 0.25]
                for pin in liked[:4]:
                    time += int(rng.integers(3_000, 60_000))
                    rows.append((user, pin, time, "closeup", None, surface, feedview))
                    if rng.random() < 0.5:
                        action = FOLLOW_UPS[rng.integers(0, 3)]
                        board = (f"b{user}_{topic}" if action in ("repin", "save") else None)
                        time += int(rng.integers(1_000, 20_000))
                        rows.append((user, pin, time, action, board, surface, feedview))
                if rng.random() < 0.1:
                    time += int(rng.integers(1_000, 10_000))
                    rows.append((user, shown[-1], time, "hide", None, surface, feedview))
                time += int(rng.integers(10_000, 120_000))
            time += int(rng.lognormal(np.log(20 * 3_600_000), 1.0))
    frame = pd.DataFrame(rows, columns=["user", "pin", "timestamp", "action", "board_id",
                                        "surface", "feedview_id"])
    frame.insert(0, "user_id", frame.pop("user").map(lambda u: f"u{u:06d}"))
    frame.insert(1, "pin_id", pin_ids[frame.pop("pin").to_numpy()])
    frame["feedview_id"] = frame["feedview_id"].map(lambda f: f"fv{f}")
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    pins = pd.DataFrame({"pin_id": pin_ids})
    return frame, pins, vectors.astype(np.float32)


def _show(rng, by_topic, weights, topic, n_pins, popularity):
    """About 20 pins: mostly the topic's, by popularity, some from anywhere."""
    count = int(rng.integers(16, 25))
    own = int(0.7 * count)
    pool = by_topic[topic]
    shown = list(rng.choice(pool, size=min(own, len(pool)), replace=False, p=weights[topic]))
    shown += list(rng.choice(n_pins, size=count - len(shown), replace=False,
                             p=popularity / popularity.sum()))
    rng.shuffle(shown)
    return shown


def write(frame, pins, vectors, output_dir, fmt="parquet", shards=4):
    """Shards of the log in ``fmt`` (``mixed``: parquet, csv.gz and jsonl) and pins.parquet."""
    logs = os.path.join(output_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    con = duckdb.connect()
    formats = ["parquet", "csv", "jsonl"] if fmt == "mixed" else [fmt]
    for index, part in enumerate(np.array_split(np.arange(len(frame)), shards)):
        kind = formats[index % len(formats)]
        con.register("part", frame.iloc[part])
        name = os.path.join(logs, f"part-{index:04d}")
        if kind == "parquet":
            con.execute(f"COPY part TO '{name}.parquet' (FORMAT parquet)")
        elif kind == "csv":
            con.execute(f"COPY part TO '{name}.csv.gz' (HEADER, COMPRESSION gzip)")
        else:
            con.execute(f"COPY part TO '{name}.jsonl' (FORMAT json)")
        con.unregister("part")
    wide = pd.DataFrame(vectors, columns=[f"v{i}" for i in range(vectors.shape[1])])
    wide.insert(0, "pin_id", pins["pin_id"].to_numpy())
    con.register("wide", wide)
    columns = ", ".join(f"v{i}" for i in range(vectors.shape[1]))
    path = os.path.join(output_dir, "pins.parquet")
    con.execute(f"COPY (SELECT pin_id, [{columns}] AS embedding FROM wide) TO '{path}' "
                "(FORMAT parquet)")
    con.close()
    return logs, path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dataset_converters.pinterest_sample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--pins", type=int, default=4000)
    parser.add_argument("--dim", type=int, default=64, help="vector size (the reference: 512)")
    parser.add_argument("--format", choices=("parquet", "csv", "jsonl", "mixed"),
                        default="parquet")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    frame, pins, vectors = generate(args.users, args.pins, dim=args.dim, seed=args.seed)
    logs, path = write(frame, pins, vectors, args.output_dir, args.format, args.shards)
    print(f"wrote {len(frame):,} synthetic log rows to {logs} and {len(pins):,} vectors to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Conversion speed and peak memory of the Pinterest-style converter on a large generated log.

    python -m benchmarks.convert_pinterest [--rows 10000000] [--shards 8] [--memory-limits 1GB 512MB]

Generates a synthetic engagement log (Parquet shards; about 80 % impressions, the rest
closeups, clicks, repins, saves and hides, feed views of 20 impressions) and a pin-vector table,
then converts it once per DuckDB memory limit, each run in its own process, and prints wall
time and the converter's peak resident memory.
"""

import argparse
import os
import sys
import tempfile
import time

from benchmarks.measure import run_measured

ACTIONS = ("impression", "closeup", "click", "repin", "save", "hide")
SHARES = (0.80, 0.10, 0.04, 0.03, 0.02, 0.01)


def generate(folder, rows, shards, dim, seed=0):
    """Write ``logs/part-*.parquet`` and ``pins.parquet``; vectorised, a shard at a time."""
    import duckdb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    users, pins = max(rows // 400, 10), max(rows // 50, 100)
    logs = os.path.join(folder, "logs")
    os.makedirs(logs, exist_ok=True)
    con = duckdb.connect()
    per_shard = rows // shards
    for shard in range(shards):
        n = per_shard if shard < shards - 1 else rows - per_shard * (shards - 1)
        view = shard * per_shard // 20 + np.arange(n) // 20  # 20 rows a feed view
        user = (view * 7919) % users
        frame = pd.DataFrame({
            "user_id": user,
            "pin_id": (rng.zipf(1.3, size=n) + user * 31) % pins,
            "timestamp": 1_700_000_000_000 + view * 45_000 + np.arange(n) % 20 * 900,
            "action": np.array(ACTIONS)[rng.choice(len(ACTIONS), size=n, p=SHARES)],
            "surface": np.array(["homefeed", "related_pins", "search"])[view % 3],
            "feedview_id": view,
        })
        con.register("part", frame)
        con.execute(f"COPY part TO '{os.path.join(logs, f'part-{shard:04d}.parquet')}' "
                    "(FORMAT parquet)")
        con.unregister("part")
    wide = pd.DataFrame(rng.normal(size=(pins, dim)).astype(np.float32),
                        columns=[f"v{i}" for i in range(dim)])
    wide.insert(0, "pin_id", np.arange(pins))
    con.register("wide", wide)
    columns = ", ".join(f"v{i}" for i in range(dim))
    vectors = os.path.join(folder, "pins.parquet")
    con.execute(f"COPY (SELECT pin_id, [{columns}] AS embedding FROM wide) TO '{vectors}' "
                "(FORMAT parquet)")
    con.close()
    return logs, vectors, pins


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.convert_pinterest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64, help="pin vector size")
    parser.add_argument("--memory-limits", nargs="+", default=["1GB", "512MB"])
    parser.add_argument("--work-dir", help="where to put the generated files (a temp folder)")
    parser.add_argument("--generate-into", help=argparse.SUPPRESS)
    parsed = parser.parse_args(argv)
    if parsed.generate_into:  # the child that generates, so its memory is not ours
        generate(parsed.generate_into, parsed.rows, parsed.shards, parsed.dim)
        return 0
    with tempfile.TemporaryDirectory(dir=parsed.work_dir) as work:
        started = time.perf_counter()
        code, _, _, _, err = run_measured(
            [sys.executable, "-m", "benchmarks.convert_pinterest", "--rows", str(parsed.rows),
             "--shards", str(parsed.shards), "--dim", str(parsed.dim), "--generate-into", work])
        if code != 0:
            print(err, file=sys.stderr)
            return code
        logs, vectors = os.path.join(work, "logs"), os.path.join(work, "pins.parquet")
        size = sum(os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs)) / 2**20
        print(f"generated {parsed.rows:,} synthetic rows ({size:.0f} MB of Parquet, "
              f"{parsed.shards} shards) and {parsed.dim}-d pin vectors in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"{'mem limit':>10}{'seconds':>10}{'peak RSS MiB':>14}{'rows/s':>13}"
              f"{'engagements':>13}{'impressions':>13}")
        for limit in parsed.memory_limits:
            code, seconds, peak, stdout, stderr = run_measured(
                [sys.executable, "-m", "dataset_converters.pinterest", "--input", logs,
                 "--item-embeddings", vectors, "--output-dir", os.path.join(work, "out"),
                 "--memory-limit", limit, "--temp-dir", work])
            if code != 0:
                print(stderr, file=sys.stderr)
                return code
            lines = stdout.splitlines()
            engaged = next(line for line in lines if line.startswith("sessions at")).split()[-4]
            shown = next(line for line in lines if "impressions written" in line).split()[-4]
            print(f"{limit:>10}{seconds:>10.1f}{peak:>14,.0f}{parsed.rows / seconds:>13,.0f}"
                  f"{engaged:>13}{shown:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

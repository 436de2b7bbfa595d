"""What the seen-item offsets (``seen_item_bias``) cost on a large catalogue.

    python -m benchmarks.seen_items [--items 1000000] [--rows 2048] [--history 50]

Each way of reading what the query rows have seen runs in its own child process (peak RSS
is per process): ``masks`` builds the whole-catalogue masks full-sort scoring and
cross-entropy need, ``at`` compares a positive and a negative item per row with the rows'
history, as BPR training and sampled evaluation do. Prints seconds and the peak memory above
the child's baseline (the random history rows included), and the ratio.
"""

import argparse
import json
import sys

from benchmarks.measure import run_measured

CHILD = """
import json, resource, sys, time
import torch
from recbole_hiertcn.core.seen_items import seen_items
way, n_items, n_rows, history = sys.argv[1], *map(int, sys.argv[2:5])
torch.set_num_threads(1)
generator = torch.Generator().manual_seed(0)
items = torch.randint(1, n_items, (n_rows, history + 1), generator=generator)
opens = torch.rand(n_rows, history + 1, generator=generator) < 0.1
asked = torch.randint(1, n_items, (n_rows, 2), generator=generator)  # a positive, a negative
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
seen = seen_items(items, opens, torch.arange(n_rows), torch.full((n_rows,), history))
if way == "masks":
    masks = seen.masks(n_items)
    picked = masks.current.gather(1, asked), masks.earlier.gather(1, asked)
else:
    picked = seen.at(asked)
seconds = time.perf_counter() - started
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"seconds": seconds, "mib": grown}))
"""


def measure(way, items, rows, history):
    code, _, _, out, err = run_measured([sys.executable, "-c", CHILD, way, str(items), str(rows),
                                         str(history)])
    if code != 0:
        raise SystemExit(f"benchmarks.seen_items: the {way} child failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seen_items")
    parser.add_argument("--items", type=int, default=1_000_000, help="catalogue size")
    parser.add_argument("--rows", type=int, default=2048, help="query rows (a batch)")
    parser.add_argument("--history", type=int, default=50, help="history items per row")
    args = parser.parse_args(argv)
    results = {way: measure(way, args.items, args.rows, args.history)
               for way in ("masks", "at")}
    print(f"{args.rows} rows x {args.history} history items, {args.items:,} items, "
          "one positive and one negative per row:")
    for way, figures in results.items():
        print(f"  {way:<5} {figures['seconds']:8.3f} s  {figures['mib']:9,.0f} MiB")
    print(f"  masks / at: {results['masks']['seconds'] / max(results['at']['seconds'], 1e-9):,.0f}x"
          f" time, {results['masks']['mib'] / max(results['at']['mib'], 1.0):,.0f}x memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())

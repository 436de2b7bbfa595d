"""Conversion speed and peak memory of the XING converter on a large generated log.

    python -m benchmarks.convert_xing [--rows 10000000] [--memory-limits 1GB 512MB]

Generates a synthetic interactions.csv in the XING format (``dataset_converters.xing_sample``),
then converts it once per preset and DuckDB memory limit, each in its own process, and prints
wall time and the converter process's peak resident memory.
"""

import argparse
import os
import sys
import tempfile
import time

from benchmarks.measure import run_measured

EVENTS_PER_USER = 31  # about what the generator's defaults give


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.convert_xing",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="approximate input rows")
    parser.add_argument("--presets", nargs="+", default=["hiertcn", "hrnn"])
    parser.add_argument("--memory-limits", nargs="+", default=["1GB", "512MB"])
    parser.add_argument("--gzip", action="store_true", help="also convert a gzipped copy")
    parser.add_argument("--work-dir", help="where to put the generated file (a temp folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        # Generated in child processes: a forked child's peak RSS would otherwise start at the
        # size of this process.
        started = time.perf_counter()
        inputs = []
        for compress in (False, True) if args.gzip else (False,):
            folder = os.path.join(work, "raw_gz" if compress else "raw")
            code, _, _, stdout, stderr = run_measured(
                [sys.executable, "-m", "dataset_converters.xing_sample", "--output-dir", folder,
                 "--users", str(max(args.rows // EVENTS_PER_USER, 10)),
                 "--items", str(max(args.rows // 170, 100)), "--seed", "1"]
                + (["--gzip"] if compress else []))
            if code != 0:
                print(stderr, file=sys.stderr)
                return code
            inputs.append(os.path.join(folder, "interactions.csv" + (".gz" if compress else "")))
        rows = int(stdout.split("(")[1].split()[0].replace(",", ""))
        print(f"generated {rows:,} synthetic rows in {time.perf_counter() - started:.1f} s")
        print(f"{'input':<26}{'preset':<10}{'mem limit':>10}{'seconds':>10}{'peak RSS MiB':>14}"
              f"{'rows/s':>13}{'rows out':>12}")
        for path in inputs:
            size = os.path.getsize(path) / 2**20
            for preset in args.presets:
                for limit in args.memory_limits:
                    out = os.path.join(work, "out")
                    code, seconds, peak, stdout, stderr = run_measured(
                        [sys.executable, "-m", "dataset_converters.xing", "--input", path,
                         "--output-dir", out, "--preset", preset, "--memory-limit", limit,
                         "--temp-dir", work])
                    if code != 0:
                        print(stderr, file=sys.stderr)
                        return code
                    last = [line for line in stdout.splitlines() if line.strip()][-2]
                    kept = last.split()[-4]
                    label = f"{os.path.basename(path)} {size:.0f} MB"
                    print(f"{label:<26}{preset:<10}{limit:>10}{seconds:>10.1f}{peak:>14.0f}"
                          f"{rows / seconds:>13,.0f}{kept:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

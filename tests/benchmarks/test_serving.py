"""benchmarks/serving.py on a small catalogue (a smoke test: every measurement runs, the HTTP
server included, and the state size it reports is the state's)."""

import re

from benchmarks import serving


def test_serving_benchmark_smoke_measures_every_row(capsys):
    assert serving.main(["--items", "500", "--users", "50", "--events", "600", "--requests", "40",
                         "--http-requests", "40", "--repeats", "1", "--ef-search", "16",
                         "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    labels = " ".join(row.split(" | ")[0] for row in rows)
    for label in ("observe, batch 1", "observe, batch 256", "exact", "HNSW32 efSearch 16",
                  "HTTP POST one event, 2 client(s)", "HTTP GET top 10, 2 client(s)",
                  "state per user"):
        assert label in labels, label
    assert len(re.findall(r": (met|MISSED)", out)) == 3
    stored = re.search(r"state per user.*? \| ([\d,]+) /", out).group(1)
    # the default model's state: 256 + 128 floats, 13 + 200 item ids, a 48-byte header, the
    # session id ("<user>-<n>", a few bytes)
    fixed = 4 * (256 + 128 + 13 + 200) + 48
    assert fixed < int(stored.replace(",", "")) <= fixed + 12

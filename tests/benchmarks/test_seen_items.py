"""Smoke test of the seen-item cost benchmark (its figures come from the script, not here)."""

from benchmarks import seen_items


def test_smoke_the_benchmark_prints_both_ways_and_their_ratio(capsys):
    assert seen_items.main(["--items", "1000", "--rows", "8", "--history", "5"]) == 0
    out = capsys.readouterr().out
    assert "  masks " in out and "  at " in out and "masks / at:" in out

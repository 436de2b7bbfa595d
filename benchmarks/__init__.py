"""Benchmark scripts (``python -m benchmarks.<name>``); they print figures, they assert nothing."""

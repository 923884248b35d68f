"""Benchmarks: each script prints a Markdown section; `python -m benchmarks` runs them all
and regenerates RESULTS.md."""

"""The benchmark harness: ``python bench/run.py`` measures, ``python bench/report.py`` writes
BENCHMARKS.md. A package so the pure parts (wrk output, targets, report) are unit-tested."""

"""The share of CPU time the host took from the benchmark's VM, as BENCHMARKS.md reports it."""

from __future__ import annotations

from bench.gateway import cpu_ticks, stolen_percent
from bench.report import render

BEFORE = "cpu  1000 10 200 8000 50 0 40 100 30 0\ncpu0 500 5 100 4000 25 0 20 50 15 0\n"
AFTER = "cpu  1600 10 300 8800 50 0 40 300 90 0\ncpu0 800 5 150 4400 25 0 20 150 45 0\n"


def test_steal_is_read_from_the_first_line_and_guest_time_is_not_counted_twice() -> None:
    assert cpu_ticks(BEFORE) == (100, 1000 + 10 + 200 + 8000 + 50 + 0 + 40 + 100)
    # 1,700 ticks went by, 200 of them stolen.
    assert stolen_percent(cpu_ticks(BEFORE), cpu_ticks(AFTER)) == 11.8
    assert stolen_percent(cpu_ticks(BEFORE), cpu_ticks(BEFORE)) is None


def test_the_machine_table_shows_the_steal_when_the_run_measured_it() -> None:
    machine = {
        "date": "2026-12-07 13:34 UTC",
        "cpu_count": 2,
        "cpu_model": "AMD EPYC",
        "memory_mb": 24105,
        "os": "Linux",
        "python": "3.11.7",
        "sqlite": "3.40.1",
        "postgresql": "15",
        "loadavg_start": [1.0, 1.0, 1.0],
    }
    measured = render({"machine": {**machine, "cpu_stolen_percent": 4.8}}, "full", "", {})
    assert "| CPU time the host took (steal) during the run | 4.8 % |" in measured
    assert "steal" not in render({"machine": machine}, "full", "", {})

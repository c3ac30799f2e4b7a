"""BENCHMARKS.md as rendered from a results file and bench/notes.md."""

from __future__ import annotations

from typing import Any

from bench.report import note_sections, render

MACHINE = {
    "date": "2026-12-06 01:00 UTC",
    "cpu_count": 2,
    "cpu_model": "Xeon",
    "memory_mb": 24000,
    "os": "Linux",
    "python": "3.11.7",
    "sqlite": "3.40.1",
    "postgresql": "15.20",
    "git_commit": "abc1234",
    "wrk": "wrk 4.1.0",
    "packages": {"fastapi": "0.165.0"},
    "loadavg_start": [3.5, 2.0, 1.0],
}


def _results() -> dict[str, Any]:
    run = {
        "label": "sqlite, c=32, no Idempotency-Key",
        "engine": "sqlite",
        "connections": 32,
        "idempotency_key": False,
        "ratio": 0.2,
        "anchor_rps": 1000.0,
        "wrk": {"rps": 200.0, "p50_ms": 100.0, "p99_ms": 900.0, "status_errors": 0,
                "socket_errors": 0},
        "slow_callbacks": {"count": 3, "longest_ms": 48.0, "longest": "<Task step()>",
                           "mostly_gc": 1, "mostly_waiting": 2},
    }  # fmt: skip
    return {"machine": MACHINE, "config": {"seconds": 8}, "scenarios": {"submit": {"runs": [run]}}}


NOTES = """Intro text.

## submit

The API-key lookup costs a transaction per request.

## e2e

Workers claim one job at a time.
"""


def test_notes_are_split_by_scenario_heading() -> None:
    sections = note_sections(NOTES)

    assert sections[""] == "Intro text."
    assert sections["submit"] == "The API-key lookup costs a transaction per request."
    assert sections["e2e"] == "Workers claim one job at a time."


def test_a_miss_is_listed_with_its_gap_and_explained_by_its_note() -> None:
    text = render(_results(), "full", NOTES, {})

    row = next(line for line in text.splitlines() if line.startswith("| submit, sqlite, 32"))
    assert "| 20.0 % | ≥ 50.0 % | **MISS** | 30.0 points short (2.5× below) |" in row
    why = text.split("## Why targets are missed", 1)[1]
    assert "### submit" in why
    assert "The API-key lookup costs a transaction per request." in why
    assert "Workers claim one job at a time." not in why  # e2e did not run, so did not miss


def test_a_miss_without_a_note_says_so() -> None:
    text = render(_results(), "full", "", {})

    assert "### submit-tail" in text
    assert "_No note yet in bench/notes.md._" in text


def test_results_tables_show_the_share_and_slow_callbacks_and_the_machine_load() -> None:
    text = render(_results(), "full", NOTES, {"shares": "bench/plots/throughput_share.svg"})

    assert (
        "| sqlite | 32 | no | 200.0 | 1,000.0 | 20.0 % | 100.0 | 900.0 | 0 | 0 | 3 (48 ms) |"
        in text
    )
    assert "| sqlite, c=32, no Idempotency-Key | 3 | 1 | 2 | 48.0 | `<Task step()>` |" in text
    assert "![throughput as a share of the anchor](bench/plots/throughput_share.svg)" in text
    assert "3.50, 2.00, 1.00" in text
    assert "_Not run._" in text  # the scenarios this file lacks

"""A row measured in rounds (the anchor, then imagegate right after it) stands as its median
round, so that one slow minute of the host does not decide it."""

from __future__ import annotations

from typing import Any

from bench.run import Round, median_row
from bench.wrk import WrkResult


def wrk_result(rps: float, p50_ms: float) -> WrkResult:
    return WrkResult(
        requests=int(rps), seconds=1.0, ok=int(rps), status_errors=0, socket_errors=0,
        timeouts=0, mean_ms=p50_ms, p50_ms=p50_ms, p90_ms=p50_ms, p99_ms=2 * p50_ms,
        max_ms=3 * p50_ms,
    )  # fmt: skip


def slow(count: int, longest_ms: float) -> dict[str, Any]:
    return {
        "count": count,
        "longest_ms": longest_ms,
        "longest": f"<{longest_ms} ms>",
        "mostly_gc": 0,
        "most_often": [],
    }


def test_the_round_with_the_median_share_stands_for_the_row() -> None:
    rounds = [
        Round(wrk_result(1000, 1.0), wrk_result(300, 9.0), slow(1, 25.0)),  # 30 %
        Round(wrk_result(800, 1.0), wrk_result(480, 5.0), slow(0, 0.0)),  # 60 %
        Round(wrk_result(2000, 1.0), wrk_result(900, 7.0), slow(2, 40.0)),  # 45 %
    ]
    row = median_row(rounds, "submit", label="sqlite, c=32", engine="sqlite", connections=32)

    assert row["ratio"] == 0.45
    assert row["anchor_rps"] == 2000.0
    assert row["wrk"]["rps"] == 900.0 and row["wrk"]["p50_ms"] == 7.0
    assert [r["ratio"] for r in row["rounds"]] == [0.3, 0.6, 0.45]
    assert row["slow_callbacks"]["count"] == 3
    assert row["slow_callbacks"]["longest_ms"] == 40.0
    assert row["label"] == "sqlite, c=32" and row["connections"] == 32


def test_a_row_of_one_round_is_that_round() -> None:
    only = Round(wrk_result(1000, 1.0), wrk_result(500, 2.0), slow(0, 0.0))
    row = median_row([only], "read", label="sqlite, c=1", engine="sqlite", connections=1)
    assert row["ratio"] == 0.5 and row["rounds"] == [
        {"anchor_rps": 1000.0, "rps": 500.0, "ratio": 0.5}
    ]

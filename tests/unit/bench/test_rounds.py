"""A row measured in rounds (the anchor, then imagegate right after it) stands as its median
round, so that one slow minute of the host does not decide it."""

from __future__ import annotations

from typing import Any

from bench.gateway import Engine
from bench.run import Round, e2e_row, median_row, settle
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


def e2e_round(jobs_per_s: float, rss_peak_mb: float) -> dict[str, Any]:
    return {"jobs": 1000, "completed": 1000, "jobs_per_s": jobs_per_s, "rss_peak_mb": rss_peak_mb}


def test_the_end_to_end_round_with_the_median_rate_stands_for_the_row() -> None:
    rounds = [e2e_round(510.0, 160.0), e2e_round(430.0, 190.0), e2e_round(620.0, 150.0)]

    row = e2e_row(rounds, label="sqlite, serve", engine="sqlite")

    assert row["jobs_per_s"] == 510.0 and row["engine"] == "sqlite"
    assert row["rounds_jobs_per_s"] == [510.0, 430.0, 620.0]
    assert row["rss_peak_mb"] == 190.0


class Counts(Engine):
    """An engine whose ``counts()`` are a script: (all jobs, COMPLETED), then the last forever."""

    def __init__(self, *script: tuple[int, int]) -> None:
        self.script = list(script)
        self.reads = 0

    def counts(self) -> tuple[int, int]:
        self.reads += 1
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


def test_a_round_starts_once_the_jobs_before_it_have_completed() -> None:
    db = Counts((1000, 990), (1000, 996), (1000, 1000))

    settle(db, seconds=5)

    assert db.reads == 3


def test_a_round_does_not_wait_for_jobs_that_will_never_complete() -> None:
    db = Counts((1000, 990), (1000, 997))  # three failed: COMPLETED stays at 997

    settle(db, seconds=30)

    assert 3 <= db.reads < 100  # gave up after a second of no progress, not after 30 s

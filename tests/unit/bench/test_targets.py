"""How a measured run meets or misses the speed targets."""

from __future__ import annotations

from typing import Any

from bench.targets import Check, checks, ratio


def _wrk(rps: float, p50: float = 10.0, p99: float = 20.0) -> dict[str, Any]:
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def _by_name(results: dict[str, Any]) -> dict[str, Check]:
    return {check.name: check for check in checks(results)}


def test_at_least_target_missed_says_by_how_many_points_and_how_many_times() -> None:
    check = Check("submit", "s", 12.5, 50.0, "at least", "%")

    assert check.passed is False
    assert check.verdict == "MISS"
    assert check.gap == "37.5 points short (4.0× below)"
    assert check.target == "≥ 50.0 %"


def test_at_most_target_missed_says_how_far_over_the_limit() -> None:
    check = Check("e2e", "t", 120.0, 40.0, "at most", "s")

    assert check.passed is False
    assert check.gap == "80.0 s over (3.0× the limit)"


def test_a_met_target_says_by_how_much() -> None:
    check = Check("litellm", "x", 12.0, 10.0, "at least", "×")

    assert check.passed is True
    assert check.gap == "met by 2.00×"


def test_a_scenario_that_did_not_run_is_neither_pass_nor_miss() -> None:
    check = Check("inflight", "t", None, 40.0, "at most", "s")

    assert check.passed is None
    assert check.verdict == "not run"
    assert check.gap == "—"


def test_ratio_of_nothing_is_zero_not_an_error() -> None:
    assert ratio(5.0, 0.0) == 0.0
    assert ratio(50.0, 200.0) == 0.25


def test_checks_read_shares_tails_and_litellm_from_a_results_file() -> None:
    submit = {
        "engine": "sqlite",
        "connections": 32,
        "idempotency_key": False,
        "ratio": 0.61,
        "wrk": _wrk(600, p50=10.0, p99=55.0),
        "label": "sqlite, c=32, no key",
        "slow_callbacks": {"count": 2, "longest_ms": 31.0, "longest": "<Handle>"},
    }
    results = {
        "scenarios": {
            "submit": {"runs": [submit]},
            "read": {
                "runs": [{"engine": "postgres", "connections": 32, "ratio": 0.2, "label": "pg"}]
            },
            "litellm": {
                "summary": {
                    "imagegate": {"rps_32": 300.0, "added_ms_1": 4.5},
                    "litellm": {"rps_32": 50.0},
                }
            },
        }
    }

    found = _by_name(results)

    share = found["submit, sqlite, 32 connections, without Idempotency-Key (share of the anchor)"]
    assert share.measured == 61.0
    assert share.passed is True
    tail = found["submit, sqlite, 32 connections: p99 / p50"]
    assert tail.measured == 5.5
    assert tail.passed is False
    assert found["GET /v2/jobs/{id}, postgres (share of the bare GET)"].measured == 20.0
    assert found["GET /v2/jobs/{id}, sqlite (share of the bare GET)"].measured is None
    litellm = [c for c in found.values() if c.scenario == "litellm"]
    assert [c.measured for c in litellm] == [6.0, 4.5]
    assert [c.passed for c in litellm] == [False, False]
    slow = found["callbacks holding the event loop ≥ 20 ms, all scenarios"]
    assert slow.measured == 2.0


def test_postgres_end_to_end_must_match_sqlite_when_sqlite_beats_the_floor() -> None:
    results = {
        "scenarios": {
            "e2e": {
                "runs": [
                    {"engine": "sqlite", "jobs_per_s": 420.0},
                    {"engine": "postgres", "jobs_per_s": 380.0},
                ]
            }
        }
    }

    pg = _by_name(results)["end to end, postgres, `serve --no-workers` + 2 workers"]

    assert pg.goal == 420.0
    assert pg.passed is False


def test_an_inflight_run_that_timed_out_is_judged_at_the_rate_it_went() -> None:
    inflight = {"jobs": 2000, "latency_s": 20, "seconds": 60.0, "timed_out": True,
                "completed": 500, "rss_peak_mb": 300.0}  # fmt: skip

    found = [c for c in checks({"scenarios": {"inflight": inflight}}) if c.scenario == "inflight"]

    assert found[0].measured == 240.0
    assert found[0].passed is False
    assert "extrapolated" in found[0].name
    assert found[1].passed is True


def test_no_answer_at_one_connection_is_a_miss_not_a_negative_latency() -> None:
    summary = {"imagegate": {"rps_32": 0.0, "added_ms_1": None}, "litellm": {"rps_32": 8.0}}

    found = [c for c in checks({"scenarios": {"litellm": {"summary": summary}}})
             if c.scenario == "litellm"]  # fmt: skip

    assert found[1].passed is False
    assert found[1].gap == "no answer within the run"

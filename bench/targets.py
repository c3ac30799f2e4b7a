"""The targets of the speed work, and how a measured run meets or misses them.

Every check names the scenario whose notes explain a miss (``## <scenario>`` in
bench/notes.md), what was measured, the goal and its direction. Throughput is judged as a ratio
to a baseline measured in the same run (the bare FastAPI anchor, LiteLLM), never as an absolute
number, because the machine it runs on varies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Check", "checks", "ratio", "slow_callbacks"]


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; 0 when the baseline measured nothing."""
    return value / baseline if baseline > 0 else 0.0


@dataclass(frozen=True)
class Check:
    scenario: str
    name: str
    measured: float | None  # None: the scenario did not run
    goal: float
    direction: Literal["at least", "at most"]
    unit: str  # "%", "×", "ms", "jobs/s", "s", "MB", "" (a count)

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        if self.direction == "at least":
            return self.measured >= self.goal
        return self.measured <= self.goal

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "MISS", None: "not run"}[self.passed]

    def show(self, value: float) -> str:
        if math.isinf(value):
            return "nothing finished"
        if self.unit == "%":
            return f"{value:.1f} %"
        if self.unit == "×":
            return f"{value:.2f}×"
        if self.unit == "":
            return f"{value:.0f}"
        return f"{value:,.1f} {self.unit}"

    @property
    def target(self) -> str:
        return ("≥ " if self.direction == "at least" else "≤ ") + self.show(self.goal)

    @property
    def gap(self) -> str:
        """By how much the goal is missed (or beaten), in the goal's own terms."""
        if self.measured is None:
            return "—"
        if math.isinf(self.measured):
            return "no answer within the run"
        if self.unit == "%":
            diff = self.measured - self.goal
            points = f"{abs(diff):.1f} points"
        else:
            points = self.show(abs(self.measured - self.goal))
        if self.passed:
            return f"met by {points}"
        if self.direction == "at least":
            factor = f" ({self.goal / self.measured:.1f}× below)" if self.measured > 0 else ""
            return f"{points} short{factor}"
        factor = f" ({self.measured / self.goal:.1f}× the limit)" if self.goal > 0 else ""
        return f"{points} over{factor}"


def _or_inf(value: float | None) -> float:
    """A latency that was not measured because no request finished within the run."""
    return math.inf if value is None else value


def _run(runs: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for run in runs:
        if all(run.get(k) == v for k, v in match.items()):
            return run
    return None


def checks(results: dict[str, Any]) -> list[Check]:
    """Every target of the speed work, evaluated on one results file (missing scenarios: None)."""
    sc = results.get("scenarios", {})
    out: list[Check] = []
    submit = sc.get("submit", {}).get("runs", [])
    for engine in ("sqlite", "postgres"):
        for connections in (32, 128):
            for idem in (False, True):
                run = _run(submit, engine=engine, connections=connections, idempotency_key=idem)
                key = "with" if idem else "without"
                out.append(
                    Check(
                        "submit",
                        f"submit, {engine}, {connections} connections, {key} Idempotency-Key"
                        " (share of the anchor)",
                        run["ratio"] * 100 if run else None,
                        50.0,
                        "at least",
                        "%",
                    )
                )
    run = _run(submit, engine="sqlite", connections=32, idempotency_key=False)
    tail = run["wrk"]["p99_ms"] / run["wrk"]["p50_ms"] if run and run["wrk"]["p50_ms"] else None
    out.append(
        Check("submit-tail", "submit, sqlite, 32 connections: p99 / p50", tail, 4.0, "at most", "×")
    )
    reads = sc.get("read", {}).get("runs", [])
    for engine in ("sqlite", "postgres"):
        run = _run(reads, engine=engine, connections=32)
        out.append(
            Check(
                "read",
                f"GET /v2/jobs/{{id}}, {engine} (share of the bare GET)",
                run["ratio"] * 100 if run else None,
                50.0,
                "at least",
                "%",
            )
        )
    e2e = sc.get("e2e", {}).get("runs", [])
    sqlite_e2e = _run(e2e, engine="sqlite")
    pg_e2e = _run(e2e, engine="postgres")
    out.append(
        Check(
            "e2e",
            "end to end, sqlite, one `serve`",
            sqlite_e2e["jobs_per_s"] if sqlite_e2e else None,
            300.0,
            "at least",
            "jobs/s",
        )
    )
    out.append(
        Check(
            "e2e",
            "end to end, postgres, `serve --no-workers` + 2 workers",
            pg_e2e["jobs_per_s"] if pg_e2e else None,
            max(300.0, sqlite_e2e["jobs_per_s"]) if sqlite_e2e else 300.0,
            "at least",
            "jobs/s",
        )
    )
    inflight = sc.get("inflight", {})
    ran = "seconds" in inflight
    took = None
    if ran:
        took = inflight["seconds"]
        if inflight["timed_out"]:  # not all done: the time it would take at the rate it went
            done = inflight["completed"]
            took = took * inflight["jobs"] / done if done else math.inf
    out.append(
        Check(
            "inflight",
            f"in flight: {inflight.get('jobs', 2000)} jobs × {inflight.get('latency_s', 20):g} s"
            " upstream, all COMPLETED"
            + (" (extrapolated: stopped waiting)" if ran and inflight["timed_out"] else ""),
            took,
            40.0,
            "at most",
            "s",
        )
    )
    out.append(
        Check(
            "inflight",
            "in flight: peak RSS of the whole gateway",
            inflight["rss_peak_mb"] if ran else None,
            500.0,
            "at most",
            "MB",
        )
    )
    completion = sc.get("completion", {})
    out.append(
        Check(
            "completion",
            "upstream answer → job COMPLETED, p50",
            completion.get("completed_p50_ms"),
            50.0,
            "at most",
            "ms",
        )
    )
    out.append(
        Check(
            "completion",
            "upstream answer → webhook received, p50",
            completion.get("webhook_p50_ms"),
            100.0,
            "at most",
            "ms",
        )
    )
    litellm = sc.get("litellm", {})
    summary = litellm.get("summary")
    out.append(
        Check(
            "litellm",
            "`/v1/images/generations` throughput at 32 connections, × LiteLLM's",
            ratio(summary["imagegate"]["rps_32"], summary["litellm"]["rps_32"])
            if summary
            else None,
            10.0,
            "at least",
            "×",
        )
    )
    out.append(
        Check(
            "litellm",
            "`/v1/images/generations` added latency over the upstream at 1 connection",
            _or_inf(summary["imagegate"]["added_ms_1"]) if summary else None,
            3.0,
            "at most",
            "ms",
        )
    )
    slow = slow_callbacks(results)
    out.append(
        Check(
            "slow-callbacks",
            "callbacks holding the event loop ≥ 20 ms, all scenarios",
            float(sum(row["count"] for row in slow)) if slow else None,
            0.0,
            "at most",
            "",
        )
    )
    return out


def slow_callbacks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measured run that recorded the gateway's slow callbacks."""
    rows = []
    for name, scenario in results.get("scenarios", {}).items():
        for run in scenario.get("runs", []):
            if "slow_callbacks" in run:
                rows.append({"scenario": name, "run": run["label"], **run["slow_callbacks"]})
        if "slow_callbacks" in scenario:
            rows.append({"scenario": name, "run": name, **scenario["slow_callbacks"]})
    return rows

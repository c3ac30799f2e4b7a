"""imagegate's benchmark: the real processes over HTTP, loaded by ``wrk``, in one run.

    python bench/run.py                # everything, < 10 min on 2 cores → bench/results/full.json
    python bench/run.py --quick        # a smoke run of every scenario → bench/results/quick.json
    python bench/run.py --only submit  # one scenario (repeatable), merged into the results file
    python bench/run.py --no-litellm   # everything but the LiteLLM side-by-side

Then ``python bench/report.py`` writes bench/plots/*.svg and BENCHMARKS.md.

Scenarios (each target in bench/targets.py):

- ``submit``: ``POST /v2/images/generate`` on ``serve --no-workers`` with the test key, at 32 and
  128 connections, SQLite and PostgreSQL, without and with a unique ``Idempotency-Key`` per
  request, each beside the bare FastAPI anchor (``bench/anchor.py``) at the same connections, in
  three rounds (the anchor, then each variant right after it) of which the median stands;
- ``read``: ``GET /v2/jobs/{id}`` beside the anchor's bare GET, 32 connections, in rounds too;
- ``e2e``: jobs/s from the first submit until N jobs are COMPLETED (counted in the database),
  through the zero-latency OpenAI-protocol upstream answering 64 KB PNGs (``bench/upstream.py``):
  one ``serve`` on SQLite; ``serve --no-workers`` + 2 ``worker`` processes on PostgreSQL;
- ``inflight``: 2,000 jobs against an upstream that answers after 20 s, default settings but the
  provider's ``max_concurrency`` (2,000) and the per-account queued-jobs cap; time until all are
  COMPLETED and the peak RSS of the gateway;
- ``completion``: one job at a time with a webhook: upstream answer → job ``COMPLETED`` and →
  webhook received (``bench/completion_latency.py``, run as it is);
- ``litellm``: ``/v1/images/generations`` beside LiteLLM's proxy before the same upstream
  (``bench/sidebyside.py``; LiteLLM lives in its own virtualenv, ``bench/.litellm-venv``).

Every gateway and anchor process runs under ``bench/loopwatch.py``: asyncio debug mode with a
20 ms slow-callback threshold; each run records how many callbacks held the loop that long and
the longest.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2

from bench import sidebyside, wrk
from bench.gateway import (
    PG_ADMIN,
    ROOT,
    RUN_DIR,
    Engine,
    Gateway,
    RssSampler,
    anchor,
    cpu_ticks,
    engine,
    gateway,
    loadavg,
    log,
    merge_slow,
    rss_kb,
    stolen_percent,
    upstream,
    workdir,
)
from bench.targets import checks, ratio
from bench.wrk import WrkResult

RESULTS = ROOT / "bench" / "results"
SCENARIOS = ("submit", "read", "e2e", "inflight", "completion", "litellm")
ENGINES = ("sqlite", "postgres")
PARAMS = {"model": "gpt-image-1.5", "gptImageParams": {"quality": "low"}}
BODY = json.dumps({**PARAMS, "prompt": "bench"})
LIVE_BODY = json.dumps({**PARAMS, "prompt": "a lighthouse at dusk"})
JSON = {"Content-Type": "application/json"}
# Business caps, not tuning: an account may queue this many jobs; the vendor account takes this
# many concurrent calls.
BIG_QUEUE = {"IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT": "10000000"}
VENDOR_CAP = {"IMAGEGATE_PROVIDERS__OPENAI__MAX_CONCURRENCY": "2000"}

FULL = {
    "rounds": 3,
    "round_seconds": 3,
    "connections": [32, 128],
    "read_connections": 32,
    "extra_connections": [1, 8],
    "extra_seconds": 3,
    "e2e_jobs": 1000,
    "e2e_rounds": 3,
    "e2e_timeout": 45,
    "inflight_jobs": 2000,
    "inflight_latency": 20.0,
    "inflight_timeout": 45,
    "completion_jobs": 15,
    "litellm_seconds": 8,
    "litellm_latency_seconds": 5,
}
QUICK = {
    **FULL,
    "rounds": 1,
    "round_seconds": 2,
    "extra_seconds": 1,
    "e2e_jobs": 100,
    "e2e_rounds": 1,
    "e2e_timeout": 30,
    "inflight_jobs": 200,
    "inflight_latency": 3.0,
    "inflight_timeout": 20,
    "completion_jobs": 8,
    "litellm_seconds": 2,
    "litellm_latency_seconds": 2,
}


def load(wrk_bin: str, url: str, lua: str, workdir: Path, connections: int, seconds: float) -> Any:
    return wrk.run(wrk_bin, url, lua, workdir, connections=connections, seconds=seconds)


def post_script(key: str | None, idempotency: bool, body: str = BODY) -> str:
    headers = {**JSON, **({"X-API-Key": key} if key else {})}
    prefix = f"bench-{uuid.uuid4().hex[:12]}" if idempotency else None
    return wrk.script(method="POST", body=body, headers=headers, idempotency_prefix=prefix)


def show(label: str, result: Any, extra: str = "") -> None:
    log(
        f"{label:<44} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.1f}  p99 {result.p99_ms:7.1f}"
        f" ms  non-2xx {result.status_errors}  socket {result.socket_errors} {extra}"
    )


# --------------------------------------------------------------------------- submit and read


def api_phase(cfg: dict[str, Any], wrk_bin: str, only: set[str], out: dict[str, Any]) -> None:
    """submit and read, each engine beside the anchor measured right before it."""
    submit: dict[str, Any] = {"runs": [], "anchor": [], "memory": []}
    read: dict[str, Any] = {"runs": [], "anchor": []}
    with workdir("igbench-api-") as work, anchor(work) as (anchor_url, anchor_watch):
        for kind in ENGINES:
            home = work / kind
            home.mkdir()
            with (
                engine(kind, home) as db,
                gateway(db, home, in_process_workers=False, extra_env=BIG_QUEUE) as gw,
            ):
                serve_pid = gw.procs["serve"].pid
                idle = round((rss_kb(serve_pid) or 0) / 1024, 1)
                with RssSampler([serve_pid]) as sampler:
                    if "submit" in only:
                        submit_engine(cfg, wrk_bin, work, kind, gw, anchor_url, submit)
                    if "read" in only:
                        read_engine(wrk_bin, work, kind, gw, anchor_url, cfg, read)
                submit["memory"].append(
                    {
                        "engine": kind,
                        "process": "serve --no-workers",
                        "rss_idle_mb": idle,
                        "rss_peak_mb": sampler.peak_mb,
                    }
                )
        for rows in (submit["anchor"], read["anchor"]):
            for row in rows:
                row["slow_callbacks_anchor_total"] = anchor_watch.mark()
    if "submit" in only:
        out["submit"] = submit
    if "read" in only:
        out["read"] = read


@dataclass(frozen=True)
class Round:
    """One round of a row: the anchor, then imagegate right after it."""

    anchor: WrkResult
    result: WrkResult
    slow: dict[str, Any]

    @property
    def share(self) -> float:
        return ratio(self.result.rps, self.anchor.rps)


def median_row(rounds: list[Round], scenario: str, **fields: Any) -> dict[str, Any]:
    """A row of the results from its rounds, shown as it is recorded: the round with the median
    share stands for it (its rates, latencies and anchor, so that the row's numbers agree with
    each other), every round's rates are kept beside it, and the slow callbacks of all rounds
    are counted."""
    middle = sorted(rounds, key=lambda r: r.share)[len(rounds) // 2]
    every = [
        {
            "anchor_rps": round(r.anchor.rps, 1),
            "rps": round(r.result.rps, 1),
            "ratio": round(r.share, 4),
        }
        for r in rounds
    ]
    slow = merge_slow([r.slow for r in rounds])
    shares = " / ".join(f"{100 * r.share:.1f}" for r in rounds)
    median = f" (median of {shares} %)" if len(rounds) > 1 else ""
    show(
        f"{scenario} {fields['label']}",
        middle.result,
        f"{middle.share:.1%} of anchor{median}, slow cb {slow['count']}",
    )
    return {
        **fields,
        "wrk": middle.result.as_dict(),
        "anchor_rps": round(middle.anchor.rps, 1),
        "ratio": round(middle.share, 4),
        "rounds": every,
        "loadavg": loadavg(),
        "slow_callbacks": slow,
    }


def submit_engine(
    cfg: dict[str, Any],
    wrk_bin: str,
    work: Path,
    kind: str,
    gw: Gateway,
    anchor_url: str,
    into: dict[str, Any],
) -> None:
    """The target's connections with and without a key, in rounds (the anchor, then each
    variant right after it), then the earlier table's lighter loads (1 and 8 connections, no
    key, one shorter round) so those rows stay measured too."""
    plan = [(c, cfg["round_seconds"], cfg["rounds"], (False, True)) for c in cfg["connections"]]
    plan += [(c, cfg["extra_seconds"], 1, (False,)) for c in cfg["extra_connections"]]
    for connections, seconds, rounds, keys in plan:
        taken: dict[bool, list[Round]] = {idempotency: [] for idempotency in keys}
        for n in range(1, rounds + 1):
            base = load(
                wrk_bin, anchor_url + "/v2/images/generate", post_script(None, False), work,
                connections, seconds,
            )  # fmt: skip
            show(f"anchor POST, c={connections} (before {kind}, {n}/{rounds})", base)
            into["anchor"].append(
                {"engine": kind, "connections": connections, "round": n, "wrk": base.as_dict()}
            )
            for idempotency in keys:
                marks = gw.marks()
                result = load(
                    wrk_bin, gw.base_url + "/v2/images/generate",
                    post_script(gw.test_key, idempotency), work, connections, seconds,
                )  # fmt: skip
                taken[idempotency].append(Round(base, result, gw.slow_since(marks)))
        for idempotency, done in taken.items():
            label = f"{kind}, c={connections}, {'with' if idempotency else 'no'} Idempotency-Key"
            into["runs"].append(
                median_row(
                    done,
                    "submit",
                    label=label,
                    engine=kind,
                    connections=connections,
                    idempotency_key=idempotency,
                )
            )


def read_engine(
    wrk_bin: str,
    work: Path,
    kind: str,
    gw: Gateway,
    anchor_url: str,
    cfg: dict[str, Any],
    into: dict[str, Any],
) -> None:
    answer = httpx2.post(
        gw.base_url + "/v2/images/generate",
        content=BODY,
        headers={**JSON, "X-API-Key": gw.test_key},
        timeout=30,
    )
    answer.raise_for_status()
    job_id = answer.json()["jobId"]
    get = wrk.script(headers={"X-API-Key": gw.test_key})
    plan = [
        (cfg["read_connections"], cfg["round_seconds"], cfg["rounds"]),
        (1, cfg["extra_seconds"], 1),
    ]
    url = f"{gw.base_url}/v2/jobs/{job_id}"
    for connections, seconds, rounds in plan:
        done: list[Round] = []
        for n in range(1, rounds + 1):
            base = load(wrk_bin, f"{anchor_url}/v2/jobs/{job_id}", get, work, connections, seconds)
            show(f"anchor GET, c={connections} (before {kind}, {n}/{rounds})", base)
            into["anchor"].append(
                {"engine": kind, "connections": connections, "round": n, "wrk": base.as_dict()}
            )
            marks = gw.marks()
            result = load(wrk_bin, url, get, work, connections, seconds)
            done.append(Round(base, result, gw.slow_since(marks)))
        label = f"{kind}, c={connections}"
        into["runs"].append(
            median_row(done, "read", label=label, engine=kind, connections=connections)
        )


# ------------------------------------------------------------------- jobs through an upstream


def drive_jobs(
    wrk_bin: str,
    work: Path,
    db: Engine,
    gw: Gateway,
    jobs: int,
    connections: int,
    timeout: float,
) -> dict[str, Any]:
    """Submit ``jobs`` jobs with wrk (live key), time until that many are COMPLETED."""
    lua = wrk.script(
        method="POST",
        body=LIVE_BODY,
        headers={**JSON, "X-API-Key": gw.live_key},
        stop_after=max(1, jobs // 2),
    )
    path = work / "drive.lua"
    path.write_text(lua)
    before, _ = db.counts()
    with RssSampler(gw.pids()) as sampler:
        t0 = time.monotonic()
        loader = subprocess.Popen(
            wrk.command(wrk_bin, gw.base_url + "/v2/images/generate", path,
                        connections=connections, seconds=timeout),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        done_at = None
        total = completed = 0
        try:
            while time.monotonic() - t0 < timeout:
                total, completed = db.counts()
                if completed - before >= jobs:
                    done_at = time.monotonic()
                    break
                time.sleep(0.05)
        finally:
            loader.terminate()
            loader.wait()
    elapsed = (done_at or time.monotonic()) - t0
    finished = min(jobs, completed - before)
    return {
        "jobs": jobs,
        "completed": finished,
        "submitted": total - before,
        "timed_out": done_at is None,
        "seconds": round(elapsed, 2),
        "jobs_per_s": round(finished / elapsed, 1) if elapsed > 0 else 0.0,
        "rss_peak_mb": sampler.peak_mb,
        "loadavg": loadavg(),
    }


def warm(gw: Gateway, db: Engine, seconds: float = 60) -> None:
    """One job end to end before measuring, so imports and connections are made."""
    before = db.counts()[1]
    httpx2.post(
        gw.base_url + "/v2/images/generate",
        content=LIVE_BODY,
        headers={**JSON, "X-API-Key": gw.live_key},
        timeout=30,
    ).raise_for_status()
    deadline = time.monotonic() + seconds
    while db.counts()[1] <= before:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up job did not complete")
        time.sleep(0.05)


def e2e_row(rounds: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """An end-to-end row from its rounds, as ``median_row`` makes an API row: the round with the
    median rate stands for it, every round's rate is kept beside it, and the peak RSS is the
    highest of any round."""
    middle = sorted(rounds, key=lambda r: r["jobs_per_s"])[len(rounds) // 2]
    return {
        **middle,
        **fields,
        "rounds_jobs_per_s": [r["jobs_per_s"] for r in rounds],
        "rss_peak_mb": max(r["rss_peak_mb"] for r in rounds),
    }


def settle(db: Engine, seconds: float) -> None:
    """Wait until the jobs submitted so far have finished, so that a round counts its own: every
    job COMPLETED, or none completing for a second (those left failed; the round's count of
    COMPLETED jobs cannot include them)."""
    deadline = time.monotonic() + seconds
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        total, completed = db.counts()
        if completed >= total:
            return
        if completed != last:
            last, still_since = completed, time.monotonic()
        elif time.monotonic() - still_since > 1.0:
            log(f"e2e: {total - completed} jobs did not complete before the round")
            return
        time.sleep(0.05)


def e2e_phase(cfg: dict[str, Any], wrk_bin: str, out: dict[str, Any]) -> None:
    runs = []
    setups = (
        ("sqlite", "serve (1 process)", True, 0),
        ("postgres", "serve --no-workers + 2 × worker", False, 2),
    )
    with workdir("igbench-e2e-") as work, upstream(work) as up:
        for kind, mode, in_process, workers in setups:
            home = work / kind
            home.mkdir()
            with (
                engine(kind, home) as db,
                gateway(
                    db, home, in_process_workers=in_process, worker_processes=workers,
                    upstream_url=up, extra_env={**BIG_QUEUE, **VENDOR_CAP},
                ) as gw,
            ):  # fmt: skip
                warm(gw, db)
                marks = gw.marks()
                rounds = []
                for _ in range(cfg["e2e_rounds"]):
                    settle(db, cfg["e2e_timeout"])
                    rounds.append(
                        drive_jobs(wrk_bin, work, db, gw, cfg["e2e_jobs"], 32, cfg["e2e_timeout"])
                    )
                run = e2e_row(rounds, label=f"{kind}, {mode}", engine=kind, mode=mode)
                run["slow_callbacks"] = gw.slow_since(marks)
                rounds_note = " / ".join(f"{rate:.1f}" for rate in run["rounds_jobs_per_s"])
                log(
                    f"e2e {kind} {mode}: {run['completed']}/{run['jobs']} jobs in "
                    f"{run['seconds']} s = {run['jobs_per_s']} jobs/s (median of "
                    f"{rounds_note}), peak RSS {run['rss_peak_mb']} MB, "
                    f"slow cb {run['slow_callbacks']['count']}"
                )
                runs.append(run)
    out["e2e"] = {"runs": runs}


def inflight_phase(cfg: dict[str, Any], wrk_bin: str, out: dict[str, Any]) -> None:
    jobs, latency = cfg["inflight_jobs"], cfg["inflight_latency"]
    # Room for every job and the few wrk sends past its stop: at the cap, wrk would spin on 429s.
    queue = {"IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT": str(max(10_000, 2 * jobs))}
    with (
        workdir("igbench-inflight-") as work,
        upstream(work, latency=latency) as up,
        engine("sqlite", work) as db,
        gateway(
            db, work, in_process_workers=True, upstream_url=up,
            extra_env={**queue, **VENDOR_CAP},
        ) as gw,
    ):  # fmt: skip
        marks = gw.marks()
        run = drive_jobs(wrk_bin, work, db, gw, jobs, 64, cfg["inflight_timeout"])
        run["slow_callbacks"] = gw.slow_since(marks)
    run |= {"latency_s": latency, "timeout_s": cfg["inflight_timeout"]}
    log(
        f"in flight: {run['completed']}/{jobs} jobs × {latency:g} s upstream in {run['seconds']} s"
        f"{' (timed out)' if run['timed_out'] else ''}, peak RSS {run['rss_peak_mb']} MB"
    )
    out["inflight"] = run


def completion_phase(cfg: dict[str, Any]) -> dict[str, Any]:
    """``bench/completion_latency.py`` (its own gateway, upstream and webhook receiver)."""
    with workdir("igbench-completion-") as work:
        out = work / "completion.json"
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "completion_latency.py"),
             "--jobs", str(cfg["completion_jobs"]), "--out", str(out)],
            check=True, capture_output=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        raw = json.loads(out.read_text())
    result = {
        "jobs": raw["jobs"],
        "completed_p50_ms": raw["answer_to_completed_ms"]["p50"],
        "completed_max_ms": raw["answer_to_completed_ms"]["max"],
        "webhook_p50_ms": raw["answer_to_webhook_ms"]["p50"],
        "webhook_max_ms": raw["answer_to_webhook_ms"]["max"],
        "raw": raw,
    }
    log(
        f"completion latency over {result['jobs']} jobs: → COMPLETED p50 "
        f"{result['completed_p50_ms']} ms, → webhook p50 {result['webhook_p50_ms']} ms"
    )
    return result


# --------------------------------------------------------------------------- machine and main


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) // 1024
    pg_version = None
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    wrk_version = subprocess.run(
        [wrk.ensure_wrk(), "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    from importlib.metadata import version

    versions = {}
    for pkg in ("imagegate", "fastapi", "uvicorn", "sqlalchemy", "aiosqlite", "psycopg", "httpx2"):
        with contextlib.suppress(Exception):
            versions[pkg] = version(pkg)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mb": mem_total,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "git_commit": commit,
        "wrk": wrk_version[0].split(" Copyright")[0] if wrk_version else "wrk",
        "packages": versions,
        "loadavg_start": loadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every scenario")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM side-by-side")
    parser.add_argument("--name", help="results file name (default: full or quick)")
    args = parser.parse_args()
    only = set(args.only or SCENARIOS)
    if args.no_litellm:
        only.discard("litellm")
    cfg = QUICK if args.quick else FULL
    name = args.name or ("quick" if args.quick else "full")
    path = RESULTS / f"{name}.json"
    # A partial run (--only) replaces its scenarios in the results file and keeps the others.
    previous = json.loads(path.read_text()) if args.only and path.exists() else {}
    wrk_bin = wrk.ensure_wrk()
    ticks = cpu_ticks()
    t0 = time.monotonic()
    scenarios: dict[str, Any] = {}
    out: dict[str, Any] = {
        **previous,
        "quick": args.quick,
        "config": cfg,
        "machine": machine(),
        "slow_callback_ms": 20,
    }
    log(f"scenarios: {', '.join(s for s in SCENARIOS if s in only)}")
    # Every scenario's files stay until the run ends (``bench.gateway.workdir`` says why).
    os.environ[RUN_DIR] = tempfile.mkdtemp(prefix="igbench-run-")
    try:
        if only & {"submit", "read"}:
            api_phase(cfg, wrk_bin, only, scenarios)
        if "e2e" in only:
            e2e_phase(cfg, wrk_bin, scenarios)
        if "inflight" in only:
            inflight_phase(cfg, wrk_bin, scenarios)
        if "completion" in only:
            scenarios["completion"] = completion_phase(cfg)
        if "litellm" in only:
            scenarios["litellm"] = sidebyside.measure(
                wrk_bin, cfg["litellm_seconds"], cfg["litellm_latency_seconds"]
            )
    finally:
        shutil.rmtree(os.environ.pop(RUN_DIR), ignore_errors=True)
    out["scenarios"] = {**previous.get("scenarios", {}), **scenarios}
    out["wall_seconds"] = round(time.monotonic() - t0, 1)
    out["machine"]["cpu_stolen_percent"] = stolen_percent(ticks, cpu_ticks())
    out["checks"] = [
        {"name": c.name, "measured": c.measured, "target": c.target, "verdict": c.verdict}
        for c in checks(out)
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {path.relative_to(ROOT)} in {out['wall_seconds']} s")
    for check in checks(out):
        if check.measured is not None:
            log(f"{check.verdict:>5}  {check.name}: {check.show(check.measured)} ({check.target})")


if __name__ == "__main__":
    main()

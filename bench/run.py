"""imagegate benchmark: the real `imagegate serve` / `imagegate worker` processes, over HTTP.

    python bench/run.py            # full run (a few minutes), writes bench/results/full.json
    python bench/run.py --quick    # smoke run (~1 minute), writes bench/results/quick.json

Then `python bench/report.py` turns the results into bench/plots/*.svg and BENCHMARKS.md.

What is measured, on SQLite (a temp file) and PostgreSQL (a fresh database per gateway, created
and dropped here):

1. submit: N concurrent clients POST /v2/images/generate with the test key for a fixed time,
   without and with a unique Idempotency-Key per request: requests/s, p50/p95/p99 latency;
2. read: GET /v2/jobs/{id} on completed jobs, the same way;
3. end-to-end: M jobs submitted as fast as they are accepted, timed until every one is COMPLETED
   (counted in the database directly, so the poller does not load the API), with one process
   (`serve`, in-process workers) and with `serve --no-workers` + 2 `imagegate worker` processes;
4. memory: VmRSS of every gateway process, idle after start and sampled every 100 ms under load.

The sandbox renders with no latency and a 64 px longest side, so the gateway is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))
PG_ADMIN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")

BODY = {"model": "gpt-image-1.5", "prompt": "bench", "gptImageParams": {"quality": "low"}}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: T201


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages: other work on the machine skews every number."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples VmRSS of some pids every ``interval`` seconds in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self._t0
            for name, pid in self.pids.items():
                value = rss_kb(pid)
                if value is not None:
                    self.samples[name].append((round(now, 2), value))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, name: str) -> float:
        values = [v for _, v in self.samples[name]]
        return round(max(values) / 1024, 1) if values else 0.0


# --------------------------------------------------------------------------- databases


class Engine:
    name: str

    def url(self) -> str: ...
    def count_completed(self, since_ms: int) -> int: ...
    def close(self) -> None: ...


class SqliteEngine(Engine):
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "imagegate.db"

    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    def count_completed(self, since_ms: int) -> int:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM jobs WHERE status='COMPLETED' AND created_at >= ?",
                (since_ms,),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        pass


class PostgresEngine(Engine):
    name = "postgres"

    def __init__(self) -> None:
        import psycopg

        self._psycopg = psycopg
        self.db = f"imagegate_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self._conn: Any = None

    def url(self) -> str:
        return PG_URL.format(db=self.db)

    def count_completed(self, since_ms: int) -> int:
        if self._conn is None:
            dsn = re.sub(r"dbname=\S+", f"dbname={self.db}", PG_ADMIN)
            self._conn = self._psycopg.connect(dsn, autocommit=True)
        row = self._conn.execute(
            "SELECT count(*) FROM jobs WHERE status='COMPLETED' AND created_at >= %s", (since_ms,)
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with self._psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def make_engine(kind: str, workdir: Path) -> Engine:
    return SqliteEngine(workdir) if kind == "sqlite" else PostgresEngine()


# --------------------------------------------------------------------------- processes


@dataclass
class Gateway:
    """`imagegate serve` (+ optional `imagegate worker`s) on a free port, as subprocesses."""

    engine: Engine
    workdir: Path
    in_process_workers: bool = True
    worker_processes: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    test_key: str = ""
    live_key: str = ""
    serve: subprocess.Popen[str] | None = None
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    startup_seconds: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        env.update(
            {
                "IMAGEGATE_DATABASE_URL": self.engine.url(),
                "IMAGEGATE_DATA_DIR": str(self.workdir / "data"),
                "IMAGEGATE_HOST": "127.0.0.1",
                "IMAGEGATE_PORT": str(self.port),
                "IMAGEGATE_PUBLIC_BASE_URL": self.base_url,
                "IMAGEGATE_SANDBOX_LATENCY_SECONDS": "0",
                "IMAGEGATE_PROVIDERS__SANDBOX__OPTIONS__MAX_SIDE": "64",
                # The default cap (100 queued jobs per account) would turn a burst into 429s.
                "IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT": "1000000",
                "IMAGEGATE_LOG_LEVEL": "WARNING",
                "IMAGEGATE_CONFIG_FILE": str(self.workdir / "none.toml"),
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        return env

    def start(self) -> None:
        self.port = free_port()
        args = [IMAGEGATE, "serve"]
        if not self.in_process_workers:
            args.append("--no-workers")
        t0 = time.monotonic()
        self.serve = subprocess.Popen(
            args,
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "serve.err", "w"),  # noqa: SIM115
            text=True,
        )
        assert self.serve.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (self.test_key and self.live_key):
            line = self.serve.stdout.readline()
            if not line:
                raise RuntimeError(
                    "serve exited: " + (self.workdir / "serve.err").read_text()[-2000:]
                )
            if line.startswith("live key: "):
                self.live_key = line.split(": ", 1)[1].strip()
            elif line.startswith("test key: "):
                self.test_key = line.split(": ", 1)[1].strip()
        # Keep draining stdout so the pipe never fills.
        threading.Thread(target=self.serve.stdout.read, daemon=True).start()
        while True:
            try:
                if httpx2.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not become healthy")
            time.sleep(0.05)
        self.startup_seconds = round(time.monotonic() - t0, 2)
        for n in range(self.worker_processes):
            self.workers.append(
                subprocess.Popen(
                    [IMAGEGATE, "worker"],
                    cwd=self.workdir,
                    env=self.env(),
                    stdout=subprocess.DEVNULL,
                    stderr=open(self.workdir / f"worker{n}.err", "w"),  # noqa: SIM115
                )
            )
        if self.workers:
            time.sleep(2.0)  # let the workers migrate-check, connect and LISTEN

    def pids(self) -> dict[str, int]:
        assert self.serve is not None
        pids = {"serve": self.serve.pid}
        for n, proc in enumerate(self.workers):
            pids[f"worker{n + 1}"] = proc.pid
        return pids

    def stop(self) -> None:
        for proc in [*self.workers, self.serve]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.serve]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- load


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return round(ordered[index] * 1000, 2)

    return {
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


async def closed_loop(
    gw: Gateway,
    concurrency: int,
    duration: float,
    make_request: Any,
    ok_status: int,
    warmup: float = 0.5,
) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request when the last one answers."""
    limits = httpx2.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    job_ids: list[str] = []
    assert gw.serve is not None
    async with httpx2.AsyncClient(base_url=gw.base_url, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        cpu_start: float | None = None
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def client(n: int) -> None:
            nonlocal errors
            i = 0
            while True:
                nonlocal cpu_start
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                if cpu_start is None and t0 >= measure_from:
                    cpu_start = cpu_seconds(gw.serve.pid)  # type: ignore[union-attr]
                i += 1
                try:
                    response = await make_request(http, n, i)
                except httpx2.HTTPError:
                    errors += 1
                    continue
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 202:
                    job_ids.append(response.json()["jobId"])

        await asyncio.gather(*(client(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
        cpu_used = cpu_seconds(gw.serve.pid) - (cpu_start or 0.0)
    ok = statuses.get(ok_status, 0)
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "transport_errors": errors,
        "rps": round(ok / elapsed, 1),
        "loadavg_after": loadavg(),
        # CPU the serve process used per answered request (includes its in-process workers).
        "server_cpu_ms_per_request": round(cpu_used * 1000 / max(1, len(latencies)), 2),
        "server_cpu_percent": round(100 * cpu_used / elapsed, 1),
        **percentiles(latencies),
        "_job_ids": job_ids,
    }


def submit_request(gw: Gateway, idempotent: bool) -> Any:
    headers = {"X-API-Key": gw.test_key}
    run = uuid.uuid4().hex[:8]

    async def make(http: httpx2.AsyncClient, n: int, i: int) -> httpx2.Response:
        extra = {"Idempotency-Key": f"bench-{run}-{n}-{i}"} if idempotent else {}
        return await http.post("/v2/images/generate", json=BODY, headers={**headers, **extra})

    return make


def read_request(gw: Gateway, job_ids: list[str]) -> Any:
    headers = {"X-API-Key": gw.test_key}

    async def make(http: httpx2.AsyncClient, n: int, i: int) -> httpx2.Response:
        job_id = job_ids[(n * 7919 + i) % len(job_ids)]
        return await http.get(f"/v2/jobs/{job_id}", headers=headers)

    return make


async def wait_completed(engine: Engine, since_ms: int, total: int, timeout: float) -> float:
    """Seconds (monotonic) at which ``total`` jobs created since ``since_ms`` are COMPLETED."""
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(engine.count_completed, since_ms)
        if done >= total:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{total} jobs completed within {timeout}s")
        await asyncio.sleep(0.05)


async def end_to_end(gw: Gateway, engine: Engine, jobs: int, concurrency: int) -> dict[str, Any]:
    """Submit ``jobs`` jobs with ``concurrency`` clients, then wait until all are COMPLETED."""
    since_ms = time.time_ns() // 1_000_000 - 5
    limits = httpx2.Limits(max_connections=concurrency + 4)
    headers = {"X-API-Key": gw.test_key}
    accepted = 0
    rejected: dict[int, int] = {}
    counter = iter(range(jobs))
    async with httpx2.AsyncClient(base_url=gw.base_url, limits=limits, timeout=60) as http:
        t0 = time.perf_counter()

        async def client() -> None:
            nonlocal accepted
            for _ in counter:
                response = await http.post("/v2/images/generate", json=BODY, headers=headers)
                if response.status_code == 202:
                    accepted += 1
                else:
                    rejected[response.status_code] = rejected.get(response.status_code, 0) + 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        t_submitted = time.perf_counter()
    t_done = await wait_completed(engine, since_ms, accepted, timeout=300)
    total = t_done - t0
    return {
        "jobs": jobs,
        "accepted": accepted,
        "rejected": {str(k): v for k, v in rejected.items()},
        "submit_seconds": round(t_submitted - t0, 2),
        "total_seconds": round(total, 2),
        "drain_after_submit_seconds": round(t_done - t_submitted, 2),
        "jobs_per_s": round(accepted / total, 1),
    }


# --------------------------------------------------------------------------- scenarios


async def api_scenario(kind: str, cfg: dict[str, Any], workers: bool = True) -> dict[str, Any]:
    """One `serve` process: submit, read and memory.

    With ``workers`` (the default deployment) its 4 in-process job slots run every submitted job
    while the load goes on; without (`serve --no-workers`) the jobs stay QUEUED and only the API
    is measured.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"igbench-{kind}-"))
    engine = make_engine(kind, workdir)
    gw = Gateway(engine, workdir, in_process_workers=workers)
    mode = "serve (in-process workers)" if workers else "serve --no-workers (API only)"
    result: dict[str, Any] = {"engine": kind, "mode": mode, "workers": workers}
    tag = "" if workers else " (no workers)"
    try:
        gw.start()
        result["startup_seconds"] = gw.startup_seconds
        time.sleep(1.0)
        assert gw.serve is not None
        result["rss_idle_start_mb"] = round((rss_kb(gw.serve.pid) or 0) / 1024, 1)
        log(
            f"{kind} [{mode}]: serve up in {gw.startup_seconds}s, "
            f"idle RSS {result['rss_idle_start_mb']} MB"
        )
        submits: list[dict[str, Any]] = []
        reads: list[dict[str, Any]] = []
        job_ids: list[str] = []
        with RssSampler(gw.pids()) as sampler:
            for idempotent in (False, True):
                for c in cfg["concurrency"]:
                    run = await closed_loop(
                        gw, c, cfg["duration"], submit_request(gw, idempotent), 202
                    )
                    job_ids.extend(run.pop("_job_ids"))
                    run["idempotency_key"] = idempotent
                    if workers:
                        # Each run starts with an empty queue: wait out the backlog this one left.
                        t_wait = time.perf_counter()
                        await wait_completed(engine, 0, len(job_ids), timeout=600)
                        run["backlog_drain_seconds"] = round(time.perf_counter() - t_wait, 2)
                    submits.append(run)
                    log(
                        f"{kind}{tag}: submit c={c:<2} idem={idempotent!s:<5} "
                        f"{run['rps']:7.1f} req/s "
                        f"p50 {run['p50_ms']:6.1f} p95 {run['p95_ms']:6.1f} "
                        f"p99 {run['p99_ms']:6.1f} ms "
                        f"cpu {run['server_cpu_ms_per_request']} ms/req "
                        f"{run['statuses']}"
                    )
            if workers:
                # Let the in-process workers finish what was queued, then read finished jobs.
                t_wait = time.perf_counter()
                await wait_completed(engine, 0, len(job_ids), timeout=600)
                result["backlog_drain_seconds"] = round(time.perf_counter() - t_wait, 2)
            result["jobs_in_db"] = len(job_ids)
            sample = job_ids[-2000:]
            for c in cfg["read_concurrency"]:
                run = await closed_loop(gw, c, cfg["duration"], read_request(gw, sample), 200)
                run.pop("_job_ids")
                reads.append(run)
                log(
                    f"{kind}{tag}: read   c={c:<2} {run['rps']:7.1f} req/s "
                    f"p50 {run['p50_ms']:6.1f} "
                    f"p95 {run['p95_ms']:6.1f} p99 {run['p99_ms']:6.1f} ms "
                    f"cpu {run['server_cpu_ms_per_request']} ms/req {run['statuses']}"
                )
        result["submit"] = submits
        result["read"] = reads
        result["rss_peak_mb"] = sampler.peak_mb("serve")
        result["rss_idle_after_mb"] = round((rss_kb(gw.serve.pid) or 0) / 1024, 1)
        result["rss_samples"] = sampler.samples["serve"]
        log(
            f"{kind}{tag}: RSS peak {result['rss_peak_mb']} MB, "
            f"after {result['rss_idle_after_mb']} MB"
        )
    finally:
        gw.stop()
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


async def e2e_scenario(kind: str, split: bool, cfg: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"igbench-e2e-{kind}-"))
    engine = make_engine(kind, workdir)
    gw = Gateway(
        engine,
        workdir,
        in_process_workers=not split,
        worker_processes=cfg["worker_processes"] if split else 0,
    )
    mode = (
        f"serve --no-workers + {cfg['worker_processes']} x worker" if split else "serve (1 process)"
    )
    result: dict[str, Any] = {"engine": kind, "mode": mode, "split": split}
    try:
        gw.start()
        time.sleep(0.5)
        with RssSampler(gw.pids()) as sampler:
            result.update(await end_to_end(gw, engine, cfg["jobs"], cfg["e2e_concurrency"]))
        result["loadavg_after"] = loadavg()
        result["rss_peak_mb"] = {name: sampler.peak_mb(name) for name in gw.pids()}
        log(
            f"{kind}: e2e {mode}: {result['accepted']} jobs in {result['total_seconds']}s "
            f"= {result['jobs_per_s']} jobs/s (submitted in {result['submit_seconds']}s) "
            f"RSS {result['rss_peak_mb']}"
        )
    finally:
        gw.stop()
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        for line in handle:
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
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    versions = {}
    from importlib.metadata import version

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
        "packages": versions,
    }


# --------------------------------------------------------------------------- main

FULL = {
    "concurrency": [1, 8, 32],
    "read_concurrency": [1, 32],
    "duration": 5.0,
    "jobs": 500,
    "e2e_concurrency": 16,
    "worker_processes": 2,
}
QUICK = {**FULL, "duration": 1.0, "jobs": 50}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cfg = QUICK if args.quick else FULL
    engines = args.engines.split(",")
    out: dict[str, Any] = {
        "name": args.name,
        "quick": args.quick,
        "config": cfg,
        "machine": machine(),
        "api": [],
        "e2e": [],
    }
    log(f"machine: {out['machine']['cpu_count']} CPUs, Python {out['machine']['python']}")
    for kind in engines:
        out["api"].append(await api_scenario(kind, cfg, workers=True))
        out["api"].append(await api_scenario(kind, cfg, workers=False))
    for kind in engines:
        out["e2e"].append(await e2e_scenario(kind, False, cfg))
        out["e2e"].append(await e2e_scenario(kind, True, cfg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--name", help="results file name (default: full or quick)")
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    args.name = args.name or ("quick" if args.quick else "full")
    t0 = time.monotonic()
    out = asyncio.run(main_async(args))
    out["wall_seconds"] = round(time.monotonic() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {path.relative_to(ROOT)} in {out['wall_seconds']}s")


if __name__ == "__main__":
    main()

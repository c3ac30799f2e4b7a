"""The processes a benchmark drives: databases, ``imagegate serve``/``worker``, the anchor app
and the fake upstream, each on a free port and each (but the upstream) under ``loopwatch``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))
PG_ADMIN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
UPSTREAM_KEY = "sk-fake-openai"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: T201


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages: other work on the machine skews absolute numbers."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def cpu_ticks(stat: str | None = None) -> tuple[int, int]:
    """(ticks stolen by the host, all ticks) of every CPU since boot, from ``/proc/stat``.

    On a virtual machine the host may run other guests on the same cores: the time it takes is
    "steal", and a run during which it grows is slower than the load average says.
    """
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return (0, 0)
    fields = [int(x) for x in stat.splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    # already counted in user and nice.
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def stolen_percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of the CPU time between two ``cpu_ticks`` readings that the host took."""
    total = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / total, 1) if total > 0 else None


RUN_DIR = "BENCH_RUN_DIR"
"""The environment variable naming the directory that keeps a whole run's working directories."""


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A scenario's working directory: its databases, the gateway's images, logs.

    Within a ``bench/run.py`` run (``BENCH_RUN_DIR`` set) it is kept until the run ends, when
    the run removes them all at once. Removed right after its scenario, its thousands of files
    made the next scenario's file creations slow: this machine's ext4 has no journal, and
    without one the inode allocator skips every inode freed in the last seconds, reading each
    one's inode-table block to tell; for a minute or two after a removal every new file cost
    0.2-1 ms of kernel time instead of 0.05 (``bench/notes.md``, ``## machine``), which the
    gateway paid for every image it stored. Used alone, a scenario removes its directory.
    """
    root = os.environ.get(RUN_DIR)
    if root is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Path(tmp)
    else:
        yield Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def wait_until_up(
    url: str, seconds: float = 90.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(url, timeout=2.0).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {seconds:.0f} s")


class RssSampler:
    """Samples the summed VmRSS of some pids every ``interval`` seconds in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(rss_kb(pid) or 0 for pid in self.pids)
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)


# --------------------------------------------------------------------------- slow callbacks


@dataclass
class LoopWatch:
    """Reads the file ``bench/loopwatch.py`` keeps for one process."""

    path: Path

    def events(self) -> list[list[Any]]:
        """Each slow callback so far: ``[time, seconds, handle, seconds in the collector,
        seconds of CPU at most]``."""
        try:
            text = self.path.read_text()
        except OSError:
            return []
        # Every event ends with its newline; what follows the last one is a line being written.
        return [json.loads(line) for line in text.split("\n")[:-1]]

    def mark(self) -> int:
        return len(self.events())

    def since(self, mark: int) -> dict[str, Any]:
        """Count and longest of the slow callbacks reported after ``mark``."""
        events = self.events()[mark:]
        longest = max(events, key=lambda e: e[1], default=None)
        return {
            "count": len(events),
            "longest_ms": round(longest[1] * 1000, 1) if longest else 0.0,
            "longest": longest[2] if longest else None,
            # Callbacks that spent half their time or more in the garbage collector.
            "mostly_gc": sum(1 for e in events if len(e) > 3 and e[3] >= e[1] / 2),
            # Callbacks whose thread had a CPU for less than half their time: they waited.
            "mostly_waiting": sum(1 for e in events if len(e) > 4 and e[4] < e[1] / 2),
            "most_often": Counter(e[2] for e in events).most_common(5),
        }


def watched(report: Path, *target: str) -> list[str]:
    return [PYTHON, str(BENCH / "loopwatch.py"), str(report), *target]


# --------------------------------------------------------------------------- databases


class Engine:
    name = ""

    def url(self) -> str:
        raise NotImplementedError

    def counts(self) -> tuple[int, int]:
        """(all jobs, COMPLETED jobs), read straight from the database."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteEngine(Engine):
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "imagegate.db"

    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    def counts(self) -> tuple[int, int]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(status = 'COMPLETED'), 0) FROM jobs"
            ).fetchone()
        return int(row[0]), int(row[1])


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

    def counts(self) -> tuple[int, int]:
        if self._conn is None:
            dsn = re.sub(r"dbname=\S+", f"dbname={self.db}", PG_ADMIN)
            self._conn = self._psycopg.connect(dsn, autocommit=True)
        row = self._conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETED') FROM jobs"
        ).fetchone()
        return int(row[0]), int(row[1])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with self._psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


@contextlib.contextmanager
def engine(kind: str, workdir: Path) -> Iterator[Engine]:
    made: Engine = SqliteEngine(workdir) if kind == "sqlite" else PostgresEngine()
    try:
        yield made
    finally:
        made.close()


# --------------------------------------------------------------------------- processes


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 5 s: a gateway left with a backlog would otherwise spend its
    whole shutdown grace finishing jobs nobody measures."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def anchor(workdir: Path) -> Iterator[tuple[str, LoopWatch]]:
    """The bare FastAPI anchor app (``bench/anchor.py``), under the same launcher."""
    port = free_port()
    watch = LoopWatch(workdir / "anchor.loop.jsonl")
    with (workdir / "anchor.log").open("wb") as out:
        proc = subprocess.Popen(
            watched(watch.path, str(BENCH / "anchor.py"), "--port", str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz", proc=proc)
        yield base, watch
    finally:
        _stop(proc)


@contextlib.contextmanager
def upstream(workdir: Path, latency: float = 0.0) -> Iterator[str]:
    """The fake OpenAI upstream (``bench/upstream.py``); yields its ``…/v1`` base URL."""
    port = free_port()
    args = [PYTHON, str(BENCH / "upstream.py"), "--port", str(port), "--latency", str(latency)]
    with (workdir / "upstream.log").open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/docs", proc=proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proc)


@dataclass
class Gateway:
    """``imagegate serve`` (+ ``imagegate worker`` processes) with one account's keys."""

    base_url: str
    test_key: str
    live_key: str
    procs: dict[str, subprocess.Popen[Any]]
    watches: dict[str, LoopWatch]

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs.values()]

    def marks(self) -> dict[str, int]:
        return {name: watch.mark() for name, watch in self.watches.items()}

    def slow_since(self, marks: dict[str, int]) -> dict[str, Any]:
        """Slow callbacks of every gateway process since ``marks``: summed count, longest."""
        return merge_slow([watch.since(marks.get(name, 0)) for name, watch in self.watches.items()])


def merge_slow(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Slow-callback summaries (of processes, or of rounds) as one: summed count, longest."""
    longest = max(parts, key=lambda p: p["longest_ms"])
    return {
        "count": sum(p["count"] for p in parts),
        "longest_ms": longest["longest_ms"],
        "longest": longest["longest"],
        "mostly_gc": sum(p["mostly_gc"] for p in parts),
        "mostly_waiting": sum(p.get("mostly_waiting", 0) for p in parts),
        "most_often": sum((Counter(dict(p["most_often"])) for p in parts), Counter()).most_common(
            5
        ),
    }


def gateway_env(
    db: Engine, workdir: Path, port: int, upstream_url: str | None, extra: dict[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(
        {
            "IMAGEGATE_DATABASE_URL": db.url(),
            "IMAGEGATE_DATA_DIR": str(workdir / "data"),
            "IMAGEGATE_HOST": "127.0.0.1",
            "IMAGEGATE_PORT": str(port),
            "IMAGEGATE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if upstream_url is not None:
        env.update(
            {
                "IMAGEGATE_PROVIDERS__OPENAI__API_KEY": UPSTREAM_KEY,
                "IMAGEGATE_PROVIDERS__OPENAI__BASE_URL": upstream_url,
                "IMAGEGATE_OUTBOUND_ALLOW_HTTP": "true",
                "IMAGEGATE_OUTBOUND_ALLOW_NETWORKS": '["127.0.0.0/8"]',
            }
        )
    env.update(extra)
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    return subprocess.run(
        [IMAGEGATE, *args], env=env, cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@contextlib.contextmanager
def gateway(
    db: Engine,
    workdir: Path,
    *,
    in_process_workers: bool,
    worker_processes: int = 0,
    upstream_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Gateway]:
    """Start ``serve`` (and workers), yield when healthy, stop everything afterwards.

    The first start's keys are used: the test key runs the sandbox and spends nothing; with
    ``upstream_url`` the ``openai`` provider points at the fake upstream and the account gets
    enough credits for the live key to run every job of a benchmark.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = gateway_env(db, workdir, port, upstream_url, extra_env or {})
    procs: dict[str, subprocess.Popen[Any]] = {}
    watches = {"serve": LoopWatch(workdir / "serve.loop.jsonl")}
    args = ["-m", "imagegate.cli.main:main", "serve"] + (
        [] if in_process_workers else ["--no-workers"]
    )
    try:
        serve = subprocess.Popen(
            watched(watches["serve"].path, *args),
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=(workdir / "serve.err").open("wb"),
            text=True,
        )
        procs["serve"] = serve
        assert serve.stdout is not None
        test_key = live_key = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (test_key and live_key):
            line = serve.stdout.readline()
            if not line:
                err = (workdir / "serve.err").read_text()[-2000:]
                raise RuntimeError(f"serve exited: {err}")
            if line.startswith("live key: "):
                live_key = line.split(": ", 1)[1].strip()
            elif line.startswith("test key: "):
                test_key = line.split(": ", 1)[1].strip()
        threading.Thread(target=serve.stdout.read, daemon=True).start()  # keep the pipe drained
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz", proc=serve)
        if upstream_url is not None:  # live jobs: more credits than the first start's demo grant
            _cli(env, workdir, "credits", "grant", "1000000000")
        metrics_ports = []
        for n in range(1, worker_processes + 1):
            watches[f"worker{n}"] = LoopWatch(workdir / f"worker{n}.loop.jsonl")
            metrics_ports.append(free_port())
            procs[f"worker{n}"] = subprocess.Popen(
                watched(watches[f"worker{n}"].path, "-m", "imagegate.cli.main:main", "worker"),
                cwd=workdir,
                env={**env, "IMAGEGATE_WORKER_METRICS_PORT": str(metrics_ports[-1])},
                stdout=subprocess.DEVNULL,
                stderr=(workdir / f"worker{n}.err").open("wb"),
            )
        for n, port in enumerate(metrics_ports, start=1):
            # A worker serves metrics once its runtime is built: its start-up (migrations check,
            # catalog, providers) is over and does not land in a measured window.
            wait_until_up(f"http://127.0.0.1:{port}/metrics", proc=procs[f"worker{n}"])
        if worker_processes:
            time.sleep(1.0)  # let the workers connect and listen
        yield Gateway(base, test_key, live_key, procs, watches)
    finally:
        for proc in procs.values():
            _stop(proc)

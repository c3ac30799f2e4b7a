"""Where a job's time goes: one-connection latency of ``/v1/images/generations`` and jobs/s.

Starts the fake OpenAI upstream and one gateway (``--engine sqlite``: ``serve`` with in-process
workers; ``--engine postgres``: ``serve --no-workers`` + ``--workers`` worker processes), then:

- ``latency``: ``--calls`` sequential calls to the upstream directly, then through
  ``/v1/images/generations``; prints both means and the difference (the added latency);
- ``e2e``: ``--jobs`` submits by wrk (32 connections) timed until that many are COMPLETED.

``--profile OUT`` samples the gateway's processes with py-spy (``record -f raw``) during the
measured part and prints the leaf frames and the imagegate frames with the most samples.

Run: ``.venv/bin/python bench/profile_jobs.py latency --profile /tmp/lat.txt``.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk
from bench.gateway import UPSTREAM_KEY, engine, gateway, log, upstream

BODY = {"model": "gpt-image-1.5", "prompt": "a lighthouse at dusk", "quality": "low"}
LIVE = json.dumps({"model": "gpt-image-1.5", "prompt": "a lighthouse", "gptImageParams": {}})
CAPS = {
    "IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT": "10000000",
    "IMAGEGATE_PROVIDERS__OPENAI__MAX_CONCURRENCY": "2000",
}


def summarize(raw: Path, limit: int = 25) -> None:
    """Print the leaf frames and the imagegate frames with the most samples of the event
    loop's thread (the main thread)."""
    leaves: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        total += count
        leaves[frames[-1]] += count
        for frame in set(frames):
            if "imagegate/" in frame:
                ours[frame] += count
    print(f"{total} samples")  # noqa: T201
    for title, counter in (("leaf frames", leaves), ("imagegate frames (inclusive)", ours)):
        print(f"-- {title}")  # noqa: T201
        for frame, count in counter.most_common(limit):
            print(f"{100 * count / max(total, 1):5.1f} %  {frame}")  # noqa: T201


def spy(pids: list[int], out: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    procs = []
    for n, pid in enumerate(pids):
        args = [
            py_spy,
            "record",
            "-f",
            "raw",
            "-r",
            "200",
            "--threads",
            "-d",
            str(int(seconds) + 1),
        ]
        args += ["-o", f"{out}.{n}", "-p", str(pid)]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    return procs


def timed_calls(url: str, key: str, calls: int) -> list[float]:
    times = []
    with httpx2.Client(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(calls):
            t0 = time.perf_counter()
            response = client.post(url, json=BODY)
            times.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("latency", "e2e"))
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.0, help="the upstream's, in seconds")
    parser.add_argument("--connections", type=int, default=32, help="wrk's, for e2e")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the gateway")
    args = parser.parse_args()
    extra = dict(CAPS)
    extra.update(dict(item.split("=", 1) for item in args.env))
    in_process = args.engine == "sqlite"
    with tempfile.TemporaryDirectory(prefix="igprofile-") as tmp:
        work = Path(tmp)
        with (
            upstream(work, latency=args.latency) as up,
            engine(args.engine, work) as db,
            gateway(
                db, work, in_process_workers=in_process,
                worker_processes=0 if in_process else args.workers,
                upstream_url=up, extra_env=extra,
            ) as gw,
        ):  # fmt: skip
            v1 = f"{gw.base_url}/v1/images/generations"
            if not args.latency:
                timed_calls(v1, gw.live_key, 20)  # warm
            spies = []
            if args.what == "latency":
                direct = timed_calls(f"{up}/images/generations", UPSTREAM_KEY, args.calls)
                if args.profile:
                    spies = spy(gw.pids(), args.profile, args.calls * 0.1)
                through = timed_calls(v1, gw.live_key, args.calls)
                up_ms, gw_ms = statistics.mean(direct), statistics.mean(through)
                log(
                    f"upstream {up_ms:.2f} ms, imagegate {gw_ms:.2f} ms "
                    f"(p50 {statistics.median(through):.2f}), added {gw_ms - up_ms:.2f} ms"
                )
            else:
                lua = wrk.script(
                    method="POST", body=LIVE,
                    headers={"Content-Type": "application/json", "X-API-Key": gw.live_key},
                    stop_after=max(1, args.jobs // 2),
                )  # fmt: skip
                (work / "drive.lua").write_text(lua)
                if args.profile:
                    spies = spy(gw.pids(), args.profile, 10)
                before = db.counts()[1]
                t0 = time.monotonic()
                loader = subprocess.Popen(
                    wrk.command(shutil.which("wrk") or "wrk", gw.base_url + "/v2/images/generate",
                                work / "drive.lua", connections=args.connections, seconds=90),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                done = 0
                submitted_at = None
                while time.monotonic() - t0 < 90:
                    total, completed = db.counts()
                    done = completed - before
                    if submitted_at is None and total - before >= args.jobs:
                        submitted_at = time.monotonic() - t0
                        log(f"{args.jobs} submitted after {submitted_at:.2f} s")
                    if done >= args.jobs:
                        break
                    time.sleep(0.05)
                elapsed = time.monotonic() - t0
                loader.terminate()
                loader.wait()
                log(f"{min(done, args.jobs)} jobs in {elapsed:.2f} s = {done / elapsed:.1f} jobs/s")
            for proc in spies:
                proc.wait()
    if args.profile:
        for n in range(len(spies)):
            part = Path(f"{args.profile}.{n}")
            if part.exists():
                print(f"== process {n}")  # noqa: T201
                summarize(part)


if __name__ == "__main__":
    main()

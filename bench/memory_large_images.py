"""Memory of the gateway under large upstream images: streamed to storage, never held whole.

A real ``imagegate serve`` (SQLite, local storage, in-process workers, default settings: the
50 MB ``output_max_bytes`` cap) with its ``ideogram`` provider pointed at the fake Ideogram API
of ``imagegate.testing``, served here with ``image_bytes`` set, so every result URL it hands out
is a PNG of that size (``imagegate.testing.large_images.large_png``). The RSS of the gateway
process is sampled every 50 ms. Two scenarios, each on a fresh gateway:

- ``8 x 45 MB``: eight jobs submitted at once, each downloading, hashing, measuring and storing
  one 45 MB image, twice; peak RSS while they run, RSS 3 s after each round completed (the
  second round shows whether what stays after the first is a one-time cost or a leak);
- ``1 x 60 MB``: one job whose image is over the cap; it is refused from its ``Content-Length``
  before the body is read, the job FAILED and refunded.

With ``--profile`` py-spy samples the gateway during the first scenario (``pip install
py-spy``; it needs ptrace rights) and prints what the event loop's thread spent its samples on.

Run: ``.venv/bin/python bench/memory_large_images.py``; results go to
``bench/results/memory_large_images.json``. Targets: peak < 250 MB, back near the baseline
after, no growth for the refused image.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from completion_latency import serve_in_thread
from openai_vs_litellm import IMAGEGATE, free_port, imagegate_env, imagegate_live_key, process
from openai_vs_litellm import wait_until_up as wait_up
from run import RssSampler, rss_kb

from imagegate.testing.fake_upstream import create_app

BENCH = Path(__file__).resolve().parent
IDEOGRAM_KEY = "test-ideogram-key"
BODY = {"model": "ideogram-v2", "prompt": "a poster of a lighthouse"}


def mb(kb: int | None) -> float:
    return round((kb or 0) / 1024, 1)


async def run_jobs(base_url: str, key: str, count: int) -> list[dict[str, Any]]:
    """Submit ``count`` jobs at once and wait until each is final; their final bodies."""
    headers = {"X-API-Key": key}
    async with httpx2.AsyncClient(base_url=base_url, timeout=60) as http:
        accepted = await asyncio.gather(
            *(http.post("/v2/images/generate", json=BODY, headers=headers) for _ in range(count))
        )
        ids = [response.json()["jobId"] for response in accepted]
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 300
        while len(final) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            for job_id in ids:
                if job_id not in final:
                    job = (await http.get(f"/v2/jobs/{job_id}", headers=headers)).json()
                    if job["status"] in ("COMPLETED", "FAILED"):
                        final[job_id] = job
        if len(final) < count:
            raise RuntimeError(f"only {len(final)} of {count} jobs finished")
        return list(final.values())


def scenario(name: str, image_bytes: int, jobs: int, work: Path, profile: bool) -> dict[str, Any]:
    up_port, gate_port = free_port(), free_port()
    data = work / name.replace(" ", "")
    data.mkdir()
    env = imagegate_env(data, "http://unused.invalid/v1")
    env["IMAGEGATE_PROVIDERS__IDEOGRAM__API_KEY"] = IDEOGRAM_KEY
    env["IMAGEGATE_PROVIDERS__IDEOGRAM__BASE_URL"] = f"http://127.0.0.1:{up_port}"
    key = imagegate_live_key(env)
    env["IMAGEGATE_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{gate_port}"
    fake = create_app("ideogram", api_key=IDEOGRAM_KEY, image_bytes=image_bytes)
    gate = [str(IMAGEGATE), "serve", "--port", str(gate_port)]
    base = f"http://127.0.0.1:{gate_port}"
    top: list[tuple[str, float]] = []
    with serve_in_thread(fake, up_port), process(gate, env, data / "serve.log") as serve:
        wait_up(f"{base}/healthz")
        time.sleep(2.0)  # let start-up settle
        baseline = rss_kb(serve.pid)
        spy = None
        if profile:
            spy = subprocess.Popen(
                [str(Path(IMAGEGATE).with_name("py-spy")), "record", "--format", "raw",
                 "-r", "200", "-p", str(serve.pid), "-o", str(data / "profile.txt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        rounds = []
        with RssSampler({"serve": serve.pid}, interval=0.05) as sampler:
            started = time.monotonic()
            for _ in range(2 if jobs > 1 else 1):
                final = asyncio.run(run_jobs(base, key, jobs))
                time.sleep(3.0)
                rounds.append(mb(rss_kb(serve.pid)))
            elapsed = time.monotonic() - started
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
            top = profile_top(data / "profile.txt")
        after = rss_kb(serve.pid)
    statuses = collections.Counter(job["status"] for job in final)
    errors = sorted({job.get("error") or "" for job in final if job["status"] == "FAILED"})
    return {
        "image_bytes": image_bytes,
        "jobs": jobs,
        "statuses": dict(statuses),
        "errors": errors,
        "seconds_all_rounds": round(elapsed, 2),
        "rss_baseline_mb": mb(baseline),
        "rss_peak_mb": sampler.peak_mb("serve"),
        "rss_after_mb": mb(after),
        "rss_after_each_round_mb": rounds,
        "profile_top": top,
        "rss_samples_mb": [(t, mb(v)) for t, v in sampler.samples["serve"]][::4],
    }


def profile_top(raw: Path, limit: int = 10) -> list[tuple[str, float]]:
    """What the event loop's thread was doing: the frames on top of its stack (self time), as
    shares of its samples; ``(idle)`` is the loop waiting in ``select`` for work."""
    if not raw.exists():
        return []
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "run_forever" not in stack:
            continue
        frames = stack.split(";")
        total += int(count)
        idle = any(frame.startswith(("select (", "EpollSelector.select")) for frame in frames)
        counts["(idle)" if idle else frames[-1]] += int(count)
    return [(frame, round(100 * n / total, 1)) for frame, n in counts.most_common(limit)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", action="store_true", help="py-spy the 8 x 45 MB scenario")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "memory_large_images.json")
    args = parser.parse_args()
    if args.profile and not shutil.which("py-spy", path=str(Path(IMAGEGATE).parent)):
        raise SystemExit("--profile needs py-spy next to imagegate (pip install py-spy)")
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory(prefix="imagegate-memory-") as tmp:
        for name, size, jobs in (("8 x 45 MB", 45_000_000, 8), ("1 x 60 MB", 60_000_000, 1)):
            result = scenario(name, size, jobs, Path(tmp), args.profile and jobs > 1)
            results[name] = result
            print(  # noqa: T201
                f"{name}: {result['statuses']} per round; RSS baseline "
                f"{result['rss_baseline_mb']} MB, peak {result['rss_peak_mb']} MB, "
                f"after each round {result['rss_after_each_round_mb']} MB "
                f"{result['errors'] or ''}",
                flush=True,
            )
            for frame, share in result["profile_top"]:
                print(f"    {share:5.1f} %  {frame}")  # noqa: T201
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

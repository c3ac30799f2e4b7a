"""Completion latency: from the upstream's answer to the job COMPLETED, and to the webhook received.

One real ``imagegate serve`` (SQLite, in-process workers, default settings) with its ``openai``
provider pointed at the fake OpenAI Images API (``imagegate.testing.fake_upstream``), which this
script serves itself on 127.0.0.1 and answers at once. Around the fake sits a clock that notes
the moment each answer's last byte is handed to the socket; a webhook receiver, also served here,
notes the moment each webhook arrives. Jobs run one at a time (a live key, ``webhookUrl`` set),
so answer *n* belongs to job *n*:

- answer → COMPLETED: the job's ``completedAt`` (written by the gateway, epoch milliseconds on
  the same machine) minus the answer's moment;
- answer → webhook received: the webhook's arrival minus the answer's moment.

Run: ``.venv/bin/python bench/completion_latency.py [--jobs 50]``; results go to
``bench/results/completion_latency.json``. Targets: p50 ≤ 50 ms and ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from openai_vs_litellm import (
    IMAGEGATE,
    UPSTREAM_KEY,
    free_port,
    imagegate_env,
    imagegate_live_key,
    process,
    wait_until_up,
)

from imagegate.testing.fake_upstream import create_app

BENCH = Path(__file__).resolve().parent
ANSWERED_PATH = "/v1/images/generations"


class AnswerClock:
    """ASGI wrapper: the wall-clock moment each generation answer's last byte was sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answered: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != ANSWERED_PATH:
            await self.app(scope, receive, send)
            return

        async def timed(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.answered.append(time.time())

        await self.app(scope, receive, timed)


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


class Receiver(ThreadingHTTPServer):
    """Webhook receiver: job id → arrival time of its ``completed`` webhook."""

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Hook)
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()

    def wait_for(self, job_id: str, seconds: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: job_id in self.arrived, seconds)


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        arrived = time.time()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if body.get("event") == "completed":
            with self.server.changed:
                self.server.arrived[body["jobId"]] = arrived
                self.server.changed.notify_all()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": pick(0.9),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


def epoch_of(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def run_jobs(
    base_url: str, key: str, hook: str, receiver: Receiver, clock: AnswerClock, jobs: int
) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    headers = {"X-API-Key": key}
    async with httpx2.AsyncClient(base_url=base_url, timeout=30) as http:
        for n in range(jobs + 1):  # the first job warms the process up and is not counted
            body = {"model": "gpt-image-1.5", "prompt": f"lighthouse {n}", "webhookUrl": hook}
            response = await http.post("/v2/images/generate", json=body, headers=headers)
            response.raise_for_status()
            job_id = response.json()["jobId"]
            if not await asyncio.to_thread(receiver.wait_for, job_id, 30.0):
                raise RuntimeError(f"no webhook for job {job_id} within 30 s")
            job = (await http.get(f"/v2/jobs/{job_id}", headers=headers)).json()
            if job["status"] != "COMPLETED" or len(clock.answered) != n + 1:
                raise RuntimeError(f"job {job_id}: {job['status']}, {len(clock.answered)} answers")
            answered = clock.answered[n]
            if n:
                rows.append(
                    {
                        "completed_ms": (epoch_of(job["completedAt"]) - answered) * 1000,
                        "webhook_ms": (receiver.arrived[job_id] - answered) * 1000,
                    }
                )
            await asyncio.sleep(0.05)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "completion_latency.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="imagegate-latency-") as tmp:
        work = Path(tmp)
        up_port, hook_port, gate_port = free_port(), free_port(), free_port()
        clock = AnswerClock(create_app("openai", api_key=UPSTREAM_KEY))
        receiver = Receiver(hook_port)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        data = work / "imagegate"
        data.mkdir()
        env = imagegate_env(data, f"http://127.0.0.1:{up_port}/v1")
        key = imagegate_live_key(env)
        env["IMAGEGATE_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{gate_port}"
        gate = [IMAGEGATE, "serve", "--port", str(gate_port)]
        with (
            serve_in_thread(clock, up_port),
            process([str(x) for x in gate], env, work / "imagegate.log"),
        ):
            wait_until_up(f"http://127.0.0.1:{gate_port}/healthz")
            rows = asyncio.run(
                run_jobs(
                    f"http://127.0.0.1:{gate_port}",
                    key,
                    f"http://127.0.0.1:{hook_port}/hook",
                    receiver,
                    clock,
                    args.jobs,
                )
            )
        receiver.shutdown()

    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "jobs": len(rows),
        "answer_to_completed_ms": percentiles([r["completed_ms"] for r in rows]),
        "answer_to_webhook_ms": percentiles([r["webhook_ms"] for r in rows]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()

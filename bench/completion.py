"""Completion latency: how soon after the upstream answers is a job COMPLETED, and its webhook in.

One ``imagegate serve`` (SQLite, in-process workers, the defaults; the end-to-end scenario's,
before its load) in front of the zero-latency upstream, which notes when each answer left
(``bench/upstream.py``). Jobs are submitted one at a
time, each with a unique prompt and a ``webhookUrl`` on a receiver in this process, the next
once the last one's ``COMPLETED`` webhook arrived. Per job: the job's ``completed_at`` (read
from the database) and the webhook's arrival, each minus the upstream answer's time. Everything
runs on one machine, so the three clocks are one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

from bench.gateway import Gateway, log

TIMEOUT = 30.0


class _Receiver(BaseHTTPRequestHandler):
    arrived: dict[str, float]
    event: threading.Condition

    def do_POST(self) -> None:  # the http.server hook's name
        at = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.end_headers()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            payload = json.loads(body)
            if payload.get("status") == "COMPLETED":
                with self.event:
                    self.arrived.setdefault(str(payload["jobId"]), at)
                    self.event.notify_all()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, dict[str, float], threading.Condition]]:
    arrived: dict[str, float] = {}
    event = threading.Condition()
    handler = type("Receiver", (_Receiver,), {"arrived": arrived, "event": event})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", arrived, event
    finally:
        server.shutdown()


def p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def measure(gw: Gateway, sqlite_file: Path, jobs: int) -> dict[str, Any]:
    """Run on a gateway already serving (SQLite at ``sqlite_file``, upstream from
    ``bench/upstream.py``) with an empty queue, so each job is the only one."""
    marks = gw.marks()
    with receiver() as (hook, arrived, event):
        headers = {"X-API-Key": gw.live_key}
        ids: dict[str, str] = {}
        for n in range(jobs + 1):  # the first one warms up and is not counted
            prompt = f"completion latency {uuid.uuid4().hex[:8]} {n}"
            answer = httpx2.post(
                gw.base_url + "/v2/images/generate",
                json={"model": "gpt-image-1.5", "prompt": prompt, "webhookUrl": hook,
                      "gptImageParams": {"quality": "low"}},
                headers=headers, timeout=30,
            )  # fmt: skip
            answer.raise_for_status()
            job_id = answer.json()["jobId"]
            with event:
                if not event.wait_for(lambda job_id=job_id: job_id in arrived, TIMEOUT):
                    raise RuntimeError(f"no COMPLETED webhook for {job_id} in {TIMEOUT:g} s")
            if n:
                ids[prompt] = job_id
    answered = dict(httpx2.get(gw.upstream_url.removesuffix("/v1") + "/bench/answers").json())
    with contextlib.closing(sqlite3.connect(sqlite_file)) as conn:
        completed = dict(conn.execute("SELECT id, completed_at FROM jobs").fetchall())
    slow = gw.slow_since(marks)
    to_completed, to_webhook = [], []
    for prompt, job_id in ids.items():
        at = answered[prompt]
        done = completed.get(job_id) or completed.get(job_id.replace("-", ""))
        if done is not None:
            to_completed.append(done - at * 1000)
        to_webhook.append((arrived[job_id] - at) * 1000)
    result = {
        "jobs": len(ids),
        "completed_p50_ms": p50(to_completed),
        "completed_max_ms": round(max(to_completed), 2) if to_completed else None,
        "webhook_p50_ms": p50(to_webhook),
        "webhook_max_ms": round(max(to_webhook), 2) if to_webhook else None,
        "completed_samples": len(to_completed),
        "slow_callbacks": slow,
    }
    log(
        f"completion latency over {len(ids)} jobs: → COMPLETED p50 {result['completed_p50_ms']} ms,"
        f" → webhook p50 {result['webhook_p50_ms']} ms"
    )
    return result

"""A gateway of several processes on 127.0.0.1, as a multi-node deployment runs it.

``Cluster`` starts ``imagegate serve --no-workers`` and ``imagegate worker`` processes that share
one database and one object store, and kills, stops (SIGTERM) and restarts them by name; each
keeps its log in the cluster's directory. ``submit_jobs`` pushes sandbox jobs with webhooks
through the API processes in turn; ``wait_until_settled`` waits until no job and no final webhook
is left to do. The model runs on the sandbox route under a live key, so credits are reserved,
captured and refunded as for a paid vendor, and every sandbox submit is logged per job.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from imagegate.services import accounts as account_service
from imagegate.store.db import Database
from imagegate.store.tables import jobs, webhook_deliveries
from imagegate.testing.fake_upstream import create_app
from imagegate.types import KeyKind, SystemClock
from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy

MODEL = "gpt-image-1.5"
ROUTES = {MODEL: ["sandbox:gpt-image-1.5"]}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Node:
    name: str
    command: list[str]
    port: int | None
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    def __init__(
        self,
        root: Path,
        database_url: str,
        *,
        routes: Mapping[str, list[str]] = ROUTES,
        providers: Mapping[str, Any] | None = None,
        **settings: str,
    ) -> None:
        self.root = root
        self.database_url = database_url
        self.submit_log = root / "sandbox-submits.log"
        every_provider = {
            "sandbox": {
                "max_concurrency": 256,
                "options": {"submit_log": str(self.submit_log), "max_side": 64},
            },
            **(providers or {}),
        }
        self.env = child_env(
            IMAGEGATE_DATABASE_URL=database_url,
            IMAGEGATE_DATA_DIR=str(root / "data"),
            IMAGEGATE_SIGNING_SECRET="cluster-signing-secret",
            IMAGEGATE_ROUTES=json.dumps(routes),
            IMAGEGATE_PROVIDERS=json.dumps(every_provider),
            IMAGEGATE_OUTBOUND_ALLOW_HTTP="true",
            IMAGEGATE_OUTBOUND_ALLOW_NETWORKS='["127.0.0.0/8"]',
            IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT="100000",
            IMAGEGATE_LOG_JSON="true",
            **settings,
        )
        self.nodes: dict[str, Node] = {}
        self._started: collections.Counter[str] = collections.Counter()

    def _start(self, name: str, command: list[str], port: int | None) -> Node:
        env = dict(self.env)
        if port is not None:
            env["IMAGEGATE_PORT"] = str(port)
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        node = Node(name, command, port, process)
        self.nodes[name] = node
        self._started[name] += 1
        return node

    def start_api(self, name: str, *, wait: bool = True) -> Node:
        """``serve --no-workers``; with ``wait``, once it answers ``/healthz``."""
        node = self._start(name, [IMAGEGATE, "serve", "--no-workers"], free_port())
        if wait:
            wait_until_healthy(node.base_url, node.process)
        return node

    def start_embedded(self, name: str, workers: int = 1) -> Node:
        """``serve`` with its own workers, as on a single box."""
        node = self._start(name, [IMAGEGATE, "serve", "--workers", str(workers)], free_port())
        wait_until_healthy(node.base_url, node.process)
        return node

    def start_worker(self, name: str, concurrency: int = 8) -> Node:
        return self._start(name, [IMAGEGATE, "worker", "--concurrency", str(concurrency)], None)

    def restart(self, name: str) -> Node:
        old = self.nodes[name]
        assert old.process.poll() is not None, f"{name} is still running"
        node = self._start(name, old.command, old.port)
        if node.port is not None:
            wait_until_healthy(node.base_url, node.process)
        else:
            self.wait_until_working(name)
        return node

    def wait_until_working(self, name: str, timeout: float = 60) -> None:
        """Until a worker process has started its loops (it has connected and migrated)."""
        node = self.nodes[name]
        log = self.root / f"{name}.log"
        deadline = time.monotonic() + timeout
        while log.read_text(errors="replace").count('"worker.started"') < self._starts(name):
            if node.process.poll() is not None:
                raise AssertionError(f"{name} exited with {node.process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start")
            time.sleep(0.1)

    def _starts(self, name: str) -> int:
        return self._started[name]

    def kill(self, name: str) -> None:
        process = self.nodes[name].process
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def terminate(self, name: str, timeout: float = 60) -> int:
        """SIGTERM and wait; the exit code (0 for a clean stop)."""
        process = self.nodes[name].process
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    @property
    def apis(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.port is not None]

    def close(self) -> None:
        for node in self.nodes.values():
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def node_of_owner(self, lease_owner: str) -> str:
        """The name of the process holding a lease (owners read ``host:pid:suffix``)."""
        pid = int(lease_owner.split(":")[1])
        return next(n.name for n in self.nodes.values() if n.process.pid == pid)


class CountingVendor:
    """The fake OpenAI, counting image calls by prompt; each answer takes ``delay`` seconds, so
    a crash can land while a call is in flight."""

    def __init__(self, delay: float = 0.0) -> None:
        self.app = create_app("openai")
        self.delay = delay
        self.calls: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/images/generations":
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.calls[json.loads(body)["prompt"]] += 1
        await asyncio.sleep(self.delay)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def provider(self, base_url: str) -> dict[str, Any]:
        """The ``providers`` entry pointing the OpenAI adapter at this fake."""
        return {"openai": {"api_key": "sk-fake-openai", "base_url": f"{base_url}/v1"}}


@contextlib.contextmanager
def serving_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app (a fake vendor) on 127.0.0.1 from a thread; its base URL.

    On leaving, a request still in the app (a vendor call left hanging on purpose) is cancelled
    after a second instead of holding the shutdown until the thread's join gives up.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def create_live_key(database_url: str, credits: int) -> str:
    """A new account with ``credits`` and a live key; the key."""
    db = Database(database_url)
    clock = SystemClock()
    try:
        account = await account_service.create_account(db, clock, "cluster")
        key = await account_service.create_key(db, clock, account.id, KeyKind.LIVE, "k")
        await account_service.grant_credits(db, clock, account.id, credits)
    finally:
        await db.dispose()
    return key.secret


async def submit_jobs(
    base_urls: list[str],
    key: str,
    count: int,
    webhook_url: str,
    *,
    concurrency: int = 16,
    prompt: str = "job",
) -> list[str]:
    """Submit ``count`` jobs through the API processes in turn; the accepted job ids, the one
    prompted ``f"{prompt} {i}"`` at index ``i``.

    A submit that meets a dead API process (killed by the test) or a 5xx (the database is down)
    is retried on the next one with the same ``Idempotency-Key``, for up to two minutes, so it is
    accepted exactly once.
    """
    urls = itertools.cycle(base_urls)
    gate = asyncio.Semaphore(concurrency)
    accepted = [""] * count

    async def one(http: httpx2.AsyncClient, index: int) -> None:
        body = {
            "model": MODEL,
            "prompt": f"{prompt} {index}",
            "gptImageParams": {"quality": "low"},
            "webhookUrl": webhook_url,
        }
        headers = {"X-API-Key": key, "Idempotency-Key": f"{prompt}-{index}"}
        async with gate:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    response = await http.post(
                        f"{next(urls)}/v2/images/generate", json=body, headers=headers
                    )
                except httpx2.TransportError:
                    await asyncio.sleep(0.1)
                    continue
                if response.status_code >= 500:
                    await asyncio.sleep(0.1)
                    continue
                assert response.status_code == 202, response.text
                accepted[index] = response.json()["jobId"]
                return
            raise AssertionError(f"submit {index} was never accepted")

    async with httpx2.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(one(http, i) for i in range(count)))
    return accepted


async def open_work(database_url: str) -> tuple[int, int]:
    """Jobs not yet final, and final webhooks not yet delivered or given up."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            unfinished = await conn.scalar(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.status.in_(["QUEUED", "PROCESSING"]))
            )
            pending = await conn.scalar(
                select(func.count())
                .select_from(webhook_deliveries)
                .where(webhook_deliveries.c.status == "pending")
            )
    finally:
        await db.dispose()
    return int(unfinished or 0), int(pending or 0)


async def wait_until_settled(database_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            unfinished, pending = await open_work(database_url)
        except Exception:  # the database itself may be restarting
            unfinished = pending = -1
        if unfinished == 0 and pending == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {unfinished} jobs open, {pending} webhooks pending")
        await asyncio.sleep(0.5)


def scrape(url: str) -> Samples:
    """A process's ``/metrics``: each sample's value by its name and labels."""
    response = httpx2.get(url, timeout=10)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample carrying ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)

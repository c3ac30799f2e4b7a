"""``/healthz`` (the process is up) and ``/readyz`` (it can serve: database and storage reachable,
and the background loops this process runs, if any, are running rather than waiting out an
outage, restarting after a crash or given up)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from imagegate.api.deps import RuntimeDep
from imagegate.errors import ServiceUnavailable
from imagegate.queue.claims import queue_depth
from imagegate.storage.port import ObjectNotFound, ObjectStore
from imagegate.store.operations import cluster_figures
from imagegate.store.providers import Health

__all__ = ["provider_status", "router", "storage_answers"]

router = APIRouter(tags=["Health"])

STORAGE_PROBE_KEY = "imagegate-ready-probe"
"""Looked up, never written: "not found" proves the bucket (or directory) answers."""

STORAGE_TIMEOUT_SECONDS = 2.0
"""A bucket slower than this to answer one HEAD is reported unavailable."""


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    """This process's counters and the cluster's gauges (read from the database at most every
    ``CLUSTER_TTL_SECONDS``, so N API processes scraped every few seconds stay cheap)."""
    m = runtime.metrics
    if m.cluster_stale(time.monotonic()):
        async with runtime.db.read() as conn:
            now = runtime.clock.now_ms()
            figures = await cluster_figures(conn, now)
            due = await queue_depth(conn, now)
        m.set_cluster(dataclasses.replace(figures, due=due), time.monotonic())
    text = await asyncio.to_thread(m.render, cluster=True)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", summary="Readiness")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    ready = True
    try:
        await runtime.db.ping()
        checks["database"] = "ok"
    except ServiceUnavailable:
        checks["database"] = "unavailable"
        ready = False
    if await storage_answers(runtime.store):
        checks["storage"] = "ok"
    else:
        checks["storage"] = "unavailable"
        ready = False
    loops = runtime.loops.problems()
    if loops:
        checks["loops"] = ", ".join(f"{loop}: {state}" for loop, state in sorted(loops.items()))
        ready = False
    elif runtime.loops.states():
        checks["loops"] = "ok"
    providers: dict[str, dict[str, Any]] = {}
    if checks["database"] == "ok":
        now = runtime.clock.now_ms()
        for health in await runtime.gates.snapshot():
            providers[health.provider] = {
                "status": provider_status(health, now),
                "error": health.misconfigured,
            }
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks, "providers": providers},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "5"},
    )


async def storage_answers(store: ObjectStore) -> bool:
    """Whether the object store answers a metadata lookup within ``STORAGE_TIMEOUT_SECONDS``.

    A read, not a write: the load balancer asks every few seconds, and writes are proved once at
    start-up (``imagegate config check --connect`` does the same).
    """
    try:
        await asyncio.wait_for(store.head(STORAGE_PROBE_KEY), STORAGE_TIMEOUT_SECONDS)
    except ObjectNotFound:
        return True
    except Exception:  # refused, timed out, credentials rejected: the reason is in the server log
        return False
    return True


def provider_status(health: Health, now: int) -> str:
    """A provider never makes the gateway unready (other routes may serve), but shows here."""
    if health.misconfigured:
        return "misconfigured"
    if health.open_until > now:
        return "circuit-open"
    if health.cooldown_until > now:
        return "rate-limited"
    return "ok"

"""``GET /v2/jobs/{id}/events``: each change of a job live, then the finished job, resumable."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from imagegate.api.app import create_app
from imagegate.services import accounts as account_service
from imagegate.store import jobs as job_store
from imagegate.types import KeyKind
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a lighthouse [[latency:2]]"}


@dataclass(frozen=True)
class Sent:
    id: int | None
    event: str
    data: dict[str, Any]


def parse(text: str) -> tuple[list[Sent], int]:
    """The events of a whole stream, and how many heartbeat comments it held."""
    events: list[Sent] = []
    heartbeats = 0
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                heartbeats += 1
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            event_id = int(fields["id"]) if "id" in fields else None
            events.append(Sent(event_id, fields["event"], json.loads(fields["data"])))
    return events, heartbeats


async def stream(gateway: Gateway, job_id: str, **headers: str) -> httpx2.Response:
    return await gateway.http.get(f"/v2/jobs/{job_id}/events", headers=gateway.headers(**headers))


async def stream_while_it_runs(gateway: Gateway, job_id: str, **headers: str) -> httpx2.Response:
    following = asyncio.create_task(stream(gateway, job_id, **headers))
    await asyncio.sleep(0.1)
    assert not following.done()
    await gateway.drain()
    return await asyncio.wait_for(following, 10)


async def test_a_stream_sends_each_change_then_the_finished_job_and_closes(
    gateway: Gateway,
) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]

    response = await stream_while_it_runs(gateway, job_id)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events, _ = parse(response.text)
    *changes, final = events
    async with gateway.runtime.db.read() as conn:
        rows = await job_store.list_events(conn, job_id)
    assert [(e.id, e.event) for e in changes] == [(r["id"], r["kind"]) for r in rows]
    assert changes[0].data["status"] == "QUEUED"
    assert "progress" in [e.event for e in changes]
    progress = [e.data["progress"] for e in changes]
    assert progress == sorted(progress)
    assert (changes[-1].event, changes[-1].data["status"], progress[-1]) == (
        "completed",
        "COMPLETED",
        100,
    )
    assert all(e.data["jobId"] == job_id for e in changes)
    assert final.event == "job" and final.id is None
    assert final.data == await gateway.job(job_id)


async def test_a_finished_job_streams_its_history_and_the_job(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]
    await gateway.drain()

    response = await asyncio.wait_for(stream(gateway, job_id), 5)

    events, _ = parse(response.text)
    assert events[0].event == "queued" and events[-2].event == "completed"
    assert events[-1].event == "job"
    assert events[-1].data["status"] == "COMPLETED"


async def test_last_event_id_resumes_after_that_event_without_loss_or_repeat(
    gateway: Gateway,
) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]
    async with gateway.runtime.db.read() as conn:
        queued_id = (await job_store.list_events(conn, job_id))[0]["id"]

    live = await stream_while_it_runs(gateway, job_id, **{"Last-Event-ID": str(queued_id)})
    full, _ = parse((await stream(gateway, job_id)).text)

    assert parse(live.text)[0] == full[1:]
    ids = [e.id for e in full if e.id is not None]
    for cut in range(len(ids)):
        resumed, _ = parse((await stream(gateway, job_id, **{"Last-Event-ID": str(ids[cut])})).text)
        assert [e.id for e in resumed] == [*ids[cut + 1 :], None]
        assert resumed[-1].event == "job"


async def test_an_idle_stream_sends_heartbeats(database_url: str, tmp_path: Path) -> None:
    async with open_gateway(
        database_url, tmp_path / "data", routes=SANDBOX_ROUTES, events_heartbeat_seconds=0.05
    ) as gateway:
        job_id = (await gateway.submit(BODY)).json()["jobId"]
        following = asyncio.create_task(stream(gateway, job_id))
        # Eight heartbeats are due in 0.4 s; a loaded machine may start the stream late, so the
        # job stays idle long enough for three whatever the start.
        await asyncio.sleep(1.5)
        await gateway.drain()
        response = await asyncio.wait_for(following, 10)

        events, heartbeats = parse(response.text)
        assert heartbeats >= 3
        head = response.text.split("\n\n")
        assert head[0].startswith("id: ") and head[1] == ": heartbeat"
        assert events[-1].event == "job"


async def test_another_accounts_job_is_not_found(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]
    clock = gateway.runtime.clock
    other = await account_service.create_account(gateway.runtime.db, clock, "other")
    key = await account_service.create_key(gateway.runtime.db, clock, other.id, KeyKind.TEST, "t")

    response = await stream(gateway, job_id, **{"X-API-Key": key.secret})
    missing = await stream(gateway, "0192f1a4-0000-7000-8000-000000000000")

    assert response.status_code == 404
    assert missing.status_code == 404


async def test_a_last_event_id_that_is_not_an_event_id_is_refused(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]

    response = await stream(gateway, job_id, **{"Last-Event-ID": "yesterday"})

    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["details"]


async def test_a_client_that_goes_away_ends_its_stream_quietly(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/v2/jobs/{job_id}/events",
        "raw_path": f"/v2/jobs/{job_id}/events".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-api-key", gateway.test_key.encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(create_app(gateway.runtime)(scope, receive, send), 5)

    assert sent[0]["status"] == 200
    assert b"event: queued" in b"".join(m.get("body", b"") for m in sent)

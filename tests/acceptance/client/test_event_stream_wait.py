"""``jobs.wait`` and ``images.generate(wait=…)`` follow the job's event stream when the gateway
offers it, and poll when it does not (404/405) or when the stream breaks."""

from __future__ import annotations

import httpx2

from imagegate.client import AsyncClient, Client

from .conftest import Gateway

PROMPT = "a red kite [[latency:1.5]]"


class Recording(httpx2.BaseTransport):
    """Sends every request to the gateway, except that ``/events`` may be answered by ``events``
    (a status and a body); remembers the paths asked for."""

    def __init__(self, events: tuple[int, bytes] | None = None) -> None:
        self.inner = httpx2.HTTPTransport()
        self.events = events
        self.paths: list[str] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.paths.append(request.url.path)
        if self.events is not None and request.url.path.endswith("/events"):
            status, body = self.events
            return httpx2.Response(
                status, content=body, headers={"content-type": "text/event-stream"}
            )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncRecording(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _job_reads(paths: list[str], job_id: str) -> int:
    return paths.count(f"/v2/jobs/{job_id}")


def test_wait_follows_the_event_stream_and_reports_each_step(gateway: Gateway) -> None:
    transport = Recording()
    seen: list[tuple[str, int]] = []
    with Client(gateway.base_url, gateway.test_key, transport=transport) as client:
        queued = client.images.generate(model="gpt-image-1.5", prompt=PROMPT)
        job = client.jobs.wait(
            queued.id, timeout=30, on_progress=lambda j: seen.append((j.status, j.progress))
        )

    assert job.status == "COMPLETED" and job.images
    assert f"/v2/jobs/{job.id}/events" in transport.paths
    assert _job_reads(transport.paths, job.id) == 1  # the first look; the rest came streamed
    assert seen[-1] == ("COMPLETED", 100)
    assert any(status == "PROCESSING" and 0 < progress < 100 for status, progress in seen)
    assert [progress for _, progress in seen] == sorted(progress for _, progress in seen)


def test_wait_polls_when_the_gateway_has_no_event_stream(gateway: Gateway) -> None:
    transport = Recording(events=(404, b'{"error": "Not found"}'))
    with Client(gateway.base_url, gateway.test_key, transport=transport, poll_interval=0.1) as c:
        job = c.images.generate(model="gpt-image-1.5", prompt=PROMPT, wait=30)

    assert job.status == "COMPLETED"
    assert _job_reads(transport.paths, job.id) > 2


def test_wait_polls_on_when_the_stream_breaks(gateway: Gateway) -> None:
    cut = b'id: 1\nevent: queued\ndata: {"status": "QUEUED", "progress": 0}\n\n'
    transport = Recording(events=(200, cut))
    with Client(gateway.base_url, gateway.test_key, transport=transport, poll_interval=0.1) as c:
        job = c.images.generate(model="gpt-image-1.5", prompt=PROMPT, wait=30)

    assert job.status == "COMPLETED"
    assert transport.paths.count(f"/v2/jobs/{job.id}/events") == 1
    assert _job_reads(transport.paths, job.id) > 2


async def test_the_async_client_follows_the_event_stream(gateway: Gateway) -> None:
    transport = AsyncRecording()
    seen: list[tuple[str, int]] = []
    async with AsyncClient(gateway.base_url, gateway.test_key, transport=transport) as client:
        job = await client.images.generate(
            model="gpt-image-1.5",
            prompt=PROMPT,
            wait=30,
            on_progress=lambda j: seen.append((j.status, j.progress)),
        )

    assert job.status == "COMPLETED" and job.images
    assert f"/v2/jobs/{job.id}/events" in transport.paths
    assert _job_reads(transport.paths, job.id) == 1
    assert seen[-1] == ("COMPLETED", 100)

"""The one request/response core that ``Client`` and ``AsyncClient`` share.

Every operation is written once, as a *plan*: a generator that yields the steps it needs done,
``Call`` (make this HTTP request, send me the ``Reply``), ``Sleep`` (wait this long), ``Listen``
(open this Server-Sent Events stream, send me its first ``Event``) and ``NextEvent`` (the next
one from that stream, None at its end), and returns its result. It never touches a socket or a
clock's sleep itself. A driver runs a plan: ``run_sync`` with ``httpx2.Client`` and
``time.sleep``, ``run_async`` with ``httpx2.AsyncClient`` and ``asyncio.sleep``. So retries,
back-off, ``Retry-After``, polling, the Idempotency-Key that stays the same across a submit's
retries, and the parsing of every answer exist in one copy; the two clients only differ in how a
step is carried out.

A connection failure is thrown into the plan as ``APIConnectionError`` at the ``Call`` that
failed, so the plan's retry loop handles it like a 503; a stream that breaks (or stays silent
past its read timeout) is thrown the same way at its ``Listen`` or ``NextEvent``. A driver
closes an open stream as soon as the plan yields any other step or ends.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from imagegate.client._exceptions import APIConnectionError, JobTimeoutError, error_for_status
from imagegate.client._types import Download, Job, JobPage, Me, Model, Upload

__all__ = [
    "DEFAULT_BASE_URL",
    "Call",
    "Core",
    "Event",
    "Listen",
    "NextEvent",
    "Plan",
    "PollPolicy",
    "Reply",
    "RetryPolicy",
    "Sleep",
    "run_async",
    "run_sync",
]

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "imagegate-python"
DEFAULT_WAIT_TIMEOUT = 600.0
STREAM_READ_TIMEOUT = 45.0
"""Silence after which an event stream counts as broken (the gateway sends heartbeats)."""
_STATUS_RANK = {"QUEUED": 0, "PROCESSING": 1}


@dataclass(frozen=True)
class Call:
    """One HTTP request. ``path`` is relative to the gateway, or an absolute URL (a signed
    result URL: sent without the API key). ``retryable`` marks reads and keyed submits."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retryable: bool = False

    @property
    def absolute(self) -> bool:
        return self.path.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Listen:
    """Open the event stream ``call``; answered with its first ``Event`` (None if it ends at
    once), or with the ``Reply`` when the gateway answers anything but 200."""

    call: Call
    read_timeout: float


@dataclass(frozen=True)
class NextEvent:
    """The next ``Event`` of the stream the last ``Listen`` opened; None when it ended."""


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its ``event`` name (``message`` when unnamed), ``data`` and ``id``."""

    event: str
    data: str
    id: str | None = None


Step = Call | Sleep | Listen | NextEvent
Plan = Generator[Step, Any, T]
"""A generator that yields steps and returns a ``T``; a ``Call`` is answered with a ``Reply``."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    content: bytes

    def body(self) -> Any:
        """The JSON body, or the text when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return self.content.decode("utf-8", "replace")


@dataclass(frozen=True)
class RetryPolicy:
    """How a retryable call is tried again after 408/429/5xx or a connection failure.

    The delay before retry ``n`` (from 0) is the server's ``Retry-After`` when it sent one,
    else ``initial × 2ⁿ`` with ±25 % jitter, capped at ``max_delay``. A ``Retry-After`` above
    ``max_delay`` is not waited out: the error is raised so the caller can decide.
    """

    max_retries: int = 2
    initial: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry ``attempt``, or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_delay else None
        backoff: float = min(self.initial * 2.0**attempt, self.max_delay)
        return backoff * random.uniform(0.75, 1.25)


@dataclass(frozen=True)
class PollPolicy:
    """``jobs.wait``'s cadence: start at ``initial`` seconds, ×``factor`` per poll, ≤ ``cap``."""

    initial: float = 0.5
    factor: float = 1.5
    cap: float = 5.0


def _request(call: Call, retry: RetryPolicy) -> Plan[Reply]:
    """Send ``call``, retrying it when it may be retried; raise the error class for a 4xx/5xx."""
    attempt = 0
    while True:
        try:
            reply: Reply = yield call
        except APIConnectionError:
            wait = retry.delay(attempt, None) if call.retryable else None
            if wait is None:
                raise
        else:
            if reply.status < 400:
                return reply
            error = error_for_status(reply.status, reply.body(), reply.headers)
            if not call.retryable or reply.status not in RETRY_STATUSES:
                raise error
            wait = retry.delay(attempt, getattr(error, "retry_after", None))
            if wait is None:
                raise error
        attempt += 1
        yield Sleep(wait)


def _json(call: Call, retry: RetryPolicy) -> Plan[Any]:
    reply = yield from _request(call, retry)
    return reply.body()


def _read(path: str, params: Mapping[str, Any] | None = None) -> Call:
    return Call("GET", path, params=params, retryable=True)


def _header_safe_key(key: str | None) -> str | None:
    """``key`` without the whitespace around it (a key read from a file keeps its line break).

    A key that still holds a character an HTTP header cannot carry is refused here, by name:
    sent, it would fail every call as a gateway that cannot be reached.
    """
    if key is None:
        return None
    key = key.strip()
    if not (key.isascii() and key.isprintable()):
        raise ValueError(
            "api_key holds a line break or another character an HTTP header cannot carry"
        )
    return key


class Core:
    """What both clients hold: where the gateway is, the key, and the plans of every operation."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        retry: RetryPolicy,
        poll: PollPolicy,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = _header_safe_key(api_key)
        self.retry = retry
        self.poll = poll
        self._params_keys: dict[str, str] = {}

    def headers_for(self, call: Call) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **call.headers}
        if self.api_key and not call.absolute:
            headers["X-API-Key"] = self.api_key
        return headers

    # -- images -------------------------------------------------------------------------------

    def params_key(self, model: str) -> Plan[str]:
        """The body field that carries ``model``'s params (``fluxParams``, …), asked once."""
        if model not in self._params_keys:
            found = yield from self.get_model(model)
            self._params_keys[model] = found.params_key
        return self._params_keys[model]

    def generate(
        self,
        *,
        model: str,
        prompt: str,
        params: Mapping[str, Any] | None,
        webhook_url: str | None,
        webhook_events: list[str] | None,
        idempotency_key: str | None,
        extra_body: Mapping[str, Any] | None,
        wait: bool | float,
        on_progress: Callable[[Job], None] | None,
    ) -> Plan[Job]:
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        if params is not None:
            body[(yield from self.params_key(model))] = dict(params)
        if webhook_url is not None:
            body["webhookUrl"] = webhook_url
        if webhook_events is not None:
            body["webhookEvents"] = list(webhook_events)
        body.update(extra_body or {})
        job = yield from self._submit("/v2/images/generate", body, idempotency_key, model)
        return (yield from self._maybe_wait(job, wait, on_progress))

    def midjourney_action(
        self,
        *,
        action: str,
        parent_job_id: str,
        fields: Mapping[str, Any] | None,
        idempotency_key: str | None,
        wait: bool | float,
        on_progress: Callable[[Job], None] | None,
    ) -> Plan[Job]:
        body = {"action": action, "parentJobId": parent_job_id, **(fields or {})}
        path = "/v2/images/midjourney/action"
        job = yield from self._submit(path, body, idempotency_key, "midjourney")
        return (yield from self._maybe_wait(job, wait, on_progress))

    def _submit(
        self, path: str, body: dict[str, Any], idempotency_key: str | None, model: str
    ) -> Plan[Job]:
        # One key per logical submit, made before the first attempt: every retry of this
        # submit carries it, so a retry whose first answer was lost gets the same job back.
        key = idempotency_key or str(uuid.uuid4())
        call = Call("POST", path, json=body, headers={"Idempotency-Key": key}, retryable=True)
        accepted = yield from _json(call, self.retry)
        return Job.from_dict({"model": model, "progress": 0, "id": accepted["jobId"], **accepted})

    def _maybe_wait(
        self, job: Job, wait: bool | float, on_progress: Callable[[Job], None] | None
    ) -> Plan[Job]:
        if wait is False:
            return job
        timeout = DEFAULT_WAIT_TIMEOUT if wait is True else float(wait)
        return (yield from self.wait(job.id, timeout=timeout, on_progress=on_progress))

    # -- jobs ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Plan[Job]:
        return Job.from_dict((yield from _json(_read(f"/v2/jobs/{job_id}"), self.retry)))

    def list_jobs(self, query: Mapping[str, Any]) -> Plan[JobPage]:
        params = {k: v for k, v in query.items() if v is not None}
        return JobPage.from_dict((yield from _json(_read("/v2/jobs", params), self.retry)))

    def cancel_job(self, job_id: str) -> Plan[Job]:
        call = Call("POST", f"/v2/jobs/{job_id}/cancel")
        return Job.from_dict((yield from _json(call, self.retry)))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float,
        on_progress: Callable[[Job], None] | None,
    ) -> Plan[Job]:
        """Follow the job until it ends; call ``on_progress`` with each new state seen.

        The states come from the job's event stream (``GET /v2/jobs/{id}/events``) when the
        gateway offers it, else (404/405, or a stream that breaks) from polling ``GET
        /v2/jobs/{id}`` with back-off. ``on_progress`` only ever sees the job move forward.
        """
        deadline = time.monotonic() + timeout
        last: tuple[int, int] | None = None

        def report(job: Job) -> None:
            nonlocal last
            seen = (_STATUS_RANK.get(job.status, 2), job.progress)
            if on_progress is not None and (last is None or seen > last):
                on_progress(job)
            last = seen if last is None else max(last, seen)

        job = yield from self.get_job(job_id)
        report(job)
        if job.done:
            return job
        job = yield from self._follow(job, deadline, timeout, report)
        if job.done:
            return job
        interval = self.poll.initial
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeoutError(job, timeout)
            yield Sleep(min(interval, remaining))
            interval = min(interval * self.poll.factor, self.poll.cap)
            job = yield from self.get_job(job_id)
            report(job)
            if job.done:
                return job

    def _follow(
        self, job: Job, deadline: float, timeout: float, report: Callable[[Job], None]
    ) -> Plan[Job]:
        """Read the job's event stream until the finished job arrives; the job as last seen
        when the stream is refused or breaks, so the caller polls on from there."""
        remaining = deadline - time.monotonic()
        listen = Listen(_read(f"/v2/jobs/{job.id}/events"), min(remaining, STREAM_READ_TIMEOUT))
        try:
            answer: Event | Reply | None = yield listen
            while isinstance(answer, Event):
                data = json.loads(answer.data) if answer.event else None
                if answer.event == "job" and isinstance(data, dict):
                    final = Job.from_dict(data)
                    report(final)
                    return final
                if isinstance(data, dict) and "status" in data and "progress" in data:
                    raw = {**job.raw, "status": data["status"], "progress": data["progress"]}
                    job = Job.from_dict(raw)
                    report(job)
                if time.monotonic() >= deadline:
                    raise JobTimeoutError(job, timeout)
                answer = yield NextEvent()
        except (APIConnectionError, ValueError):
            pass  # a broken stream: poll on
        return job

    # -- the rest -----------------------------------------------------------------------------

    def upload(self, source: str | Path | bytes, filename: str | None) -> Plan[Upload]:
        if isinstance(source, bytes):
            data, name = source, filename or "image"
        else:
            path = Path(source)
            data, name = path.read_bytes(), filename or path.name
        call = Call("POST", "/v2/uploads", files={"file": (name, data, "application/octet-stream")})
        return Upload.from_dict((yield from _json(call, self.retry)))

    def list_models(self) -> Plan[list[Model]]:
        body = yield from _json(_read("/v2/models"), self.retry)
        return [Model.from_dict(m) for m in body["models"]]

    def get_model(self, model_id: str) -> Plan[Model]:
        return Model.from_dict((yield from _json(_read(f"/v2/models/{model_id}"), self.retry)))

    def me(self) -> Plan[Me]:
        return Me.from_dict((yield from _json(_read("/v2/me"), self.retry)))

    def webhook_deliveries(self, job_id: str) -> Plan[dict[str, Any]]:
        body: dict[str, Any] = yield from _json(_read(f"/v2/jobs/{job_id}/webhooks"), self.retry)
        return body

    def redeliver_webhook(self, job_id: str) -> Plan[dict[str, Any]]:
        call = Call("POST", f"/v2/jobs/{job_id}/webhooks/redeliver")
        body: dict[str, Any] = yield from _json(call, self.retry)
        return body

    def download(self, url: str) -> Plan[Download]:
        """A result URL's bytes. Relative URLs are the gateway's; absolute ones get no key."""
        reply = yield from _request(_read(url), self.retry)
        lowered = {k.lower(): v for k, v in reply.headers.items()}
        return Download(reply.content, lowered.get("content-type"))


def _build(client: httpx2.Client | httpx2.AsyncClient, core: Core, call: Call) -> httpx2.Request:
    url = call.path if call.absolute else core.base_url + call.path
    return client.build_request(
        call.method,
        url,
        params=call.params,
        json=call.json,
        files=call.files,
        headers=core.headers_for(call),
    )


def _failed(
    core: Core, call: Call | NextEvent, exc: httpx2.TransportError | httpx2.StreamError
) -> APIConnectionError:
    url = call.path if isinstance(call, Call) and call.absolute else core.base_url
    return APIConnectionError(url, str(exc) or type(exc).__name__)


class _EventParser:
    """Server-Sent Events from a stream's lines, one line at a time. A comment (the gateway's
    heartbeat) comes out as an ``Event`` named ``""``, so a plan can check its deadline."""

    def __init__(self) -> None:
        self._name = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        if not line:
            event = Event(self._name or "message", "\n".join(self._data), self._id)
            self._name, self._data = "", []
            return event if event.data else None
        if line.startswith(":"):
            return Event("", line[1:].strip())
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "event":
            self._name = value
        elif field_name == "data":
            self._data.append(value)
        elif field_name == "id":
            self._id = value
        return None


def _events(lines: Iterator[str]) -> Iterator[Event]:
    parser = _EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event


async def _aevents(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    parser = _EventParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event


class _SyncStream:
    """The event stream a sync plan has open, if any."""

    def __init__(self) -> None:
        self.response: httpx2.Response | None = None
        self.events: Iterator[Event] = iter(())

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None


def _listen_sync(
    client: httpx2.Client, core: Core, step: Listen | NextEvent, stream: _SyncStream
) -> Reply | Event | None:
    if isinstance(step, Listen):
        stream.close()
        request = _build(client, core, step.call)
        request.extensions["timeout"] = httpx2.Timeout(10.0, read=step.read_timeout).as_dict()
        response = client.send(request, stream=True)
        if response.status_code != 200:
            content = response.read()
            response.close()
            return Reply(response.status_code, dict(response.headers), content)
        stream.response = response
        stream.events = _events(response.iter_lines())
    elif stream.response is None:
        return None
    return next(stream.events, None)


def run_sync(client: httpx2.Client, core: Core, plan: Plan[T]) -> T:
    """Carry out ``plan`` with blocking I/O."""
    outcome: Reply | Event | APIConnectionError | None = None
    stream = _SyncStream()
    try:
        while True:
            try:
                throw = isinstance(outcome, Exception)
                step = plan.throw(outcome) if throw else plan.send(outcome)  # type: ignore[arg-type]
            except StopIteration as stop:
                result: T = stop.value
                return result
            outcome = None
            if not isinstance(step, Listen | NextEvent):
                stream.close()
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                continue
            try:
                if isinstance(step, Listen | NextEvent):
                    outcome = _listen_sync(client, core, step, stream)
                    continue
                response = client.send(_build(client, core, step))
            except (httpx2.TransportError, httpx2.StreamError) as exc:
                stream.close()
                outcome = _failed(core, step.call if isinstance(step, Listen) else step, exc)
                continue
            outcome = Reply(response.status_code, dict(response.headers), response.content)
    finally:
        stream.close()


class _AsyncStream:
    """The event stream an async plan has open, if any."""

    def __init__(self) -> None:
        self.response: httpx2.Response | None = None
        self.events: AsyncIterator[Event] | None = None

    async def aclose(self) -> None:
        if self.response is not None:
            await self.response.aclose()
            self.response = None
            self.events = None


async def _listen_async(
    client: httpx2.AsyncClient, core: Core, step: Listen | NextEvent, stream: _AsyncStream
) -> Reply | Event | None:
    if isinstance(step, Listen):
        await stream.aclose()
        request = _build(client, core, step.call)
        request.extensions["timeout"] = httpx2.Timeout(10.0, read=step.read_timeout).as_dict()
        response = await client.send(request, stream=True)
        if response.status_code != 200:
            content = await response.aread()
            await response.aclose()
            return Reply(response.status_code, dict(response.headers), content)
        stream.response = response
        stream.events = _aevents(response.aiter_lines())
    if stream.events is None:
        return None
    return await anext(stream.events, None)


async def run_async(client: httpx2.AsyncClient, core: Core, plan: Plan[T]) -> T:
    """Carry out ``plan`` without blocking the event loop."""
    outcome: Reply | Event | APIConnectionError | None = None
    stream = _AsyncStream()
    try:
        while True:
            try:
                throw = isinstance(outcome, Exception)
                step = plan.throw(outcome) if throw else plan.send(outcome)  # type: ignore[arg-type]
            except StopIteration as stop:
                result: T = stop.value
                return result
            outcome = None
            if not isinstance(step, Listen | NextEvent):
                await stream.aclose()
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            try:
                if isinstance(step, Listen | NextEvent):
                    outcome = await _listen_async(client, core, step, stream)
                    continue
                response = await client.send(_build(client, core, step))
            except (httpx2.TransportError, httpx2.StreamError) as exc:
                await stream.aclose()
                outcome = _failed(core, step.call if isinstance(step, Listen) else step, exc)
                continue
            outcome = Reply(response.status_code, dict(response.headers), response.content)
    finally:
        await stream.aclose()

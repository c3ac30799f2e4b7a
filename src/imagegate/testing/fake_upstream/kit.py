"""What the fake vendors share, written once: prompt switches, recording, tasks, images.

Each fake in ``imagegate.testing.fake_upstream`` keeps only its vendor's protocol: its paths, its
auth header, its status words, its error bodies. The rest is here:

- ``Switch`` and ``steer``: the words a test puts in a prompt to make a fake fail or behave like
  its vendor in that case. Each fake maps the switches it honours to its vendor's own answer;
  the words it does not map mean nothing to it.
- ``record_requests``: every request a fake receives, in ``app.state.requests``, and the
  vendor's auth check on the paths it guards.
- ``Refusal``: a vendor's error answer, raised from anywhere in a fake and sent as it is.
- ``Task`` and ``TaskBook``: asynchronous vendors' tasks by id, finishing after a number of polls.
- ``ImageShelf``: the images a fake hands out by URL, served from its own paths, some only once.
- ``picture``, ``fit`` and ``ratios``: small real images shaped like the request, so tests
  stay fast.

Prompt switches
---------------

A switch is on when its word appears anywhere in the prompt. Where one prompt holds several, a
fake answers the first it checks (the order of its table).

================== =========================================================================
word               what happens (the fakes that honour it: their vendor's answer)
================== =========================================================================
``rate-limit-me``  the vendor's rate-limit answer, a 429 with its retry header: every fake
                   (OpenAI also sends ``x-ratelimit-*``; Gemini a ``RetryInfo`` of ``7s`` and no
                   header; Midjourney relays a 429 as rate limiters in front of them do)
``retry-after-me`` Gemini: 429 ``RESOURCE_EXHAUSTED`` with a ``Retry-After: 11`` header
``quota-me``       OpenAI: 429 ``insufficient_quota``
``no-credits``     out of credits at submit: BFL 402; Kling 429 code 1102
``no-funds``       Ideogram: 402 ``reject_reason: insufficient_funds``
``broke-me``       Reve: 402 ``INSUFFICIENT_CREDITS``
``server-error``   the vendor's 500 and its error body: every fake
``overloaded``     Gemini: 503 ``UNAVAILABLE``
``unavailable``    Ideogram: 503
``queue-full``     Midjourney relay: code 23, the queue is full
``moderate-me``    the prompt is refused as unsafe: OpenAI 400 ``moderation_blocked`` (DALL·E
                   ``content_policy_violation``); Gemini 200 ``promptFeedback.blockReason:
                   PROHIBITED_CONTENT``; BFL poll ``Request Moderated``; fal 422
                   ``content_policy_violation``; Replicate the prediction fails with E005;
                   Ideogram 422; DashScope 400 ``DataInspectionFailed``; Ark 400
                   ``InputTextSensitiveContentDetected``; Midjourney code 24 (banned word);
                   Kling 400 code 1301; Reve 200 ``content_violation: true`` and no image;
                   xAI 200 ``respect_moderation: false`` and no image
``moderate-output`` the output is refused: BFL poll ``Content Moderated``; DashScope the task
                   (or sync call) fails with ``DataInspectionFailed``; Kling the task fails its
                   risk check
``unsafe-output``  Ideogram 200 with ``is_image_safe: false`` and ``url: null``; Ark 400
                   ``OutputImageSensitiveContentDetected``
``unsafe-image``   Gemini: 200, candidate ``finishReason: IMAGE_SAFETY`` and no parts
``unsafe-second``  Ark group mode: the second item is an ``OutputImageSensitiveContentDetected``
                   error instead of an image
``nsfw-me``        fal: ``has_nsfw_concepts: [true]`` with a black image; Replicate: the
                   prediction fails with "NSFW content detected"
``filter-me``      Midjourney: the task fails with the image-filter reason
``block-me``       xAI: 200 with ``data: []``
``no-image``       Gemini: 200, ``finishReason: NO_IMAGE`` with only a text part
``fewer-images``   Ark group mode: one image whatever ``max_images`` says
``thinking``       Gemini: a ``thought`` image part comes before the answer
``fail-me``        the task fails: BFL ``Error``; Replicate ``failed``; DashScope ``FAILED``
                   with ``InternalError.Algo``; Midjourney ``FAILURE``; Kling ``failed``
``slow``           the task stays unfinished for a few polls, reporting progress: BFL three
                   ``Pending``; fal one queued and two in progress; Replicate three
                   ``processing``; DashScope ``PENDING`` then ``RUNNING`` (one poll longer for
                   each earlier task of the same prompt); Midjourney three in progress; Kling
                   ``submitted`` then ``processing``
``expire-fast``    the result URL dies right after its first download (BFL 403, Replicate
                   404), so "the worker downloaded it at once" is observable
================== =========================================================================
"""

from __future__ import annotations

import enum
import io
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from fastapi import FastAPI, Request, Response
from PIL import Image, ImageDraw
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ImageShelf",
    "RecordedRequest",
    "Refusal",
    "Switch",
    "Task",
    "TaskBook",
    "Upload",
    "base_url",
    "canvas",
    "encode",
    "fit",
    "pick",
    "picture",
    "ratios",
    "record_requests",
    "recorded",
    "refuse",
    "require_key",
    "shrunk",
    "steer",
    "switched",
]

T = TypeVar("T")
TaskT = TypeVar("TaskT", bound="Task")


class Switch(enum.StrEnum):
    """The prompt words the fakes honour; the module docstring says what each one does."""

    RATE_LIMIT = "rate-limit-me"
    RETRY_AFTER = "retry-after-me"
    QUOTA = "quota-me"
    NO_CREDITS = "no-credits"
    NO_FUNDS = "no-funds"
    BROKE = "broke-me"
    SERVER_ERROR = "server-error"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    QUEUE_FULL = "queue-full"
    MODERATE = "moderate-me"
    MODERATE_OUTPUT = "moderate-output"
    UNSAFE_OUTPUT = "unsafe-output"
    UNSAFE_IMAGE = "unsafe-image"
    UNSAFE_SECOND = "unsafe-second"
    NSFW = "nsfw-me"
    FILTER = "filter-me"
    BLOCK = "block-me"
    NO_IMAGE = "no-image"
    FEWER_IMAGES = "fewer-images"
    THINKING = "thinking"
    FAIL = "fail-me"
    SLOW = "slow"
    EXPIRE_FAST = "expire-fast"


def switched(prompt: str, *switches: Switch) -> Switch | None:
    """The first of ``switches`` that ``prompt`` holds, in the order given."""
    return next((switch for switch in switches if switch in prompt), None)


def steer(prompt: str, answers: Mapping[Switch, Callable[[], T]]) -> T | None:
    """The vendor's answer for the first switch of ``answers`` (in its order) ``prompt`` holds.

    ``answers`` is a fake's table, switch → its vendor's answer; an answer is built only when
    its switch is on.
    """
    switch = switched(prompt, *answers)
    return None if switch is None else answers[switch]()


def pick(prompt: str, table: Mapping[Switch, T]) -> T | None:
    """The value ``table`` gives the first of its switches that ``prompt`` holds."""
    switch = switched(prompt, *table)
    return None if switch is None else table[switch]


def refuse(prompt: str, refusals: Mapping[Switch, Callable[[], Refusal]]) -> None:
    """Raise the refusal of the first switch of ``refusals`` that ``prompt`` holds, if any."""
    refusal = steer(prompt, refusals)
    if refusal is not None:
        raise refusal


class Refusal(Exception):
    """A vendor's error answer: raised anywhere in a fake, sent as it is.

    Fakes whose vendor has one error shape subclass it (``OpenAIError``), building the
    response from the vendor's fields.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Upload(NamedTuple):
    """One file of a multipart request."""

    name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    """One request as a fake received it: a JSON body, or multipart text fields and files."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    """The decoded JSON body; ``None`` when there is none or it is not JSON."""
    form: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)

    @property
    def multipart(self) -> bool:
        return self.headers.get("content-type", "").startswith("multipart/form-data")

    def as_dict(self) -> dict[str, Any]:
        """The plain record most fakes keep: method, path, query, headers, JSON body."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
        }


def record_requests(
    app: FastAPI,
    *,
    view: Callable[[RecordedRequest], Any] = RecordedRequest.as_dict,
    recorded: Callable[[str], bool] = lambda path: True,
    authenticate: Callable[[Request], Response | None] | None = None,
    guarded: Callable[[str], bool] | None = None,
    keep: bool = True,
) -> list[Any]:
    """Record what ``app`` receives and check the vendor's credentials; the record list.

    Each request on a ``recorded`` path is appended to ``app.state.requests`` as
    ``view(record)``, before anything else happens to it, so a refused request is recorded
    too. Then ``authenticate`` runs on the ``guarded`` paths (default: the recorded ones): the
    response it returns is the vendor's refusal, ``None`` lets the request through. Handlers
    read the parsed record with ``recorded(request)``; a ``Refusal`` raised by a handler is
    answered with its response. ``keep=False`` keeps no record past its request (the list stays
    empty): a benchmark's upstream serving millions of requests.
    """
    requests: list[Any] = []
    app.state.requests = requests
    guards = recorded if guarded is None else guarded

    # Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    # (a task group and a streamed copy of every answer) was a fifth of a benchmark upstream's
    # CPU.
    app.add_middleware(
        _RecordAndAuthenticate,
        requests=requests,
        view=view,
        recorded=recorded,
        authenticate=authenticate,
        guards=guards,
        keep=keep,
    )

    async def refusal(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return exc.response

    app.add_exception_handler(Refusal, refusal)
    return requests


class _RecordAndAuthenticate:
    """``record_requests``'s middleware: record, then check the key, then the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        requests: list[Any],
        view: Callable[[RecordedRequest], Any],
        recorded: Callable[[str], bool],
        authenticate: Callable[[Request], Response | None] | None,
        guards: Callable[[str], bool],
        keep: bool,
    ) -> None:
        self.app = app
        self.requests = requests
        self.view = view
        self.recorded = recorded
        self.authenticate = authenticate
        self.guards = guards
        self.keep = keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        path = request.url.path
        if self.recorded(path):
            body = await request.body()
            record = await _capture(request)
            request.state.recorded = record
            if self.keep:
                self.requests.append(self.view(record))
            receive = _replay(body, receive)
        if self.authenticate is not None and self.guards(path):
            refused = self.authenticate(request)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app behind: the body already read, then the client's messages."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def recorded(request: Request) -> RecordedRequest:
    """The record ``record_requests`` made of ``request``: its parsed JSON or multipart body."""
    record: RecordedRequest = request.state.recorded
    return record


async def _capture(request: Request) -> RecordedRequest:
    body = await request.body()
    record = RecordedRequest(
        request.method, request.url.path, dict(request.headers), dict(request.query_params)
    )
    if record.multipart:
        # Parse a copy: the recorder hands the app behind it the body again (``_replay``).
        async with Request(request.scope, _replay(body, request.receive)).form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    upload = Upload(name, value.filename or "", value.content_type or "", data)
                    record.files.append(upload)
                else:
                    record.form[name] = value
    elif body:
        try:
            record.json = json.loads(body)
        except ValueError:
            record.json = None
    return record


def require_key(
    expected: str,
    *,
    header: str = "authorization",
    scheme: str | None = None,
    query: str | None = None,
    missing: Callable[[], Response],
    wrong: Callable[[str], Response] | None = None,
) -> Callable[[Request], Response | None]:
    """A vendor's key check, for ``record_requests(authenticate=...)``.

    The key is the ``header``'s value; with a ``scheme`` (``Bearer``) only what follows it,
    stripped; with a ``query`` parameter, that parameter when the header is absent. No key gets
    ``missing()``; another key than ``expected`` gets ``wrong(key)`` (default: ``missing()``).
    """

    def authenticate(request: Request) -> Response | None:
        key = request.headers.get(header, "")
        if scheme is not None:
            prefix = f"{scheme} "
            key = key[len(prefix) :].strip() if key.startswith(prefix) else ""
        if not key and query is not None:
            key = request.query_params.get(query, "")
        if not key:
            return missing()
        if key != expected:
            return missing() if wrong is None else wrong(key)
        return None

    return authenticate


def base_url(request: Request) -> str:
    """Where ``request`` reached the fake, without a trailing slash: the base of its URLs."""
    return str(request.base_url).rstrip("/")


@dataclass(kw_only=True)
class Task:
    """An asynchronous vendor's task: it finishes on poll ``polls_needed``.

    Each fake subclasses it with what its vendor keeps (status word, inputs) and decides what a
    poll shows; the book only counts.
    """

    id: str
    prompt: str
    polls_needed: int = 1
    polls: int = 0

    def poll(self) -> bool:
        """Count one poll; ``True`` on the poll that finishes the task, once."""
        self.polls += 1
        return self.polls == self.polls_needed

    @property
    def finished(self) -> bool:
        return self.polls >= self.polls_needed

    @property
    def percent(self) -> int:
        """Progress over the polls so far, 0–100."""
        return min(100, 100 * self.polls // self.polls_needed)


def polls_needed(prompt: str, slow_polls: int) -> int:
    """One poll finishes a task, or ``slow_polls`` + 1 when the prompt says ``slow``."""
    return slow_polls + 1 if Switch.SLOW in prompt else 1


class TaskBook(dict[str, TaskT]):
    """A fake's tasks by id (``app.state.tasks``), with ids in its vendor's format.

    ``open`` makes a ``kind`` task that finishes on its first poll, or after ``slow_polls``
    unfinished polls when the prompt says ``slow``.
    """

    def __init__(
        self, kind: type[TaskT], *, slow_polls: int, ids: Iterator[str] | None = None
    ) -> None:
        super().__init__()
        self._kind = kind
        self._slow_polls = slow_polls
        self._ids = ids if ids is not None else (str(uuid.uuid4()) for _ in iter(int, 1))

    def open(self, prompt: str, *, slow_polls: int | None = None, **fields: Any) -> TaskT:
        """A new task, kept under its new id; ``slow_polls`` overrides the book's."""
        slow = self._slow_polls if slow_polls is None else slow_polls
        task = self._kind(
            id=next(self._ids), prompt=prompt, polls_needed=polls_needed(prompt, slow), **fields
        )
        self[task.id] = task
        return task


class ImageShelf:
    """The images a fake hands out by URL, each kept under the path of its URL.

    ``once`` images are gone after their first download, like a vendor's short-lived result
    URLs. ``serve`` answers a prefix of paths from the shelf; a miss gets ``missing()``, the
    vendor's answer for an unknown or expired object.
    """

    def __init__(self) -> None:
        self._images: dict[str, tuple[bytes, str]] = {}
        self._once: set[str] = set()

    def put(self, path: str, data: bytes, content_type: str, *, once: bool = False) -> str:
        self._images[path] = (data, content_type)
        if once:
            self._once.add(path)
        return path

    def take(self, path: str) -> tuple[bytes, str] | None:
        if path in self._once:
            self._once.discard(path)
            return self._images.pop(path, None)
        return self._images.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self._images

    def url(self, request: Request, path: str) -> str:
        return base_url(request) + path

    def serve(
        self,
        app: FastAPI,
        prefix: str,
        *,
        missing: Callable[[], Response] = lambda: Response(status_code=404),
        guard: Callable[[Request], bool] = lambda request: True,
    ) -> None:
        """Answer ``GET {prefix}…`` from the shelf; a request ``guard`` refuses is a miss."""

        async def image(request: Request) -> Response:
            found = self.take(request.url.path) if guard(request) else None
            if found is None:
                return missing()
            return Response(found[0], media_type=found[1])

        app.add_api_route(prefix + "{rest:path}", image, methods=["GET"], include_in_schema=False)


def ratios(*names: str) -> dict[str, tuple[float, float]]:
    """A vendor's aspect-ratio names (``"16:9"``, ``"9:19.5"``) → width and height parts."""
    parts = (name.split(":") for name in names)
    return {name: (float(w), float(h)) for name, (w, h) in zip(names, parts, strict=True)}


def fit(size: tuple[float, float], longest: float, *, floor: int = 16) -> tuple[int, int]:
    """``size`` scaled so its longest side is ``longest``, no side under ``floor``."""
    scale = longest / max(size)
    return max(floor, round(size[0] * scale)), max(floor, round(size[1] * scale))


def shrunk(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """``size`` scaled down, if needed, so its longest side is at most ``longest``."""
    return fit(size, min(max(size), longest))


def picture(
    size: tuple[int, int],
    colour: tuple[int, int, int],
    label: str = "",
    fmt: str = "PNG",
    *,
    at: tuple[int, int] = (2, 2),
) -> bytes:
    """A plain ``colour`` image with ``label`` written at ``at``, encoded as ``fmt``."""
    return encode(canvas(size, colour, label, at=at), fmt)


def canvas(
    size: tuple[int, int], colour: tuple[int, int, int], label: str = "", *, at: tuple[int, int]
) -> Image.Image:
    image = Image.new("RGB", size, colour)
    if label:
        ImageDraw.Draw(image).text(at, label, fill=(255, 255, 255))
    return image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()

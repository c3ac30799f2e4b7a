"""The ``ProviderAdapter`` port: how the worker talks to any upstream image vendor.

A job's life upstream is ``submit`` → (``poll`` …) → outputs. An adapter answers ``submit`` with
either ``Submitted`` (the vendor gave us a task to poll; the worker commits ``task_id`` and
``state`` *before* the first poll, so a restarted job never submits twice) or ``Finished``
(synchronous vendors answer with the images at once). ``poll`` answers ``Pending`` or
``Finished``. Failures are raised as the ``UpstreamError`` subclasses of ``imagegate.errors``:

- ``UpstreamRetryable(retry_after=…)`` — 408/409/429/5xx/connection; the worker reschedules.
- ``UpstreamRejected`` — the vendor refused the input; the job fails and is refunded.
- ``UpstreamModerated`` — content policy; never retried, refunded, clear message.
- ``UpstreamMisconfigured`` — our credentials are wrong (401/403); fails and shows in ``/readyz``.
- ``UpstreamTaskLost`` — the vendor forgot the task.

Outputs are ``OutputImage`` values: bytes the vendor sent inline, or a URL the worker downloads at
once (vendor URLs expire: BFL 10 minutes, Replicate 1 hour) and stores under our own key.
Adapters never touch the database or storage; they build the vendor payload from the validated
params, call the vendor through the injected HTTP client, and translate the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FetchedInput",
    "Finished",
    "GenerationRequest",
    "InputFetcher",
    "OutputImage",
    "Pending",
    "ProviderAdapter",
    "ProviderContext",
    "Route",
    "RouteInputs",
    "Submitted",
    "TaskHandle",
]


@dataclass(frozen=True)
class RouteInputs:
    """How one route's vendor model takes our params: the model-specific table that used to sit in
    the adapter, declared in the catalog next to the model and carried to the adapter in ``Route``.

    ``names`` maps our param to the vendor's input (params not named are not sent); ``convert``
    maps a vendor input to a value conversion the adapter knows by name (``"jpeg"``);
    ``sizes`` maps our ``aspect_ratio`` to the vendor's named size, for vendors that take a size
    instead of a ratio; ``edit`` is our param whose presence selects the vendor's edit endpoint;
    ``count`` is the vendor input carrying the number of images (``None``: one per call);
    ``defaults`` are params this route fills in when a request leaves them out; ``shape`` is the
    call shape for vendors with several (DashScope's ``synthesis``/``generation``/``multimodal``).
    """

    names: Mapping[str, str] = field(default_factory=dict)
    convert: Mapping[str, str] = field(default_factory=dict)
    sizes: Mapping[str, str] | None = None
    edit: str | None = None
    count: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    shape: str | None = None


@dataclass(frozen=True)
class Route:
    """One way to serve a catalog model: a provider name and the vendor's own model id or slug.

    ``inputs`` is the route's input table when its vendor needs one per model (fal, Replicate,
    DashScope); it does not take part in equality, so a route is still named by provider and id.
    """

    provider: str
    upstream_model: str
    inputs: RouteInputs | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.provider}:{self.upstream_model}"


@dataclass(frozen=True)
class FetchedInput:
    """An input image the gateway downloaded (through its SSRF guard) or read from storage."""

    data: bytes
    content_type: str
    url: str


InputFetcher = Callable[[str], Awaitable[FetchedInput]]
"""Downloads an input-image URL for an adapter that must send bytes (multipart or inline data)."""


@dataclass(frozen=True)
class GenerationRequest:
    """Everything an adapter needs to run one job upstream.

    ``params`` is the model's validated params object as a plain dict (the catalog already applied
    defaults and per-model rules); ``outputs`` is how many images the job must produce.
    ``action`` carries follow-up actions (Midjourney upsample, variation, …) with the parent's
    upstream task id; it is empty for a plain generation.
    """

    job_id: str
    model: str
    route: Route
    prompt: str
    params: Mapping[str, Any]
    outputs: int = 1
    action: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskHandle:
    """What the worker persisted from ``Submitted``: the vendor's task id and adapter notes."""

    task_id: str
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputImage:
    """One produced image: inline ``data`` or a ``url`` to download (with optional headers)."""

    data: bytes | None = None
    url: str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("an OutputImage carries exactly one of data or url")


@dataclass(frozen=True)
class Submitted:
    """The vendor accepted the job as a task to poll.

    ``state`` is opaque to the worker and handed back on every poll (e.g. BFL's ``polling_url``).
    ``poll_after`` is the delay in seconds before the first poll.
    """

    task_id: str
    state: Mapping[str, Any] = field(default_factory=dict)
    poll_after: float = 2.0


@dataclass(frozen=True)
class Pending:
    """Still running upstream. ``progress`` is 0–100 when the vendor reports it."""

    progress: int | None = None
    poll_after: float = 2.0
    state: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Finished:
    """The images are ready. ``grid`` is Midjourney's 2×2 composite when there is one."""

    images: Sequence[OutputImage]
    grid: OutputImage | None = None
    served_model: str | None = None


@runtime_checkable
class ProviderAdapter(Protocol):
    """One upstream vendor. Implementations live in ``imagegate.providers.<vendor>``."""

    name: str
    supports_cancel: bool

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        """Start the job upstream. Raises an ``UpstreamError`` subclass on failure."""

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        """Ask the vendor how the task is doing. Raises an ``UpstreamError`` subclass on failure."""

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        """Best-effort upstream cancel; a no-op for vendors without one."""

    async def aclose(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class ProviderContext:
    """What the composition root hands every adapter factory.

    ``transport`` is ``None`` in production; tests inject an ``httpx2`` transport (a
    ``MockTransport`` or an ``ASGITransport`` onto a fake vendor app) so no test monkeypatches.
    """

    fetch_input: InputFetcher
    transport: Any = None
    clock: Any = None

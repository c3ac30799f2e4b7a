"""The shared vocabulary: ids, money, job states, the clock every component reads time from, and
the values that cross layers (a ``Route``, a ``FetchedInput``).

Nothing here imports from imagegate or does I/O (beyond ``SystemClock`` reading the time), so
every layer may import it; a value lives here rather than in one layer's package when layers that
must not import each other share it (the catalog lists routes that adapters receive; the
outbound guard and the storage layer both produce input images for adapters).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NewType, Protocol

__all__ = [
    "AccountId",
    "ApiKeyId",
    "Clock",
    "Credits",
    "FetchedInput",
    "InputFetcher",
    "JobId",
    "JobStatus",
    "JobStep",
    "KeyKind",
    "Millis",
    "Route",
    "RouteInputs",
    "SystemClock",
    "WebhookEvent",
    "WebhookStatus",
]

JobId = NewType("JobId", str)
"""A job id: a UUID (version 7, time-ordered) in its canonical 36-character text form."""

AccountId = NewType("AccountId", str)
ApiKeyId = NewType("ApiKeyId", str)

Credits = int
"""An amount of credits; one credit is the smallest unit ever charged (US$0.01 by default)."""

Millis = int
"""A moment in integer milliseconds since the Unix epoch (the same on SQLite and PostgreSQL)."""


class JobStatus(enum.StrEnum):
    """The status a client sees on the wire."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobStep(enum.StrEnum):
    """Where the worker's step machine stands; a job is claimable while its step is not ``done``."""

    SUBMIT = "submit"
    POLL = "poll"
    FETCH = "fetch"
    CANCEL = "cancel"
    DONE = "done"


class KeyKind(enum.StrEnum):
    """Live keys spend credits on real upstreams; test keys run on the sandbox and spend nothing."""

    LIVE = "live"
    TEST = "test"


class WebhookEvent(enum.StrEnum):
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"


class WebhookStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Clock(Protocol):
    """Where time comes from. Tests pass ``imagegate.testing.clock.FakeClock`` and advance it."""

    def now_ms(self) -> Millis:
        """Wall-clock time, for timestamps stored and compared across processes."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for measuring durations in one process."""


class SystemClock:
    """The real clock."""

    def now_ms(self) -> Millis:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


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

    The catalog lists a model's routes in order, the router picks one, and the adapter receives
    it in its ``GenerationRequest``. ``inputs`` is the route's input table when its vendor needs
    one per model (fal, Replicate, DashScope); it does not take part in equality, so a route is
    still named by provider and id.
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

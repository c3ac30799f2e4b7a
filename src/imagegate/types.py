"""The shared vocabulary: ids, money, job states, the clock every component reads time from, and
the values that cross layers (a ``Route``, a ``FetchedInput``).

Nothing here imports from imagegate or does I/O (beyond ``SystemClock`` reading the time), so
every layer may import it; a value lives here rather than in one layer's package when layers that
must not import each other share it (the catalog lists routes that adapters receive; the
outbound guard and the storage layer both produce input images for adapters).
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
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

    What the route can send at all, so a request it cannot honour is refused at submit (no route
    of the model takes it) or routed past it (another route does), never sent and failed:
    ``values`` maps our param to the values (in our spelling) the vendor's enum has a
    counterpart for; ``ratios`` is the widest and the tallest ``W:H`` the vendor takes, for vendors
    that take any ratio between two bounds; ``max_outputs`` is the most images one job can get
    from this route; ``refuses`` names our params the route has no way to send (the vendor
    endpoint they select does not serve this model); ``patterns`` maps a free-text param to the
    regular expression its whole value must match and how the refusal describes it, for values
    too many to list (``WxH`` sizes).
    """

    names: Mapping[str, str] = field(default_factory=dict)
    convert: Mapping[str, str] = field(default_factory=dict)
    sizes: Mapping[str, str] | None = None
    edit: str | None = None
    count: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    shape: str | None = None
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ratios: tuple[str, str] | None = None
    max_outputs: int | None = None
    refuses: tuple[str, ...] = ()
    patterns: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def refusals(self, params: Mapping[str, Any], outputs: int = 1) -> dict[str, str]:
        """Our params (as stored: JSON values, ``None`` left out) this route cannot send, each with
        the reason; ``""`` stands for the number of images. Empty when the route takes the job."""
        found: dict[str, str] = {}
        for name in self.refuses:
            if params.get(name) is not None:
                found[name] = "is not supported by this model's upstream"
        for name, allowed in self.values.items():
            value = params.get(name)
            if value is not None and value not in allowed:
                found[name] = f"must be one of {', '.join(map(str, allowed))}"
        for name, (pattern, description) in self.patterns.items():
            value = params.get(name)
            if isinstance(value, str) and re.fullmatch(pattern, value) is None:
                found[name] = f"must be {description}"
        ratio = params.get("aspect_ratio")
        if self.ratios is not None and isinstance(ratio, str) and "aspect_ratio" not in found:
            wide, tall = self.ratios
            shape, low, high = _ratio(ratio), _ratio(tall), _ratio(wide)
            if shape is None or low is None or high is None or not low <= shape <= high:
                found["aspect_ratio"] = f"must be between {wide} and {tall}"
        if self.max_outputs is not None and outputs > self.max_outputs:
            found[""] = f"at most {self.max_outputs} image(s) per job"
        return found


_RATIO = re.compile(r"([0-9]{1,6}):([0-9]{1,6})")


def _ratio(text: str) -> Fraction | None:
    """``"16:9"`` as a number (width over height); ``None`` for anything that is not ``W:H``.

    Sides are ASCII digits of bounded length: ``int()`` refuses 4,300 digits and more, and
    ``str.isdigit`` accepts ``²``.
    """
    found = _RATIO.fullmatch(text)
    if found is None or int(found[2]) == 0:
        return None
    return Fraction(int(found[1]), int(found[2]))


@dataclass(frozen=True)
class Route:
    """One way to serve a catalog model: a provider name and the vendor's own model id or slug.

    The catalog lists a model's routes in order, the router picks one, and the adapter receives
    it in its ``GenerationRequest``. ``inputs`` is the route's input table when its vendor needs
    one per model (fal, Replicate, DashScope) or when the route takes only some of the values the
    model's params allow; it does not take part in equality, so a route is still named by
    provider and id.
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

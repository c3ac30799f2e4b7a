"""The shared vocabulary: ids, money, job states and the clock every component reads time from."""

from __future__ import annotations

import enum
import time
from typing import NewType, Protocol

__all__ = [
    "AccountId",
    "ApiKeyId",
    "Clock",
    "Credits",
    "JobId",
    "JobStatus",
    "JobStep",
    "KeyKind",
    "Millis",
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

"""A clock tests move by hand, so retries, leases, expiry and webhook schedules run instantly."""

from __future__ import annotations

from imagegate.types import Millis

__all__ = ["FakeClock"]


class FakeClock:
    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now_ms = start_ms
        self._monotonic = 0.0

    def now_ms(self) -> Millis:
        return Millis(self._now_ms)

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now_ms += round(seconds * 1000)
        self._monotonic += seconds

    def set(self, ms: int) -> None:
        """Jump to ``ms`` (never backwards)."""
        self.advance(max(ms - self._now_ms, 0) / 1000)

"""Retry delays: exponential backoff with full jitter, never shorter than the upstream's advice."""

from __future__ import annotations

import random

__all__ = ["retry_delay"]


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    advised: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Full jitter (a uniform draw in ``[0, min(cap, base·2^(attempt-1))]``) spreads retries of many
    jobs that failed together; a ``Retry-After`` from the vendor is a floor, capped by ``cap``.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = (rng or random).uniform(0, ceiling)
    if advised is not None:
        delay = max(delay, min(advised, cap))
    return delay

"""How long a server asked us to wait: ``Retry-After`` (seconds or HTTP-date) or ``retry-after-ms``.

Both the provider adapters (a vendor's 429 or 503) and the webhook sender (a receiver's) read it,
so it lives with the outbound HTTP helpers rather than in either of them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

__all__ = ["MAX_RETRY_AFTER_SECONDS", "retry_after_seconds"]

MAX_RETRY_AFTER_SECONDS = 300.0
"""Advice above this is capped: nothing waits longer than five minutes per retry on that advice."""


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date), capped."""
    value: float | None = None
    if "retry-after-ms" in headers:
        try:
            value = float(headers["retry-after-ms"]) / 1000.0
        except ValueError:
            value = None
    if value is None and "retry-after" in headers:
        raw = headers["retry-after"].strip()
        try:
            value = float(raw)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return None
            value = parsed.timestamp() - (time.time() if now is None else now)
    if value is None:
        return None
    return max(0.0, min(value, MAX_RETRY_AFTER_SECONDS))

"""Helpers that read a price point or an output count off a validated params object.

A family module passes these to ``Pricing(select=…)`` and ``ModelSpec(outputs=…)``. Params the
client left out fall back to the documented default, so a request without params is priced the
way the vendor would bill it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

from pydantic import BaseModel

__all__ = ["CNY_IN_USD", "by_field", "cny", "count_field", "usd"]


def by_field(name: str, default: str) -> Callable[[BaseModel | None], str]:
    """Select the price point named by the value of ``name`` (``"2K"``, ``"quality"`` …)."""

    def select(params: BaseModel | None) -> str:
        value = getattr(params, name, None) if params is not None else None
        return str(value) if value is not None else default

    return select


def count_field(name: str) -> Callable[[BaseModel | None], int]:
    """The number of images a job returns, read from ``name`` (``n``, ``num_images`` …)."""

    def outputs(params: BaseModel | None) -> int:
        value = getattr(params, name, None) if params is not None else None
        return value if isinstance(value, int) else 1

    return outputs


def usd(price: str) -> int:
    """Credits for a US-dollar list price (``"0.039"`` → 4): one credit is US$0.01, rounded up.

    List prices often have a third decimal and we never charge below cost, so the conversion
    rounds up; ``Decimal`` keeps it exact.
    """
    return math.ceil(Decimal(price) * 100)


CNY_IN_USD = Decimal("0.14")
"""The exchange rate used to turn DashScope's yuan list prices into credits (late 2026, rounded
up to the cent; change it here when the rate moves enough to matter)."""


def cny(price: str) -> int:
    """Credits for a Chinese-yuan list price (DashScope), via ``CNY_IN_USD``, rounded up."""
    return math.ceil(Decimal(price) * CNY_IN_USD * 100)

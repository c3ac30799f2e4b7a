"""Per-key request rates, counted with the ``limits`` library.

Every authenticated request takes one hit from its key's budget: requests that change something
(``POST`` and the other non-read methods: submits, actions, cancels, uploads) from the *submit*
budget, ``GET``/``HEAD`` from the separate *read* budget, so a client polling its jobs never
starves its own submits. A key's own rate (``imagegate keys limit``) replaces the gateway default
(``IMAGEGATE_RATE_LIMIT_SUBMIT`` / ``…_READ``) for that key.

The counters are fixed windows that start at a key's first request. They live in process memory
on the embedded default, and in Redis when ``IMAGEGATE_REDIS_URL`` is set, so every API process
draws from one budget per key. Both storages are the library's asyncio variants: nothing blocks
the event loop. Should Redis stop answering, requests are let through (and logged): a rate
limiter outage must not take the whole API down with it.

The answer (``RateState``) becomes the ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` response headers of draft-ietf-httpapi-ratelimit-headers-06, plus its
``RateLimit-Policy``; a refused request is ``RateLimited`` (429) whose ``Retry-After`` equals the
reset.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from imagegate.errors import RateLimited
from imagegate.services.accounts import Caller
from imagegate.settings import Settings, parse_rate

__all__ = ["RateKind", "RateState", "RequestLimiter", "rate_kind"]

log = structlog.get_logger("imagegate.limits")


class RateKind(StrEnum):
    SUBMIT = "submit"
    READ = "read"


def rate_kind(method: str) -> RateKind:
    """Which budget a request with this HTTP method draws from."""
    return RateKind.READ if method.upper() in ("GET", "HEAD", "OPTIONS") else RateKind.SUBMIT


@dataclass(frozen=True)
class RateState:
    """The most constrained window of a key's budget after this request."""

    limit: int
    remaining: int
    reset_seconds: int
    window_seconds: int

    def headers(self) -> dict[str, str]:
        """The draft-06 fields: ``RateLimit-Limit``, ``-Remaining``, ``-Reset``, ``-Policy``."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


class RequestLimiter:
    """Counts each key's requests in memory or Redis; see the module docstring."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self._storage = storage or _storage(settings)
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._defaults = {
            RateKind.SUBMIT: settings.rate_limit_submit,
            RateKind.READ: settings.rate_limit_read,
        }
        self._parsed: dict[str, list[RateLimitItem]] = {}

    async def hit(self, caller: Caller, kind: RateKind) -> RateState | None:
        """Count one request of ``caller``; its state, or None when no limit applies.

        Raises ``RateLimited`` (with ``.headers`` set) when the key's budget is spent.
        """
        own = caller.submit_rate if kind is RateKind.SUBMIT else caller.read_rate
        items = self._items(own or self._defaults[kind])
        if not items:
            return None
        try:
            states = [await self._hit_one(item, caller.key_id, kind) for item in items]
        except (RedisError, OSError) as exc:  # an unreachable Redis must not refuse requests
            log.warning("ratelimit.unavailable", error=str(exc))
            return None
        refused = [state for allowed, state in states if not allowed]
        if refused:
            state = max(refused, key=lambda s: s.reset_seconds)
            raise RateLimited(
                f"Rate limit exceeded: {state.limit} {kind.value} requests per"
                f" {state.window_seconds} seconds for this API key; retry in"
                f" {state.reset_seconds} seconds",
                retry_after=state.reset_seconds,
                headers=state.headers(),
            )
        return min((state for _, state in states), key=lambda s: (s.remaining, -s.reset_seconds))

    async def _hit_one(
        self, item: RateLimitItem, key_id: str, kind: RateKind
    ) -> tuple[bool, RateState]:
        allowed = await self._limiter.hit(item, key_id, kind.value)
        stats = await self._limiter.get_window_stats(item, key_id, kind.value)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        window = item.get_expiry()
        return allowed, RateState(item.amount, stats.remaining, min(reset, window), window)

    def _items(self, text: str) -> list[RateLimitItem]:
        if not text:
            return []
        if text not in self._parsed:
            self._parsed[text] = parse_rate(text)
        return self._parsed[text]

    async def aclose(self) -> None:
        """Release the Redis connections, if any."""
        if isinstance(self._storage, RedisStorage):
            client = getattr(self._storage.bridge, "storage", None)
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()


def _storage(settings: Settings) -> Storage:
    if settings.redis_url:
        return RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=f"{settings.redis_prefix}:ratelimit",
        )
    return MemoryStorage()

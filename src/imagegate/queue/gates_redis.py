"""Provider gate state in Redis (``redis_url`` set): the hot counters off the database.

Per provider, under ``<prefix>:provider:<name>:``:

- ``health`` — a hash: ``failures``, ``open_until``, ``cooldown_until``, ``misconfigured``;
- ``slots`` — a sorted set of the calls in flight (one member per call, never one per slot of
  the cap), scored by when an abandoned one expires;
- ``window:<minute>`` — the call count of one aligned one-minute window (expires on its own).

Each check-and-change is one Lua script, so concurrent workers on any number of machines never
race. Times come from the gateway's clock, not Redis's, like every other deadline of the queue.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as redis

from imagegate.queue.gates import BUSY_RETRY_SECONDS, Circuit, Outcome, ProviderBusy
from imagegate.store.providers import WINDOW_MS, Health
from imagegate.types import Millis

__all__ = ["RedisGateState"]

_ACQUIRE = """
local limit = tonumber(ARGV[2])
if limit >= 0 and tonumber(redis.call('GET', KEYS[1]) or '0') >= limit then
  return -1
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return -2
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
if limit >= 0 then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return 1
"""

_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'open_until', ARGV[2])
end
if tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[1], 'cooldown_until', ARGV[3])
end
return failures
"""

_COOLDOWN = """
if tonumber(redis.call('HGET', KEYS[1], 'cooldown_until') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'cooldown_until', ARGV[1])
end
return 1
"""


class RedisGateState:
    def __init__(self, url: str, prefix: str = "imagegate") -> None:
        self._redis: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._holder = uuid.uuid4().hex
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._failure = self._redis.register_script(_FAILURE)
        self._cooldown = self._redis.register_script(_COOLDOWN)

    def _key(self, provider: str, part: str) -> str:
        return f"{self._prefix}:provider:{provider}:{part}"

    async def health(self, provider: str) -> Health:
        fields = await self._redis.hgetall(self._key(provider, "health"))
        return _health(provider, {str(name): value for name, value in fields.items()})

    async def acquire(
        self,
        provider: str,
        now: Millis,
        *,
        rate_limit: int | None,
        cap: int,
        hold_ms: int,
        job_id: str | None = None,
    ) -> str:
        window_start = now - now % WINDOW_MS
        ticket = f"{self._holder}:{uuid.uuid4().hex}"
        answer = await self._acquire(
            keys=[self._key(provider, f"window:{window_start}"), self._key(provider, "slots")],
            args=[
                now,
                -1 if rate_limit is None else rate_limit,
                cap,
                ticket,
                now + hold_ms,
                2 * WINDOW_MS,
            ],
        )
        if answer == -1:
            wait = (window_start + WINDOW_MS - now) / 1000
            raise ProviderBusy(provider, "rate limit reached", wait or BUSY_RETRY_SECONDS)
        if answer == -2:
            raise ProviderBusy(
                provider, "all concurrency slots busy", BUSY_RETRY_SECONDS, at_cap=True
            )
        await self._redis.sadd(f"{self._prefix}:providers", provider)
        return ticket

    async def release(
        self, provider: str, ticket: str, now: Millis, outcome: Outcome, *, circuit: Circuit
    ) -> None:
        await self._redis.zrem(self._key(provider, "slots"), ticket)
        key = self._key(provider, "health")
        if outcome.kind == "none":
            return
        await self._redis.sadd(f"{self._prefix}:providers", provider)
        if outcome.kind == "success":
            await self._redis.hset(key, mapping={"failures": 0, "open_until": 0})
            await self._redis.hdel(key, "misconfigured")
        elif outcome.kind == "misconfigured":
            await self._redis.hset(key, "misconfigured", outcome.message or "")
        elif outcome.kind == "cooldown":
            await self._cooldown(keys=[key], args=[outcome.until])
        elif outcome.kind == "failure":
            await self._failure(
                keys=[key], args=[circuit.failures, now + circuit.open_ms, outcome.until]
            )

    async def snapshot(self) -> list[Health]:
        names = sorted(
            str(name) for name in await self._redis.smembers(f"{self._prefix}:providers")
        )
        return [await self.health(name) for name in names]

    async def aclose(self) -> None:
        await self._redis.aclose()


def _health(provider: str, fields: dict[str, Any]) -> Health:
    return Health(
        provider=provider,
        failures=int(fields.get("failures", 0)),
        open_until=int(fields.get("open_until", 0)),
        cooldown_until=int(fields.get("cooldown_until", 0)),
        misconfigured=fields.get("misconfigured"),
    )

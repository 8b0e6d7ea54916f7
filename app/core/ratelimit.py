"""Per-caller request limits held in Redis, reported in `RateLimit-*` headers.

Each caller has a fixed one-minute window counted in Redis; the window opens with the caller's
first request. Asking Redis on every request would cost a round trip each time, so an API
process *leases* capacity: one Lua call claims up to a few requests from the window's count at
once (never more than the limit leaves), and the process serves them locally. The limit is
therefore never exceeded across any number of processes; a process that dies with part of a
lease unused leaves that much capacity idle until the window ends. Leases shrink to one request
as the window nears its limit, and a small limit (under 100 a minute) is counted request by
request, so the figures in the headers stay exact for one process.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from cachetools import LRUCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.logging import get_logger

WINDOW_SECONDS = 60
MAX_LEASE = 50
log = get_logger(__name__)

# KEYS[1] the window's counter; ARGV: window in ms, wanted lease, limit.
# Returns {granted, window count after the grant, ms until the window resets}.
_CLAIM = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - used)
if granted > 0 then
    used = redis.call('INCRBY', KEYS[1], granted)
else
    granted = 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {granted, used, ttl}
"""


@dataclass(frozen=True, slots=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_SECONDS}",
        }


@dataclass(slots=True)
class _Lease:
    unused: int
    window_count: int
    resets_at: float


def _lease_size(limit: int, window_count: int) -> int:
    left = limit - window_count
    return max(1, min(MAX_LEASE, limit // 100, left // 10))


class RateLimiter:
    def __init__(self, redis: Redis, *, prefix: str = "rapport:rl:") -> None:
        self._claim = redis.register_script(_CLAIM)
        self._prefix = prefix
        self._leases: LRUCache[str, _Lease] = LRUCache(maxsize=100_000)
        self._claims: dict[str, asyncio.Task[_Lease | None]] = {}

    async def hit(self, identity: str, *, limit: int) -> RateLimitState | None:
        """Counts one request; None when Redis is unreachable (requests are then not limited)."""
        while True:
            now = time.monotonic()
            lease = self._leases.get(identity)
            if lease is not None and lease.resets_at <= now:
                lease = None
            if lease is not None and (lease.unused > 0 or lease.window_count >= limit):
                break
            # Another request may take the claimed capacity while this one waits: look again.
            if await self._claimed(identity, limit, lease.window_count if lease else 0) is None:
                return None
        reset = max(1, math.ceil(lease.resets_at - now))
        if lease.unused == 0:
            return RateLimitState(limit=limit, remaining=-1, reset_seconds=reset)
        lease.unused -= 1
        return RateLimitState(limit=limit, remaining=limit - lease.window_count + lease.unused, reset_seconds=reset)

    async def _claimed(self, identity: str, limit: int, window_count: int) -> _Lease | None:
        """The caller's next lease; requests that need one at the same time share one claim."""
        claim = self._claims.get(identity)
        if claim is None:
            claim = asyncio.ensure_future(self._lease(identity, limit, time.monotonic(), window_count))
            self._claims[identity] = claim
            claim.add_done_callback(lambda _: self._claims.pop(identity, None))
        return await asyncio.shield(claim)

    async def _lease(self, identity: str, limit: int, now: float, window_count: int) -> _Lease | None:
        try:
            granted, count, ttl_ms = await self._claim(
                keys=[self._prefix + identity],
                args=[WINDOW_SECONDS * 1000, _lease_size(limit, window_count), limit],
            )
        except (RedisError, OSError) as exc:
            log.warning("rate_limit_unavailable", error=str(exc))
            return None
        lease = _Lease(unused=int(granted), window_count=int(count), resets_at=now + int(ttl_ms) / 1000)
        self._leases[identity] = lease
        return lease

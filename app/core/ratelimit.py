"""Per-caller request limits held in Redis, reported in `RateLimit-*` headers.

A fixed window that opens on the caller's first request: `SET NX PX` starts it, `INCR` counts,
`PTTL` says when it resets, all in one MULTI round trip (the `limits` package needs three for
the same answer, which matters on every request).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.logging import get_logger

WINDOW_SECONDS = 60
log = get_logger(__name__)


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


class RateLimiter:
    def __init__(self, redis: Redis, *, prefix: str = "rapport:rl:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, identity: str, *, limit: int) -> RateLimitState | None:
        """Counts one request; None when Redis is unreachable (requests are then not limited)."""
        key = self._prefix + identity
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, px=WINDOW_SECONDS * 1000, nx=True)
                pipe.incr(key)
                pipe.pttl(key)
                _, count, ttl_ms = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("rate_limit_unavailable", error=str(exc))
            return None
        reset = max(1, -(-int(ttl_ms) // 1000)) if int(ttl_ms) > 0 else WINDOW_SECONDS
        return RateLimitState(limit=limit, remaining=limit - int(count), reset_seconds=reset)

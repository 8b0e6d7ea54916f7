"""The Redis client (rate limits, the job queue)."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool, Redis

from app.core.settings import Settings


def redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise RuntimeError("RAPPORT_REDIS_URL is not set (use `rapport serve` for an embedded Redis)")
    return settings.redis_url


def create_redis(settings: Settings) -> Redis:
    client: Redis = Redis.from_url(redis_url(settings), socket_connect_timeout=2, socket_timeout=2)
    return client


def arq_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(redis_url(settings))


def create_job_queue(settings: Settings) -> ArqRedis:
    """The client that enqueues jobs. Unlike `arq.create_pool` it connects on first use, so the
    API starts (and reports itself not ready) while Redis is down."""
    pool = ConnectionPool.from_url(redis_url(settings), socket_connect_timeout=2, socket_timeout=2)
    return ArqRedis(pool, default_queue_name=settings.queue_name)

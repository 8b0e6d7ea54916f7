"""The ASGI application."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app import __version__
from app.core import events, jobs, reads
from app.core.db import create_engine, create_session_factory, server_settings
from app.core.logging import configure_logging, log_buffer
from app.core.middleware import RequestContextMiddleware
from app.core.problems import install_problem_handlers
from app.core.ratelimit import RateLimiter
from app.core.redis import create_job_queue, create_redis
from app.core.settings import Settings, get_settings
from app.openapi import build_openapi
from app.routers import health
from app.routers.deps import API_PREFIX
from app.routers.v1 import ROUTERS

DESCRIPTION = """
Rapport is a headless CRM: everything is an API call.

* **Auth**: `Authorization: Bearer <access token>` from `/api/v1/auth/token` or `/api/v1/auth/signup`,
  or `X-API-Key` for integrations.
* **Lists** take `limit` (≤ 500) and `cursor`, and reply `{"items": [...], "next_cursor": ...}`.
* **Writes**: send `If-Match` with the `ETag` you read to avoid lost updates (412 if stale), and
  `Idempotency-Key` on POST to make retries safe.
* **Errors** are RFC 9457 problem documents (`application/problem+json`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(settings)
        app.state.session_factory = create_session_factory(app.state.engine)
        app.state.read_session_factory = create_session_factory(
            app.state.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        app.state.read_pool = await reads.create_pool(settings, server_settings(settings))
        app.state.redis = create_redis(settings)
        app.state.rate_limiter = RateLimiter(app.state.redis)
        app.state.job_queue = create_job_queue(settings)
        waker = events.RelayWaker(app.state.job_queue, queue_name=settings.queue_name)
        waker.start()
        events.add_commit_listener(waker.wake)

        async def enqueue(function: str, args: tuple[Any, ...]) -> object:
            return await app.state.job_queue.enqueue_job(function, *args)

        jobs.add_enqueuer(enqueue)
        # Everything made at start-up lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall the event loop for tens of milliseconds.
        gc.collect()
        gc.freeze()
        buffer = log_buffer()
        flusher = asyncio.create_task(buffer.flush_periodically()) if buffer else None
        try:
            yield
        finally:
            if buffer is not None and flusher is not None:
                flusher.cancel()
                buffer.flush()
            events.remove_commit_listener(waker.wake)
            jobs.remove_enqueuer(enqueue)
            await waker.stop()
            await app.state.job_queue.aclose()
            await app.state.redis.aclose()
            await app.state.read_pool.close()
            await app.state.engine.dispose()

    app = FastAPI(
        title="Rapport",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "auth", "description": "Sign-up, sign-in, tokens"},
            {"name": "contacts", "description": "People"},
            {"name": "companies", "description": "Organisations you sell to"},
            {"name": "events", "description": "Every change, in commit order: the pull side of webhooks"},
            {"name": "webhooks", "description": "Signed HTTP deliveries of events (Standard Webhooks)"},
            {"name": "exports", "description": "Files of records, written by a job"},
        ],
    )
    app.state.settings = settings
    install_problem_handlers(app)
    # The routers carry their full paths; adding their routes directly keeps route matching a
    # plain scan (FastAPI's include_router adds a matching layer that costs ~10% of a request).
    for router in (*ROUTERS, health.router):
        app.router.routes.extend(router.routes)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        # The multipart envelope around an import's file takes a few hundred bytes more.
        upload_limits={API_PREFIX + "/imports": int(settings.imports_max_file_mb * 1024 * 1024) + 64 * 1024},
    )
    return app

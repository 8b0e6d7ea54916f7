"""Probes and metrics, outside the versioned API."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.core.metrics import render
from app.services import health

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="health_live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", operation_id="health_ready", summary="The database and Redis answer")
async def ready(request: Request) -> JSONResponse:
    checks = await asyncio.gather(
        health.database_ready(request.app.state.engine),
        health.redis_ready(request.app.state.redis),
    )
    body = {"database": checks[0], "redis": checks[1]}
    ok = all(value == "ok" for value in body.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", **body},
        status_code=200 if ok else 503,
    )


@router.get(
    "/metrics",
    operation_id="health_metrics",
    summary="Prometheus metrics",
    include_in_schema=False,
)
async def metrics() -> Response:
    body, media_type = render()
    return Response(body, media_type=media_type)

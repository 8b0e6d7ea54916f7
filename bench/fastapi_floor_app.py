"""A reference point between the ceiling and the API: bare FastAPI doing what the baseline does.

    uv run python -m bench.fastapi_floor_app --port 8202   (same environment as bench/baseline_app.py)

The same asyncpg pool, SELECT and orjson body as bench/baseline_app.py, but routed by FastAPI
with a typed path parameter (`contact_id: uuid.UUID`, validated by pydantic) and no middleware,
no dependencies, no auth. `bench.get_by_id --floor` runs it with the others, which splits the
API's distance from the ceiling into "what FastAPI itself costs" and "what the app adds".
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from bench.baseline_app import DEFAULT_COLUMNS, NOT_FOUND, READ_FIELDS, _init, full_name


def create_app() -> FastAPI:
    dsn = os.environ["BENCH_DATABASE_DSN"]
    organization_id = uuid.UUID(os.environ["BENCH_ORGANIZATION_ID"])
    columns = os.environ.get("BENCH_COLUMNS", DEFAULT_COLUMNS)
    select = f"SELECT {columns} FROM contacts WHERE organization_id = $1 AND id = $2"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            dsn, min_size=10, max_size=20, init=_init,
            server_settings={"application_name": "rapport-fastapi-floor", "jit": "off"},
        )  # fmt: skip
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/api/v1/contacts/{contact_id}")
    async def get_contact(contact_id: uuid.UUID, request: Request) -> Response:
        row = await request.app.state.pool.fetchrow(select, organization_id, contact_id)
        if row is None:
            return Response(NOT_FOUND, status_code=404, media_type="application/problem+json")
        body: dict[str, Any] = {name: row[name] for name in READ_FIELDS}
        body["full_name"] = full_name(row["first_name"], row["last_name"])
        return Response(
            orjson.dumps(body, default=str, option=orjson.OPT_UTC_Z),
            media_type="application/json",
            headers={"ETag": f'W/"{row["version"]}"'},
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes (as `rapport api --workers`)")
    parser.add_argument("--port", type=int, default=8202)
    args = parser.parse_args()
    uvicorn.run(
        "bench.fastapi_floor_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


if __name__ == "__main__":
    main()

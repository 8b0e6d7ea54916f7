"""The ceiling for GET /api/v1/contacts/{id}: a minimal Starlette app over an asyncpg pool.

    uv run python -m bench.baseline_app --port 8201   (BENCH_DATABASE_DSN, BENCH_ORGANIZATION_ID)

It runs the same primary-key SELECT the API's ORM runs (the same columns, passed in
BENCH_COLUMNS by bench/get_by_id.py, which reads them from the SQL the API sends) and replies
with the same JSON body (the ContactRead fields and `full_name`, in the same order, datetimes
as pydantic writes them), serialised with orjson. No authentication, no
transaction, no middleware: what Python + uvicorn + asyncpg can do at best on this machine.
Served by uvicorn with the API's options (one worker; uvloop and httptools as uvicorn[standard]
picks them; no access log; no server header; proxy headers on).
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The column list of the app's `select(Contact)` when this was written; bench/get_by_id.py passes
# the list the API actually selects (captured from its SQL) in BENCH_COLUMNS, so the two stay equal.
DEFAULT_COLUMNS = (
    "organization_id, id, first_name, last_name, title, email, phone, additional_emails, additional_phones, "
    "company_id, source, lifecycle_stage, owner_id, tags, external_id, custom_fields, email_opt_in, "
    "email_opt_in_at, email_opt_in_source, search_text, company_search_text, search_grams, address_line1, "
    "address_line2, city, region, postal_code, country, created_at, updated_at, archived_at, version"
)
READ_FIELDS = (
    "id", "first_name", "last_name", "title", "email", "phone", "additional_emails", "additional_phones",
    "company_id", "address_line1", "address_line2", "city", "region", "postal_code", "country", "source",
    "lifecycle_stage", "owner_id", "tags", "external_id", "custom_fields", "email_opt_in", "email_opt_in_at",
    "email_opt_in_source", "created_at", "updated_at", "archived_at", "version",
)  # fmt: skip
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
NOT_FOUND = orjson.dumps({"title": "Not Found", "status": 404})


def full_name(first: str | None, last: str | None) -> str | None:
    parts = [p for p in (first, last) if p]
    if not parts:
        return None
    if _CJK.search("".join(parts)):
        return "".join(p for p in (last, first) if p)
    return " ".join(parts)


async def _init(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                    schema="pg_catalog")  # fmt: skip


def create_app() -> Starlette:
    dsn = os.environ["BENCH_DATABASE_DSN"]
    organization_id = uuid.UUID(os.environ["BENCH_ORGANIZATION_ID"])
    columns = os.environ.get("BENCH_COLUMNS", DEFAULT_COLUMNS)
    select = f"SELECT {columns} FROM contacts WHERE organization_id = $1 AND id = $2"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The API's SQLAlchemy pool: 10 connections plus 10 overflow.
        app.state.pool = await asyncpg.create_pool(
            dsn,
            min_size=10,
            max_size=20,
            init=_init,
            server_settings={"application_name": "rapport-baseline", "jit": "off"},
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    async def get_contact(request: Request) -> Response:
        try:
            contact_id = uuid.UUID(request.path_params["contact_id"])
        except ValueError:
            return Response(NOT_FOUND, status_code=404, media_type="application/problem+json")
        row = await request.app.state.pool.fetchrow(select, organization_id, contact_id)
        if row is None:
            return Response(NOT_FOUND, status_code=404, media_type="application/problem+json")
        body: dict[str, Any] = {name: row[name] for name in READ_FIELDS}
        body["full_name"] = full_name(row["first_name"], row["last_name"])
        return Response(
            orjson.dumps(body, default=str, option=orjson.OPT_UTC_Z),  # asyncpg has its own UUID class
            media_type="application/json",
            headers={"ETag": f'W/"{row["version"]}"'},
        )

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/api/v1/contacts/{contact_id}", get_contact), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes (as `rapport api --workers`)")
    parser.add_argument("--port", type=int, default=8201)
    args = parser.parse_args()
    # The same options `rapport api` passes to uvicorn (app/cli.py).
    uvicorn.run(
        "bench.baseline_app:create_app",
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

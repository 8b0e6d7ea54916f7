"""Single-record reads on asyncpg directly, for the hottest routes (GET by id).

An ORM session costs several hundred microseconds per request before the query even runs
(session, pool checkout, unit of work, identity map); a read of one row needs none of it. The
statement is still built with SQLAlchemy (so tenant scoping and visibility come from the same
code as everywhere else), compiled once to PostgreSQL's `$n` form, and run on a small asyncpg
pool of its own. Each API request installs the pool through a context variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Select, make_url
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from app.core.settings import Settings

_pool: ContextVar[asyncpg.Pool | None] = ContextVar("read_pool", default=None)
_compiled: dict[Select[Any], tuple[str, tuple[str, ...]]] = {}
_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]


async def _init_connection(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=lambda value: orjson.dumps(value).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's RESET ALL round trip: this pool only runs single
    SELECTs in autocommit and never changes session state (asyncpg still rolls back any open
    transaction first)."""


async def create_pool(settings: Settings, server_settings: dict[str, str]) -> asyncpg.Pool:
    url = make_url(settings.database_url or "").set(drivername="postgresql")
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url.render_as_string(hide_password=False),
        min_size=1,
        max_size=settings.database_read_pool_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=server_settings,
    )
    return pool


def use_pool(pool: asyncpg.Pool | None) -> Token[asyncpg.Pool | None]:
    return _pool.set(pool)


def release_pool(token: Token[asyncpg.Pool | None]) -> None:
    _pool.reset(token)


def _compile(statement: Select[Any]) -> tuple[str, tuple[str, ...]]:
    known = _compiled.get(statement)
    if known is None:
        compiled = statement.compile(dialect=_DIALECT)
        known = (compiled.string, tuple(compiled.positiontup or ()))
        _compiled[statement] = known
    return known


async def fetch_one(statement: Select[Any], parameters: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first row of a (cached, bind-parameter) statement as a mapping of column names."""
    pool = _pool.get()
    if pool is None:
        raise RuntimeError("no read pool in this context")
    sql, names = _compile(statement)
    async with pool.acquire() as connection:
        record = await connection.fetchrow(sql, *(parameters[name] for name in names))
    return dict(record.items()) if record is not None else None

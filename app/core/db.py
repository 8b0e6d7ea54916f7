"""The database engine and session factory. One request = one session = one transaction."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

import orjson
from sqlalchemy import JSON, ColumnElement, Table, any_, bindparam, event, inspect, make_url, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from app.core.jsonable import jsonable
from app.core.settings import Settings

R = TypeVar("R")

# Types `copy_rows` hands to asyncpg as they are (checked by type, not isinstance: it runs for
# every value of every row).
_PLAIN: Final = frozenset({str, int, bool, float, type(None), uuid.UUID, datetime, date, Decimal, list, dict})


def _copy_value(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def server_settings(settings: Settings) -> dict[str, str]:
    values = {"application_name": "rapport", "jit": "off"}
    if settings.database_statement_timeout_ms:
        values["statement_timeout"] = str(settings.database_statement_timeout_ms)
    return values


def create_engine(
    settings: Settings,
    *,
    url: str | None = None,
    pool_size: int | None = None,
    extra_server_settings: dict[str, str] | None = None,
) -> AsyncEngine:
    database_url = url or settings.database_url
    if not database_url:
        raise RuntimeError("RAPPORT_DATABASE_URL is not set (use `rapport serve` for an embedded database)")
    return create_async_engine(
        database_url,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # No pre-ping: it costs a round trip per request; a dropped connection is invalidated
        # on first use and the pool replaces it.
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": server_settings(settings) | (extra_server_settings or {})},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code behind a SQLAlchemy/asyncpg exception, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _admin_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        make_url(url).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )


async def ensure_database(url: str) -> bool:
    """Creates the database `url` names if it is missing; True if it was created.

    On PostgreSQL 17+ the database uses the built-in C.UTF-8 locale, so case folding and
    character classes follow Unicode whatever locale the server was initialised with.
    """
    name = make_url(url).database
    if not name:
        raise ValueError("the database URL names no database")
    engine = _admin_engine(url)
    try:
        async with engine.connect() as connection:
            if await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                return False
            version = int(await connection.scalar(text("SHOW server_version_num")) or 0)
            locale = (
                " TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'"
                if version >= 170000
                else ""
            )
            quoted = name.replace('"', '""')
            await connection.execute(text(f'CREATE DATABASE "{quoted}"{locale}'))
            return True
    finally:
        await engine.dispose()


async def drop_database(url: str) -> None:
    name = make_url(url).database
    engine = _admin_engine(url)
    try:
        async with engine.connect() as connection:
            quoted = (name or "").replace('"', '""')
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{quoted}" WITH (FORCE)'))
    finally:
        await engine.dispose()


def any_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN values` as one array parameter (`column = ANY(:values)`). An import chunk's
    thousands of keys were as many parameters: SQLAlchemy rendered each for every statement
    (about 3 % of the import worker's time), and every chunk's distinct count of them made a new
    prepared statement in asyncpg's cache, whose 5,000-parameter entries held the import worker
    about 75 MB above its peak with one array (305 MB against 228 MB for 1,000,000 contacts)."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Runs `callback` once the session's transaction has committed (not if it rolls back)."""
    event.listen(session.sync_session, "after_commit", lambda _session: callback(), once=True)


async def lock_for_transaction(session: AsyncSession, namespace: str, key: str) -> None:
    """Serialises transactions that take the same (namespace, key) until they end."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:namespace), hashtext(:key))"), {"namespace": namespace, "key": key}
    )


async def for_bulk_work(session: AsyncSession, *, timeout_seconds: int, work_mem_mb: int = 256) -> None:
    """Settings for the rest of a job's transaction that reads or rewrites a whole table: its own
    statement timeout (the request one is too short) and room to hash in memory."""
    await session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_seconds) * 1000}"))
    await session.execute(text(f"SET LOCAL work_mem = '{int(work_mem_mb)}MB'"))


class PlannerStatistics:
    """Keeps the planner's idea of an organisation's rows in a table that a bulk load grows: the
    columns a load looks its rows up by are analysed whenever the rows written since the planner
    last counted them outnumber what it counted, and the whole table once at the end.

    A chunk's lookups (its e-mails, the ids it scores) are planned from those statistics.
    Autovacuum refreshes them some time after a tenth of the table changed (when it runs at all,
    and a tenant that grows inside a larger table may never reach a tenth); an import planned
    from a count of a few hundred rows scanned the organisation's rows for every lookup: at
    800,000 contacts about 300 ms each, three a chunk. Doubling keeps the count within a factor
    of two for a few ANALYZEs per import, none of which blocks reads or writes. Only the lookup
    columns are analysed on the way (150 ms at 800,000 contacts, against 5.9 s for the whole
    table, whose search grams are sampled 300,000 rows deep for search's common-gram hints)."""

    def __init__(self, table: str, organization_id: uuid.UUID, lookup_columns: Sequence[str]) -> None:
        self.table = table
        self.organization_id = organization_id
        self.lookup_columns = ", ".join(f'"{column}"' for column in ("organization_id", *lookup_columns))
        # The organisation's rows as the planner last counted them (None: not read yet).
        self.counted: int | None = None
        self._written_since = 0
        self.analyses = 0

    async def written(self, sessions: async_sessionmaker[AsyncSession], rows: int) -> None:
        """Notes `rows` committed into the table; analyses its lookup columns, in a transaction
        of its own, when due."""
        self._written_since += rows
        if self.counted is None:
            async with sessions() as session:
                self.counted = await self._planned_rows(session)
        if self._written_since <= self.counted:
            return
        async with sessions() as session, session.begin():
            await session.execute(text(f'ANALYZE "{self.table}" ({self.lookup_columns})'))
            self.counted = await self._planned_rows(session)
        self._written_since = 0
        self.analyses += 1

    async def finished(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """The load is over: the whole table is analysed if the load grew it past the count."""
        if self.analyses:
            async with sessions() as session, session.begin():
                await session.execute(text(f'ANALYZE "{self.table}"'))

    async def _planned_rows(self, session: AsyncSession) -> int:
        """How many rows the planner expects the organisation to have in the table."""
        plan = await session.scalar(
            text(
                f'EXPLAIN (FORMAT JSON) SELECT 1 FROM "{self.table}" '
                f"WHERE organization_id = '{uuid.UUID(str(self.organization_id))}'"
            )
        )
        rows: int = plan[0]["Plan"]["Plan Rows"]  # the dialect decodes json
        return rows


_CACHE_PREFIX = "rapport.cache."


def transaction_cache(session: AsyncSession, name: str) -> dict[Any, Any]:
    """Answers a transaction looks up again and again (one owner for the 1,000 records of a
    batch), kept until the transaction ends."""
    cache: dict[Any, Any] = session.info.setdefault(_CACHE_PREFIX + name, {})
    return cache


@event.listens_for(Session, "after_rollback")
def _forget_transaction_caches(session: Session) -> None:
    """Any rollback, a savepoint's included: what a cache holds may have been undone with it (an
    assignment rule's turn taken in the savepoint)."""
    for key in [key for key in session.info if isinstance(key, str) and key.startswith(_CACHE_PREFIX)]:
        del session.info[key]


@event.listens_for(Session, "after_commit")
def _forget_transaction_caches_at_the_end(session: Session) -> None:
    # SQLAlchemy calls this when a savepoint is released too: the transaction goes on, and so do
    # its answers (a batch or import chunk would otherwise look them up again for every record).
    if session.get_nested_transaction() is None:
        _forget_transaction_caches(session)


@functools.cache
def _insert_plan(table: Table) -> tuple[tuple[str, Any], ...]:
    """(column, its Python-side default or None) for each column a row is inserted with. Models
    name their attributes as their columns (`tests/test_bulk_rows.py` holds them to it)."""
    return tuple((column.name, column.default) for column in table.columns if column.computed is None)


@functools.cache
def _attribute_keys(mapper: Mapper[Any]) -> frozenset[str]:
    if mapper.validators:
        raise TypeError(f"{mapper.class_.__name__} has validators, which new_record would skip")
    return frozenset(mapper.attrs.keys())


def new_record(model: type[R], **values: Any) -> R:
    """A new ORM object holding `values`, as `model(**values)` makes it, without the attribute
    event the constructor fires for each value: a bulk write builds thousands of records of
    about 30 columns, and those events were about half of building one. They serve validators
    (refused here) and history, which a new object does not need: the ORM inserts a pending
    object's values from its dict, and COPY takes them from `insert_values`."""
    unknown = values.keys() - _attribute_keys(inspect(model))
    if unknown:
        raise TypeError(f"{model.__name__} has no attribute {', '.join(sorted(unknown))}")
    record: R = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    record.__dict__.update(values)
    return record


def insert_values(record: Any) -> dict[str, Any]:
    """A new, transient ORM object's column values, with the Python-side defaults an ORM insert
    would have filled in, for `copy_rows`. Every column's value is set on the object too (its
    audit row and event show them, and its read schema is validated from its dict)."""
    values: dict[str, Any] = {}
    # The instance dict, not the attributes: a bulk write reads every column of every row.
    present = record.__dict__
    for key, default in _insert_plan(record.__table__):
        value = present.get(key)
        if value is None and default is not None:
            value = default.arg(None) if default.is_callable else default.arg
        values[key] = value
    present.update(values)
    return values


@functools.cache
def _copy_plan(table: Table) -> tuple[list[str], list[int]]:
    """The columns `copy_rows` writes (generated ones left to the database), and which hold JSON."""
    columns = [column for column in table.columns if column.computed is None]
    return [column.name for column in columns], [i for i, c in enumerate(columns) if isinstance(c.type, JSON)]


def _copy_records(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The columns and the rows' values as asyncpg's COPY takes them."""
    names, json_positions = _copy_plan(table)
    records = []
    for row in rows:
        values = [row.get(name) for name in names]
        for position in json_positions:
            if values[position] is not None:
                values[position] = _json_dumps(values[position])
        records.append([value if type(value) in _PLAIN else _copy_value(value) for value in values])
    return names, records


async def copy_rows(session: AsyncSession, model: type[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Writes rows of a model's table (column name → value; generated columns left to the
    database) with COPY in the session's transaction: the bulk path for batches and imports."""
    if not rows:
        return
    table: Table = model.__table__
    names, records = _copy_records(table, rows)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name, records=records, columns=names
    )


def copy_rows_in_orm_event(session: Session, model: type[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """`copy_rows` for the ORM's synchronous event hooks of an AsyncSession (they run in its
    greenlet, where an awaitable is run with `await_only`)."""
    table: Table = model.__table__
    names, records = _copy_records(table, rows)
    raw = session.connection().connection.driver_connection
    await_only(raw.copy_records_to_table(table.name, records=records, columns=names))  # type: ignore[union-attr]


@functools.cache
def _record_types(table: Table, dialect: Dialect) -> dict[str, str]:
    """Each column's SQL type as `jsonb_to_recordset` declares it."""
    return {column.name: column.type.compile(dialect=dialect) for column in table.columns}


_CHANGE_BOOKKEEPING: Final = frozenset({"version", "updated_at"})


async def update_changed(session: AsyncSession, records: Sequence[Any]) -> list[Any]:
    """Writes the column changes of loaded records of one versioned model (`version`,
    `updated_at`) with one UPDATE per set of changed columns, their values in one JSON document,
    and leaves each record clean, holding what was written; the records that changed.

    The ORM writes each record with an UPDATE of its own: with the version check it needs each
    row's count, which asyncpg does not give for a batch, and each statement fires the table's
    statement triggers again (1,000 changed contacts took ~1 s, one statement takes ~70 ms). The
    version check stays: a row another transaction changed meanwhile fails them all, as the
    ORM's StaleDataError would."""
    if not records:
        return []
    mapper = inspect(records[0]).mapper
    table = mapper.local_table
    columns = {column.name for column in table.columns} - _CHANGE_BOOKKEEPING
    groups: dict[tuple[str, ...], list[tuple[Any, dict[str, Any]]]] = {}
    for record in dict.fromkeys(records):  # a record two keys matched is written once
        state = inspect(record)
        changed = {
            name: state.dict[name]
            for name, before in state.committed_state.items()
            if name in columns and state.dict.get(name) != before
        }
        if changed:
            groups.setdefault(tuple(sorted(changed)), []).append((record, changed))
    if not groups:
        return []
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    types = _record_types(table, dialect)
    now = datetime.now(UTC)
    changed_records = []
    for names, members in groups.items():
        declared = ", ".join(f"{quote(name)} {types[name]}" for name in ("id", "version", *names))
        assignments = ", ".join(f"{quote(name)} = source.{quote(name)}" for name in names)
        statement = text(
            f"UPDATE {quote(table.name)} AS target SET {assignments}, updated_at = :now, "
            f"version = target.version + 1 FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS source({declared}) "
            "WHERE target.organization_id = :organization_id AND target.id = source.id "
            "AND target.version = source.version"
        )
        rows = [{"id": record.id, "version": record.version, **changed} for record, changed in members]
        organization_ids = {record.organization_id for record, _ in members}
        if len(organization_ids) != 1:
            raise ValueError("update_changed writes one organisation's records at a time")
        # On the connection: the session would flush the very changes this writes, one by one.
        result = await (await session.connection()).execute(
            statement,
            {"rows": _json_dumps(jsonable(rows)), "now": now, "organization_id": organization_ids.pop()},
        )
        if result.rowcount != len(members):
            raise StaleDataError(
                f"{table.name}: {len(members) - result.rowcount} of {len(members)} rows changed since they were read"
            )
        for record, changed in members:
            for name, value in changed.items():
                set_committed_value(record, name, value)
            set_committed_value(record, "version", record.version + 1)
            set_committed_value(record, "updated_at", now)
            changed_records.append(record)
    return changed_records

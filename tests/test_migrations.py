"""Migrations: they run both ways on an empty database, and they match the models."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.core.db import drop_database, ensure_database
from app.core.migrations import downgrade, upgrade
from app.models import Base


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            functions = await connection.scalar(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'rapport_search_grams'")
            )
    finally:
        await engine.dispose()
    return names | ({"<rapport_search_grams>"} if functions else set())


def test_upgrade_downgrade_upgrade(server_urls: tuple[str, str]) -> None:
    url = make_url(server_urls[0]).set(database=f"rapport_migrations_{uuid.uuid4().hex[:8]}")
    database_url = url.render_as_string(hide_password=False)
    asyncio.run(ensure_database(database_url))
    try:
        upgrade(database_url)
        created = asyncio.run(_tables(database_url))
        assert {"organizations", "users", "contacts", "companies", "audit_log", "<rapport_search_grams>"} <= created
        downgrade(database_url)
        assert asyncio.run(_tables(database_url)) == {"alembic_version"}
        upgrade(database_url)
        assert asyncio.run(_tables(database_url)) == created
    finally:
        asyncio.run(drop_database(database_url))


def _diff(sync_connection: Any) -> list[Any]:
    context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def test_models_match_the_migrations(database_url: str) -> None:
    async def differences() -> list[Any]:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_diff)
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []

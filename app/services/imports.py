"""Imports: a CSV or XLSX file of contacts, companies or deals, written by a job chunk by chunk.

The API stores the file next to the data (`<data_dir>/imports/`, shared with the worker like
exports), reads its header, settles the mapping and answers 202. The job counts the rows, then
reads them in chunks of `imports_chunk_rows`: each row is converted and checked with the same
schemas and rules as `POST /contacts/batch` (`import_checks`; in a second process, a chunk
ahead, when the import is longer than a chunk), matched against the database (and the earlier
rows of its chunk), and the chunk is written in one transaction: new records with COPY, their
audit rows with COPY, updated records in one flush, their events through the outbox, the
failed and skipped rows as import issues, and the import's counters. A worker killed mid-chunk
leaves nothing of that chunk; the next run reads on from the last committed row, so no row is
lost and none written twice. Each chunk commits only while the import still carries its run's
token, so a run that lost the import (taken over after a stall, or cancelled) writes nothing more.
Deals rows are written record by record, each in a savepoint (`deal_imports`), in the same chunk
transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

from pydantic import BaseModel
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import csv_export, jobs, normalize
from app.core.context import request_id_var
from app.core.db import PlannerStatistics, copy_rows
from app.core.enums import ContactSource, CustomFieldType
from app.core.errors import Conflict, DomainError, FieldError, TooLarge, ValidationFailed
from app.core.ids import new_id
from app.core.permissions import Scope
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import Settings, get_settings
from app.core.tabular import FileFormat, Limits, Row, Table, TableError
from app.models.base import utcnow
from app.models.company import Company
from app.models.data_import import DataImport, ImportIssue
from app.schemas.custom_field import CustomFieldCreate
from app.schemas.data_import import ImportCreate
from app.services import auth, contacts, custom_fields, deal_imports, import_checks, records, users
from app.services.companies import COMPANY_BATCHES
from app.services.contacts import CONTACT_BATCHES
from app.services.deals import DEALS
from app.services.import_checks import CheckedChunk, ChunkChecker
from app.services.import_mapping import (
    CUSTOM_PREFIX,
    REGISTRATION_DATE,
    CompanyRef,
    Converter,
    RowValues,
    auto_map,
    check_mapping,
)
from app.services.records import BatchResult, BatchRules, RecordType

RUN_IMPORT: Final = "run_import"
# Entity → (its record type, its batch rules (None: written record by record), the scope to write it).
_KINDS: Final[dict[str, tuple[RecordType[Any], BatchRules[Any] | None, Scope]]] = {
    "contacts": (CONTACT_BATCHES.kind, CONTACT_BATCHES, Scope.contacts_write),
    "companies": (COMPANY_BATCHES.kind, COMPANY_BATCHES, Scope.companies_write),
    "deals": (DEALS, None, Scope.deals_write),
}
# Deals are written record by record, and each one's event takes the organisation's event stream
# lock until the chunk commits: their chunks are kept short (a few seconds of writing).
DEAL_CHUNK_ROWS: Final = 200
# A file that stopped every run this many times (a row that breaks the job) is given up.
MAX_RUNS: Final = 5
_COPY_BLOCK: Final = 1024 * 1024
# Columns of the errors CSV before the row's own cells.
ISSUE_COLUMNS: Final = ("row", "outcome", "reason")


def _folder(settings: Settings, organization_id: uuid.UUID) -> Path:
    return settings.data_dir / "imports" / str(organization_id)


def import_path(settings: Settings, data_import: DataImport) -> Path:
    return _folder(settings, data_import.organization_id) / f"{data_import.id}.{data_import.file_format}"


def _stale_after(settings: Settings) -> timedelta:
    """A running import whose run has not committed a chunk for this long has lost its worker."""
    return timedelta(seconds=settings.imports_stale_after_seconds)


def limits(settings: Settings) -> Limits:
    return Limits(max_columns=settings.imports_max_columns, max_cell_chars=settings.imports_max_cell_chars)


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[DataImport]:
    return TenantRepository(DataImport, session, principal, label="import")


async def create_import(
    session: AsyncSession, principal: Principal, *, data: ImportCreate, file: BinaryIO, file_name: str
) -> DataImport:
    """Stores the file, reads its header and settles the mapping; the job does the rest."""
    kind, _, scope = _KINDS[data.entity]
    principal.require(scope)
    settings = get_settings()
    data_import = DataImport(
        organization_id=principal.organization_id,
        id=new_id(),
        entity=data.entity,
        mode=data.mode,
        file_name=(file_name or "upload")[:255],
        file_format="csv",
        file_size=0,
        columns=[],
        mapping={},
        requested_by_type=principal.kind,
        requested_by_id=principal.id,
    )
    staging = _folder(settings, principal.organization_id) / f"{data_import.id}.upload"
    try:
        # File work off the event loop: a large upload is copied and read in a thread.
        max_bytes = int(settings.imports_max_file_mb * 1024 * 1024)
        data_import.file_size = await asyncio.to_thread(_store, file, staging, max_bytes=max_bytes)
        table = await asyncio.to_thread(_open, staging, settings)
        data_import.file_format = table.format.kind
        data_import.encoding = table.format.encoding
        data_import.delimiter = table.format.delimiter if table.format.kind == "csv" else None
        definitions = await custom_fields.definitions_for(session, principal.organization_id, kind.custom_entity)
        mapping = await _settle_mapping(session, principal, data, table.header, definitions)
        if not await asyncio.to_thread(_has_rows, table):
            raise ValidationFailed(FieldError(("body", "file"), "The file has a header but no rows"))
        os.replace(staging, import_path(settings, data_import))
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    data_import.columns = table.header
    data_import.mapping = mapping
    session.add(data_import)
    await session.flush()
    jobs.enqueue_after_commit(session, RUN_IMPORT, str(data_import.organization_id), str(data_import.id))
    return data_import


def _store(file: BinaryIO, path: Path, *, max_bytes: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as target:
        while block := file.read(_COPY_BLOCK):
            size += len(block)
            if size > max_bytes:
                raise TooLarge(f"The file is larger than the import limit of {max_bytes} bytes", limit=max_bytes)
            target.write(block)
    if size == 0:
        raise ValidationFailed(FieldError(("body", "file"), "The file is empty"))
    return size


def _has_rows(table: Table) -> bool:
    """Whether a row under the header holds anything (blank lines are not rows). Damage met on
    the way (an XLSX sheet cut off before its first row) refuses the upload too."""
    try:
        return any(row.cells or row.error for row in table.rows())
    except TableError as error:
        raise ValidationFailed(FieldError(("body", "file"), str(error))) from error


def _open(path: Path, settings: Settings, file_format: FileFormat | None = None) -> Table:
    try:
        return Table(path, limits(settings), file_format)
    except TableError as error:
        raise ValidationFailed(FieldError(("body", "file"), str(error))) from error


async def _settle_mapping(
    session: AsyncSession,
    principal: Principal,
    data: ImportCreate,
    header: Sequence[str],
    definitions: Mapping[str, Any],
) -> dict[str, str | None]:
    repeated = sorted({column for column in header if column and header.count(column) > 1})
    if repeated:
        raise ValidationFailed(
            FieldError(("body", "file"), f"Column names must be unique; repeated: {', '.join(repeated)}")
        )
    if data.mapping is not None:
        mapping: dict[str, str | None] = dict(data.mapping)
        if problems := check_mapping(mapping, header, data.entity):
            raise ValidationFailed([FieldError(("body", "mapping"), problem) for problem in problems])
    else:
        mapping = dict(auto_map(header, data.entity, definitions))
    if not any(mapping.values()):
        raise ValidationFailed(
            FieldError(("body", "mapping"), "No column could be mapped to a field; send a mapping {column: field}")
        )
    for target in [t for t in mapping.values() if t and t.startswith(CUSTOM_PREFIX)]:
        key = target.removeprefix(CUSTOM_PREFIX)
        if key in definitions:
            continue
        if key != REGISTRATION_DATE:
            raise ValidationFailed(FieldError(("body", "mapping"), f"No custom field with the key {key!r} is defined"))
        # The brief's customer template carries a registration date: its field is made on first
        # use by those who may define fields; for others the column is ignored.
        if Scope.custom_fields_write not in principal.scopes:
            mapping = {column: (None if t == target else t) for column, t in mapping.items()}
            continue
        await custom_fields.create_definition(
            session,
            principal,
            data=CustomFieldCreate(
                entity=_KINDS[data.entity][0].custom_entity,
                key=REGISTRATION_DATE,
                label="Registration date",
                type=CustomFieldType.date,
            ),
        )
    return mapping


async def get_import(
    session: AsyncSession, principal: Principal, import_id: uuid.UUID, *, for_update: bool = False
) -> DataImport:
    data_import = await _repository(session, principal).get(import_id, for_update=for_update)
    principal.require_requester(data_import.requested_by_id, "imports")
    return data_import


async def cancel_import(session: AsyncSession, principal: Principal, import_id: uuid.UUID) -> DataImport:
    """Stops the import after the chunk being written; the rows already written stay. The lock
    waits for that chunk's commit, so the reply's counters are the import's last."""
    data_import = await get_import(session, principal, import_id, for_update=True)
    if data_import.status not in ("pending", "running"):
        raise Conflict(f"The import is {data_import.status}")
    data_import.status = "cancelled"
    data_import.run_token = None
    data_import.finished_at = utcnow()
    await session.flush()
    _remove_file(get_settings(), data_import)
    return data_import


async def issues_csv(
    session: AsyncSession,
    principal: Principal,
    import_id: uuid.UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[str]:
    """The errors CSV, streamed: row, outcome, reason, then the file's own columns, one line per
    failed or skipped row in file order. Access is checked now, in the request's session; the
    lines are read through a session of their own, which outlives the request's."""
    data_import = await get_import(session, principal, import_id)
    header = [*ISSUE_COLUMNS, *data_import.columns]
    statement = (
        select(ImportIssue.row_number, ImportIssue.outcome, ImportIssue.reason, ImportIssue.cells)
        .where(ImportIssue.organization_id == principal.organization_id, ImportIssue.import_id == import_id)
        .order_by(ImportIssue.row_number)
        .execution_options(yield_per=1000)
    )

    async def lines() -> AsyncIterator[str]:
        yield csv_export.header(header)
        async with sessions() as own, own.begin():
            async for issue in await own.stream(statement):
                yield csv_export.line([issue.row_number, issue.outcome, issue.reason, *issue.cells])

    return lines()


# ---------------------------------------------------------------------------- the job


@dataclass(slots=True)
class ChunkOutcome:
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("created", "updated", "unchanged", "skipped", "failed", "companies_created"), 0
        )
    )
    issues: list[dict[str, Any]] = field(default_factory=list)


async def run_import(
    sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, import_id: uuid.UUID
) -> str:
    """Claims the import (pending, or running with a stalled run) and writes it from where the
    last committed chunk left off."""
    settings = get_settings()
    token = uuid.uuid4()
    now = utcnow()
    async with sessions() as session, session.begin():
        data_import = (
            await session.execute(
                update(DataImport)
                .where(
                    DataImport.organization_id == organization_id,
                    DataImport.id == import_id,
                    or_(
                        DataImport.status == "pending",
                        (DataImport.status == "running") & (DataImport.heartbeat_at < now - _stale_after(settings)),
                    ),
                )
                .values(
                    status="running",
                    run_token=token,
                    heartbeat_at=now,
                    runs=DataImport.runs + 1,
                    started_at=func.coalesce(DataImport.started_at, now),
                )
                .returning(DataImport)
            )
        ).scalar_one_or_none()
    if data_import is None:
        return "not claimable"
    request_id = request_id_var.set(f"import:{data_import.id}")
    try:
        return await _run(sessions, settings, data_import, token)
    except DomainError as error:
        await _set(sessions, data_import, token, status="failed", error=error.detail[:500], finished_at=utcnow())
        _remove_file(settings, data_import)
        return "failed"
    finally:
        request_id_var.reset(request_id)


async def _run(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, data_import: DataImport, token: uuid.UUID
) -> str:
    if data_import.runs > MAX_RUNS:
        raise Conflict(f"The import stopped {MAX_RUNS} times without finishing; it was given up")
    path = import_path(settings, data_import)
    if not path.exists():
        raise Conflict("The import's file is gone")
    file_format = FileFormat(data_import.file_format, data_import.encoding, data_import.delimiter or ",")
    table = _open(path, settings, file_format)
    if data_import.total is None:
        try:
            data_import.total = await asyncio.to_thread(table.count_rows)
        except TableError as error:
            # Damage past what the upload read (an XLSX cut off mid-sheet). Counting reads the
            # whole file as the chunks will, so it is found here, before any row is written.
            raise Conflict(str(error)) from error
        await _set(sessions, data_import, token, total=data_import.total, heartbeat_at=utcnow())
    kind, rules, scope = _KINDS[data_import.entity]
    chunk_rows = settings.imports_chunk_rows if rules is not None else min(settings.imports_chunk_rows, DEAL_CHUNK_ROWS)
    async with sessions() as session:
        definitions = await custom_fields.definitions_for(session, data_import.organization_id, kind.custom_entity)
    # The mapping as the run found the definitions; a definition changed since is enforced when
    # the record is built.
    converter = Converter.build(table.header, data_import.mapping, data_import.entity, definitions)
    schema = rules.schema_for(data_import.mode) if rules is not None else None
    timings = {"check": 0.0, "write": 0.0} | dict(data_import.timings or {})
    more_than_a_chunk = data_import.total - data_import.processed > chunk_rows
    second_process = settings.imports_check_process and rules is not None and more_than_a_chunk
    checker = ChunkChecker(table, converter, schema, skip=data_import.processed, chunk_rows=chunk_rows)
    # The tables the import grows, with the columns its chunks look rows up by, and the count of
    # the rows a chunk wrote into each (a contacts import creates the companies its rows name).
    organization_id = data_import.organization_id
    lookups = ("id", *rules.upsert_keys) if rules is not None else ("id",)
    statistics = [(PlannerStatistics(kind.model.__tablename__, organization_id, lookups), "created")]
    if data_import.entity == "contacts":
        company_lookups = ("id", "name", *COMPANY_BATCHES.upsert_keys)
        statistics.append((PlannerStatistics("companies", organization_id, company_lookups), "companies_created"))
    async with _chunks_ahead(checker, second_process=second_process) as next_chunk:
        pending = next_chunk()
        while True:
            started = time.perf_counter()
            checked = await pending
            timings["check"] += time.perf_counter() - started
            if checked is None:
                break
            pending = next_chunk()  # read and checked while this chunk is written, in a second process
            started = time.perf_counter()
            async with sessions() as session, session.begin():
                if not await _still_ours(session, data_import, token):
                    return "stopped"
                principal = await auth.principal_now(
                    session, data_import.organization_id, data_import.requested_by_type, data_import.requested_by_id
                )
                principal.require(scope)
                outcome = await write_chunk(session, principal, rules, data_import, checked)
                await copy_rows(session, ImportIssue, outcome.issues)
                timings["write"] += time.perf_counter() - started
                last_row = checked.rows[-1].row.number - 1
                await session.execute(
                    update(DataImport)
                    .where(DataImport.organization_id == data_import.organization_id, DataImport.id == data_import.id)
                    .values(
                        processed=DataImport.processed + (last_row - data_import.processed),
                        heartbeat_at=utcnow(),
                        timings={key: round(value, 3) for key, value in timings.items()},
                        **{name: getattr(DataImport, name) + count for name, count in outcome.counts.items()},
                    )
                )
            data_import.processed = last_row
            for grown, count in statistics:
                await grown.written(sessions, outcome.counts[count])
    for grown, _ in statistics:
        await grown.finished(sessions)
    await _set(sessions, data_import, token, status="done", finished_at=utcnow(), run_token=None)
    _remove_file(settings, data_import)
    return "done"


async def _unpickled(pickled: Awaitable[bytes]) -> CheckedChunk | None:
    checked: CheckedChunk | None = pickle.loads(await pickled)
    return checked


@contextlib.asynccontextmanager
async def _chunks_ahead(
    checker: ChunkChecker, *, second_process: bool
) -> AsyncIterator[Callable[[], Awaitable[CheckedChunk | None]]]:
    """The checked chunks (`import_checks`), each read and checked when asked for, which is
    before the chunk ahead of it is written; in a second process, while that chunk is written:
    the two busiest parts of an import then use two cores. That process is started fresh (spawn),
    not forked from a worker that runs an event loop and connection pools."""
    if not second_process:

        def inline() -> asyncio.Future[CheckedChunk | None]:
            checked: asyncio.Future[CheckedChunk | None] = asyncio.get_running_loop().create_future()
            checked.set_result(checker.next_chunk())
            return checked

        yield inline
        return
    latest: asyncio.Task[CheckedChunk | None] | None = None

    def ahead() -> asyncio.Task[CheckedChunk | None]:
        # Unpickled by a task of the event loop's thread (see `import_checks.next_chunk_of_process`)
        # as soon as it arrives, which is mostly while the worker waits for the database.
        nonlocal latest
        pickled = asyncio.wrap_future(pool.submit(import_checks.next_chunk_of_process))
        latest = asyncio.ensure_future(_unpickled(pickled))
        return latest

    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=import_checks.use_checker,
        initargs=(checker,),
    )
    try:
        yield ahead
    finally:
        if latest is not None:
            latest.cancel()  # the chunk after the last one written, when the run stopped early
        pool.shutdown(wait=False, cancel_futures=True)


async def _still_ours(session: AsyncSession, data_import: DataImport, token: uuid.UUID) -> bool:
    """Locks the import row for the chunk's transaction, if this run still holds it."""
    held = await session.execute(
        select(DataImport.id)
        .where(
            DataImport.organization_id == data_import.organization_id,
            DataImport.id == data_import.id,
            DataImport.run_token == token,
            DataImport.status == "running",
        )
        .with_for_update()
    )
    return held.first() is not None


async def _set(
    sessions: async_sessionmaker[AsyncSession], data_import: DataImport, token: uuid.UUID, **values: Any
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(DataImport)
            .where(
                DataImport.organization_id == data_import.organization_id,
                DataImport.id == data_import.id,
                DataImport.run_token == token,
            )
            .values(**values)
        )


async def write_chunk(
    session: AsyncSession,
    principal: Principal,
    rules: BatchRules[Any] | None,
    data_import: DataImport,
    checked: CheckedChunk,
) -> ChunkOutcome:
    """Matches and writes one checked chunk in the session's transaction (deals, which have no
    batch rules, record by record)."""
    outcome = ChunkOutcome()

    def issue(row: Row, outcome_name: str, reason: str) -> None:
        outcome.counts[outcome_name] += 1
        outcome.issues.append(
            {
                "organization_id": data_import.organization_id,
                "id": new_id(),
                "import_id": data_import.id,
                "row_number": row.number,
                "outcome": outcome_name,
                "reason": reason[:2000],
                "cells": row.cells,
            }
        )

    normalize.remember_phone_forms(checked.phone_forms)
    converted: list[tuple[Row, RowValues, BaseModel | None]] = []
    for item in checked.rows:
        if item.reason is not None:
            issue(item.row, "failed", item.reason)
        elif item.values is None:
            outcome.counts["skipped"] += 1  # a blank line
        else:
            converted.append((item.row, item.values, item.body))

    if rules is None:
        written = await deal_imports.write_rows(
            session, principal, mode=data_import.mode, rows=[values for _, values, _ in converted]
        )
        for (row, _, _), written_row in zip(converted, written, strict=True):
            if written_row.status in ("failed", "skipped"):
                issue(row, written_row.status, written_row.reason or written_row.status)
            else:
                outcome.counts[written_row.status] += 1
        return outcome

    owners = await users.active_ids_by_email(
        session, principal, {values.owner_email for _, values, _ in converted if values.owner_email}
    )
    companies = await _companies_for(
        session, principal, [values.company for _, values, _ in converted if values.company], outcome
    )
    bodies: list[BaseModel] = []
    rows: list[Row] = []
    for row, values, body in converted:
        links: dict[str, Any] = {}
        if values.owner_email:
            if values.owner_email not in owners:
                issue(row, "failed", f"owner: no active user has the e-mail {values.owner_email}")
                continue
            links["owner_id"] = owners[values.owner_email]
        if values.company:
            company = companies[values.company.key]
            if isinstance(company, str):
                issue(row, "failed", f"company: {company}")
                continue
            links["company_id"] = company
        assert body is not None  # rows of entities with batch rules are checked against their schema
        bodies.append(body.model_copy(update=links) if links else body)
        rows.append(row)

    fold = None
    if data_import.entity == "contacts" and data_import.mode == "create":
        fold = await contacts.email_fold(session, principal)
    plan = await records.plan_batch(
        session,
        principal,
        rules,
        mode=data_import.mode,
        items=bodies,
        keyless="create",
        fold_on_email=fold,
        item_names=[f"row {row.number}" for row in rows],
    )
    kind = rules.kind
    if data_import.entity == "contacts":
        for _, record in plan.new:
            record.source = ContactSource.import_
    await records.write_plan(session, principal, kind, plan)
    for row, result in zip(rows, plan.results, strict=True):
        if result is None:
            continue
        if result.status in ("failed", "skipped"):
            issue(row, result.status, _reason(result))
        else:
            outcome.counts[result.status] += 1
    return outcome


def _reason(result: BatchResult) -> str:
    """The result's problems worded as the row's own checks are (`import_checks.problems_reason`):
    a batch places a record's fields under `body.records.<index>`, which names nothing in the file."""
    problem = result.problem or {}
    if problem.get("errors"):
        return import_checks.problems_reason((_in_record(e["loc"], result.index), e["msg"]) for e in problem["errors"])
    return str(problem.get("detail", "failed"))


def _in_record(loc: Sequence[Any], index: int) -> Sequence[Any]:
    return loc[3:] if list(loc[:3]) == ["body", "records", index] else loc[1:]


async def _companies_for(
    session: AsyncSession, principal: Principal, refs: list[CompanyRef], outcome: ChunkOutcome
) -> dict[tuple[str, str], uuid.UUID | str]:
    """The company of each reference: found by external_id, else by exact name, else created
    (a reference by external_id alone that finds nothing fails). Values are ids or problems."""
    wanted = {ref.key: ref for ref in refs}
    if not wanted:
        return {}
    repository = COMPANY_BATCHES.kind.repository(session, principal)
    external_ids = [ref.external_id for ref in wanted.values() if ref.external_id]
    names = [ref.name for ref in wanted.values() if not ref.external_id and ref.name]
    found = await session.execute(
        repository.scoped()
        .with_only_columns(Company.id, Company.external_id, Company.name)
        .where(
            or_(Company.external_id.in_(external_ids), Company.name.in_(names)),
            Company.archived_at.is_(None),
            Company.merged_into_id.is_(None),
        )
        .order_by(Company.id)
    )
    resolved: dict[tuple[str, str], uuid.UUID | str] = {}
    for company in found:
        if company.external_id in external_ids:
            resolved.setdefault(("external_id", company.external_id), company.id)
        if company.name in names:
            resolved.setdefault(("name", company.name), company.id)
    missing = [ref for key, ref in wanted.items() if key not in resolved]
    creatable = [ref for ref in missing if ref.name]
    for ref in missing:
        if not ref.name:
            resolved[ref.key] = f"no company has the external_id {ref.external_id}"
    if creatable:
        principal.require(Scope.companies_write)
        bodies = [
            {
                key: value
                for key, value in (
                    ("name", ref.name),
                    ("external_id", ref.external_id),
                    ("domain", ref.domain),
                    ("industry", ref.industry),
                )
                if value
            }
            for ref in creatable
        ]
        results = await records.write_batch(
            session, principal, COMPANY_BATCHES, mode="create", items=bodies, atomic=False
        )
        for ref, result in zip(creatable, results, strict=True):
            if result.status == "created" and result.id is not None:
                resolved[ref.key] = result.id
                outcome.counts["companies_created"] += 1
            else:
                resolved[ref.key] = _reason(result)
    return resolved


async def sweep(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Imports whose job was lost (never enqueued, or its worker died mid-run), to run again."""
    now = utcnow()
    stale = now - _stale_after(get_settings())
    async with sessions() as session:
        rows = await session.execute(
            select(DataImport.organization_id, DataImport.id).where(
                or_(
                    (DataImport.status == "pending") & (DataImport.created_at < now - timedelta(seconds=30)),
                    (DataImport.status == "running") & (DataImport.heartbeat_at < stale),
                )
            )
        )
        return [(organization_id, import_id) for organization_id, import_id in rows]


def _remove_file(settings: Settings, data_import: DataImport) -> None:
    """A settled import's file goes: the errors CSV keeps the cells of the rows it lists."""
    with contextlib.suppress(FileNotFoundError):
        import_path(settings, data_import).unlink()

"""Deals rows of an import (the brief's opportunity table), written record by record.

The chunk's lookups are made once: the companies named by `客户ID` (existing, by external_id:
an unknown one fails the row rather than leaving the deal unlinked), the owners (active users
by e-mail or exact full name), the default pipeline's stages by name, and, for `create` and
`skip_duplicates`, the external_ids already taken. Each row is then written as `POST
/deals/batch` writes a record (`deals.write_deals`: stage history, audit, events) in a savepoint
of its own, so a bad row fails alone, inside the chunk's transaction (which also carries the
import's progress, so a killed worker leaves nothing of the chunk behind). Deals are not written
with COPY: each needs its stage visit, and may need line items and stage-driven status.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.core.principal import Principal
from app.models.company import Company
from app.models.deal import Deal
from app.models.organization import User
from app.services import deals, pipelines
from app.services.companies import COMPANY_BATCHES
from app.services.import_mapping import RowValues
from app.services.records import BatchResult

_RELEASE_EVERY: Final = 100


@dataclass(frozen=True, slots=True)
class RowResult:
    status: str  # created | updated | unchanged | skipped | failed
    reason: str | None = None


async def write_rows(
    session: AsyncSession, principal: Principal, *, mode: str, rows: Sequence[RowValues]
) -> list[RowResult]:
    """One result per row, in order."""
    companies = await _companies(session, principal, {v.company.external_id for v in rows if v.company})
    owners = await _owners(session, principal, rows)
    stages = await _stages(session, principal) if any(v.stage for v in rows) else None
    keys = {v.record["external_id"] for v in rows if v.record.get("external_id")}
    taken = await _taken(session, principal, keys) if mode != "upsert" else set()
    seen: set[str] = set()
    results: list[RowResult] = []
    written = 0
    for values in rows:
        item: dict[str, Any] = dict(values.record)
        problem = _resolve(item, values, companies, owners, stages)
        if problem is not None:
            results.append(RowResult("failed", problem))
            continue
        key = item.get("external_id")
        if key is not None and (key in taken or key in seen):
            repeated = key in seen
            if mode == "skip_duplicates":
                reason = "an earlier row has this external_id" if repeated else "a deal has this external_id"
                results.append(RowResult("skipped", f"external_id: {reason}"))
            elif repeated:
                results.append(RowResult("failed", "external_id: an earlier row has this external_id"))
            else:
                results.append(RowResult("failed", "external_id: a deal with this external_id exists"))
            continue
        if key is not None:
            seen.add(key)
        row_mode = "upsert" if mode == "upsert" and key is not None else "create"
        try:
            [result] = await deals.write_deals(session, principal, mode=row_mode, items=[item], atomic=False)
        except IntegrityError:  # a deal written meanwhile took the external_id; the savepoint is gone
            results.append(RowResult("failed", "external_id: a deal with this external_id exists"))
            continue
        results.append(RowResult(result.status, _reason(result) if result.status == "failed" else None))
        written += 1
        if written % _RELEASE_EVERY == 0:
            # The written deals, visits and audit rows are not needed again: a session holding
            # thousands of them makes every flush slower (each walks the identity map).
            await session.flush()
            session.expunge_all()
    return results


def _reason(result: BatchResult) -> str:
    """A failed record's problem in a line: `field: message; …` (its detail when no field is named)."""
    problem = result.problem or {}
    if problem.get("errors"):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][3:]) or 'row'}: {error['msg']}"
            for error in problem["errors"]
        )
    return str(problem.get("detail", "failed"))


def _resolve(
    item: dict[str, Any],
    values: RowValues,
    companies: dict[str, uuid.UUID],
    owners: dict[str, uuid.UUID | str],
    stages: tuple[dict[str, uuid.UUID], list[str]] | str | None,
) -> str | None:
    """Puts the row's company, owner and stage ids into `item`; else why it cannot be."""
    if values.company is not None:
        external_id = values.company.external_id or ""
        if external_id not in companies:
            return f"company: no company has the external_id {external_id}"
        item["company_id"] = str(companies[external_id])
    owner = values.owner_email or values.owner_name
    if owner is not None:
        found = owners.get(owner)
        if not isinstance(found, uuid.UUID):
            return f"owner: {found or f'no active user has the e-mail or name {owner}'}"
        item["owner_id"] = str(found)
    if values.stage is not None:
        assert stages is not None
        if isinstance(stages, str):
            return f"stage: {stages}"
        by_key, names = stages
        stage_id = by_key.get(_stage_key(values.stage))
        if stage_id is None:
            return f"stage: no stage named {values.stage!r} in the default pipeline (stages: {', '.join(names)})"
        item["stage_id"] = str(stage_id)
    return None


async def _companies(
    session: AsyncSession, principal: Principal, external_ids: set[str | None]
) -> dict[str, uuid.UUID]:
    wanted = {external_id for external_id in external_ids if external_id}
    if not wanted:
        return {}
    found = await session.execute(
        COMPANY_BATCHES.kind.repository(session, principal)
        .scoped()
        .with_only_columns(Company.external_id, Company.id)
        .where(
            Company.external_id.in_(wanted),
            Company.archived_at.is_(None),
            Company.merged_into_id.is_(None),
        )
    )
    return {row.external_id: row.id for row in found}


async def _owners(session: AsyncSession, principal: Principal, rows: Sequence[RowValues]) -> dict[str, uuid.UUID | str]:
    """Active users by lower-case e-mail and by full name (a name two users share is a problem)."""
    emails = {v.owner_email for v in rows if v.owner_email}
    names = {v.owner_name for v in rows if v.owner_name}
    if not emails and not names:
        return {}
    found = await session.execute(
        select(User.id, User.email, User.full_name).where(
            User.organization_id == principal.organization_id,
            User.is_active.is_(True),
            (func.lower(User.email).in_(emails)) | (User.full_name.in_(names)),
        )
    )
    owners: dict[str, uuid.UUID | str] = {}
    for user_id, email, full_name in found:
        if email.lower() in emails:
            owners[email.lower()] = user_id
        if full_name in names:
            taken = owners.get(full_name)
            owners[full_name] = user_id if taken is None else f"several users are named {full_name}: give the e-mail"
    return owners


def _stage_key(name: str) -> str:
    return " ".join(name.split()).casefold()


async def _stages(session: AsyncSession, principal: Principal) -> tuple[dict[str, uuid.UUID], list[str]] | str:
    """The default pipeline's live stages by name (case-insensitive) and their names in order;
    or why there are none."""
    try:
        pipeline = await pipelines.default_pipeline(session, principal)
    except Conflict as error:
        return error.detail
    return {_stage_key(stage.name): stage.id for stage in pipeline.stages}, [stage.name for stage in pipeline.stages]


async def _taken(session: AsyncSession, principal: Principal, keys: set[str]) -> set[str]:
    if not keys:
        return set()
    found = await session.scalars(
        select(Deal.external_id).where(Deal.organization_id == principal.organization_id, Deal.external_id.in_(keys))
    )
    return {key for key in found if key is not None}

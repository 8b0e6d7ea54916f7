"""Deals: what is being sold to whom, for how much, and where it stands in its pipeline.

Every stage change (create, PATCH `stage_id`, POST /move, a deleted stage's deals) goes through
`_enter_stage`: the open stage visit is closed and a new one opened at the same instant, so the
stage history has no gaps or overlaps, and the deal's status, probability and close time follow
the stage. Amounts are Decimals; line item amounts and a deal's amount from its line items are
computed here, never taken from the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, text_search
from app.core.db import transaction_cache
from app.core.enums import AuditAction, ContactSource, CustomFieldEntity, StageKind
from app.core.errors import DomainError, FieldError, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.models.company import Company
from app.models.contact import Contact
from app.models.deal import Deal, DealContact, DealLineItem, DealStageVisit
from app.models.pipeline import Pipeline, PipelineStage
from app.schemas.deal import DealContactLink, DealCreate, DealRead, DealUpdate, LineItemCreate
from app.schemas.pipeline import StageUpdate
from app.services import organizations, pipelines, products, records
from app.services.filters import FieldSpec, FieldType
from app.services.records import FindQuery, RecordType, builtin

CENT: Final = Decimal("0.01")
QUANTITY_STEP: Final = Decimal("0.0001")
_VISIBLE_COMPANIES_KEY: Final = "deals.visible_companies"


def _fields() -> dict[str, FieldSpec]:
    c = Deal.__table__.c
    specs = [
        builtin(c.name, "name", FieldType.text, nullable=False),
        builtin(c.pipeline_id, "pipeline_id", FieldType.uuid, nullable=False),
        builtin(c.stage_id, "stage_id", FieldType.uuid, nullable=False),
        builtin(c.status, "status", FieldType.enum, choices=frozenset(StageKind), nullable=False),
        builtin(c.company_id, "company_id", FieldType.uuid),
        builtin(c.amount, "amount", FieldType.number),
        builtin(c.currency, "currency", FieldType.text, nullable=False),
        builtin(c.probability, "probability", FieldType.integer, nullable=False),
        builtin(c.expected_close_date, "expected_close_date", FieldType.date),
        builtin(c.owner_id, "owner_id", FieldType.uuid),
        builtin(c.source, "source", FieldType.enum, choices=frozenset(ContactSource)),
        builtin(c.lost_reason, "lost_reason", FieldType.text),
        builtin(c.tags, "tags", FieldType.tags, nullable=False),
        builtin(c.external_id, "external_id", FieldType.text),
        builtin(c.stage_entered_at, "stage_entered_at", FieldType.datetime, nullable=False),
        builtin(c.closed_at, "closed_at", FieldType.datetime),
        builtin(c.created_at, "created_at", FieldType.datetime, nullable=False),
        builtin(c.updated_at, "updated_at", FieldType.datetime, nullable=False),
        builtin(c.archived_at, "archived_at", FieldType.datetime),
    ]
    return {spec.name: spec for spec in specs}


def _search_columns() -> list[ColumnElement[str]]:
    return [Deal.__table__.c.search_text]


DEALS: RecordType[Deal] = RecordType(
    model=Deal,
    label="deal",
    custom_entity=CustomFieldEntity.deal,
    builtin_fields=_fields,
    search_columns=_search_columns,
    read_schema=DealRead,
    transitions={"owner_id": "assigned", "stage_id": "stage_changed"},
    gram_document=lambda deal: deal.search_text,
)


def search_document(deal: Deal) -> str:
    return text_search.document([deal.name, deal.external_id])


def _snapshot(deal: Deal) -> audit.Snapshot:
    """The deal's audited state: its columns, contacts and line items."""
    return audit.snapshot(deal, exclude={"stage_entered_at"}) | {
        "contacts": [{"contact_id": str(link.contact_id), "role": link.role} for link in deal.contacts],
        "line_items": [
            audit.snapshot(item, exclude={"deal_id", "position"}) | {"id": str(item.id)} for item in deal.line_items
        ],
    }


def line_amount(quantity: Decimal, unit_price: Decimal, discount_percent: Decimal) -> Decimal:
    gross = quantity * unit_price * (Decimal(100) - discount_percent) / Decimal(100)
    return gross.quantize(CENT, rounding=ROUND_HALF_UP)


async def _check_company(session: AsyncSession, principal: Principal, company_id: uuid.UUID | None) -> None:
    """The company exists and the caller sees it: checked once a transaction per company (an
    import chunk links many deals to the same customers)."""
    checked = transaction_cache(session, _VISIBLE_COMPANIES_KEY)
    if company_id is None or (principal.id, company_id) in checked:
        return
    try:
        company = await TenantRepository(Company, session, principal, label="company").get(company_id)
    except NotFound as exc:
        raise ValidationFailed(FieldError(("body", "company_id"), f"no company with id {company_id}")) from exc
    if (survivor := company.merged_into_id) is not None:
        raise ValidationFailed(FieldError(("body", "company_id"), records.merged_link("company", survivor)))
    checked[(principal.id, company_id)] = True


async def _contact_links(
    session: AsyncSession, principal: Principal, links: Sequence[DealContactLink | dict[str, Any]]
) -> list[DealContact]:
    parsed = [DealContactLink.model_validate(link) for link in links]
    ids = [link.contact_id for link in parsed]
    for index, contact_id in enumerate(ids):
        if contact_id in ids[:index]:
            raise ValidationFailed(FieldError(("body", "contacts", index, "contact_id"), "is listed twice"))
    if not ids:
        return []
    rows = await session.execute(
        select(Contact.id, Contact.merged_into_id).where(
            Contact.organization_id == principal.organization_id, Contact.id.in_(ids)
        )
    )
    merged_into = dict(rows.all())
    for index, contact_id in enumerate(ids):
        if contact_id not in merged_into:
            reason = f"no contact with id {contact_id}"
        elif (survivor := merged_into[contact_id]) is not None:
            reason = records.merged_link("contact", survivor)
        else:
            continue
        raise ValidationFailed(FieldError(("body", "contacts", index, "contact_id"), reason))
    # In the order reads give them (by contact id), so a write's reply matches a later GET.
    return [
        DealContact(organization_id=principal.organization_id, contact_id=link.contact_id, role=link.role)
        for link in sorted(parsed, key=lambda link: link.contact_id)
    ]


async def _line_items(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[LineItemCreate | dict[str, Any]],
    *,
    currency: str,
) -> list[DealLineItem]:
    parsed = [LineItemCreate.model_validate(item) for item in items]
    prices = await products.line_prices(session, principal, parsed, currency=currency, priced="deal")
    lines: list[DealLineItem] = []
    for position, (item, (name, unit_price)) in enumerate(zip(parsed, prices, strict=True)):
        # At the columns' scales, so a write's reply shows what a later read will.
        quantity = item.quantity.quantize(QUANTITY_STEP)
        discount = item.discount_percent.quantize(CENT)
        lines.append(
            DealLineItem(
                organization_id=principal.organization_id,
                position=position,
                product_id=item.product_id,
                name=name,
                quantity=quantity,
                unit_price=unit_price,
                discount_percent=discount,
                amount=line_amount(quantity, unit_price, discount),
            )
        )
    return lines


def _enter_stage(deal: Deal, stage: PipelineStage, *, lost_reason: str | None, now: datetime) -> DealStageVisit:
    """Puts the deal in `stage` now; the stage visit that starts, for the caller to add once the
    deal is written (the open one is closed by `_close_visit`).
    A deal closes when it reaches a won or lost stage and opens again when it leaves them."""
    if stage.kind is StageKind.open:
        deal.closed_at = None
    elif deal.closed_at is None or stage.kind is not deal.status:
        deal.closed_at = now
    deal.pipeline_id = stage.pipeline_id
    deal.stage_id = stage.id
    deal.stage_entered_at = now
    deal.status = stage.kind
    if not deal.probability_manual:
        deal.probability = stage.probability
    deal.lost_reason = lost_reason if stage.kind is StageKind.lost else None
    return DealStageVisit(
        organization_id=deal.organization_id,
        deal_id=deal.id,
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        entered_at=now,
    )


async def _close_visit(session: AsyncSession, deal: Deal, *, now: datetime) -> None:
    await session.execute(
        update(DealStageVisit)
        .where(
            DealStageVisit.organization_id == deal.organization_id,
            DealStageVisit.deal_id == deal.id,
            DealStageVisit.exited_at.is_(None),
        )
        .values(exited_at=now)
        .execution_options(synchronize_session=False)
    )


async def _initial_stage(session: AsyncSession, principal: Principal, data: DealCreate) -> PipelineStage:
    if data.stage_id is not None:
        stage = await pipelines.live_stage(session, principal, data.stage_id, loc=("body", "stage_id"))
        if data.pipeline_id is not None and stage.pipeline_id != data.pipeline_id:
            raise ValidationFailed(FieldError(("body", "stage_id"), "is not a stage of the pipeline given"))
        return stage
    if data.pipeline_id is not None:
        try:
            pipeline: Pipeline = await pipelines.get_pipeline(session, principal, data.pipeline_id)
        except NotFound as exc:
            raise ValidationFailed(
                FieldError(("body", "pipeline_id"), f"no pipeline with id {data.pipeline_id}")
            ) from exc
    else:
        pipeline = await pipelines.default_pipeline(session, principal)
    return pipeline.stages[0]


async def create_deal(session: AsyncSession, principal: Principal, *, data: DealCreate) -> Deal:
    stage = await _initial_stage(session, principal, data)
    await _check_company(session, principal, data.company_id)
    currency = data.currency or await organizations.default_currency(session, principal.organization_id)
    line_items = await _line_items(session, principal, data.line_items, currency=currency)
    deal = Deal(
        organization_id=principal.organization_id,
        **data.model_dump(
            exclude={
                "pipeline_id",
                "stage_id",
                "contacts",
                "line_items",
                "custom_fields",
                "owner_id",
                "probability",
                "currency",
                "lost_reason",
            }
        ),
        currency=currency,
        probability=data.probability if data.probability is not None else stage.probability,
        probability_manual=data.probability is not None,
        owner_id=await records.initial_owner(
            session, principal, sent="owner_id" in data.model_fields_set, owner_id=data.owner_id
        ),
        custom_fields=await records.custom_values(session, principal, DEALS, data.custom_fields),
        contacts=await _contact_links(session, principal, data.contacts),
        line_items=line_items,
    )
    if line_items:
        deal.amount = sum((item.amount for item in line_items), Decimal(0))
    _check_lost_reason(stage.kind, data.lost_reason)
    deal.id = new_id()
    visit = _enter_stage(deal, stage, lost_reason=data.lost_reason, now=utcnow())
    deal.search_text = search_document(deal)
    session.add(deal)
    await session.flush()
    session.add(visit)
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=DEALS.label,
        entity_id=deal.id,
        changes=audit.creation(_snapshot(deal)),
    )
    records.emit_event(session, principal, DEALS, deal, "created")
    return deal


async def get_deal(session: AsyncSession, principal: Principal, deal_id: uuid.UUID) -> Deal:
    return await DEALS.repository(session, principal).get(deal_id)


async def update_deal(
    session: AsyncSession,
    principal: Principal,
    deal_id: uuid.UUID,
    *,
    data: DealUpdate,
    expected_version: int | None,
) -> Deal:
    deal = await records.editable(session, principal, DEALS, deal_id, expected_version=expected_version)
    return await _apply(session, principal, deal, data.changes())


async def move_deal(
    session: AsyncSession,
    principal: Principal,
    deal_id: uuid.UUID,
    *,
    stage_id: uuid.UUID,
    lost_reason: str | None,
    expected_version: int | None,
) -> Deal:
    deal = await records.editable(session, principal, DEALS, deal_id, expected_version=expected_version)
    return await _apply(session, principal, deal, {"stage_id": stage_id, "lost_reason": lost_reason})


def _check_lost_reason(kind: StageKind, lost_reason: str | None) -> None:
    if lost_reason is not None and kind is not StageKind.lost:
        raise ValidationFailed(FieldError(("body", "lost_reason"), "only a deal in a lost stage has a lost reason"))


async def _apply(session: AsyncSession, principal: Principal, deal: Deal, changes: dict[str, Any]) -> Deal:
    """Checks a change against the deal, applies it, and writes its audit row and events."""
    # One UPDATE at the end: lookups on the way must not flush half a change (and bump the version twice).
    with session.no_autoflush:
        before = _snapshot(deal)
        was = deal.status
        document = search_document(deal)
        if "company_id" in changes and changes["company_id"] != deal.company_id:
            await _check_company(session, principal, changes["company_id"])
        await records.check_new_owner(session, principal, changes, deal.owner_id)
        if "custom_fields" in changes:
            changes["custom_fields"] = await records.custom_values(
                session, principal, DEALS, changes["custom_fields"], current=deal.custom_fields
            )
        if "amount" in changes and "line_items" not in changes and deal.line_items:
            raise ValidationFailed(FieldError(("body", "amount"), "comes from the deal's line items; change those"))
        if "contacts" in changes:
            deal.contacts = await _contact_links(session, principal, changes.pop("contacts"))
        if "line_items" in changes:
            currency = changes.get("currency", deal.currency)
            deal.line_items = await _line_items(session, principal, changes.pop("line_items"), currency=currency)
            if deal.line_items:
                changes["amount"] = sum((item.amount for item in deal.line_items), Decimal(0))
        stage_id = changes.pop("stage_id", None)
        sent_reason = changes.pop("lost_reason", None)
        lost_reason = sent_reason if sent_reason is not None else deal.lost_reason
        if "probability" in changes:
            probability = changes.pop("probability")
            deal.probability_manual = probability is not None
            if probability is not None:
                deal.probability = probability
        for name, value in changes.items():
            if getattr(deal, name) != value:
                setattr(deal, name, value)
        if stage_id is not None and stage_id != deal.stage_id:
            stage = await pipelines.live_stage(session, principal, stage_id, loc=("body", "stage_id"))
            _check_lost_reason(stage.kind, sent_reason)
            now = utcnow()
            await _close_visit(session, deal, now=now)
            session.add(_enter_stage(deal, stage, lost_reason=lost_reason, now=now))
        else:
            _check_lost_reason(deal.status, sent_reason)
            if not deal.probability_manual:
                deal.probability = await _stage_probability(session, deal)
            deal.lost_reason = lost_reason if deal.status is StageKind.lost else None
        # Set only when it changes: the column is deferred, so setting it at all would make an
        # UPDATE (and a new version) out of no change.
        if search_document(deal) != document:
            deal.search_text = search_document(deal)
    await _announce_change(session, principal, deal, before=before, was=was)
    return deal


async def _announce_change(
    session: AsyncSession, principal: Principal, deal: Deal, *, before: audit.Snapshot, was: StageKind
) -> None:
    """The change's audit row and events: `deal.updated`, `deal.stage_changed` / `deal.assigned`
    when those fields changed, and `deal.won` / `deal.lost` when the deal closed that way."""
    delta = audit.diff(before, _snapshot(deal))
    if not delta:
        return
    # A change to contacts or line items alone is still a new version of the deal.
    deal.updated_at = utcnow()
    await session.flush()
    records.announce(session, principal, DEALS, deal, action=AuditAction.update, event="updated", changes=delta)
    if deal.status is not was and deal.status is not StageKind.open:
        records.emit_event(session, principal, DEALS, deal, deal.status.value)


async def _stage_probability(session: AsyncSession, deal: Deal) -> int:
    probability = await session.scalar(
        select(PipelineStage.probability).where(
            PipelineStage.organization_id == deal.organization_id, PipelineStage.id == deal.stage_id
        )
    )
    return int(probability if probability is not None else deal.probability)


async def upsert_deal(
    session: AsyncSession,
    principal: Principal,
    external_id: str,
    *,
    data: DealUpdate,
    expected_version: int | None,
) -> tuple[Deal, bool]:
    async def create() -> Deal:
        fields = records.as_create(DealCreate, data.changes(), external_id=external_id)
        return await create_deal(session, principal, data=fields)

    async def update(deal_id: uuid.UUID) -> Deal:
        return await update_deal(session, principal, deal_id, data=data, expected_version=expected_version)

    return await records.upsert_by_external_id(
        session,
        principal,
        DEALS,
        external_id,
        expected_version=expected_version,
        sent_external_id=data.changes().get("external_id"),
        create=create,
        update=update,
    )


async def write_deals(
    session: AsyncSession, principal: Principal, *, mode: str, items: Sequence[Mapping[str, Any]], atomic: bool
) -> list[records.BatchResult]:
    """Creates (or upserts by `external_id`) up to 1,000 deals with one result each. Each record is
    written as a single create or PATCH would write it (stage history, line items, audit, events),
    inside a savepoint, so a bad one fails alone; `atomic`: any failure is a 422 and nothing stays."""
    results: list[records.BatchResult] = []
    for index, raw in enumerate(items):
        try:
            async with session.begin_nested():
                results.append(await _write_one(session, principal, index, raw, mode=mode))
        except DomainError as error:
            results.append(records.failed_result(index, error))
    failed = [result for result in results if result.status == "failed"]
    if atomic and failed:
        raise ValidationFailed(
            [error for result in failed for error in records.field_errors(result)],
            detail=f"{len(failed)} of {len(items)} deals failed; nothing was written (atomic)",
        )
    return results


async def _write_one(
    session: AsyncSession, principal: Principal, index: int, raw: Mapping[str, Any], *, mode: str
) -> records.BatchResult:
    schema: type[DealCreate] | type[DealUpdate] = DealUpdate if mode == "upsert" else DealCreate
    try:
        body = schema.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, loc=("body",)) from exc
    if isinstance(body, DealCreate):
        deal = await create_deal(session, principal, data=body)
        return records.BatchResult(index=index, status="created", id=deal.id)
    external_id = body.changes().get("external_id")
    if external_id is None:
        raise ValidationFailed(FieldError(("body", "external_id"), "an upsert of deals needs external_id"))
    before_version = await session.scalar(
        select(Deal.version).where(Deal.organization_id == principal.organization_id, Deal.external_id == external_id)
    )
    deal, created = await upsert_deal(session, principal, external_id, data=body, expected_version=None)
    if created:
        return records.BatchResult(index=index, status="created", id=deal.id)
    return records.BatchResult(
        index=index, status="updated" if deal.version != before_version else "unchanged", id=deal.id
    )


async def archive_deal(
    session: AsyncSession, principal: Principal, deal_id: uuid.UUID, *, expected_version: int | None
) -> Deal:
    return await records.archive(session, principal, DEALS, deal_id, expected_version=expected_version)


async def restore_deal(
    session: AsyncSession, principal: Principal, deal_id: uuid.UUID, *, expected_version: int | None
) -> Deal:
    return await records.restore(session, principal, DEALS, deal_id, expected_version=expected_version)


async def find_deals(session: AsyncSession, principal: Principal, query: FindQuery) -> Page[Deal]:
    return await records.find(session, principal, DEALS, query)


async def find_all_deals(session: AsyncSession, principal: Principal, query: FindQuery, *, at_most: int) -> list[Deal]:
    return await records.find_all(session, principal, DEALS, query, at_most=at_most)


async def deal_history(
    session: AsyncSession, principal: Principal, deal_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Page[AuditEntry]:
    return await records.history(session, principal, DEALS, deal_id, cursor=cursor, limit=limit)


async def stage_history(
    session: AsyncSession, principal: Principal, deal_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Page[DealStageVisit]:
    """The deal's stage visits, first to last."""
    await get_deal(session, principal, deal_id)
    visits = TenantRepository(DealStageVisit, session, principal, label="stage visit")
    statement = visits.scoped().where(DealStageVisit.deal_id == deal_id)
    return await visits.page(statement, Keyset.of([], DealStageVisit.id), cursor=cursor, limit=limit)


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    currency: str
    amount: Decimal
    weighted_amount: Decimal


@dataclass(frozen=True, slots=True)
class BoardColumn:
    stage: PipelineStage
    count: int
    totals: list[CurrencyTotal]
    deals: Page[Deal]


async def board(
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    *,
    limit: int,
    owner_id: uuid.UUID | None = None,
) -> tuple[Pipeline, list[BoardColumn]]:
    """Per live stage: how many deals (not archived, visible to the caller), their amounts and
    weighted amounts per currency, and the first page of them."""
    pipeline = await pipelines.get_pipeline(session, principal, pipeline_id)
    scoped = DEALS.repository(session, principal).scoped()
    sums = scoped.with_only_columns(
        Deal.stage_id,
        Deal.currency,
        func.count(),
        func.coalesce(func.sum(Deal.amount), 0),
        func.coalesce(func.sum(Deal.amount * Deal.probability), 0),
    ).where(Deal.pipeline_id == pipeline.id, Deal.archived_at.is_(None))
    if owner_id is not None:
        sums = sums.where(Deal.owner_id == owner_id)
    counts: dict[uuid.UUID, int] = {}
    totals: dict[uuid.UUID, list[CurrencyTotal]] = {}
    for stage_id, currency, count, amount, weighted in await session.execute(
        sums.group_by(Deal.stage_id, Deal.currency).order_by(Deal.stage_id, Deal.currency)
    ):
        counts[stage_id] = counts.get(stage_id, 0) + count
        totals.setdefault(stage_id, []).append(
            CurrencyTotal(currency, Decimal(amount or 0).quantize(CENT), (Decimal(weighted or 0) / 100).quantize(CENT))
        )
    columns = []
    for stage in pipeline.stages:
        equals = {"stage_id": str(stage.id)} | ({"owner_id": str(owner_id)} if owner_id else {})
        page = await find_deals(session, principal, FindQuery(equals=equals, limit=limit))
        columns.append(BoardColumn(stage, counts.get(stage.id, 0), totals.get(stage.id, []), page))
    return pipeline, columns


async def update_stage(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, stage_id: uuid.UUID, *, data: StageUpdate
) -> PipelineStage:
    """Changes a stage; deals that follow its probability take a new one, each with its audit row
    and `deal.updated` event."""
    _, stage = await pipelines.update_stage(session, principal, pipeline_id, stage_id, data=data)
    following = await session.scalars(
        select(Deal).where(
            Deal.organization_id == principal.organization_id,
            Deal.stage_id == stage.id,
            Deal.probability_manual.is_(False),
            Deal.probability != stage.probability,
        )
    )
    for deal in following.all():
        before = _snapshot(deal)
        deal.probability = stage.probability
        await _announce_change(session, principal, deal, before=before, was=deal.status)
    return stage


async def delete_stage(
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    stage_id: uuid.UUID,
    *,
    move_to: uuid.UUID | None,
) -> Pipeline:
    """Removes a stage; the deals in it (archived ones too) move to `move_to`, a stage of the same
    pipeline, each with its history, audit row and events."""
    pipeline, stage = await pipelines.stage_to_remove(session, principal, pipeline_id, stage_id)
    held = await pipelines.deal_count(session, principal, stage.id)
    if held and move_to is None:
        raise ValidationFailed(
            FieldError(("query", "move_to"), f"the stage holds {held} deals: name the stage they move to")
        )
    if move_to is not None:
        target = next((s for s in pipeline.stages if s.id == move_to and s.id != stage.id), None)
        if target is None:
            raise ValidationFailed(FieldError(("query", "move_to"), "must be another stage of this pipeline"))
        moving = await session.scalars(
            select(Deal).where(Deal.organization_id == principal.organization_id, Deal.stage_id == stage.id)
        )
        for deal in moving.all():
            before, was = _snapshot(deal), deal.status
            now = utcnow()
            await _close_visit(session, deal, now=now)
            session.add(_enter_stage(deal, target, lost_reason=deal.lost_reason, now=now))
            await _announce_change(session, principal, deal, before=before, was=was)
    return await pipelines.archive_stage(session, principal, pipeline, stage)

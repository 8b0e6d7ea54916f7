"""Contracts: numbered per organisation and year without gaps, moved through one transition
table, reminded of before they end, expired after, and rendered to an HTML document.

Numbers come from a counter row per (organisation, year), incremented by the INSERT … ON
CONFLICT that also locks it, in the transaction that inserts the contract: concurrent creates
queue on the row, and a create that rolls back rolls its increment back too, so the numbers that
exist are 1..n with none skipped. The reminder and the expiry are claimed by conditional
UPDATEs (arq may run a cron job on two workers at once, DESIGN.md §5): the run whose UPDATE
changes the row sends the event, in the same transaction, so it goes out exactly once.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, events
from app.core.enums import AuditAction, ContractStatus
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.company import Company
from app.models.contract import Contract, ContractNumberCounter, ContractTemplate
from app.models.deal import Deal
from app.models.organization import Organization
from app.schemas.contract import ContractCreate, ContractRead, ContractUpdate
from app.services import contract_templates, organizations, records
from app.services.contract_templates import TemplateFailed

LABEL: Final = "contract"
# What a contract names by id, checked visible to the caller: (field, model, label).
_RELATED: Final[tuple[records.Related, ...]] = (
    ("company_id", Company, "company"),
    ("deal_id", Deal, "deal"),
    ("template_id", ContractTemplate, "contract template"),
)

TRANSITIONS: Final[dict[ContractStatus, frozenset[ContractStatus]]] = {
    ContractStatus.draft: frozenset({ContractStatus.sent, ContractStatus.terminated}),
    ContractStatus.sent: frozenset({ContractStatus.signed, ContractStatus.terminated}),
    ContractStatus.signed: frozenset({ContractStatus.active, ContractStatus.terminated}),
    ContractStatus.active: frozenset({ContractStatus.expired, ContractStatus.terminated}),
    ContractStatus.expired: frozenset(),
    ContractStatus.terminated: frozenset(),
}
# The event each status is announced with, besides `contract.status_changed`.
_STATUS_EVENTS: Final = {
    ContractStatus.sent: "sent",
    ContractStatus.signed: "signed",
    ContractStatus.active: "activated",
    ContractStatus.expired: "expired",
    ContractStatus.terminated: "terminated",
}
# Fields a PATCH may change once the contract has left draft: its terms are what was sent, but who
# looks after it (and gets its renewal) is not one of them.
_ALWAYS_EDITABLE: Final = frozenset({"renewal_notice_days", "owner_id"})
# The rendered HTML is large and has its own endpoint; the audit trail records when it changed.
_NOT_SNAPSHOTTED: Final = frozenset({"document_html"})


def _number(year: int, sequence: int) -> str:
    return f"HT-{year}-{sequence:04d}"


def _contracts(session: AsyncSession, principal: Principal) -> TenantRepository[Contract]:
    return TenantRepository(Contract, session, principal, label=LABEL)


def _snapshot(contract: Contract) -> audit.Snapshot:
    return audit.snapshot(contract, exclude=_NOT_SNAPSHOTTED)


def _emit(
    session: AsyncSession,
    contract: Contract,
    name: str,
    *,
    actor: events.Actor,
    changes: audit.Changes | None = None,
) -> None:
    records.emit_read_model_event(session, actor, LABEL, ContractRead, contract, name, changes=changes)


async def _next_number(session: AsyncSession, organization_id: uuid.UUID, year: int) -> int:
    """The next sequence number of the year; the counter row stays locked until the transaction ends."""
    statement = (
        insert(ContractNumberCounter)
        .values(organization_id=organization_id, year=year, last=1)
        .on_conflict_do_update(
            index_elements=[ContractNumberCounter.organization_id, ContractNumberCounter.year],
            set_={"last": ContractNumberCounter.last + 1},
        )
        .returning(ContractNumberCounter.last)
    )
    return int((await session.execute(statement)).scalar_one())


async def create_contract(session: AsyncSession, principal: Principal, *, data: ContractCreate) -> Contract:
    related = await records.related_records(session, principal, data.model_dump(), _RELATED)
    deal: Deal | None = related.get("deal_id")
    currency = data.currency or await organizations.default_currency(session, principal.organization_id)
    now = utcnow()
    contract = Contract(
        organization_id=principal.organization_id,
        **data.model_dump(exclude={"currency", "owner_id"}),
        owner_id=await records.initial_owner(
            session,
            principal,
            sent="owner_id" in data.model_fields_set,
            owner_id=data.owner_id,
            inherited=deal.owner_id if deal is not None else None,
        ),
        currency=currency or "CNY",
    )
    # Last before the insert: the counter row is held from here to the commit.
    contract.number = _number(now.year, await _next_number(session, principal.organization_id, now.year))
    session.add(contract)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=LABEL,
        entity_id=contract.id,
        changes=audit.creation(_snapshot(contract)),
    )
    _emit(session, contract, "created", actor=events.Actor.of(principal))
    return contract


async def get_contract(session: AsyncSession, principal: Principal, contract_id: uuid.UUID) -> Contract:
    return await _contracts(session, principal).get(contract_id)


async def _announce_change(
    session: AsyncSession, principal: Principal, contract: Contract, *, before: audit.Snapshot, names: list[str]
) -> None:
    delta = audit.diff(before, _snapshot(contract))
    if not delta:
        return
    await session.flush()
    audit.record(session, principal, action=AuditAction.update, entity_type=LABEL, entity_id=contract.id, changes=delta)
    for name in names:
        _emit(session, contract, name, actor=events.Actor.of(principal), changes=delta)


async def update_contract(
    session: AsyncSession,
    principal: Principal,
    contract_id: uuid.UUID,
    *,
    data: ContractUpdate,
    expected_version: int | None,
) -> Contract:
    contract = await _contracts(session, principal).locked(contract_id, expected_version=expected_version)
    changes = data.changes()
    if contract.status is not ContractStatus.draft and (frozen := sorted(set(changes) - _ALWAYS_EDITABLE)):
        raise Conflict(f"The contract is {contract.status.value}; {', '.join(frozen)} change only while it is a draft")
    start, end = changes.get("start_date", contract.start_date), changes.get("end_date", contract.end_date)
    if end < start:
        field = "end_date" if "end_date" in changes else "start_date"
        raise ValidationFailed(FieldError(("body", field), "the contract would end before it starts"))
    await records.related_records(session, principal, changes, _RELATED)
    await records.check_new_owner(session, principal, changes, contract.owner_id)
    before = _snapshot(contract)
    for name, value in changes.items():
        if getattr(contract, name) != value:
            setattr(contract, name, value)
    await _announce_change(session, principal, contract, before=before, names=["updated"])
    return contract


async def transition_contract(
    session: AsyncSession,
    principal: Principal,
    contract_id: uuid.UUID,
    *,
    to: ContractStatus,
    expected_version: int | None,
) -> Contract:
    """Moves the contract to `to` if `TRANSITIONS` allows it; audited, and announced as
    `contract.status_changed` and the status's own event."""
    contract = await _contracts(session, principal).locked(contract_id, expected_version=expected_version)
    allowed = TRANSITIONS[contract.status]
    if to not in allowed:
        listed = ", ".join(sorted(allowed)) or "none: it has ended"
        raise Conflict(f"A contract that is {contract.status.value} cannot become {to.value} (allowed: {listed})")
    if to is ContractStatus.expired and contract.end_date >= utcnow().date():
        raise Conflict(f"The contract runs until {contract.end_date}; terminate it to end it sooner")
    before = _snapshot(contract)
    contract.status = to
    if to is ContractStatus.signed:
        contract.signed_at = utcnow()
    elif to in (ContractStatus.expired, ContractStatus.terminated):
        contract.ended_at = utcnow()
    await _announce_change(session, principal, contract, before=before, names=["status_changed", _STATUS_EVENTS[to]])
    return contract


async def find_contracts(
    session: AsyncSession,
    principal: Principal,
    *,
    status: ContractStatus | None = None,
    company_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    cursor: str | None,
    limit: int,
) -> Page[Contract]:
    """Contracts the caller may see, newest first, filtered by status, company, deal or owner when given."""
    repository = _contracts(session, principal)
    statement = repository.scoped()
    for column, value in (
        (Contract.status, status),
        (Contract.company_id, company_id),
        (Contract.deal_id, deal_id),
        (Contract.owner_id, owner_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    keyset = Keyset.of([], Contract.__table__.c.id, id_descending=True)
    return await repository.page(statement, keyset, cursor=cursor, limit=limit)


# Documents


async def _document_context(session: AsyncSession, principal: Principal, contract: Contract) -> dict[str, Any]:
    organization_id = principal.organization_id
    company = await session.scalar(
        select(Company).where(Company.organization_id == organization_id, Company.id == contract.company_id)
    )
    deal = None
    if contract.deal_id is not None:
        deal = await session.scalar(
            select(Deal).where(Deal.organization_id == organization_id, Deal.id == contract.deal_id)
        )
    organization_name = await session.scalar(select(Organization.name).where(Organization.id == organization_id))
    return contract_templates.context(
        contract=ContractRead.model_validate(contract).model_dump(),
        company=company,
        deal=deal,
        organization_name=organization_name or "",
    )


async def render_contract(
    session: AsyncSession,
    principal: Principal,
    contract_id: uuid.UUID,
    *,
    template_id: uuid.UUID | None,
    expected_version: int | None,
) -> Contract:
    """Renders the contract's document with `template_id` (kept as the contract's template), its
    own template, or the built-in one, and stores it. The document is fixed once the contract is sent."""
    contract = await _contracts(session, principal).locked(contract_id, expected_version=expected_version)
    if contract.status is not ContractStatus.draft:
        raise Conflict(f"The contract is {contract.status.value}; its document was fixed when it was sent")
    before = _snapshot(contract)
    if template_id is not None:
        await records.related_records(session, principal, {"template_id": template_id}, _RELATED)
    chosen = template_id or contract.template_id
    source = await contract_templates.source(session, principal, chosen)
    try:
        html = await contract_templates.render(source, await _document_context(session, principal, contract))
    except TemplateFailed as exc:
        raise ValidationFailed(FieldError(("body", "template_id"), f"the template cannot render: {exc}")) from exc
    # Changed only now that every lookup is done, so the contract is written once.
    contract.template_id = chosen
    contract.document_html = html
    contract.document_rendered_at = utcnow()
    await _announce_change(session, principal, contract, before=before, names=["document_rendered"])
    return contract


async def contract_document(session: AsyncSession, principal: Principal, contract_id: uuid.UUID) -> str:
    contract = await get_contract(session, principal, contract_id)
    html = await session.scalar(
        select(Contract.document_html).where(
            Contract.organization_id == contract.organization_id, Contract.id == contract.id
        )
    )
    if html is None:
        raise NotFound(f"The contract {contract_id} has no document yet: render it first")
    return html


# Scheduled work, across organisations (the jobs in app/jobs/contracts.py)


async def claim_renewals_due(session: AsyncSession, *, today: date) -> list[Contract]:
    """Active contracts whose notice period has begun (`end_date − renewal_notice_days ≤ today`)
    and that have not ended, each claimed once: `contract.renewal_due` is emitted for those this
    call claimed. A concurrent call waits on the rows, then finds them claimed."""
    now = utcnow()
    claimed = await session.scalars(
        update(Contract)
        .where(
            Contract.status == ContractStatus.active,
            Contract.renewal_notified_at.is_(None),
            Contract.end_date >= today,
            Contract.end_date - Contract.renewal_notice_days <= today,
        )
        .values(renewal_notified_at=now, updated_at=now, version=Contract.version + 1)
        .returning(Contract)
        .execution_options(synchronize_session=False)
    )
    contracts = list(claimed)
    for contract in contracts:
        _emit(session, contract, "renewal_due", actor=events.SYSTEM)
    return contracts


async def expire_ended(session: AsyncSession, *, today: date) -> list[Contract]:
    """Active contracts whose end_date has passed become expired, each once, audited as the
    system's change and announced like a transition by hand."""
    now = utcnow()
    expired = await session.scalars(
        update(Contract)
        .where(Contract.status == ContractStatus.active, Contract.end_date < today)
        .values(status=ContractStatus.expired, ended_at=now, updated_at=now, version=Contract.version + 1)
        .returning(Contract)
        .execution_options(synchronize_session=False)
    )
    contracts = list(expired)
    for contract in contracts:
        changes: audit.Changes = {
            "status": {"before": ContractStatus.active.value, "after": ContractStatus.expired.value},
            "ended_at": {"before": None, "after": now.isoformat()},
        }
        audit.record_as(
            session,
            events.SYSTEM,
            organization_id=contract.organization_id,
            action=AuditAction.update,
            entity_type=LABEL,
            entity_id=contract.id,
            changes=changes,
        )
        for name in ("status_changed", "expired"):
            _emit(session, contract, name, actor=events.SYSTEM, changes=changes)
    return contracts

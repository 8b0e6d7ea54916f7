"""The customer lifecycle: subscriber → lead → marketing_qualified → sales_qualified → opportunity
→ customer → repeat_customer → loyal, or churned (the brief's 潜在客户、初次购买、重复购买、忠诚客户、
流失客户).

Contacts move by hand (PATCH `lifecycle_stage`) and by the organisation's rules (`lifecycle_rules`):

- a lead score reaching `mql_score` / `sql_score` qualifies a subscriber or lead (checked when the
  contact is written and after every rescore);
- a first paid order makes a customer, a second a repeat customer, `loyal_orders` paid orders or
  `loyal_spend` in paid totals a loyal one (checked when an order is paid);
- `churn_days` without an order or an activity churns a customer (a daily job).

Rules only move contacts forward, except that a churned contact who orders again comes back.
Every move is one UPDATE (a new version), a `lifecycle_changes` row, an audit row and the
`contact.updated` and `contact.lifecycle_stage_changed` events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from app.core import audit, events
from app.core.enums import AuditAction, LifecycleStage, OrderStatus
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.contact import Contact
from app.models.lifecycle import LifecycleChange
from app.models.order import Order
from app.models.organization import DEFAULT_LIFECYCLE_RULES, Organization
from app.models.scoring import ContactActivity, LeadScore
from app.services import contacts, organizations, records

ORDER: Final = tuple(LifecycleStage)
_SCORED: Final = frozenset({LifecycleStage.subscriber, LifecycleStage.lead, LifecycleStage.marketing_qualified})
_BUYERS: Final = frozenset({LifecycleStage.customer, LifecycleStage.repeat_customer, LifecycleStage.loyal})


def _rank(stage: LifecycleStage) -> int:
    return ORDER.index(stage)


@dataclass(frozen=True, slots=True)
class Move:
    contact: Contact
    to: LifecycleStage
    reason: str


async def rules_for(session: AsyncSession, organization_id: uuid.UUID) -> dict[str, Any]:
    stored = (await organizations.sales_settings(session, organization_id)).lifecycle_rules
    return DEFAULT_LIFECYCLE_RULES | (stored or {})


def record_manual(session: AsyncSession, principal: Principal, contact: Contact, before: LifecycleStage) -> None:
    """A change made by hand (PATCH), in the history."""
    _history(session, contact, before, contact.lifecycle_stage, "manual", events.Actor.of(principal))


def _history(
    session: AsyncSession,
    contact: Contact,
    before: LifecycleStage | None,
    after: LifecycleStage,
    reason: str,
    actor: events.Actor,
) -> None:
    session.add(
        LifecycleChange(
            organization_id=contact.organization_id,
            contact_id=contact.id,
            from_stage=before,
            to_stage=after,
            reason=reason,
            changed_at=utcnow(),
            actor_type=actor.type,
            actor_id=actor.id,
        )
    )


async def apply(session: AsyncSession, moves: Sequence[Move], actor: events.Actor) -> None:
    """Writes rule moves: per target stage one UPDATE of the contacts (a new version each), then
    each move's history row, audit row and events."""
    by_target: dict[LifecycleStage, list[Move]] = {}
    for move in moves:
        if move.to is not move.contact.lifecycle_stage:
            by_target.setdefault(move.to, []).append(move)
    now = utcnow()
    for target, group in by_target.items():
        written = await session.execute(
            update(Contact)
            .where(
                Contact.organization_id == group[0].contact.organization_id,
                Contact.id.in_([move.contact.id for move in group]),
            )
            .values(lifecycle_stage=target, version=Contact.version + 1, updated_at=now)
            .returning(Contact.id, Contact.version)
            .execution_options(synchronize_session=False)
        )
        versions = dict(written.all())
        for move in group:
            contact, before = move.contact, move.contact.lifecycle_stage
            # The row was written above; the object (new and unflushed, or loaded) is told so.
            set_committed_value(contact, "lifecycle_stage", target)
            set_committed_value(contact, "version", versions[contact.id])
            set_committed_value(contact, "updated_at", now)
            _history(session, contact, before, target, move.reason, actor)
            changes: audit.Changes = {
                "lifecycle_stage": {"before": before.value, "after": target.value},
                "lifecycle_rule": {"before": None, "after": move.reason},
            }
            audit.record_as(
                session,
                actor,
                organization_id=contact.organization_id,
                action=AuditAction.update,
                entity_type=contacts.CONTACTS.label,
                entity_id=contact.id,
                changes=changes,
            )
            records.emit_event_as(session, actor, contacts.CONTACTS, contact, "updated", changes=changes)


def _score_target(contact: Contact, rules: dict[str, Any]) -> LifecycleStage | None:
    if contact.lifecycle_stage not in _SCORED or contact.lead_score is None:
        return None
    if rules.get("sql_score") is not None and contact.lead_score >= rules["sql_score"]:
        return LifecycleStage.sales_qualified
    if (
        rules.get("mql_score") is not None
        and contact.lead_score >= rules["mql_score"]
        and contact.lifecycle_stage is not LifecycleStage.marketing_qualified
    ):
        return LifecycleStage.marketing_qualified
    return None


async def after_scoring(session: AsyncSession, principal: Principal, scored: Sequence[Contact]) -> None:
    """Contacts just (re)scored whose score qualifies them move up (same transaction)."""
    candidates = [contact for contact in scored if contact.lifecycle_stage in _SCORED]
    if not candidates:
        return
    # A read: what is pending (the change's audit row) goes out with the next write, not now.
    with session.no_autoflush:
        rules = await rules_for(session, principal.organization_id)
    moves = [Move(contact, target, "score") for contact in candidates if (target := _score_target(contact, rules))]
    await apply(session, moves, events.Actor.of(principal))


async def qualify_by_score(sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID) -> int:
    """After a full rescore: every contact whose score now qualifies it moves up."""
    async with sessions() as session, session.begin():
        return await _qualify(session, organization_id)


async def _qualify(session: AsyncSession, organization_id: uuid.UUID) -> int:
    rules = await rules_for(session, organization_id)
    thresholds = [rules[key] for key in ("mql_score", "sql_score") if rules.get(key) is not None]
    if not thresholds:
        return 0
    s = LeadScore.__table__.c
    statement = (
        select(Contact)
        .join(LeadScore, (s.organization_id == Contact.organization_id) & (s.contact_id == Contact.id))
        .where(
            Contact.organization_id == organization_id,
            Contact.lifecycle_stage.in_(_SCORED),
            Contact.archived_at.is_(None),
            s.score >= min(thresholds),
        )
    )
    found = list((await session.scalars(statement)).all())
    moves = [Move(contact, target, "score") for contact in found if (target := _score_target(contact, rules))]
    await apply(session, moves, events.SYSTEM)
    return len(moves)


async def after_order_paid(session: AsyncSession, principal: Principal, order: Order) -> None:
    """The order's contact, by its paid orders: customer, repeat customer or loyal."""
    if order.contact_id is None:
        return
    contact = await session.get(Contact, (order.organization_id, order.contact_id))
    if contact is None or contact.archived_at is not None:
        return
    rules = await rules_for(session, order.organization_id)
    currency = await organizations.default_currency(session, order.organization_id)
    # Spend adds up only the orders in the organisation's currency: no conversion is guessed.
    in_currency = case((Order.currency == currency, Order.total), else_=0)
    count, spend = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(in_currency), 0)).where(
                Order.organization_id == order.organization_id,
                Order.contact_id == contact.id,
                Order.status == OrderStatus.paid,
            )
        )
    ).one()
    loyal = (rules.get("loyal_orders") is not None and count >= rules["loyal_orders"]) or (
        rules.get("loyal_spend") is not None and Decimal(spend) >= Decimal(str(rules["loyal_spend"]))
    )
    target, reason = (
        (LifecycleStage.loyal, "loyal")
        if loyal
        else (LifecycleStage.repeat_customer, "repeat_order")
        if count >= 2
        else (LifecycleStage.customer, "first_order")
    )
    current = contact.lifecycle_stage
    if current is LifecycleStage.churned or _rank(target) > _rank(current):
        await apply(session, [Move(contact, target, reason)], events.Actor.of(principal))


async def churn_inactive(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Customers without an order or an activity for their organisation's `churn_days` are
    churned: a daily job, safe to run twice (a churned contact is not a customer any more)."""
    moved = 0
    async with sessions() as session, session.begin():
        organizations = list(await session.scalars(select(Organization.id)))
        for organization_id in organizations:
            rules = await rules_for(session, organization_id)
            if rules.get("churn_days") is None:
                continue
            since = utcnow() - timedelta(days=int(rules["churn_days"]))
            recent_order = select(Order.id).where(
                Order.organization_id == Contact.organization_id,
                Order.contact_id == Contact.id,
                Order.created_at >= since,
            )
            recent_activity = select(ContactActivity.id).where(
                ContactActivity.organization_id == Contact.organization_id,
                ContactActivity.contact_id == Contact.id,
                ContactActivity.occurred_at >= since,
            )
            statement = select(Contact).where(
                Contact.organization_id == organization_id,
                Contact.lifecycle_stage.in_(_BUYERS),
                Contact.archived_at.is_(None),
                and_(Contact.created_at < since, ~recent_order.exists(), ~recent_activity.exists()),
            )
            found = list((await session.scalars(statement.with_for_update(skip_locked=True))).all())
            await apply(session, [Move(c, LifecycleStage.churned, "inactivity") for c in found], events.SYSTEM)
            moved += len(found)
    return moved


async def history(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Page[LifecycleChange]:
    """The contact's lifecycle changes, newest first."""
    await contacts.CONTACTS.repository(session, principal).get(contact_id)
    changes = TenantRepository(LifecycleChange, session, principal, label="lifecycle change")
    statement = changes.scoped().where(LifecycleChange.contact_id == contact_id)
    return await changes.page(
        statement, Keyset.of([], LifecycleChange.id, id_descending=True), cursor=cursor, limit=limit
    )

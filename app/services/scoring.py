"""Lead scoring: fit rules (a filter-DSL condition on the contact → points) and behaviour rules
(activities of a kind → points each, halved every `half_life_days`), summed into `lead_score`,
graded A–D by the organisation's thresholds.

One SQL statement computes scores for any set of contacts, from one to all of them: a write to
a contact rescores it in the same transaction, and a rule change rescores everyone in a job.
Because both paths run the same statement, a contact's score never depends on how it was
computed. Scores are kept in `lead_scores` (see app/models/scoring.py for why not on contacts).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, Integer, Select, and_, case, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from app.core import audit, jobs
from app.core.db import any_of, for_bulk_work, lock_for_transaction
from app.core.enums import AuditAction, LifecycleStage, ScoringRuleKind
from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import get_settings
from app.models.base import utcnow
from app.models.contact import Contact
from app.models.organization import Organization
from app.models.scoring import ContactActivity, LeadScore, ScoringRule
from app.schemas.scoring import ActivityCreate, ScoringRuleCreate, ScoringRuleUpdate, check_shape
from app.services import contacts, filters, organizations, records

RESCORE_JOB: Final = "rescore_organization"
# A rescore of a million contacts takes seconds; the job's own timeout is longer still.
RESCORE_TIMEOUT_SECONDS: Final = 540
# Organisations with fewer contacts are rescored on one connection.
PARTITION_FROM: Final = 100_000
MAX_RULES: Final = 200
DEFAULT_THRESHOLDS: Final = {"A": 80, "B": 50, "C": 20}
GRADES: Final = ("A", "B", "C")
LEAD_STAGES: Final = (LifecycleStage.lead, LifecycleStage.marketing_qualified, LifecycleStage.sales_qualified)


def _rules(session: AsyncSession, principal: Principal) -> TenantRepository[ScoringRule]:
    return TenantRepository(ScoringRule, session, principal, label="scoring rule")


async def _active_rules(session: AsyncSession, organization_id: uuid.UUID) -> list[ScoringRule]:
    statement = (
        select(ScoringRule)
        .where(ScoringRule.organization_id == organization_id, ScoringRule.active)
        .order_by(ScoringRule.id)
    )
    return list((await session.scalars(statement)).all())


async def thresholds(session: AsyncSession, organization_id: uuid.UUID) -> dict[str, int]:
    stored = (await organizations.sales_settings(session, organization_id)).lead_grade_thresholds
    return dict(stored or DEFAULT_THRESHOLDS)


def _grade(score: ColumnElement[int], limits: dict[str, int]) -> ColumnElement[str]:
    return case(*((score >= limits[grade], grade) for grade in GRADES), else_=literal("D"))


def _activity_matches(rule: ScoringRule) -> ColumnElement[bool]:
    a = ContactActivity.__table__.c
    conditions = [a.signal == rule.signal]
    if rule.channel is not None:
        conditions.append(a.channel == rule.channel)
    if rule.outcome is not None:
        conditions.append(a.outcome == rule.outcome)
    return and_(*conditions)


def _activity_points(rule: ScoringRule, now: datetime) -> ColumnElement[Any]:
    """What one matching activity is worth now: the points, halved per half-life of age (an
    activity dated in the future counts as today's)."""
    if rule.half_life_days is None:
        return literal(rule.points)
    a = ContactActivity.__table__.c
    age_days = func.greatest(func.extract("epoch", literal(now) - a.occurred_at) / 86400, 0)
    return rule.points * func.power(0.5, age_days / float(rule.half_life_days))


@dataclass(frozen=True, slots=True)
class IdRange:
    """Contacts with ids from `low` (included) to `high` (excluded); None is open."""

    low: uuid.UUID | None = None
    high: uuid.UUID | None = None

    def where(self, column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
        bounds = []
        if self.low is not None:
            bounds.append(column >= self.low)
        if self.high is not None:
            bounds.append(column < self.high)
        return bounds


def _score_source(
    organization_id: uuid.UUID,
    rules: Sequence[ScoringRule],
    conditions: dict[uuid.UUID, ColumnElement[bool]],
    limits: dict[str, int],
    now: datetime,
    contact_ids: Sequence[uuid.UUID] | None,
    id_range: IdRange,
) -> Select[Any]:
    """(organization_id, contact_id, score, grade, scored_at) for the contacts: those listed, or
    when `contact_ids` is None, the organisation's in `id_range`."""
    c = Contact.__table__.c
    fit: ColumnElement[Any] = literal(0)
    for rule in rules:
        if rule.kind is ScoringRuleKind.fit:
            fit = fit + case((conditions[rule.id], rule.points), else_=0)
    behaviour_rules = [rule for rule in rules if rule.kind is ScoringRuleKind.behaviour]
    base = select(c.organization_id, c.id.label("contact_id")).where(c.organization_id == organization_id)
    base = base.where(any_of(c.id, contact_ids)) if contact_ids is not None else base.where(*id_range.where(c.id))
    points: ColumnElement[Any] = fit
    if behaviour_rules:
        a = ContactActivity.__table__.c
        earned: ColumnElement[Any] = literal(0)
        for rule in behaviour_rules:
            earned = earned + case((_activity_matches(rule), _activity_points(rule, now)), else_=0)
        behaviour = (
            select(a.contact_id, func.sum(earned).label("points"))
            .where(a.organization_id == organization_id, a.signal.in_({rule.signal for rule in behaviour_rules}))
            .group_by(a.contact_id)
        )
        if contact_ids is not None:
            behaviour = behaviour.where(any_of(a.contact_id, contact_ids))
        else:
            behaviour = behaviour.where(*id_range.where(a.contact_id))
        earned_by = behaviour.subquery("behaviour")
        base = base.outerjoin(earned_by, earned_by.c.contact_id == c.id)
        points = fit + func.coalesce(earned_by.c.points, 0)
    scored = base.add_columns(cast(func.round(points), Integer).label("score")).subquery("scored")
    return select(
        scored.c.organization_id,
        scored.c.contact_id,
        scored.c.score,
        _grade(scored.c.score, limits).label("grade"),
        literal(now).label("scored_at"),
    )


async def _conditions(
    session: AsyncSession, organization_id: uuid.UUID, rules: Sequence[ScoringRule]
) -> dict[uuid.UUID, ColumnElement[bool]]:
    registry = await records.organization_registry(session, organization_id, contacts.CONTACTS)
    compiled: dict[uuid.UUID, ColumnElement[bool]] = {}
    for rule in rules:
        if rule.kind is ScoringRuleKind.fit and rule.condition is not None:
            compiled[rule.id] = filters.to_sql(filters.parse(rule.condition, registry, loc=("rule", str(rule.id))))
    return compiled


async def score(
    session: AsyncSession,
    organization_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID] | None = None,
    *,
    id_range: IdRange = IdRange(),
) -> dict[uuid.UUID, tuple[int, str]]:
    """Computes and stores the scores of these contacts (when None, of every contact in
    `id_range`); returns the scores it wrote, which for a given list is every one of them."""
    if contact_ids is not None and not contact_ids:
        return {}
    rules = await _active_rules(session, organization_id)
    conditions = await _conditions(session, organization_id, rules)
    limits = await thresholds(session, organization_id)
    source = _score_source(organization_id, rules, conditions, limits, utcnow(), contact_ids, id_range)
    statement = insert(LeadScore).from_select(["organization_id", "contact_id", "score", "grade", "scored_at"], source)
    excluded = statement.excluded
    changed = None
    if contact_ids is None:
        # A full rescore writes only what changed: most scores do not move when one rule does.
        changed = (LeadScore.score != excluded.score) | (LeadScore.grade != excluded.grade)
    upsert = statement.on_conflict_do_update(
        index_elements=["organization_id", "contact_id"],
        set_={"score": excluded.score, "grade": excluded.grade, "scored_at": excluded.scored_at},
        where=changed,
    )
    if contact_ids is None:
        await session.execute(upsert)
        return {}
    rows = await session.execute(upsert.returning(LeadScore.contact_id, LeadScore.score, LeadScore.grade))
    return {contact_id: (points, grade) for contact_id, points, grade in rows}


async def refresh_contacts(session: AsyncSession, principal: Principal, written: Sequence[Contact]) -> None:
    """After contacts were written (and flushed): their scores, stored, and shown on them."""
    scores = await score(session, principal.organization_id, [contact.id for contact in written])
    for contact in written:
        points, grade = scores.get(contact.id, (0, "D"))
        set_committed_value(contact, "lead_score", points)
        set_committed_value(contact, "lead_grade", grade)


def request_rescore(session: AsyncSession, principal: Principal) -> None:
    """Marks the organisation's scores stale and asks a job to recompute them after the commit.
    The mark is in the database, so a lost job is found by the sweep."""
    jobs.enqueue_after_commit(session, RESCORE_JOB, str(principal.organization_id))


async def mark_stale(session: AsyncSession, principal: Principal) -> None:
    await session.execute(
        update(Organization)
        .where(Organization.id == principal.organization_id)
        .values(rescore_requested_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    request_rescore(session, principal)


async def _partition(session: AsyncSession, organization_id: uuid.UUID, parts: int) -> list[IdRange]:
    """Ranges of about the same number of the organisation's contacts (one below PARTITION_FROM)."""
    count = await session.scalar(
        select(func.count()).select_from(Contact).where(Contact.organization_id == organization_id)
    )
    if parts <= 1 or (count or 0) < PARTITION_FROM:
        return [IdRange()]
    bounds: list[uuid.UUID | None] = [None]
    for part in range(1, parts):
        bounds.append(
            await session.scalar(
                select(Contact.id)
                .where(Contact.organization_id == organization_id)
                .order_by(Contact.id)
                .offset((count or 0) * part // parts)
                .limit(1)
            )
        )
    bounds.append(None)
    return [IdRange(low, high) for low, high in itertools.pairwise(bounds)]


async def _score_part(sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, part: IdRange) -> None:
    async with sessions() as session, session.begin():
        await for_bulk_work(session, timeout_seconds=RESCORE_TIMEOUT_SECONDS)
        await score(session, organization_id, id_range=part)


async def rescore_organization(
    sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, *, parallelism: int | None = None
) -> bool:
    """Every contact's score recomputed, if the organisation's scores are marked stale; the mark
    is cleared only if no rule changed meanwhile (else the next run picks up the newer rules).

    A large organisation's contacts are split into id ranges scored at once on their own
    connections (a score is derived data: readers may see some ranges done before others).
    Runs at once for one organisation (arq may) queue on a lock held by the run, and the second
    finds nothing to do. False when there was nothing to do."""
    async with sessions() as session, session.begin():
        await lock_for_transaction(session, "rescore", str(organization_id))
        requested = await session.scalar(
            select(Organization.rescore_requested_at).where(Organization.id == organization_id)
        )
        if requested is None:
            return False
        parallelism = parallelism or get_settings().scoring_rescore_parallelism
        parts = await _partition(session, organization_id, parallelism)
        await asyncio.gather(*(_score_part(sessions, organization_id, part) for part in parts))
        await session.execute(
            update(Organization)
            .where(Organization.id == organization_id, Organization.rescore_requested_at == requested)
            .values(rescore_requested_at=None)
            .execution_options(synchronize_session=False)
        )
        return True


async def mark_decaying_stale(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    """Organisations whose scores change with time alone (a decaying behaviour rule), marked
    stale so the sweep rescores them."""
    async with sessions() as session, session.begin():
        statement = (
            select(ScoringRule.organization_id)
            .where(ScoringRule.active, ScoringRule.half_life_days.is_not(None))
            .distinct()
        )
        decaying = list(await session.scalars(statement))
        if decaying:
            await session.execute(
                update(Organization)
                .where(Organization.id.in_(decaying), Organization.rescore_requested_at.is_(None))
                .values(rescore_requested_at=utcnow())
            )
        return decaying


async def stale_organizations(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessions() as session:
        stale = select(Organization.id).where(Organization.rescore_requested_at.is_not(None))
        return list(await session.scalars(stale))


async def _validated(
    session: AsyncSession, principal: Principal, kind: ScoringRuleKind, values: dict[str, Any]
) -> None:
    try:
        check_shape(kind, values)
    except ValueError as exc:
        raise ValidationFailed(FieldError(("body",), str(exc))) from exc
    if values.get("condition") is not None:
        registry = await records.field_registry(session, principal, contacts.CONTACTS)
        filters.parse(values["condition"], registry, loc=("body", "condition"))


def _audit(
    session: AsyncSession, principal: Principal, rule: ScoringRule, action: AuditAction, changes: audit.Changes
) -> None:
    audit.record(session, principal, action=action, entity_type="scoring_rule", entity_id=rule.id, changes=changes)


async def create_rule(session: AsyncSession, principal: Principal, *, data: ScoringRuleCreate) -> ScoringRule:
    count = await session.scalar(
        select(func.count()).select_from(ScoringRule).where(ScoringRule.organization_id == principal.organization_id)
    )
    if (count or 0) >= MAX_RULES:
        raise ValidationFailed(FieldError(("body",), f"an organisation has at most {MAX_RULES} scoring rules"))
    await _validated(session, principal, data.kind, data.model_dump())
    rule = ScoringRule(organization_id=principal.organization_id, **data.model_dump())
    session.add(rule)
    await session.flush()
    _audit(session, principal, rule, AuditAction.create, audit.creation(audit.snapshot(rule)))
    await mark_stale(session, principal)
    return rule


async def get_rule(session: AsyncSession, principal: Principal, rule_id: uuid.UUID) -> ScoringRule:
    return await _rules(session, principal).get(rule_id)


async def list_rules(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> Page[ScoringRule]:
    repository = _rules(session, principal)
    return await repository.page(repository.scoped(), Keyset.of([], ScoringRule.id), cursor=cursor, limit=limit)


async def update_rule(
    session: AsyncSession,
    principal: Principal,
    rule_id: uuid.UUID,
    *,
    data: ScoringRuleUpdate,
    expected_version: int | None,
) -> ScoringRule:
    rule = await _rules(session, principal).locked(rule_id, expected_version=expected_version)
    before = audit.snapshot(rule)
    changes = data.changes()
    await _validated(session, principal, rule.kind, {name: getattr(rule, name) for name in before} | changes)
    for name, value in changes.items():
        setattr(rule, name, value)
    if delta := audit.diff(before, audit.snapshot(rule)):
        await session.flush()
        _audit(session, principal, rule, AuditAction.update, delta)
        await mark_stale(session, principal)
    return rule


async def delete_rule(
    session: AsyncSession, principal: Principal, rule_id: uuid.UUID, *, expected_version: int | None
) -> None:
    rule = await _rules(session, principal).locked(rule_id, expected_version=expected_version)
    _audit(session, principal, rule, AuditAction.delete, {"name": {"before": rule.name, "after": None}})
    await session.delete(rule)
    await session.flush()
    await mark_stale(session, principal)


async def record_activity(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, data: ActivityCreate
) -> ContactActivity:
    """An activity of a contact the caller may see, and the contact's new score."""
    contact = await contacts.CONTACTS.repository(session, principal).get(contact_id)
    if contact.merged_into_id is not None:
        raise Conflict(f"The contact was merged into {contact.merged_into_id}: record the activity there")
    now = utcnow()
    if data.occurred_at is not None and data.occurred_at > now:
        raise ValidationFailed(FieldError(("body", "occurred_at"), "is in the future"))
    activity = ContactActivity(
        organization_id=principal.organization_id,
        contact_id=contact.id,
        signal=data.signal,
        channel=data.channel,
        outcome=data.outcome,
        occurred_at=data.occurred_at or now,
    )
    session.add(activity)
    await session.flush()
    await score(session, principal.organization_id, [contact.id])
    return activity


async def list_activities(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Page[ContactActivity]:
    """The contact's activities, newest first."""
    await contacts.CONTACTS.repository(session, principal).get(contact_id)
    activities = TenantRepository(ContactActivity, session, principal, label="activity")
    statement = activities.scoped().where(ContactActivity.contact_id == contact_id)
    return await activities.page(
        statement, Keyset.of([], ContactActivity.id, id_descending=True), cursor=cursor, limit=limit
    )


async def explain(session: AsyncSession, principal: Principal, contact_id: uuid.UUID) -> dict[str, Any]:
    """The contact's score, rule by rule, computed now with the rules as they are."""
    contact = await contacts.CONTACTS.repository(session, principal).get(contact_id)
    rules = await _active_rules(session, principal.organization_id)
    conditions = await _conditions(session, principal.organization_id, rules)
    limits = await thresholds(session, principal.organization_id)
    now = utcnow()
    c = Contact.__table__.c
    fit_rules = [rule for rule in rules if rule.kind is ScoringRuleKind.fit]
    fit: list[dict[str, Any]] = []
    if fit_rules:
        row = (
            await session.execute(
                select(*(conditions[rule.id] for rule in fit_rules)).where(
                    c.organization_id == principal.organization_id, c.id == contact.id
                )
            )
        ).one()
        fit = [
            {"rule_id": rule.id, "name": rule.name, "matched": bool(matched), "points": rule.points if matched else 0}
            for rule, matched in zip(fit_rules, row, strict=True)
        ]
    a = ContactActivity.__table__.c
    behaviour: list[dict[str, Any]] = []
    for rule in (rule for rule in rules if rule.kind is ScoringRuleKind.behaviour):
        count, points = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(_activity_points(rule, now)), 0)).where(
                    a.organization_id == principal.organization_id, a.contact_id == contact.id, _activity_matches(rule)
                )
            )
        ).one()
        behaviour.append(
            {
                "rule_id": rule.id,
                "name": rule.name,
                "activities": count,
                "points": Decimal(str(points)).quantize(Decimal("0.01")),
            }
        )
    total = sum(item["points"] for item in fit) + sum(item["points"] for item in behaviour)
    points_now = int(Decimal(total).quantize(Decimal(1)))
    stored = await session.get(LeadScore, (principal.organization_id, contact.id))
    return {
        "contact_id": contact.id,
        "score": points_now,
        "grade": next((grade for grade in GRADES if points_now >= limits[grade]), "D"),
        "thresholds": limits,
        "fit": fit,
        "behaviour": behaviour,
        "scored_at": stored.scored_at if stored else None,
    }


async def lead_queue(
    session: AsyncSession,
    principal: Principal,
    *,
    owner_id: uuid.UUID | None,
    unassigned: bool,
    grade: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Contact]:
    """Contacts not yet opportunities (lead, and marketing or sales qualified: score rules move
    the best leads there), best first: by grade, then score (the priority queue)."""
    repository = contacts.CONTACTS.repository(session, principal)
    s = LeadScore.__table__.c
    statement = (
        repository.scoped()
        .join(LeadScore, (s.organization_id == Contact.organization_id) & (s.contact_id == Contact.id))
        .where(Contact.lifecycle_stage.in_(LEAD_STAGES), Contact.archived_at.is_(None))
    )
    if owner_id is not None:
        statement = statement.where(Contact.owner_id == owner_id)
    if unassigned:
        statement = statement.where(Contact.owner_id.is_(None))
    if grade is not None:
        statement = statement.where(s.grade == grade)
    keys = [
        SortKey("grade", s.grade, ValueKind.text, nullable=False),
        SortKey("score", s.score, ValueKind.integer, descending=True, nullable=False),
    ]
    return await repository.page(statement, Keyset.of(keys, Contact.__table__.c.id), cursor=cursor, limit=limit)

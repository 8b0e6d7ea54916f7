"""Assignment: who a new contact goes to, by ordered rules (a filter-DSL condition and a strategy).

A contact created without an `owner_id` (by the API, a batch or an import) is offered to the
active rules in priority order; the first whose condition matches and that has someone available
(active, not out of office) sets the owner. Rules that keep state (round-robin turns, loads) are
locked for the transaction, all of them and in one order, so parallel creates take turns exactly
and cannot deadlock. The turn is kept off the rule's version: handing out contacts is not an edit
of the rule. Once the contacts are written, each assignment gets its audit row, a
`contact.assigned` event and a follow-up task for the assignee.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy import (
    ARRAY,
    JSON,
    ScalarSelect,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.core import audit
from app.core.db import transaction_cache
from app.core.enums import AssignmentStrategy, AuditAction
from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.assignment import AssignmentRule
from app.models.base import utcnow
from app.models.contact import Contact
from app.models.organization import Team, TeamMember, User
from app.models.owner_load import OwnerLoad
from app.schemas.assignment import AssignmentRuleCreate, AssignmentRuleUpdate
from app.services import contacts, filters, records, tasks

MAX_RULES: Final = 100
_STATE_KEY: Final = "assignment"


def away(starts: date | None, ends: date | None, today: date) -> bool:
    """Out of office today: both days included, an open end meaning until further notice."""
    if starts is None and ends is None:
        return False
    return (starts or date.min) <= today <= (ends or date.max)


@dataclass
class _State:
    """A transaction's view of the rules: loaded (and locked) once, turns and loads kept in memory."""

    rules: list[AssignmentRule]
    conditions: dict[uuid.UUID, filters.Node | None]
    territory_specs: dict[uuid.UUID, filters.FieldSpec]
    members: dict[uuid.UUID, list[uuid.UUID]]
    available: set[uuid.UUID]
    loads: dict[uuid.UUID, dict[uuid.UUID, int]] = field(default_factory=dict)
    turns: dict[uuid.UUID, int] = field(default_factory=dict)
    # id(contact) → (contact, rule): assigned, to be announced once written.
    pending: dict[int, tuple[Contact, AssignmentRule]] = field(default_factory=dict)


def _rule_targets() -> tuple[ScalarSelect[Any], ScalarSelect[Any]]:
    """Per rule, read with it (one statement for a create under rules): its teams' members as JSON
    `[team_id, user_id]` ordered by team and user, and the users it may hand contacts to (its
    user, its territory's users, those members) as JSON `[user_id, is_active, away_from,
    away_until]`. Both are index lookups by the rule's few target ids (`= ANY`), so many rules in a
    large organisation cost their targets, not the organisation's users."""
    territory = func.jsonb_each(AssignmentRule.territory_map).table_valued("value")

    def targets(own: Any, key: str) -> Any:
        in_territory = select(func.array_agg(cast(territory.c.value.op("->>")(key), Uuid))).scalar_subquery()
        return func.array_append(func.coalesce(in_territory, cast(literal("{}"), ARRAY(Uuid))), own)

    in_teams = and_(
        TeamMember.organization_id == AssignmentRule.organization_id,
        TeamMember.team_id == any_(targets(AssignmentRule.team_id, "team_id")),
    )
    membership = aggregate_order_by(
        func.json_build_array(TeamMember.team_id, TeamMember.user_id), TeamMember.team_id, TeamMember.user_id
    )
    members = select(func.json_agg(membership, type_=JSON)).where(in_teams).correlate(AssignmentRule)
    member_ids = select(func.array_agg(TeamMember.user_id)).where(in_teams).correlate(AssignmentRule)
    user_ids = func.array_cat(targets(AssignmentRule.user_id, "user_id"), member_ids.scalar_subquery())
    person = func.json_build_array(User.id, User.is_active, User.out_of_office_from, User.out_of_office_until)
    people = (
        select(func.json_agg(person, type_=JSON))
        .where(User.organization_id == AssignmentRule.organization_id, User.id == any_(user_ids))
        .correlate(AssignmentRule)
    )
    return members.scalar_subquery(), people.scalar_subquery()


# Every active rule, locked in one order: turns and loads are taken one transaction at a time,
# each reading what the previous one committed. Built once: a create pays for no statement
# building. The people come from the statement's snapshot (a user going out of office while a
# create waits for the lock is seen by the next create).
_MEMBERS, _PEOPLE = _rule_targets()
_RULES_AND_PEOPLE: Final = (
    select(AssignmentRule, _MEMBERS.label("members"), _PEOPLE.label("people"))
    .where(AssignmentRule.organization_id == bindparam("organization_id"), AssignmentRule.active)
    .order_by(AssignmentRule.priority, AssignmentRule.id)
    .with_for_update(of=AssignmentRule)
    .execution_options(populate_existing=True)
)


def _optional_day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


async def _state(session: AsyncSession, principal: Principal) -> _State:
    cache = transaction_cache(session, _STATE_KEY)
    if (state := cache.get(principal.organization_id)) is not None:
        return state  # type: ignore[no-any-return]
    rows = (await session.execute(_RULES_AND_PEOPLE, {"organization_id": principal.organization_id})).all()
    state = cache[principal.organization_id] = _State(
        rules=[], conditions={}, territory_specs={}, members={}, available=set()
    )
    if not rows:
        return state
    registry = await records.organization_registry(session, principal.organization_id, contacts.CONTACTS)
    today = utcnow().date()
    for rule, members, people in rows:
        try:
            state.conditions[rule.id] = filters.parse(rule.condition, registry) if rule.condition is not None else None
            if rule.strategy is AssignmentStrategy.territory:
                state.territory_specs[rule.id] = registry.get(rule.territory_field or "", ("rule", "territory_field"))
        except ValidationFailed:
            # The condition names a custom field deleted since: the rule cannot match anyone.
            continue
        state.rules.append(rule)
        state.turns[rule.id] = rule.turn
        teams: dict[uuid.UUID, list[uuid.UUID]] = {}
        for team_id, user_id in members or ():
            teams.setdefault(uuid.UUID(team_id), []).append(uuid.UUID(user_id))
        # Each rule reads its teams' whole membership: a team two rules share is the same list.
        for team_id, team in teams.items():
            state.members.setdefault(team_id, team)
        for user_id, is_active, away_from, away_until in people or ():
            if is_active and not away(_optional_day(away_from), _optional_day(away_until), today):
                state.available.add(uuid.UUID(user_id))
    return state


_LOADS: Final = {
    measure: select(OwnerLoad.user_id, counter).where(
        OwnerLoad.organization_id == bindparam("organization_id"),
        OwnerLoad.user_id.in_(bindparam("candidates", expanding=True)),
    )
    for measure, counter in (("leads", OwnerLoad.open_leads), ("deals", OwnerLoad.open_deals))
}


async def _loads(
    session: AsyncSession, principal: Principal, state: _State, rule: AssignmentRule, candidates: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Open leads (or open deals) per candidate, read once per transaction from the counters the
    database keeps (`owner_loads`, exact as of this transaction's last statement)."""
    if rule.id in state.loads:
        return state.loads[rule.id]
    parameters = {"organization_id": principal.organization_id, "candidates": candidates}
    counted: dict[uuid.UUID, int] = dict((await session.execute(_LOADS[rule.load_measure], parameters)).all())
    state.loads[rule.id] = {user: counted.get(user, 0) for user in candidates}
    return state.loads[rule.id]


def _next_in_turn(state: _State, rule: AssignmentRule, candidates: list[uuid.UUID]) -> uuid.UUID:
    turn = state.turns[rule.id]
    state.turns[rule.id] = turn + 1
    return candidates[turn % len(candidates)]


async def _pick(
    session: AsyncSession, principal: Principal, state: _State, rule: AssignmentRule, contact: Contact
) -> uuid.UUID | None:
    def team(team_id: uuid.UUID | None) -> list[uuid.UUID]:
        return [user for user in state.members.get(team_id, []) if user in state.available] if team_id else []

    match rule.strategy:
        case AssignmentStrategy.fixed_user:
            return rule.user_id if rule.user_id in state.available else None
        case AssignmentStrategy.round_robin:
            candidates = team(rule.team_id)
            return _next_in_turn(state, rule, candidates) if candidates else None
        case AssignmentStrategy.least_loaded:
            candidates = team(rule.team_id)
            team_members = state.members.get(rule.team_id, []) if rule.team_id else []
            if not candidates:
                return None
            loads = await _loads(session, principal, state, rule, team_members)
            least = min(loads[user] for user in candidates)
            chosen = _next_in_turn(state, rule, [user for user in candidates if loads[user] == least])
            loads[chosen] += 1
            return chosen
        case AssignmentStrategy.territory:
            value = state.territory_specs[rule.id].read(contact)
            target = rule.territory_map.get(str(value)) if value is not None else None
            if not target:
                return None
            if target.get("user_id"):
                user = uuid.UUID(str(target["user_id"]))
                return user if user in state.available else None
            candidates = team(uuid.UUID(str(target["team_id"])))
            return _next_in_turn(state, rule, candidates) if candidates else None


async def _choose(
    session: AsyncSession, principal: Principal, state: _State, contact: Contact
) -> tuple[AssignmentRule, uuid.UUID] | None:
    for rule in state.rules:
        condition = state.conditions[rule.id]
        if condition is not None and not filters.matches(condition, contact):
            continue
        if (owner := await _pick(session, principal, state, rule, contact)) is not None:
            return rule, owner
    return None


async def assign_new(session: AsyncSession, principal: Principal, contact: Contact) -> None:
    """Sets a new contact's owner by the rules (before it is written); announced by `announce`."""
    state = await _state(session, principal)
    if not state.rules:
        return
    if (chosen := await _choose(session, principal, state, contact)) is not None:
        rule, owner = chosen
        contact.owner_id = owner
        state.pending[id(contact)] = (contact, rule)


_ADVANCE_TURN: Final = (
    update(AssignmentRule)
    .where(AssignmentRule.organization_id == bindparam("tenant"), AssignmentRule.id == bindparam("rule_id"))
    # Not an edit of the rule: its updated_at stays as its version does.
    .values(turn=bindparam("next_turn"), updated_at=AssignmentRule.updated_at)
    .execution_options(synchronize_session=False)
)


async def _save_turns(session: AsyncSession, principal: Principal, state: _State) -> None:
    for rule in state.rules:
        if state.turns[rule.id] != rule.turn:
            parameters = {"tenant": principal.organization_id, "rule_id": rule.id}
            await session.execute(_ADVANCE_TURN, parameters | {"next_turn": state.turns[rule.id]})
            set_committed_value(rule, "turn", state.turns[rule.id])


async def _follow_up(
    session: AsyncSession, principal: Principal, contact: Contact, rule: AssignmentRule
) -> uuid.UUID | None:
    if rule.follow_up_hours is None or contact.owner_id is None:
        return None
    name = " ".join(part for part in (contact.last_name, contact.first_name) if part) or contact.email or "新线索"
    task = await tasks.add_follow_up(
        session,
        principal,
        assignee_id=contact.owner_id,
        contact_id=contact.id,
        title=f"跟进：{name}",
        due_at=utcnow() + timedelta(hours=rule.follow_up_hours),
    )
    return task.id


async def announce(session: AsyncSession, principal: Principal, written: Sequence[Contact]) -> None:
    """For the contacts just written that a rule assigned: the turns taken, an audit row, a
    `contact.assigned` event and a follow-up task each."""
    state = transaction_cache(session, _STATE_KEY).get(principal.organization_id)
    if state is None or not state.pending:
        return
    for contact in written:
        if (assigned := state.pending.pop(id(contact), None)) is None:
            continue
        _, rule = assigned
        audit.record(
            session,
            principal,
            action=AuditAction.update,
            entity_type=contacts.CONTACTS.label,
            entity_id=contact.id,
            changes={
                "owner_id": {"before": None, "after": str(contact.owner_id)},
                "assigned_by_rule": {"before": None, "after": str(rule.id)},
            },
        )
        records.emit_event(session, principal, contacts.CONTACTS, contact, "assigned")
        await _follow_up(session, principal, contact, rule)
    # Last: its statement flushes the audit rows and tasks above together, in one round trip each.
    await _save_turns(session, principal, state)


async def assign_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, expected_version: int | None
) -> tuple[Contact, AssignmentRule, uuid.UUID | None]:
    """Assigns an existing contact by the rules now, whoever owns it; 409 when no rule can."""
    contact = await records.editable(
        session, principal, contacts.CONTACTS, contact_id, expected_version=expected_version
    )
    state = await _state(session, principal)
    chosen = await _choose(session, principal, state, contact)
    if chosen is None:
        raise Conflict("No active assignment rule matches this contact with someone available")
    rule, owner = chosen
    await _save_turns(session, principal, state)
    if owner == contact.owner_id:
        return contact, rule, None
    before = audit.snapshot(contact)
    contact.owner_id = owner
    await records.updated(session, principal, contacts.CONTACTS, contact, before=before)
    return contact, rule, await _follow_up(session, principal, contact, rule)


def _rules(session: AsyncSession, principal: Principal) -> TenantRepository[AssignmentRule]:
    return TenantRepository(AssignmentRule, session, principal, label="assignment rule")


async def _validated(session: AsyncSession, principal: Principal, values: dict[str, Any]) -> None:
    """The strategy has what it needs, the users and teams exist, the condition and field parse."""
    strategy = AssignmentStrategy(values["strategy"])
    errors: list[FieldError] = []
    needs = {
        AssignmentStrategy.fixed_user: "user_id",
        AssignmentStrategy.round_robin: "team_id",
        AssignmentStrategy.least_loaded: "team_id",
        AssignmentStrategy.territory: "territory_field",
    }[strategy]
    if not values.get(needs):
        errors.append(FieldError(("body", needs), f"a {strategy.value} rule needs it"))
    if strategy is AssignmentStrategy.territory and not values.get("territory_map"):
        errors.append(FieldError(("body", "territory_map"), "a territory rule needs at least one value"))
    registry = await records.organization_registry(session, principal.organization_id, contacts.CONTACTS)
    if values.get("condition") is not None:
        filters.parse(values["condition"], registry, loc=("body", "condition"))
    if strategy is AssignmentStrategy.territory and values.get("territory_field"):
        registry.get(values["territory_field"], ("body", "territory_field"))
    for value, target in (values.get("territory_map") or {}).items():
        if bool(target.get("user_id")) == bool(target.get("team_id")):
            errors.append(FieldError(("body", "territory_map", value), "give a user_id or a team_id"))
    users: set[uuid.UUID] = set()
    teams: set[uuid.UUID] = set()
    for target in (values, *(values.get("territory_map") or {}).values()):
        users |= {uuid.UUID(str(target["user_id"]))} if target.get("user_id") else set()
        teams |= {uuid.UUID(str(target["team_id"]))} if target.get("team_id") else set()
    known_users = set(
        await session.scalars(
            select(User.id).where(User.organization_id == principal.organization_id, User.id.in_(users))
        )
    )
    known_teams = set(
        await session.scalars(
            select(Team.id).where(Team.organization_id == principal.organization_id, Team.id.in_(teams))
        )
    )
    errors += [FieldError(("body", "user_id"), f"no user with id {user}") for user in users - known_users]
    errors += [FieldError(("body", "team_id"), f"no team with id {team}") for team in teams - known_teams]
    if errors:
        raise ValidationFailed(errors)


def _audit(
    session: AsyncSession, principal: Principal, rule: AssignmentRule, action: AuditAction, changes: audit.Changes
) -> None:
    audit.record(session, principal, action=action, entity_type="assignment_rule", entity_id=rule.id, changes=changes)


def _stored(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("territory_map") is not None:
        data["territory_map"] = {
            value: {key: str(target_id) for key, target_id in target.items() if target_id is not None}
            for value, target in data["territory_map"].items()
        }
    return data


async def create_rule(session: AsyncSession, principal: Principal, *, data: AssignmentRuleCreate) -> AssignmentRule:
    count = await session.scalar(
        select(func.count())
        .select_from(AssignmentRule)
        .where(AssignmentRule.organization_id == principal.organization_id)
    )
    if (count or 0) >= MAX_RULES:
        raise ValidationFailed(FieldError(("body",), f"an organisation has at most {MAX_RULES} assignment rules"))
    values = _stored(data.model_dump())
    await _validated(session, principal, values)
    rule = AssignmentRule(organization_id=principal.organization_id, **values)
    session.add(rule)
    await session.flush()
    _audit(session, principal, rule, AuditAction.create, audit.creation(audit.snapshot(rule, exclude={"turn"})))
    return rule


async def get_rule(session: AsyncSession, principal: Principal, rule_id: uuid.UUID) -> AssignmentRule:
    return await _rules(session, principal).get(rule_id)


async def list_rules(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> Page[AssignmentRule]:
    """In the order they are tried."""
    repository = _rules(session, principal)
    keyset = Keyset.of(
        [SortKey("priority", AssignmentRule.__table__.c.priority, ValueKind.integer, nullable=False)],
        AssignmentRule.__table__.c.id,
    )
    return await repository.page(repository.scoped(), keyset, cursor=cursor, limit=limit)


async def update_rule(
    session: AsyncSession,
    principal: Principal,
    rule_id: uuid.UUID,
    *,
    data: AssignmentRuleUpdate,
    expected_version: int | None,
) -> AssignmentRule:
    rule = await _rules(session, principal).locked(rule_id, expected_version=expected_version)
    before = audit.snapshot(rule, exclude={"turn"})
    changes = _stored(data.changes())
    await _validated(session, principal, {name: getattr(rule, name) for name in before} | changes)
    for name, value in changes.items():
        setattr(rule, name, value)
    if delta := audit.diff(before, audit.snapshot(rule, exclude={"turn"})):
        await session.flush()
        _audit(session, principal, rule, AuditAction.update, delta)
    return rule


async def delete_rule(
    session: AsyncSession, principal: Principal, rule_id: uuid.UUID, *, expected_version: int | None
) -> None:
    rule = await _rules(session, principal).locked(rule_id, expected_version=expected_version)
    _audit(session, principal, rule, AuditAction.delete, {"name": {"before": rule.name, "after": None}})
    await session.delete(rule)
    await session.flush()

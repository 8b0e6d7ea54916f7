"""/api/v1/assignment-rules, and assigning a contact by them on demand."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    CursorDep,
    ExpectedVersionDep,
    LimitDep,
    SessionDep,
    problems,
    record_reply,
    require,
)
from app.schemas.assignment import (
    AssignmentRead,
    AssignmentRuleCreate,
    AssignmentRulePage,
    AssignmentRuleRead,
    AssignmentRuleUpdate,
)
from app.services import assignment

router = APIRouter(prefix=API_PREFIX, tags=["assignment"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.assignment_read)]
Writer = Annotated[Principal, require(Scope.assignment_write)]
ContactWriter = Annotated[Principal, require(Scope.contacts_write)]
RULES = "/assignment-rules"


@router.get(
    RULES,
    operation_id="assignment_rules_list",
    response_model=AssignmentRulePage,
    responses=problems(*AUTHENTICATED),
    summary="The rules in the order they are tried",
)
async def list_rules(
    session: SessionDep, principal: Reader, cursor: CursorDep = None, limit: LimitDep = DEFAULT_LIMIT
) -> AssignmentRulePage:
    page = await assignment.list_rules(session, principal, cursor=cursor, limit=limit)
    return AssignmentRulePage(
        items=[AssignmentRuleRead.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.post(
    RULES,
    operation_id="assignment_rules_create",
    status_code=201,
    response_model=AssignmentRuleRead,
    responses=problems(*AUTHENTICATED),
)
async def create_rule(session: SessionDep, principal: Writer, body: AssignmentRuleCreate) -> Response:
    rule = await assignment.create_rule(session, principal, data=body)
    return record_reply(
        AssignmentRuleRead.model_validate(rule), status_code=201, location=f"{API_PREFIX}{RULES}/{rule.id}"
    )


@router.get(
    RULES + "/{rule_id}",
    operation_id="assignment_rules_get",
    response_model=AssignmentRuleRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_rule(session: SessionDep, principal: Reader, rule_id: uuid.UUID) -> Response:
    return record_reply(AssignmentRuleRead.model_validate(await assignment.get_rule(session, principal, rule_id)))


@router.patch(
    RULES + "/{rule_id}",
    operation_id="assignment_rules_update",
    response_model=AssignmentRuleRead,
    responses=problems(*AUTHENTICATED, 404, 412),
)
async def update_rule(
    session: SessionDep, principal: Writer, rule_id: uuid.UUID, body: AssignmentRuleUpdate, version: ExpectedVersionDep
) -> Response:
    rule = await assignment.update_rule(session, principal, rule_id, data=body, expected_version=version)
    return record_reply(AssignmentRuleRead.model_validate(rule))


@router.delete(
    RULES + "/{rule_id}",
    operation_id="assignment_rules_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 412),
)
async def delete_rule(
    session: SessionDep, principal: Writer, rule_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    await assignment.delete_rule(session, principal, rule_id, expected_version=version)
    return Response(status_code=204)


@router.post(
    "/contacts/{contact_id}/assign",
    operation_id="contacts_assign",
    response_model=AssignmentRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Assign the contact by the rules now (whoever owns it)",
    description="409 when no active rule matches the contact with someone available. "
    "A new owner gets a follow-up task; `contact.assigned` is emitted.",
)
async def assign_contact(
    session: SessionDep, principal: ContactWriter, contact_id: uuid.UUID, version: ExpectedVersionDep
) -> AssignmentRead:
    contact, rule, task_id = await assignment.assign_contact(session, principal, contact_id, expected_version=version)
    assert contact.owner_id is not None
    return AssignmentRead(contact_id=contact.id, owner_id=contact.owner_id, rule_id=rule.id, task_id=task_id)

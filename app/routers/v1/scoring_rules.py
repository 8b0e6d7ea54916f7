"""/api/v1/scoring-rules"""

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
from app.schemas.scoring import ScoringRuleCreate, ScoringRulePage, ScoringRuleRead, ScoringRuleUpdate
from app.services import scoring

router = APIRouter(prefix=API_PREFIX + "/scoring-rules", tags=["lead scoring"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.scoring_read)]
Writer = Annotated[Principal, require(Scope.scoring_write)]

_RESCORES = "Every contact is rescored by a job within seconds of the change (GET /contacts/{id}/score is immediate)."


@router.get("", operation_id="scoring_rules_list", response_model=ScoringRulePage, responses=problems(*AUTHENTICATED))
async def list_rules(
    session: SessionDep, principal: Reader, cursor: CursorDep = None, limit: LimitDep = DEFAULT_LIMIT
) -> ScoringRulePage:
    page = await scoring.list_rules(session, principal, cursor=cursor, limit=limit)
    return ScoringRulePage(items=[ScoringRuleRead.model_validate(r) for r in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    operation_id="scoring_rules_create",
    status_code=201,
    response_model=ScoringRuleRead,
    responses=problems(*AUTHENTICATED),
    description=_RESCORES,
)
async def create_rule(session: SessionDep, principal: Writer, body: ScoringRuleCreate) -> Response:
    rule = await scoring.create_rule(session, principal, data=body)
    return record_reply(
        ScoringRuleRead.model_validate(rule), status_code=201, location=f"{API_PREFIX}/scoring-rules/{rule.id}"
    )


@router.get(
    "/{rule_id}",
    operation_id="scoring_rules_get",
    response_model=ScoringRuleRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_rule(session: SessionDep, principal: Reader, rule_id: uuid.UUID) -> Response:
    return record_reply(ScoringRuleRead.model_validate(await scoring.get_rule(session, principal, rule_id)))


@router.patch(
    "/{rule_id}",
    operation_id="scoring_rules_update",
    response_model=ScoringRuleRead,
    responses=problems(*AUTHENTICATED, 404, 412),
    description=_RESCORES,
)
async def update_rule(
    session: SessionDep, principal: Writer, rule_id: uuid.UUID, body: ScoringRuleUpdate, version: ExpectedVersionDep
) -> Response:
    rule = await scoring.update_rule(session, principal, rule_id, data=body, expected_version=version)
    return record_reply(ScoringRuleRead.model_validate(rule))


@router.delete(
    "/{rule_id}",
    operation_id="scoring_rules_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 412),
    description=_RESCORES,
)
async def delete_rule(
    session: SessionDep, principal: Writer, rule_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    await scoring.delete_rule(session, principal, rule_id, expected_version=version)
    return Response(status_code=204)

"""/api/v1/tasks"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from app.core.enums import TaskKind, TaskStatus
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
from app.schemas.task import TaskCreate, TaskPage, TaskRead, TaskUpdate
from app.services import tasks
from app.services.tasks import TaskFilter

router = APIRouter(prefix=API_PREFIX + "/tasks", tags=["tasks"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.tasks_read)]
Writer = Annotated[Principal, require(Scope.tasks_write)]


def _reply(task: Any, *, created: bool = False) -> Response:
    reply = TaskRead.model_validate(task)
    if created:
        return record_reply(reply, status_code=201, location=f"{API_PREFIX}/tasks/{reply.id}")
    return record_reply(reply)


@router.get(
    "",
    operation_id="tasks_list",
    response_model=TaskPage,
    responses=problems(*AUTHENTICATED),
    summary="Tasks the caller may see, soonest due first (tasks without a due time last)",
)
async def list_tasks(
    session: SessionDep,
    principal: Reader,
    assignee_id: uuid.UUID | None = None,
    status: TaskStatus | None = None,
    kind: TaskKind | None = None,
    contact_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    due_after: Annotated[AwareDatetime | None, Query(description="Due at or after this time")] = None,
    due_before: Annotated[AwareDatetime | None, Query(description="Due before this time")] = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> TaskPage:
    where = TaskFilter(
        assignee_id=assignee_id,
        status=status,
        kind=kind,
        contact_id=contact_id,
        company_id=company_id,
        deal_id=deal_id,
        due_after=due_after,
        due_before=due_before,
    )
    page = await tasks.find_tasks(session, principal, where=where, cursor=cursor, limit=limit)
    return TaskPage(items=[TaskRead.model_validate(t) for t in page.items], next_cursor=page.next_cursor)


@router.post(
    "", operation_id="tasks_create", status_code=201, response_model=TaskRead, responses=problems(*AUTHENTICATED, 409)
)
async def create_task(session: SessionDep, principal: Writer, body: TaskCreate) -> Response:
    return _reply(await tasks.create_task(session, principal, data=body), created=True)


@router.get("/{task_id}", operation_id="tasks_get", response_model=TaskRead, responses=problems(*AUTHENTICATED, 404))
async def get_task(session: SessionDep, principal: Reader, task_id: uuid.UUID) -> Response:
    return _reply(await tasks.get_task(session, principal, task_id))


@router.patch(
    "/{task_id}",
    operation_id="tasks_update",
    response_model=TaskRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_task(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, body: TaskUpdate, version: ExpectedVersionDep
) -> Response:
    return _reply(await tasks.update_task(session, principal, task_id, data=body, expected_version=version))


@router.post(
    "/{task_id}/complete",
    operation_id="tasks_complete",
    response_model=TaskRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Mark a task completed (sets completed_at; emits `task.completed`)",
    description="Completing a completed task changes nothing.",
)
async def complete_task(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    return _reply(await tasks.complete_task(session, principal, task_id, expected_version=version))


@router.post(
    "/{task_id}/reopen",
    operation_id="tasks_reopen",
    response_model=TaskRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Open a completed or cancelled task again (clears completed_at)",
)
async def reopen_task(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    return _reply(await tasks.reopen_task(session, principal, task_id, expected_version=version))


@router.delete(
    "/{task_id}",
    operation_id="tasks_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Delete a task for good (its audit trail stays); set `status` to `cancelled` to keep it",
)
async def delete_task(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    await tasks.delete_task(session, principal, task_id, expected_version=version)
    return Response(status_code=204)

"""Task schemas: TaskCreate / TaskUpdate / TaskRead."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field

from app.core.enums import TaskKind, TaskStatus
from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema, Text2000

_DUE_AT = "When it is due (with a UTC offset); `task.due` is emitted once when it passes while the task is open"
# Stored and shown in UTC: the reply to a write reads as every later read of the task does.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda value: value.astimezone(UTC))]


class TaskCreate(InputSchema):
    kind: TaskKind = TaskKind.todo
    title: str = Field(min_length=1, max_length=300)
    description: Text2000 = None
    due_at: UtcDatetime | None = Field(default=None, description=_DUE_AT)
    assignee_id: uuid.UUID | None = Field(
        default=None, description="An active user; the creating user when left out (API keys create unassigned tasks)"
    )
    contact_id: uuid.UUID | None = Field(default=None, description="The contact the task is about")
    company_id: uuid.UUID | None = Field(default=None, description="The company the task is about")
    deal_id: uuid.UUID | None = Field(default=None, description="The deal the task is about")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"kind": "call", "title": "回访王总：确认报价", "due_at": "2026-12-01T10:00:00+08:00"}]
        }
    )


class TaskUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"kind", "title", "status"})

    kind: TaskKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: Text2000 = None
    due_at: UtcDatetime | None = Field(
        default=None, description="Moving it into the future again means a new `task.due` when it passes"
    )
    assignee_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    status: TaskStatus | None = Field(
        default=None, description="`completed` sets completed_at (as POST /complete does); any other clears it"
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"due_at": "2026-12-02T10:00:00+08:00"}]})


class TaskRead(ReadSchema):
    id: uuid.UUID
    kind: TaskKind
    title: str
    description: str | None
    due_at: datetime | None
    assignee_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    company_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    status: TaskStatus
    completed_at: datetime | None = Field(description="Set by the server when the task is completed")
    created_at: datetime
    updated_at: datetime
    version: int


class TaskPage(Page[TaskRead]):
    pass

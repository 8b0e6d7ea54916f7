"""Assignment rule schemas: AssignmentRuleCreate / AssignmentRuleUpdate / AssignmentRuleRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from app.core.enums import AssignmentStrategy
from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema


class TerritoryTarget(InputSchema):
    user_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None


class AssignmentRuleCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    priority: int = Field(default=100, ge=0, le=100000, description="Lower first; ties by creation order")
    condition: dict[str, Any] | None = Field(
        default=None, description="A filter over contact fields, as POST /contacts/search takes; none matches all"
    )
    strategy: AssignmentStrategy
    user_id: uuid.UUID | None = Field(default=None, description="fixed_user: the user")
    team_id: uuid.UUID | None = Field(default=None, description="round_robin and least_loaded: the team")
    load_measure: Literal["leads", "deals"] = Field(
        default="leads", description="least_loaded: count open leads or open deals"
    )
    territory_field: str | None = Field(
        default=None, max_length=100, description="territory: the contact field whose value picks the target"
    )
    territory_map: dict[str, TerritoryTarget] = Field(
        default_factory=dict, max_length=1000, description="territory: value → a user_id or a team_id"
    )
    follow_up_hours: int | None = Field(
        default=24,
        ge=0,
        le=8760,
        description="A follow-up task for the assignee, due this many hours later; null: none",
    )
    active: bool = True

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "华东线索轮流分配",
                    "condition": {"field": "region", "op": "in", "value": ["上海", "江苏", "浙江"]},
                    "strategy": "round_robin",
                    "team_id": "01936f5e-0000-7000-8000-000000000001",
                }
            ]
        }
    )


class AssignmentRuleUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {"name", "priority", "strategy", "load_measure", "territory_map", "active"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    priority: int | None = Field(default=None, ge=0, le=100000)
    condition: dict[str, Any] | None = None
    strategy: AssignmentStrategy | None = None
    user_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    load_measure: Literal["leads", "deals"] | None = None
    territory_field: str | None = Field(default=None, max_length=100)
    territory_map: dict[str, TerritoryTarget] | None = Field(default=None, max_length=1000)
    follow_up_hours: int | None = Field(default=None, ge=0, le=8760)
    active: bool | None = None


class AssignmentRuleRead(ReadSchema):
    id: uuid.UUID
    name: str
    priority: int
    condition: dict[str, Any] | None
    strategy: AssignmentStrategy
    user_id: uuid.UUID | None
    team_id: uuid.UUID | None
    load_measure: str
    territory_field: str | None
    territory_map: dict[str, Any]
    follow_up_hours: int | None
    active: bool
    turn: int = Field(description="How many contacts the rule has handed out (its round-robin position)")
    created_at: datetime
    updated_at: datetime
    version: int


class AssignmentRulePage(Page[AssignmentRuleRead]):
    pass


class AssignmentRead(ReadSchema):
    contact_id: uuid.UUID
    owner_id: uuid.UUID
    rule_id: uuid.UUID
    task_id: uuid.UUID | None = Field(description="The follow-up task created for the assignee")

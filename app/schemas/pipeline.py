"""Pipeline schemas: PipelineCreate / PipelineUpdate / PipelineRead, the same for stages, and the board."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Final

from pydantic import ConfigDict, Field

from app.core.enums import StageKind
from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema
from app.schemas.deal import DealRead

PROBABILITY_DESCRIPTION: Final = "Win probability in percent; a deal's unless it sets its own"


class StageCreate(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    probability: int = Field(ge=0, le=100, description=PROBABILITY_DESCRIPTION)
    kind: StageKind = Field(default=StageKind.open, description="open, won or lost: what a deal in it is")
    position: int | None = Field(
        default=None,
        ge=0,
        description="0-based place among the stages; by default an open stage goes before the first closed one, "
        "a closed stage last",
    )


class StageUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"name", "probability", "kind"})

    name: str | None = Field(default=None, min_length=1, max_length=100)
    probability: int | None = Field(default=None, ge=0, le=100, description=PROBABILITY_DESCRIPTION)
    kind: StageKind | None = Field(default=None, description="Changes only while the stage holds no deals")


class StageRead(ReadSchema):
    id: uuid.UUID
    pipeline_id: uuid.UUID
    name: str
    position: int
    probability: int
    kind: StageKind
    created_at: datetime
    updated_at: datetime


class StageOrder(InputSchema):
    stage_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=50, description="Every stage of the pipeline, once, in the new order"
    )


class PipelineCreate(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    is_default: bool = Field(default=False, description="Deals created without a pipeline go to the default one")
    stages: list[StageCreate] | None = Field(
        default=None,
        min_length=2,
        max_length=50,
        description="In order, with at least one open, one won and one lost stage; "
        "the default sales stages when left out",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "大客户项目",
                    "stages": [
                        {"name": "初步接触", "probability": 10},
                        {"name": "招投标", "probability": 50},
                        {"name": "中标", "probability": 100, "kind": "won"},
                        {"name": "未中标", "probability": 0, "kind": "lost"},
                    ],
                }
            ]
        }
    )


class PipelineUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"name", "is_default"})

    name: str | None = Field(default=None, min_length=1, max_length=100)
    is_default: bool | None = Field(default=None, description="true makes this the default (and no other)")


class PipelineRead(ReadSchema):
    id: uuid.UUID
    name: str
    is_default: bool
    stages: list[StageRead] = Field(description="The live stages, in order")
    created_at: datetime
    updated_at: datetime
    version: int


class PipelinePage(Page[PipelineRead]):
    pass


class CurrencyTotal(ReadSchema):
    currency: str
    amount: str = Field(description="Sum of the amounts, as a decimal string")
    weighted_amount: str = Field(description="Sum of amount × probability, as a decimal string")


class BoardColumn(ReadSchema):
    stage: StageRead
    count: int = Field(description="Deals in the stage (not archived, visible to you)")
    totals: list[CurrencyTotal] = Field(description="Per currency: amounts are never added across currencies")
    deals: list[DealRead] = Field(description="The first page of the stage's deals, newest first")
    next_cursor: str | None = Field(description="Continue with GET /deals?stage_id=…&cursor=…")


class BoardRead(ReadSchema):
    pipeline_id: uuid.UUID
    columns: list[BoardColumn]

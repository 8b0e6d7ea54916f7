"""Lead scoring schemas: ScoringRuleCreate / ScoringRuleUpdate / ScoringRuleRead, activities, the explanation."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from app.core.enums import ActivitySignal, ScoringRuleKind
from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema, Text50

Points = Field(ge=-1000, le=1000, description="Added per match (per activity for behaviour rules); may be negative")
HalfLife = Field(
    default=None,
    gt=0,
    max_digits=8,
    decimal_places=2,
    description="Behaviour only: the points halve every so many days",
)


class ScoringRuleCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    kind: ScoringRuleKind
    condition: dict[str, Any] | None = Field(
        default=None, description="Fit rules: a filter over contact fields, as POST /contacts/search takes"
    )
    signal: ActivitySignal | None = Field(default=None, description="Behaviour rules: the activity that scores")
    channel: Text50 = Field(default=None, description="Behaviour rules: only activities on this channel")
    outcome: Text50 = Field(default=None, description="Behaviour rules: only activities with this outcome")
    points: int = Points
    half_life_days: Decimal | None = HalfLife
    active: bool = True

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "金融行业",
                    "kind": "fit",
                    "condition": {"field": "custom_fields.industry", "op": "eq", "value": "金融"},
                    "points": 10,
                },
                {"name": "点击邮件", "kind": "behaviour", "signal": "email_clicked", "points": 5, "half_life_days": 30},
            ]
        }
    )

    @model_validator(mode="after")
    def _shape_fits_kind(self) -> ScoringRuleCreate:
        check_shape(self.kind, self.model_dump(exclude_unset=False))
        return self


def check_shape(kind: ScoringRuleKind, values: dict[str, Any]) -> None:
    """A fit rule has a condition and nothing of behaviour; a behaviour rule the reverse."""
    if kind is ScoringRuleKind.fit:
        if values.get("condition") is None:
            raise ValueError("a fit rule needs a condition")
        extra = [name for name in ("signal", "channel", "outcome", "half_life_days") if values.get(name) is not None]
        if extra:
            raise ValueError(f"a fit rule has no {extra[0]}")
    else:
        if values.get("signal") is None:
            raise ValueError("a behaviour rule needs a signal")
        if values.get("condition") is not None:
            raise ValueError("a behaviour rule has no condition (its signal, channel and outcome select activities)")


class ScoringRuleUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"name", "points", "active"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    condition: dict[str, Any] | None = None
    signal: ActivitySignal | None = None
    channel: Text50 = None
    outcome: Text50 = None
    points: int | None = Field(default=None, ge=-1000, le=1000)
    half_life_days: Decimal | None = HalfLife
    active: bool | None = None


class ScoringRuleRead(ReadSchema):
    id: uuid.UUID
    name: str
    kind: ScoringRuleKind
    condition: dict[str, Any] | None
    signal: ActivitySignal | None
    channel: str | None
    outcome: str | None
    points: int
    half_life_days: Decimal | None
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class ScoringRulePage(Page[ScoringRuleRead]):
    pass


class ActivityCreate(InputSchema):
    signal: ActivitySignal
    channel: Text50 = Field(default=None, examples=["wechat"])
    outcome: Text50 = Field(default=None, examples=["interested"])
    occurred_at: datetime | None = Field(default=None, description="Now when left out; never in the future")


class ActivityRead(ReadSchema):
    id: uuid.UUID
    contact_id: uuid.UUID
    signal: ActivitySignal
    channel: str | None
    outcome: str | None
    occurred_at: datetime
    created_at: datetime


class ActivityPage(Page[ActivityRead]):
    pass


class FitPoints(ReadSchema):
    rule_id: uuid.UUID
    name: str
    matched: bool
    points: int


class BehaviourPoints(ReadSchema):
    rule_id: uuid.UUID
    name: str
    activities: int = Field(description="Matching activities")
    points: Decimal = Field(description="After decay, rounded to 2 decimals")


class ScoreExplanation(ReadSchema):
    contact_id: uuid.UUID
    score: int
    grade: str
    thresholds: dict[str, int] = Field(description="The least score of grades A, B and C; below C is D")
    fit: list[FitPoints]
    behaviour: list[BehaviourPoints]
    scored_at: datetime | None = Field(description="When the stored score was last computed")

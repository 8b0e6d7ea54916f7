"""The filter DSL's two back ends agree: SQL in PostgreSQL and the in-memory evaluator.

Scoring and assignment rules (later issues) check one record in memory; searches and segments
run the same rules as SQL. Hypothesis builds random filter trees over built-in and custom
fields and compares the rows PostgreSQL returns with the records the evaluator accepts.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import ContactSource, CustomFieldEntity, CustomFieldType, LifecycleStage
from app.models.contact import Contact
from app.models.custom_field import CustomFieldDefinition
from app.services import contacts, custom_fields, filters
from tests.helpers import Tenant

CITIES = ["上海", "北京", "shanghai", "Shanghai", "广州", "上海市"]
NAMES = ["Ann", "ann", "Anna", "张伟", "伟", "王芳", "Zoë", "bob"]
TAGS = ["vip", "VIP", "华东", "new"]
GRADES = ["A", "B", "C"]
CHANNELS = ["web", "wechat", "phone"]
FRAGMENTS = ["an", "AN", "伟", "上海", "sh", "a", "z", "%", "_"]
NUMBERS = [Decimal("-1"), Decimal("0"), Decimal("1.5"), Decimal("2"), Decimal("10")]
DATES = ["2026-01-01", "2026-06-15", "2027-01-01"]

DEFINITIONS = [
    ("score", CustomFieldType.number, []),
    ("renewal", CustomFieldType.date, []),
    ("grade", CustomFieldType.select, GRADES),
    ("channels", CustomFieldType.multi_select, CHANNELS),
    ("note", CustomFieldType.text, []),
    ("partner", CustomFieldType.boolean, []),
]


def _definitions() -> dict[str, CustomFieldDefinition]:
    return {
        key: CustomFieldDefinition(key=key, entity=CustomFieldEntity.contact, type=kind, options=options, label=key)
        for key, kind, options in DEFINITIONS
    }


REGISTRY = filters.FieldRegistry(
    "contact",
    {
        **contacts.CONTACTS.builtin_fields(),
        **custom_fields.filter_fields(_definitions(), Contact.__table__.c.custom_fields),
    },
)
BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)


def _random_contact(rng: random.Random, organization_id: uuid.UUID, owner_id: uuid.UUID) -> Contact:
    def maybe(values: list[Any]) -> Any:
        return rng.choice([*values, None])

    custom: dict[str, Any] = {}
    if (score := maybe(NUMBERS)) is not None:
        custom["score"] = int(score) if score == score.to_integral_value() else float(score)
    for key, pool in (("renewal", DATES), ("grade", GRADES), ("note", NAMES), ("partner", [True, False])):
        if (value := maybe(pool)) is not None:
            custom[key] = value
    if rng.random() < 0.7:
        custom["channels"] = rng.sample(CHANNELS, rng.randint(0, 2))
    return Contact(
        organization_id=organization_id,
        first_name=maybe(NAMES),
        last_name=maybe(NAMES),
        title=maybe(NAMES),
        city=maybe(CITIES),
        country=maybe(["CN", "DE"]),
        source=rng.choice(list(ContactSource)),
        lifecycle_stage=rng.choice(list(LifecycleStage)),
        owner_id=rng.choice([owner_id, None]),
        tags=rng.sample(TAGS, rng.randint(0, 3)),
        email_opt_in=rng.random() < 0.5,
        created_at=BASE_TIME + timedelta(hours=rng.randint(0, 48)),
        custom_fields=custom,
    )


def _values_for(spec: filters.FieldSpec) -> st.SearchStrategy[Any]:
    match spec.type:
        case filters.FieldType.number:
            return st.sampled_from([float(n) for n in NUMBERS] + [1, 3])
        case filters.FieldType.date:
            return st.sampled_from([*DATES, "2026-03-01"])
        case filters.FieldType.datetime:
            return st.sampled_from([(BASE_TIME + timedelta(hours=h)).isoformat() for h in (-1, 0, 12, 24, 49)])
        case filters.FieldType.boolean:
            return st.booleans()
        case filters.FieldType.enum:
            return st.sampled_from(sorted(spec.choices or ()))
        case filters.FieldType.uuid:
            return st.just(str(uuid.UUID(int=0)))
        case filters.FieldType.tags:
            return st.sampled_from(sorted(spec.choices) if spec.choices else TAGS)
        case _:
            return st.sampled_from(CITIES + NAMES + ["CN", "DE"])


FIELDS = [
    "first_name",
    "last_name",
    "title",
    "city",
    "country",
    "source",
    "lifecycle_stage",
    "owner_id",
    "tags",
    "email_opt_in",
    "created_at",
    "archived_at",
    "email_opt_in_at",
    *(f"custom_fields.{key}" for key, _, _ in DEFINITIONS),
]


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    spec = REGISTRY.fields[draw(st.sampled_from(FIELDS))]
    op = draw(st.sampled_from(sorted(filters.OPS_BY_TYPE[spec.type])))
    if op is filters.Op.is_null:
        value: Any = draw(st.booleans())
    elif op is filters.Op.in_:
        value = draw(st.lists(_values_for(spec), min_size=1, max_size=3))
    elif op in (filters.Op.contains, filters.Op.starts_with) and spec.type is filters.FieldType.text:
        value = draw(st.sampled_from(FRAGMENTS))
    else:
        value = draw(_values_for(spec))
    return {"field": spec.name, "op": op.value, "value": value}


trees = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.builds(lambda items: {"and": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"or": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=6,
)


@pytest.fixture
async def population(db: AsyncSession, tenant: Tenant) -> list[Contact]:
    rng = random.Random(20261123)
    organization_id, owner_id = uuid.UUID(tenant.organization_id), uuid.UUID(tenant.user_id)
    rows = [_random_contact(rng, organization_id, owner_id) for _ in range(60)]
    db.add_all(rows)
    await db.commit()
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
async def test_sql_and_memory_agree(tree: dict[str, Any], population: list[Contact], db: AsyncSession) -> None:
    node = filters.parse(tree, REGISTRY)
    organization_id = population[0].organization_id
    statement = select(Contact.id).where(Contact.organization_id == organization_id, filters.to_sql(node))
    in_database = set((await db.execute(statement)).scalars())
    in_memory = {contact.id for contact in population if filters.matches(node, contact)}
    assert in_database == in_memory, tree

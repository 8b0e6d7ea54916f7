"""Custom fields: definitions, value validation on records, filtering and sorting, deletion, roles, tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.company import Company
from app.models.contact import Contact
from app.models.custom_field import CustomFieldDefinition
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

FIELDS = "/api/v1/custom-fields"
CONTACTS = "/api/v1/contacts"
COMPANIES = "/api/v1/companies"
TYPES = ["text", "number", "date", "boolean", "select", "multi_select"]
CHOICES = {"select": ["A", "B", "C"], "multi_select": ["wechat", "email", "phone"]}


async def _define(
    client: httpx.AsyncClient, tenant: Tenant, key: str, type_: str, *, entity: str = "contact", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"entity": entity, "key": key, "label": key.title(), "type": type_, **extra}
    if type_ in CHOICES and "options" not in extra:
        body["options"] = CHOICES[type_]
    response = await client.post(FIELDS, headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _define_all(client: httpx.AsyncClient, tenant: Tenant, *, entity: str = "contact") -> None:
    """note (text), score (number), since (date), vip (boolean), grade (select), channels (multi_select)."""
    for key, type_ in [
        ("note", "text"),
        ("score", "number"),
        ("since", "date"),
        ("vip", "boolean"),
        ("grade", "select"),
        ("channels", "multi_select"),
    ]:
        await _define(client, tenant, key, type_, entity=entity)


async def _definition_count(db: AsyncSession, organization_id: str) -> int:
    statement = (
        select(func.count())
        .select_from(CustomFieldDefinition)
        .where(CustomFieldDefinition.organization_id == uuid.UUID(organization_id))
    )
    return int(await db.scalar(statement) or 0)


async def _definition_row(db: AsyncSession, field_id: str) -> CustomFieldDefinition | None:
    statement = (
        select(CustomFieldDefinition)
        .where(CustomFieldDefinition.id == uuid.UUID(field_id))
        .execution_options(populate_existing=True)
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def _stored_values(db: AsyncSession, model: Any, record_id: str) -> dict[str, Any]:
    statement = select(model.custom_fields).where(model.id == uuid.UUID(record_id))
    return dict((await db.execute(statement)).scalar_one())


async def _contact_count(db: AsyncSession, organization_id: str) -> int:
    statement = select(func.count()).select_from(Contact).where(Contact.organization_id == uuid.UUID(organization_id))
    return int(await db.scalar(statement) or 0)


# --- definitions --------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["contact", "company", "deal"])
@pytest.mark.parametrize("type_", TYPES)
async def test_define_a_field_of_every_type(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, entity: str, type_: str
) -> None:
    body: dict[str, Any] = {
        "entity": entity,
        "key": f"my_{type_}",
        "label": "客户等级",
        "type": type_,
        "description": "说明",
    }
    if type_ in CHOICES:
        body["options"] = CHOICES[type_]
    response = await client.post(FIELDS, headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    field = response.json()
    assert response.headers["location"] == f"{FIELDS}/{field['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert (field["entity"], field["key"], field["label"], field["type"]) == (entity, f"my_{type_}", "客户等级", type_)
    assert field["options"] == CHOICES.get(type_, [])
    assert field["required"] is False and field["description"] == "说明" and field["version"] == 1
    row = await _definition_row(db, field["id"])
    assert row is not None and str(row.organization_id) == tenant.organization_id
    assert (row.entity, row.key, row.type, row.options) == (entity, f"my_{type_}", type_, CHOICES.get(type_, []))

    got = await client.get(f"{FIELDS}/{field['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json() == field and got.headers["etag"] == 'W/"1"'
    other_entity = "company" if entity == "contact" else "contact"
    listed = (await client.get(FIELDS, params={"entity": entity}, headers=tenant.headers)).json()["items"]
    assert [f["id"] for f in listed] == [field["id"]]
    assert (await client.get(FIELDS, params={"entity": other_entity}, headers=tenant.headers)).json()["items"] == []


async def test_list_pages_through_every_definition(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _define_all(client, tenant)
    await _define_all(client, tenant, entity="company")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(FIELDS, params=params, headers=tenant.headers)).json()
        seen += [f"{f['entity']}.{f['key']}" for f in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 12 and len(set(seen)) == 12
    assert error_locs(await client.get(FIELDS, params={"entity": "ticket"}, headers=tenant.headers)) == [
        ["query", "entity"]
    ]


@pytest.mark.parametrize(
    ("type_", "options"),
    [
        ("select", []),
        ("multi_select", []),
        ("select", None),
        ("text", ["A"]),
        ("number", ["1", "2"]),
        ("date", ["2024-01-01"]),
        ("boolean", ["yes", "no"]),
        ("select", ["A", "A"]),
        ("multi_select", ["x", ""]),
        ("select", ["x" * 101]),
    ],
)
async def test_options_must_fit_the_type(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, type_: str, options: list[str] | None
) -> None:
    body: dict[str, Any] = {"entity": "contact", "key": "grade", "label": "Grade", "type": type_}
    if options is not None:
        body["options"] = options
    assert_problem(await client.post(FIELDS, headers=tenant.headers, json=body), 422)
    assert await _definition_count(db, tenant.organization_id) == 0


@pytest.mark.parametrize(
    "key",
    ["", "Score", "1score", "_score", "score-1", "score 1", "score.x", "分数", "ｓcore", "a" * 65, "score\n1"],
)
async def test_key_pattern(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, key: str) -> None:
    response = await client.post(
        FIELDS, headers=tenant.headers, json={"entity": "contact", "key": key, "label": "x", "type": "text"}
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "key"]]
    assert await _definition_count(db, tenant.organization_id) == 0


@pytest.mark.parametrize("key", ["a", "score_2", "a" * 64, "x_1_y"])
async def test_good_keys(client: httpx.AsyncClient, tenant: Tenant, key: str) -> None:
    assert (await _define(client, tenant, key, "text"))["key"] == key


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"entity": "ticket"}, ["body", "entity"]),
        ({"type": "json"}, ["body", "type"]),
        ({"label": ""}, ["body", "label"]),
        ({"required": "maybe"}, ["body", "required"]),
        ({"default": 1}, ["body", "default"]),
    ],
)
async def test_definition_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    full = {"entity": "contact", "key": "note", "label": "Note", "type": "text", **body}
    response = await client.post(FIELDS, headers=tenant.headers, json=full)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)


async def test_keys_are_unique_per_organisation_and_entity(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    await _define(client, tenant, "grade", "select")
    duplicate = await client.post(
        FIELDS, headers=tenant.headers, json={"entity": "contact", "key": "grade", "label": "Other", "type": "text"}
    )
    assert_problem(duplicate, 409)
    assert await _definition_count(db, tenant.organization_id) == 1
    company_field = await _define(client, tenant, "grade", "number", entity="company")
    assert company_field["entity"] == "company"
    await _define(client, other_tenant, "grade", "text")
    assert await _definition_count(db, tenant.organization_id) == 2


# --- values on records --------------------------------------------------------------------

BAD_VALUES = [
    ("nope", "x"),
    ("note", 5),
    ("note", ["x"]),
    ("note", {"x": 1}),
    ("note", "x" * 2001),
    ("score", "12"),
    ("score", True),
    ("score", [1]),
    ("since", "2024/01/02"),
    ("since", "02.01.2024"),
    ("since", "2024-02-30"),
    ("since", "2024-01-02T10:00:00"),
    ("since", 20240102),
    ("vip", "true"),
    ("vip", 1),
    ("vip", "yes"),
    ("grade", "D"),
    ("grade", "a"),
    ("grade", ["A"]),
    ("channels", "wechat"),
    ("channels", ["wechat", "fax"]),
    ("channels", [1]),
    ("channels", [["wechat"]]),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
async def test_contact_values_are_validated_on_create(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, key: str, value: Any
) -> None:
    await _define_all(client, tenant)
    response = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "custom_fields": {"note": "ok", key: value}}
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "custom_fields", key]]
    assert await _contact_count(db, tenant.organization_id) == 0


@pytest.mark.parametrize("value", ["20240102", "2024-W01-2", "2024-002"])
async def test_date_values_must_be_written_yyyy_mm_dd(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, value: str
) -> None:
    await _define(client, tenant, "since", "date")
    response = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "custom_fields": {"since": value}}
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "custom_fields", "since"]]
    assert await _contact_count(db, tenant.organization_id) == 0


@pytest.mark.parametrize(("key", "value"), BAD_VALUES[::3])
async def test_contact_values_are_validated_on_patch(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, key: str, value: Any
) -> None:
    await _define_all(client, tenant)
    contact = await create(client, CONTACTS, tenant.headers, first_name="a", custom_fields={"note": "kept"})
    response = await client.patch(
        f"{CONTACTS}/{contact['id']}", headers=tenant.headers, json={"custom_fields": {key: value}}
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "custom_fields", key]]
    assert await _stored_values(db, Contact, contact["id"]) == {"note": "kept"}


async def test_every_bad_value_is_reported_at_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _define_all(client, tenant)
    response = await client.post(
        CONTACTS,
        headers=tenant.headers,
        json={"first_name": "a", "custom_fields": {"score": "x", "vip": "x", "nope": 1}},
    )
    assert sorted(map(tuple, error_locs(response))) == [
        ("body", "custom_fields", "nope"),
        ("body", "custom_fields", "score"),
        ("body", "custom_fields", "vip"),
    ]


async def test_good_values_are_stored(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    await _define_all(client, tenant)
    values = {
        "note": "大客户",
        "score": 12.5,
        "since": "2024-01-02",
        "vip": False,
        "grade": "B",
        "channels": ["email", "wechat", "email"],
    }
    contact = await create(client, CONTACTS, tenant.headers, first_name="a", custom_fields=values)
    expected = {**values, "channels": ["email", "wechat"]}
    assert contact["custom_fields"] == expected
    assert await _stored_values(db, Contact, contact["id"]) == expected
    got = await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)
    assert got.json()["custom_fields"] == expected
    integer = await create(client, CONTACTS, tenant.headers, first_name="b", custom_fields={"score": -3})
    assert integer["custom_fields"] == {"score": -3}
    # Not sending a field, or sending null for an optional one, stores nothing.
    empty = await create(client, CONTACTS, tenant.headers, first_name="c", custom_fields={"note": None})
    assert empty["custom_fields"] == {}


async def test_company_values_are_validated_against_company_definitions(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    await _define(client, tenant, "employees", "number", entity="company")
    await _define(client, tenant, "grade", "select", entity="contact")
    company = await create(client, COMPANIES, tenant.headers, name="天元", custom_fields={"employees": 120})
    assert company["custom_fields"] == {"employees": 120}
    wrong_type = await client.post(
        COMPANIES, headers=tenant.headers, json={"name": "x", "custom_fields": {"employees": "many"}}
    )
    assert error_locs(wrong_type) == [["body", "custom_fields", "employees"]]
    # A contact field is unknown on companies, and the other way round.
    contact_key = await client.post(
        COMPANIES, headers=tenant.headers, json={"name": "x", "custom_fields": {"grade": "A"}}
    )
    assert error_locs(contact_key) == [["body", "custom_fields", "grade"]]
    company_key = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "x", "custom_fields": {"employees": 1}}
    )
    assert error_locs(company_key) == [["body", "custom_fields", "employees"]]
    patched = await client.patch(
        f"{COMPANIES}/{company['id']}", headers=tenant.headers, json={"custom_fields": {"employees": "x"}}
    )
    assert error_locs(patched) == [["body", "custom_fields", "employees"]]
    assert await _stored_values(db, Company, company["id"]) == {"employees": 120}


async def test_required_fields(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    await _define(client, tenant, "region_code", "text", required=True)
    await _define(client, tenant, "score", "number")
    await _define(client, tenant, "company_code", "text", entity="company", required=True)

    missing = await client.post(CONTACTS, headers=tenant.headers, json={"first_name": "a"})
    assert_problem(missing, 422)
    assert error_locs(missing) == [["body", "custom_fields", "region_code"]]
    null = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "custom_fields": {"region_code": None}}
    )
    assert_problem(null, 422)
    assert {tuple(loc) for loc in error_locs(null)} == {("body", "custom_fields", "region_code")}
    assert await _contact_count(db, tenant.organization_id) == 0

    contact = await create(
        client, CONTACTS, tenant.headers, first_name="a", custom_fields={"region_code": "SH", "score": 1}
    )
    url = f"{CONTACTS}/{contact['id']}"
    cleared = await client.patch(url, headers=tenant.headers, json={"custom_fields": {"region_code": None}})
    assert_problem(cleared, 422)
    assert error_locs(cleared) == [["body", "custom_fields", "region_code"]]
    assert await _stored_values(db, Contact, contact["id"]) == {"region_code": "SH", "score": 1}
    # Changing other values leaves the required one alone.
    other = await client.patch(url, headers=tenant.headers, json={"custom_fields": {"score": None}})
    assert other.status_code == 200 and other.json()["custom_fields"] == {"region_code": "SH"}
    changed = await client.patch(url, headers=tenant.headers, json={"custom_fields": {"region_code": "BJ"}})
    assert changed.status_code == 200 and changed.json()["custom_fields"] == {"region_code": "BJ"}
    # The company field binds companies only.
    assert_problem(await client.post(COMPANIES, headers=tenant.headers, json={"name": "x"}), 422)


@pytest.mark.parametrize("value", [None, 5, ""])
async def test_a_required_field_error_is_reported_once(client: httpx.AsyncClient, tenant: Tenant, value: Any) -> None:
    await _define(client, tenant, "region_code", "text", required=True)
    await _define(client, tenant, "grade", "select", required=True)
    grade = "Z" if value == "" else value  # "" is a fine text value but not an option
    response = await client.post(
        CONTACTS,
        headers=tenant.headers,
        json={"first_name": "a", "custom_fields": {"region_code": value, "grade": grade}},
    )
    assert_problem(response, 422)
    expected = [["body", "custom_fields", "grade"]]
    if value != "":
        expected.insert(0, ["body", "custom_fields", "region_code"])
    # One error per field, saying what is wrong with the value that was sent.
    assert error_locs(response) == expected, response.json()["errors"]


async def test_patch_merges_custom_fields(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    await _define_all(client, tenant)
    contact = await create(
        client,
        CONTACTS,
        tenant.headers,
        first_name="a",
        custom_fields={"note": "old", "score": 1, "grade": "A"},
    )
    url = f"{CONTACTS}/{contact['id']}"
    response = await client.patch(
        url, headers=tenant.headers, json={"custom_fields": {"score": 5, "note": None, "vip": True}}
    )
    assert response.status_code == 200, response.text
    merged = {"score": 5, "grade": "A", "vip": True}
    assert response.json()["custom_fields"] == merged and response.json()["version"] == 2
    assert await _stored_values(db, Contact, contact["id"]) == merged
    # Removing a key that is not there is fine; other fields leave custom_fields alone.
    again = await client.patch(url, headers=tenant.headers, json={"custom_fields": {"note": None}, "title": "x"})
    assert again.status_code == 200 and again.json()["custom_fields"] == merged
    assert (await client.patch(url, headers=tenant.headers, json={"city": "上海"})).json()["custom_fields"] == merged
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"custom_fields": None})) == [
        ["body", "custom_fields"]
    ]
    history = (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]
    assert history[-2]["changes"]["custom_fields"] == {
        "before": {"note": "old", "score": 1, "grade": "A"},
        "after": merged,
    }


# --- filtering and sorting ----------------------------------------------------------------


async def test_filter_dsl_on_custom_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _define_all(client, tenant)
    rows = {
        "A": {
            "score": 10,
            "since": "2024-01-01",
            "grade": "A",
            "channels": ["wechat", "email"],
            "vip": True,
            "note": "大客户",
        },
        "B": {"score": 2.5, "since": "2023-06-30", "grade": "B", "channels": ["phone"], "vip": False, "note": "x"},
        "C": {"score": 100, "grade": "A", "channels": []},
        "D": {},
    }
    for name, values in rows.items():
        await create(client, CONTACTS, tenant.headers, first_name=name, custom_fields=values)

    async def found(field: str, op: str, value: Any) -> list[str]:
        response = await client.post(
            f"{CONTACTS}/search",
            headers=tenant.headers,
            json={"filter": {"field": f"custom_fields.{field}", "op": op, "value": value}, "sort": ["first_name"]},
        )
        assert response.status_code == 200, response.text
        return [c["first_name"] for c in response.json()["items"]]

    assert await found("grade", "eq", "A") == ["A", "C"]
    assert await found("grade", "ne", "A") == ["B", "D"]
    assert await found("grade", "in", ["B", "C"]) == ["B"]
    assert await found("grade", "is_null", True) == ["D"]
    assert await found("score", "eq", 100) == ["C"]
    assert await found("score", "gt", 5) == ["A", "C"]
    assert await found("score", "gte", 10) == ["A", "C"]
    assert await found("score", "lt", 10) == ["B"]
    assert await found("score", "lte", 2.5) == ["B"]
    assert await found("score", "ne", 10) == ["B", "C", "D"]
    assert await found("score", "in", [2.5, 100]) == ["B", "C"]
    assert await found("score", "is_null", True) == ["D"]
    assert await found("since", "gt", "2023-12-31") == ["A"]
    assert await found("since", "lt", "2024-01-01") == ["B"]
    assert await found("since", "lte", "2024-01-01") == ["A", "B"]
    assert await found("since", "eq", "2023-06-30") == ["B"]
    assert await found("since", "is_null", False) == ["A", "B"]
    assert await found("channels", "contains", "wechat") == ["A"]
    assert await found("channels", "in", ["phone", "email"]) == ["A", "B"]
    assert await found("channels", "is_null", True) == ["C", "D"]
    assert await found("channels", "is_null", False) == ["A", "B"]
    assert await found("vip", "eq", True) == ["A"]
    assert await found("vip", "eq", False) == ["B"]
    assert await found("vip", "ne", True) == ["B", "C", "D"]
    assert await found("note", "eq", "大客户") == ["A"]
    assert await found("note", "contains", "客户") == ["A"]
    assert await found("note", "is_null", True) == ["C", "D"]

    combined = await client.post(
        f"{CONTACTS}/search",
        headers=tenant.headers,
        json={
            "filter": {
                "and": [
                    {"field": "custom_fields.grade", "op": "eq", "value": "A"},
                    {"not": {"field": "custom_fields.channels", "op": "is_null", "value": True}},
                ]
            }
        },
    )
    assert [c["first_name"] for c in combined.json()["items"]] == ["A"]


@pytest.mark.parametrize(
    ("filter_", "loc"),
    [
        ({"field": "custom_fields.nope", "op": "eq", "value": 1}, ["body", "filter", "field"]),
        ({"field": "custom_fields.grade", "op": "eq", "value": "Z"}, ["body", "filter", "value"]),
        ({"field": "custom_fields.grade", "op": "contains", "value": "A"}, ["body", "filter", "op"]),
        ({"field": "custom_fields.score", "op": "gt", "value": "many"}, ["body", "filter", "value"]),
        ({"field": "custom_fields.score", "op": "contains", "value": "1"}, ["body", "filter", "op"]),
        ({"field": "custom_fields.since", "op": "gt", "value": "yesterday"}, ["body", "filter", "value"]),
        ({"field": "custom_fields.vip", "op": "gt", "value": True}, ["body", "filter", "op"]),
        ({"field": "custom_fields.vip", "op": "eq", "value": "true"}, ["body", "filter", "value"]),
        ({"field": "custom_fields.channels", "op": "eq", "value": "wechat"}, ["body", "filter", "op"]),
        ({"field": "custom_fields.channels", "op": "contains", "value": "fax"}, ["body", "filter", "value"]),
    ],
)
async def test_filter_dsl_rejects_bad_custom_field_conditions(
    client: httpx.AsyncClient, tenant: Tenant, filter_: dict[str, Any], loc: list[Any]
) -> None:
    await _define_all(client, tenant)
    response = await client.post(f"{CONTACTS}/search", headers=tenant.headers, json={"filter": filter_})
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)


async def test_company_search_on_custom_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _define(client, tenant, "employees", "number", entity="company")
    await create(client, COMPANIES, tenant.headers, name="small", custom_fields={"employees": 8})
    await create(client, COMPANIES, tenant.headers, name="big", custom_fields={"employees": 800})
    await create(client, COMPANIES, tenant.headers, name="unknown")
    response = await client.post(
        f"{COMPANIES}/search",
        headers=tenant.headers,
        json={"filter": {"field": "custom_fields.employees", "op": "gte", "value": 100}},
    )
    assert [c["name"] for c in response.json()["items"]] == ["big"]
    ordered = await client.get(COMPANIES, params={"sort": "-custom_fields.employees"}, headers=tenant.headers)
    assert [c["name"] for c in ordered.json()["items"]] == ["unknown", "big", "small"]


async def _all_pages(
    client: httpx.AsyncClient, tenant: Tenant, *, sort: str, limit: int, search: bool = False
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        if search:
            body: dict[str, Any] = {"sort": sort.split(","), "limit": limit}
            if cursor:
                body["cursor"] = cursor
            response = await client.post(f"{CONTACTS}/search", headers=tenant.headers, json=body)
        else:
            params: dict[str, Any] = {"sort": sort, "limit": limit}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(CONTACTS, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def test_sort_by_a_custom_field_with_paging(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _define_all(client, tenant)
    scores: list[float | int | None] = [5, None, 1.5, 10, None, 5, -3, 100, 0.25]
    for index, score in enumerate(scores):
        values: dict[str, Any] = {} if score is None else {"score": score}
        if index % 2:
            values["since"] = f"2024-01-{10 - index:02d}"
        await create(client, CONTACTS, tenant.headers, first_name=f"p{index}", custom_fields=values)

    ascending = await _all_pages(client, tenant, sort="custom_fields.score", limit=500)
    assert [c["custom_fields"].get("score") for c in ascending] == [-3, 0.25, 1.5, 5, 5, 10, 100, None, None]
    descending = await _all_pages(client, tenant, sort="-custom_fields.score", limit=500)
    assert [c["custom_fields"].get("score") for c in descending] == [None, None, 100, 10, 5, 5, 1.5, 0.25, -3]

    for sort in ("custom_fields.score", "-custom_fields.score", "custom_fields.since,-custom_fields.score"):
        full = await _all_pages(client, tenant, sort=sort, limit=500)
        for limit in (1, 2, 4):
            paged = await _all_pages(client, tenant, sort=sort, limit=limit)
            assert [c["id"] for c in paged] == [c["id"] for c in full], (sort, limit)
            searched = await _all_pages(client, tenant, sort=sort, limit=limit, search=True)
            assert [c["id"] for c in searched] == [c["id"] for c in full], (sort, limit)
        assert len(full) == len(scores)
    by_date = await _all_pages(client, tenant, sort="custom_fields.since", limit=3)
    dates = [c["custom_fields"].get("since") for c in by_date]
    assert dates[:4] == ["2024-01-03", "2024-01-05", "2024-01-07", "2024-01-09"]
    assert dates[4:] == [None] * 5
    bad = await client.get(CONTACTS, params={"sort": "custom_fields.nope"}, headers=tenant.headers)
    assert error_locs(bad) == [["query", "sort"]]
    multi = await client.get(CONTACTS, params={"sort": "custom_fields.channels"}, headers=tenant.headers)
    assert error_locs(multi) == [["query", "sort"]]


# --- changing and deleting definitions ----------------------------------------------------


async def test_patch_definition_with_if_match(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    field = await _define(client, tenant, "grade", "select")
    url = f"{FIELDS}/{field['id']}"
    response = await client.patch(
        url,
        headers={**tenant.headers, "If-Match": 'W/"1"'},
        json={"label": "客户等级", "options": ["A", "B", "D"], "required": True, "description": "ABC"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["label"], body["options"], body["required"], body["description"]) == (
        "客户等级",
        ["A", "B", "D"],
        True,
        "ABC",
    )
    assert (body["key"], body["type"], body["entity"]) == ("grade", "select", "contact")
    assert body["version"] == 2 and response.headers["etag"] == 'W/"2"'

    stale = await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"label": "lost"})
    assert_problem(stale, 412)
    row = await _definition_row(db, field["id"])
    assert row is not None and (row.label, row.options, row.required, row.version) == (
        "客户等级",
        ["A", "B", "D"],
        True,
        2,
    )

    # The new definition applies to values at once.
    assert (
        await client.post(CONTACTS, headers=tenant.headers, json={"first_name": "a", "custom_fields": {"grade": "D"}})
    ).status_code == 201
    removed_option = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "custom_fields": {"grade": "C"}}
    )
    assert_problem(removed_option, 422)
    assert {tuple(loc) for loc in error_locs(removed_option)} == {("body", "custom_fields", "grade")}
    now_required = await client.post(CONTACTS, headers=tenant.headers, json={"first_name": "a"})
    assert error_locs(now_required) == [["body", "custom_fields", "grade"]]


@pytest.mark.parametrize(
    ("type_", "body", "loc"),
    [
        ("text", {"options": ["A"]}, ["body", "options"]),
        ("select", {"options": []}, ["body", "options"]),
        ("select", {"options": None}, ["body", "options"]),
        ("select", {"options": ["A", "A"]}, ["body", "options"]),
        ("select", {"label": None}, ["body", "label"]),
        ("select", {"required": None}, ["body", "required"]),
        ("select", {"key": "other"}, ["body", "key"]),
        ("select", {"type": "text"}, ["body", "type"]),
        ("select", {"entity": "company"}, ["body", "entity"]),
    ],
)
async def test_patch_definition_validation(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, type_: str, body: dict[str, Any], loc: list[Any]
) -> None:
    field = await _define(client, tenant, "grade", type_)
    response = await client.patch(f"{FIELDS}/{field['id']}", headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    row = await _definition_row(db, field["id"])
    assert row is not None and (row.key, row.type, row.options, row.version) == (
        "grade",
        type_,
        CHOICES.get(type_, []),
        1,
    )


async def test_delete_definition_removes_its_values_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    field = await _define(client, tenant, "grade", "select")
    await _define(client, tenant, "score", "number")
    await _define(client, tenant, "grade", "select", entity="company")
    await _define(client, other_tenant, "grade", "select")
    first = await create(client, CONTACTS, tenant.headers, first_name="a", custom_fields={"grade": "A", "score": 1})
    second = await create(client, CONTACTS, tenant.headers, first_name="b", custom_fields={"grade": "B"})
    archived = await create(client, CONTACTS, tenant.headers, first_name="c", custom_fields={"grade": "C"})
    await client.delete(f"{CONTACTS}/{archived['id']}", headers=tenant.headers)
    untouched = await create(client, CONTACTS, tenant.headers, first_name="d", custom_fields={"score": 2})
    company = await create(client, COMPANIES, tenant.headers, name="天元", custom_fields={"grade": "A"})
    theirs = await create(client, CONTACTS, other_tenant.headers, first_name="x", custom_fields={"grade": "A"})
    url = f"{FIELDS}/{field['id']}"

    assert_problem(await client.delete(url, headers={**tenant.headers, "If-Match": 'W/"2"'}), 412)
    assert await _stored_values(db, Contact, first["id"]) == {"grade": "A", "score": 1}
    assert await _definition_row(db, field["id"]) is not None

    deleted = await client.delete(url, headers={**tenant.headers, "If-Match": 'W/"1"'})
    assert deleted.status_code == 204 and deleted.content == b""
    assert await _definition_row(db, field["id"]) is None
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)

    assert await _stored_values(db, Contact, first["id"]) == {"score": 1}
    assert await _stored_values(db, Contact, second["id"]) == {}
    assert await _stored_values(db, Contact, archived["id"]) == {}
    assert await _stored_values(db, Contact, untouched["id"]) == {"score": 2}
    assert await _stored_values(db, Company, company["id"]) == {"grade": "A"}
    assert await _stored_values(db, Contact, theirs["id"]) == {"grade": "A"}
    got = await client.get(f"{CONTACTS}/{first['id']}", headers=tenant.headers)
    assert got.json()["custom_fields"] == {"score": 1}
    # The records changed, so their versions moved on and an ETag read before is stale.
    assert got.headers["etag"] == 'W/"2"'
    untouched_now = await client.get(f"{CONTACTS}/{untouched['id']}", headers=tenant.headers)
    assert untouched_now.headers["etag"] == 'W/"1"'
    stale = await client.patch(
        f"{CONTACTS}/{first['id']}", headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"title": "x"}
    )
    assert_problem(stale, 412)
    listed = (await client.get(CONTACTS, headers=tenant.headers)).json()["items"]
    assert all("grade" not in c["custom_fields"] for c in listed)

    # The key is now unknown, for values and for filters.
    unknown = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "e", "custom_fields": {"grade": "A"}}
    )
    assert_problem(unknown, 422)
    assert error_locs(unknown) == [["body", "custom_fields", "grade"]]
    patch_unknown = await client.patch(
        f"{CONTACTS}/{first['id']}", headers=tenant.headers, json={"custom_fields": {"grade": "A"}}
    )
    assert error_locs(patch_unknown) == [["body", "custom_fields", "grade"]]
    search = await client.post(
        f"{CONTACTS}/search",
        headers=tenant.headers,
        json={"filter": {"field": "custom_fields.grade", "op": "eq", "value": "A"}},
    )
    assert error_locs(search) == [["body", "filter", "field"]]
    # The other organisation still has its field and values.
    theirs_search = await client.post(
        f"{CONTACTS}/search",
        headers=other_tenant.headers,
        json={"filter": {"field": "custom_fields.grade", "op": "eq", "value": "A"}},
    )
    assert [c["id"] for c in theirs_search.json()["items"]] == [theirs["id"]]

    # The key can be defined again, with another type, without old values leaking back.
    again = await _define(client, tenant, "grade", "number")
    assert again["id"] != field["id"]
    assert (await client.get(f"{CONTACTS}/{second['id']}", headers=tenant.headers)).json()["custom_fields"] == {}


# --- roles and tenancy --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "sales", "support", "marketing", "viewer"])
async def test_only_owners_and_admins_define_fields(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    person = await add_user(client, tenant, role)
    field = await _define(client, tenant, "grade", "select")
    url = f"{FIELDS}/{field['id']}"
    assert (await client.get(url, headers=person.headers)).status_code == 200
    assert (await client.get(FIELDS, headers=person.headers)).status_code == 200
    body = {"entity": "contact", "key": "note", "label": "Note", "type": "text"}
    assert_problem(await client.post(FIELDS, headers=person.headers, json=body), 403)
    assert_problem(await client.patch(url, headers=person.headers, json={"label": "x"}), 403)
    assert_problem(await client.delete(url, headers=person.headers), 403)
    assert await _definition_count(db, tenant.organization_id) == 1
    row = await _definition_row(db, field["id"])
    assert row is not None and (row.label, row.version) == ("Grade", 1)


async def test_an_admin_defines_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    admin = await add_user(client, tenant, "admin")
    field = await _define(client, admin, "grade", "select")
    patched = await client.patch(f"{FIELDS}/{field['id']}", headers=admin.headers, json={"label": "x"})
    assert patched.status_code == 200
    assert (await client.delete(f"{FIELDS}/{field['id']}", headers=admin.headers)).status_code == 204


async def test_api_keys_read_definitions_only(client: httpx.AsyncClient, tenant: Tenant) -> None:
    field = await _define(client, tenant, "grade", "select")
    reader = await add_api_key(client, tenant, ["custom_fields:read"])
    assert (await client.get(f"{FIELDS}/{field['id']}", headers=reader)).status_code == 200
    body = {"entity": "contact", "key": "note", "label": "Note", "type": "text"}
    assert_problem(await client.post(FIELDS, headers=reader, json=body), 403)
    assert_problem(await client.delete(f"{FIELDS}/{field['id']}", headers=reader), 403)
    contacts_only = await add_api_key(client, tenant, ["contacts:read"])
    assert_problem(await client.get(FIELDS, headers=contacts_only), 403)


async def test_another_organisations_definition_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    theirs = await _define(client, other_tenant, "grade", "select")
    url = f"{FIELDS}/{theirs['id']}"
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.patch(url, headers=tenant.headers, json={"label": "hijacked"}), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert_problem(await client.get(f"{FIELDS}/{uuid.uuid4()}", headers=tenant.headers), 404)
    assert (await client.get(FIELDS, headers=tenant.headers)).json()["items"] == []
    row = await _definition_row(db, theirs["id"])
    assert row is not None and (row.label, row.version) == ("Grade", 1)
    # Their definitions do not validate our values.
    response = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "custom_fields": {"grade": "A"}}
    )
    assert error_locs(response) == [["body", "custom_fields", "grade"]]


async def test_idempotent_replay_defines_one_field(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"entity": "contact", "key": "grade", "label": "Grade", "type": "select", "options": ["A", "B"]}
    first = await client.post(FIELDS, headers=headers, json=body)
    second = await client.post(FIELDS, headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert await _definition_count(db, tenant.organization_id) == 1


async def test_an_option_still_held_by_records_cannot_be_removed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    single = await _define(client, tenant, "grade", "select")
    multiple = await _define(client, tenant, "channels", "multi_select")
    await create(client, CONTACTS, tenant.headers, first_name="a", custom_fields={"grade": "A", "channels": ["wechat"]})
    options = {"grade": single["options"], "channels": multiple["options"]}
    for field, held in ((single, "A"), (multiple, "wechat")):
        url = f"{FIELDS}/{field['id']}"
        kept = [o for o in options[field["key"]] if o != held]
        refused = await client.patch(url, headers=tenant.headers, json={"options": kept})
        assert held in assert_problem(refused, 409)["detail"]
        unused = kept[0]
        narrowed = await client.patch(
            url, headers=tenant.headers, json={"options": [o for o in options[field["key"]] if o != unused]}
        )
        assert narrowed.status_code == 200, narrowed.text

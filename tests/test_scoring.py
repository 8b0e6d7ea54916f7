"""Lead scoring: fit and behaviour rules, decay, grades, the explanation, rescoring after rule
changes (the job), the lead queue, and rules' validation, roles, tenancy and concurrency control."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.services import scoring
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

RULES = "/api/v1/scoring-rules"
CONTACTS = "/api/v1/contacts"
LEADS = "/api/v1/leads"


async def _rule(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, RULES, tenant.headers, **body)


async def _fit(client: httpx.AsyncClient, tenant: Tenant, name: str, condition: Any, points: int) -> dict[str, Any]:
    return await _rule(client, tenant, name=name, kind="fit", condition=condition, points=points)


async def _contact(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, CONTACTS, tenant.headers, **({"first_name": "伟"} | body))


async def _rescore(app: Any, tenant: Tenant, *, parallelism: int | None = None) -> bool:
    return await scoring.rescore_organization(
        app.state.session_factory, uuid.UUID(tenant.organization_id), parallelism=parallelism
    )


async def _get(client: httpx.AsyncClient, tenant: Tenant, contact: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_fit_rules_score_contacts_as_they_are_written(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    await _fit(client, tenant, "经理", {"field": "title", "op": "contains", "value": "经理"}, 5)
    await _fit(client, tenant, "上海", {"field": "city", "op": "eq", "value": "上海"}, 60)
    await _fit(client, tenant, "退订", {"field": "email_opt_in", "op": "eq", "value": False}, -2)
    manager = await _contact(client, tenant, title="采购经理", city="上海", email_opt_in=True)
    assert (manager["lead_score"], manager["lead_grade"]) == (65, "B")
    assert await _get(client, tenant, manager) == manager
    other = await _contact(client, tenant, title="工程师")
    assert (other["lead_score"], other["lead_grade"]) == (-2, "D")

    response = await client.patch(f"{CONTACTS}/{other['id']}", headers=tenant.headers, json={"title": "销售经理"})
    assert (response.json()["lead_score"], response.json()["lead_grade"]) == (3, "D")
    history = (await client.get(f"{CONTACTS}/{other['id']}/history", headers=tenant.headers)).json()["items"]
    assert set(history[0]["changes"]) == {"title"}, "a score is derived, not a change anyone made"
    listed = (await client.get(CONTACTS, headers=tenant.headers)).json()["items"]
    assert {c["id"]: c["lead_score"] for c in listed} == {manager["id"]: 65, other["id"]: 3}


async def test_the_score_is_explained_rule_by_rule(client: httpx.AsyncClient, tenant: Tenant) -> None:
    title = await _fit(client, tenant, "经理", {"field": "title", "op": "contains", "value": "经理"}, 5)
    city = await _fit(client, tenant, "上海", {"field": "city", "op": "eq", "value": "上海"}, 60)
    opened = await _rule(client, tenant, name="打开邮件", kind="behaviour", signal="email_opened", points=3)
    contact = await _contact(client, tenant, title="经理")
    await client.post(f"{CONTACTS}/{contact['id']}/activities", headers=tenant.headers, json={"signal": "email_opened"})
    response = await client.get(f"{CONTACTS}/{contact['id']}/score", headers=tenant.headers)
    assert response.status_code == 200, response.text
    explained = response.json()
    assert explained["score"] == 8 and explained["grade"] == "D"
    assert explained["thresholds"] == {"A": 80, "B": 50, "C": 20}
    assert {(f["rule_id"], f["matched"], f["points"]) for f in explained["fit"]} == {
        (title["id"], True, 5),
        (city["id"], False, 0),
    }
    assert explained["behaviour"] == [{"rule_id": opened["id"], "name": "打开邮件", "activities": 1, "points": "3.00"}]
    assert explained["scored_at"] is not None
    assert (await _get(client, tenant, contact))["lead_score"] == 8


async def test_behaviour_points_add_up_and_decay(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _rule(
        client,
        tenant,
        name="微信互动",
        kind="behaviour",
        signal="interaction",
        channel="wechat",
        points=40,
        half_life_days=10,
    )
    await _rule(client, tenant, name="表单", kind="behaviour", signal="form_submitted", points=25)
    contact = await _contact(client, tenant)
    url = f"{CONTACTS}/{contact['id']}/activities"
    ten_days_ago = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    for body in (
        {"signal": "interaction", "channel": "wechat", "occurred_at": ten_days_ago},  # 20 after one half-life
        {"signal": "interaction", "channel": "phone"},  # another channel: nothing
        {"signal": "form_submitted", "occurred_at": ten_days_ago},  # no decay: 25
        {"signal": "email_clicked"},  # no rule: nothing
    ):
        response = await client.post(url, headers=tenant.headers, json=body)
        assert response.status_code == 201, response.text
    scored = await _get(client, tenant, contact)
    assert (scored["lead_score"], scored["lead_grade"]) == (45, "C")
    await client.post(url, headers=tenant.headers, json={"signal": "interaction", "channel": "wechat"})
    assert (await _get(client, tenant, contact))["lead_score"] == 85
    assert (await _get(client, tenant, contact))["lead_grade"] == "A"
    activities = (await client.get(url, headers=tenant.headers)).json()["items"]
    assert len(activities) == 5 and activities[0]["channel"] == "wechat"

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = await client.post(url, headers=tenant.headers, json={"signal": "email_opened", "occurred_at": future})
    assert error_locs(response) == [["body", "occurred_at"]]
    response = await client.post(url, headers=tenant.headers, json={"signal": "carrier_pigeon"})
    assert error_locs(response) == [["body", "signal"]]


async def test_rule_changes_rescore_everyone_in_a_job(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    first = await _contact(client, tenant, city="北京")
    second = await _contact(client, tenant, city="上海")
    rule = await _fit(client, tenant, "北京", {"field": "city", "op": "eq", "value": "北京"}, 90)
    assert (await _get(client, tenant, first))["lead_score"] == 0, "the job has not run yet"
    assert await _rescore(app, tenant) is True
    assert await _rescore(app, tenant) is False, "nothing is stale any more"
    assert ((await _get(client, tenant, first))["lead_score"], (await _get(client, tenant, first))["lead_grade"]) == (
        90,
        "A",
    )
    assert (await _get(client, tenant, second))["lead_score"] == 0

    response = await client.patch(f"{RULES}/{rule['id']}", headers=tenant.headers, json={"active": False})
    assert response.status_code == 200, response.text
    await _rescore(app, tenant)
    assert (await _get(client, tenant, first))["lead_score"] == 0

    response = await client.patch(
        "/api/v1/organization", headers=tenant.headers, json={"lead_grade_thresholds": {"A": 10, "B": 5, "C": 0}}
    )
    assert response.status_code == 200, response.text
    await _rescore(app, tenant)
    assert (await _get(client, tenant, second))["lead_grade"] == "C"
    response = await client.patch(
        "/api/v1/organization", headers=tenant.headers, json={"lead_grade_thresholds": {"A": 1, "B": 5, "C": 0}}
    )
    assert_problem(response, 422)


async def test_two_rescores_at_once_agree(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    contacts = [await _contact(client, tenant, city="北京") for _ in range(5)]
    await _fit(client, tenant, "北京", {"field": "city", "op": "eq", "value": "北京"}, 30)
    results = await asyncio.gather(_rescore(app, tenant), _rescore(app, tenant))
    assert sorted(results) == [False, True]
    assert {(await _get(client, tenant, c))["lead_score"] for c in contacts} == {30}


async def test_batch_and_merged_contacts_are_scored(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _fit(client, tenant, "有邮箱", {"field": "email", "op": "is_null", "value": False}, 20)
    response = await client.post(
        f"{CONTACTS}/batch",
        headers=tenant.headers,
        json={"mode": "create", "records": [{"first_name": "甲", "email": "a@example.com"}, {"first_name": "乙"}]},
    )
    assert response.status_code == 200, response.text
    ids = [result["id"] for result in response.json()["results"]]
    scores = [(await _get(client, tenant, {"id": contact_id}))["lead_score"] for contact_id in ids]
    assert scores == [20, 0]
    response = await client.post(f"{CONTACTS}/{ids[1]}/merge", headers=tenant.headers, json={"merge_ids": [ids[0]]})
    assert response.status_code == 200, response.text
    assert (await _get(client, tenant, {"id": ids[1]}))["lead_score"] == 20


async def test_the_lead_queue(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _fit(client, tenant, "上海", {"field": "city", "op": "eq", "value": "上海"}, 85)
    await _fit(client, tenant, "经理", {"field": "title", "op": "contains", "value": "经理"}, 30)
    rep = await add_user(client, tenant, "sales")
    hot = await _contact(client, tenant, city="上海")
    warm = await _contact(client, tenant, title="经理", owner_id=None)
    warmer = await _contact(client, tenant, title="总经理", city="北京", owner_id=rep.user_id)
    await _contact(client, tenant, city="上海", lifecycle_stage="customer")
    cold = await _contact(client, tenant)
    response = await client.get(LEADS, headers=tenant.headers)
    assert response.status_code == 200, response.text
    queue = [c["id"] for c in response.json()["items"]]
    assert queue[0] == hot["id"] and set(queue[1:3]) == {warm["id"], warmer["id"]} and queue[3] == cold["id"]
    assert len(queue) == 4

    pages: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(LEADS, headers=tenant.headers, params=params)).json()
        pages += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == queue
    unassigned = (await client.get(LEADS, headers=tenant.headers, params={"unassigned": True})).json()["items"]
    assert [c["id"] for c in unassigned] == [warm["id"]]
    theirs = (await client.get(LEADS, headers=tenant.headers, params={"owner_id": rep.user_id})).json()["items"]
    assert [c["id"] for c in theirs] == [warmer["id"]]
    grade_a = (await client.get(LEADS, headers=tenant.headers, params={"grade": "A"})).json()["items"]
    assert [c["id"] for c in grade_a] == [hot["id"]]
    assert error_locs(await client.get(LEADS, headers=tenant.headers, params={"grade": "E"})) == [["query", "grade"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "x", "kind": "fit", "points": 5}, ["body"]),
        ({"name": "x", "kind": "fit", "points": 5, "condition": {"field": "nope", "op": "eq", "value": 1}}, None),
        ({"name": "x", "kind": "behaviour", "points": 5}, ["body"]),
        ({"name": "x", "kind": "behaviour", "signal": "email_opened", "points": 5, "condition": {}}, ["body"]),
        ({"name": "x", "kind": "fit", "condition": {"field": "city", "op": "eq", "value": "a"}, "points": 5000}, None),
        ({"name": "x", "kind": "behaviour", "signal": "email_opened", "points": 5, "half_life_days": 0}, None),
        ({"name": "", "kind": "fit", "condition": {"field": "city", "op": "eq", "value": "a"}, "points": 5}, None),
        ({"name": "x", "kind": "magic", "points": 5}, None),
    ],
)
async def test_bad_rules_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str] | None
) -> None:
    response = await client.post(RULES, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    if loc is not None:
        assert error_locs(response)[0][: len(loc)] == loc
    assert (await client.get(RULES, headers=tenant.headers)).json()["items"] == []


async def test_a_bad_condition_points_at_the_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {"name": "x", "kind": "fit", "points": 5, "condition": {"field": "nope", "op": "eq", "value": 1}}
    response = await client.post(RULES, headers=tenant.headers, json=body)
    assert error_locs(response)[0][:2] == ["body", "condition"]
    rule = await _fit(client, tenant, "上海", {"field": "city", "op": "eq", "value": "上海"}, 5)
    response = await client.patch(f"{RULES}/{rule['id']}", headers=tenant.headers, json={"signal": "email_opened"})
    assert_problem(response, 422)
    response = await client.patch(f"{RULES}/{rule['id']}", headers=tenant.headers, json={"condition": None})
    assert_problem(response, 422)


async def test_rules_crud_concurrency_and_audit(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers | {"Idempotency-Key": "rule-1"}
    body = {
        "name": "经理",
        "kind": "fit",
        "condition": {"field": "title", "op": "contains", "value": "经理"},
        "points": 5,
    }
    first = await client.post(RULES, headers=headers, json=body)
    again = await client.post(RULES, headers=headers, json=body)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    url = f"{RULES}/{first.json()['id']}"
    assert (await client.get(url, headers=tenant.headers)).headers["etag"] == 'W/"1"'
    updated = await client.patch(url, headers=tenant.headers | {"If-Match": 'W/"1"'}, json={"points": 7})
    assert updated.status_code == 200 and updated.json()["points"] == 7 and updated.json()["version"] == 2
    assert_problem(await client.patch(url, headers=tenant.headers | {"If-Match": 'W/"1"'}, json={"points": 9}), 412)
    assert_problem(await client.delete(url, headers=tenant.headers | {"If-Match": 'W/"1"'}), 412)
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    audit = (
        await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_type": "scoring_rule"})
    ).json()
    assert [e["action"] for e in audit["items"]] == ["delete", "update", "create"]


async def test_who_may_change_rules(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {"name": "x", "kind": "behaviour", "signal": "email_opened", "points": 1}
    for role, status in (("sales", 403), ("viewer", 403), ("support", 403), ("marketing", 201), ("manager", 201)):
        user = await add_user(client, tenant, role)
        assert (await client.post(RULES, headers=user.headers, json=body)).status_code == status, role
        assert (await client.get(RULES, headers=user.headers)).status_code == 200
    key = await add_api_key(client, tenant, ["scoring:read"])
    assert_problem(await client.post(RULES, headers=key, json=body), 403)
    viewer = await add_user(client, tenant, "viewer")
    contact = await _contact(client, tenant)
    response = await client.post(
        f"{CONTACTS}/{contact['id']}/activities", headers=viewer.headers, json={"signal": "email_opened"}
    )
    assert_problem(response, 403)


async def test_another_organisations_rules_and_contacts_are_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    rule = await _rule(client, other_tenant, name="x", kind="behaviour", signal="email_opened", points=1)
    contact = await _contact(client, other_tenant)
    for response in (
        await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers),
        await client.patch(f"{RULES}/{rule['id']}", headers=tenant.headers, json={"points": 2}),
        await client.delete(f"{RULES}/{rule['id']}", headers=tenant.headers),
        await client.get(f"{CONTACTS}/{contact['id']}/score", headers=tenant.headers),
        await client.get(f"{CONTACTS}/{contact['id']}/activities", headers=tenant.headers),
        await client.post(
            f"{CONTACTS}/{contact['id']}/activities", headers=tenant.headers, json={"signal": "email_opened"}
        ),
    ):
        assert_problem(response, 404)
    assert (await client.get(RULES, headers=tenant.headers)).json()["items"] == []
    assert (await client.get(LEADS, headers=tenant.headers)).json()["items"] == []
    assert (await _get(client, other_tenant, contact))["lead_score"] == 0


async def test_a_rescore_split_over_connections_gives_the_same_scores(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "PARTITION_FROM", 1)
    made = [await _contact(client, tenant, city="北京" if index % 2 else "上海") for index in range(9)]
    await _fit(client, tenant, "北京", {"field": "city", "op": "eq", "value": "北京"}, 30)
    assert await _rescore(app, tenant, parallelism=3) is True
    scores = {c["id"]: (await _get(client, tenant, c))["lead_score"] for c in made}
    assert scores == {c["id"]: 30 if c["city"] == "北京" else 0 for c in made}

"""Pipelines and stages: the default pipeline, CRUD, stage rules, moving deals, reorder, roles, tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.pipeline import Pipeline, PipelineStage
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

PIPELINES = "/api/v1/pipelines"
DEALS = "/api/v1/deals"
AUDIT = "/api/v1/audit-log"

DEFAULT_STAGES = [
    ("潜在客户", 10, "open"),
    ("需求分析", 20, "open"),
    ("方案制定", 40, "open"),
    ("商务谈判", 70, "open"),
    ("成交", 100, "won"),
    ("输单", 0, "lost"),
]
TENDER_STAGES = [
    {"name": "初步接触", "probability": 10},
    {"name": "招投标", "probability": 50},
    {"name": "中标", "probability": 100, "kind": "won"},
    {"name": "未中标", "probability": 0, "kind": "lost"},
]


async def _default_pipeline(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get(PIPELINES, headers=tenant.headers)
    assert response.status_code == 200, response.text
    [default] = [p for p in response.json()["items"] if p["is_default"]]
    return default  # type: ignore[no-any-return]


async def _tender_pipeline(client: httpx.AsyncClient, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return await create(client, PIPELINES, tenant.headers, name="大客户项目", stages=TENDER_STAGES, **extra)


async def _get(client: httpx.AsyncClient, tenant: Tenant, url: str) -> dict[str, Any]:
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _stage(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    [stage] = [s for s in pipeline["stages"] if s["name"] == name]
    return stage  # type: ignore[no-any-return]


def _names(pipeline: dict[str, Any]) -> list[str]:
    return [s["name"] for s in pipeline["stages"]]


async def _deal(client: httpx.AsyncClient, tenant: Tenant, stage_id: str, **body: Any) -> dict[str, Any]:
    return await create(client, DEALS, tenant.headers, name="天元 ERP 升级", stage_id=stage_id, amount="100.00", **body)


async def _audit(client: httpx.AsyncClient, tenant: Tenant, entity_id: str) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, headers=tenant.headers, params={"entity_id": entity_id, "limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def _pipeline_count(db: AsyncSession, organization_id: str) -> int:
    statement = select(func.count()).select_from(Pipeline).where(Pipeline.organization_id == uuid.UUID(organization_id))
    return int(await db.scalar(statement) or 0)


async def _live_stage_count(db: AsyncSession, pipeline_id: str) -> int:
    statement = (
        select(func.count())
        .select_from(PipelineStage)
        .where(PipelineStage.pipeline_id == uuid.UUID(pipeline_id), PipelineStage.archived_at.is_(None))
    )
    return int(await db.scalar(statement) or 0)


# --- The default pipeline ---------------------------------------------------------------------


async def test_signup_creates_the_default_sales_pipeline(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(PIPELINES, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    [pipeline] = body["items"]
    assert pipeline["name"] == "销售管道" and pipeline["is_default"] is True and pipeline["version"] == 1
    assert [(s["name"], s["probability"], s["kind"]) for s in pipeline["stages"]] == DEFAULT_STAGES
    assert [s["position"] for s in pipeline["stages"]] == list(range(6))
    assert {s["pipeline_id"] for s in pipeline["stages"]} == {pipeline["id"]}
    assert "organization_id" not in pipeline and "archived_at" not in pipeline["stages"][0]

    got = await client.get(f"{PIPELINES}/{pipeline['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json() == pipeline and got.headers["etag"] == 'W/"1"'
    stages = await client.get(f"{PIPELINES}/{pipeline['id']}/stages", headers=tenant.headers)
    assert stages.status_code == 200 and stages.json() == pipeline["stages"]

    [entry] = await _audit(client, tenant, pipeline["id"])
    assert (entry["entity_type"], entry["action"], entry["actor_id"]) == ("pipeline", "create", tenant.user_id)
    assert [s["name"] for s in entry["changes"]["stages"]["after"]] == [name for name, _, _ in DEFAULT_STAGES]


async def test_a_deal_without_a_pipeline_goes_to_the_default_pipelines_first_stage(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    default = await _default_pipeline(client, tenant)
    deal = await create(client, DEALS, tenant.headers, name="x", amount="100.00")
    first = default["stages"][0]
    assert (deal["pipeline_id"], deal["stage_id"], deal["probability"]) == (default["id"], first["id"], 10)
    assert deal["status"] == "open" and deal["probability_manual"] is False


# --- Pipelines --------------------------------------------------------------------------------


async def test_create_a_pipeline_with_its_stages(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    response = await client.post(
        PIPELINES, headers=tenant.headers, json={"name": " 大客户项目 ", "stages": TENDER_STAGES}
    )
    assert response.status_code == 201, response.text
    pipeline = response.json()
    assert response.headers["location"] == f"{PIPELINES}/{pipeline['id']}"
    assert response.headers["etag"] == f'W/"{pipeline["version"]}"'
    assert pipeline["name"] == "大客户项目" and pipeline["is_default"] is False
    assert [(s["name"], s["probability"], s["kind"], s["position"]) for s in pipeline["stages"]] == [
        ("初步接触", 10, "open", 0),
        ("招投标", 50, "open", 1),
        ("中标", 100, "won", 2),
        ("未中标", 0, "lost", 3),
    ]
    assert await _pipeline_count(db, tenant.organization_id) == 2
    assert await _live_stage_count(db, pipeline["id"]) == 4
    assert await _get(client, tenant, f"{PIPELINES}/{pipeline['id']}") == pipeline
    # The default stays where it was; the default is listed first.
    listed = (await client.get(PIPELINES, headers=tenant.headers)).json()["items"]
    assert [(p["name"], p["is_default"]) for p in listed] == [("销售管道", True), ("大客户项目", False)]

    [entry] = await _audit(client, tenant, pipeline["id"])
    assert (entry["entity_type"], entry["action"]) == ("pipeline", "create")
    assert entry["changes"]["name"] == {"before": None, "after": "大客户项目"}
    assert entry["changes"]["is_default"] == {"before": None, "after": False}
    assert [s["name"] for s in entry["changes"]["stages"]["after"]] == [s["name"] for s in TENDER_STAGES]


async def test_a_pipeline_without_stages_gets_the_default_sales_stages(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    pipeline = await create(client, PIPELINES, tenant.headers, name="渠道销售")
    assert [(s["name"], s["probability"], s["kind"]) for s in pipeline["stages"]] == DEFAULT_STAGES
    default = await _default_pipeline(client, tenant)
    # Stages of its own, not the default pipeline's.
    assert {s["id"] for s in pipeline["stages"]}.isdisjoint({s["id"] for s in default["stages"]})


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 101}, ["body", "name"]),
        ({"name": "x", "is_default": None}, ["body", "is_default"]),
        ({"name": "x", "stages": []}, ["body", "stages"]),
        ({"name": "x", "stages": TENDER_STAGES[:1]}, ["body", "stages"]),
        ({"name": "x", "stages": TENDER_STAGES[:2] + TENDER_STAGES[3:]}, ["body", "stages"]),
        ({"name": "x", "stages": TENDER_STAGES[:3]}, ["body", "stages"]),
        ({"name": "x", "stages": TENDER_STAGES[2:]}, ["body", "stages"]),
        ({"name": "x", "stages": [*TENDER_STAGES, {"name": "招投标", "probability": 60}]}, ["body", "stages"]),
        (
            {"name": "x", "stages": [{**TENDER_STAGES[0], "probability": 101}, *TENDER_STAGES[1:]]},
            ["body", "stages", 0, "probability"],
        ),
        (
            {"name": "x", "stages": [{**TENDER_STAGES[0], "probability": -1}, *TENDER_STAGES[1:]]},
            ["body", "stages", 0, "probability"],
        ),
        ({"name": "x", "stages": [{"name": "a"}, *TENDER_STAGES[1:]]}, ["body", "stages", 0, "probability"]),
        (
            {"name": "x", "stages": [{**TENDER_STAGES[0], "kind": "maybe"}, *TENDER_STAGES[1:]]},
            ["body", "stages", 0, "kind"],
        ),
        (
            {"name": "x", "stages": [{**TENDER_STAGES[0], "name": ""}, *TENDER_STAGES[1:]]},
            ["body", "stages", 0, "name"],
        ),
        (
            {"name": "x", "stages": [{**TENDER_STAGES[0], "color": "red"}, *TENDER_STAGES[1:]]},
            ["body", "stages", 0, "color"],
        ),
        ({"name": "x", "id": str(uuid.uuid4())}, ["body", "id"]),
        ({"name": "x", "version": 3}, ["body", "version"]),
    ],
)
async def test_pipeline_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(PIPELINES, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    assert await _pipeline_count(db, tenant.organization_id) == 1


async def test_pipeline_names_are_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    assert_problem(await client.post(PIPELINES, headers=tenant.headers, json={"name": "销售管道"}), 409)
    assert await _pipeline_count(db, tenant.organization_id) == 1
    # Another organisation has a pipeline of that name too, which is no clash.
    second = await create(client, PIPELINES, tenant.headers, name="渠道销售")
    clash = await client.patch(f"{PIPELINES}/{second['id']}", headers=tenant.headers, json={"name": "销售管道"})
    assert_problem(clash, 409)
    assert (await _get(client, tenant, f"{PIPELINES}/{second['id']}"))["name"] == "渠道销售"
    await create(client, PIPELINES, other_tenant.headers, name="渠道销售")


async def test_rename_a_pipeline(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}"
    response = await client.patch(
        url, headers={**tenant.headers, "If-Match": f'W/"{pipeline["version"]}"'}, json={"name": "政府项目"}
    )
    assert response.status_code == 200, response.text
    renamed = response.json()
    assert renamed["name"] == "政府项目" and renamed["version"] == pipeline["version"] + 1
    assert response.headers["etag"] == f'W/"{renamed["version"]}"'
    assert renamed["stages"] == pipeline["stages"]
    assert await _get(client, tenant, url) == renamed
    # Sending what it already is changes nothing.
    same = await client.patch(url, headers=tenant.headers, json={"name": "政府项目", "is_default": False})
    assert same.status_code == 200 and same.json()["version"] == renamed["version"]
    for field in ("name", "is_default"):
        assert error_locs(await client.patch(url, headers=tenant.headers, json={field: None})) == [["body", field]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"name": ""})) == [["body", "name"]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"stages": []})) == [["body", "stages"]]

    entries = await _audit(client, tenant, pipeline["id"])
    assert [e["action"] for e in entries] == ["update", "create"]
    assert entries[0]["changes"] == {"name": {"before": "大客户项目", "after": "政府项目"}}


async def test_stale_if_match_is_412_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}"
    stale = {**tenant.headers, "If-Match": f'W/"{pipeline["version"]}"'}
    assert (await client.patch(url, headers=stale, json={"name": "政府项目"})).status_code == 200
    assert_problem(await client.patch(url, headers=stale, json={"name": "lost update"}), 412)
    assert_problem(await client.patch(url, headers=stale, json={"is_default": True}), 412)
    assert_problem(await client.delete(url, headers=stale), 412)
    got = await _get(client, tenant, url)
    assert (got["name"], got["is_default"], got["version"]) == ("政府项目", False, pipeline["version"] + 1)
    assert (await _default_pipeline(client, tenant))["name"] == "销售管道"
    assert await _pipeline_count(db, tenant.organization_id) == 2
    assert [e["action"] for e in await _audit(client, tenant, pipeline["id"])] == ["update", "create"]
    # A stage change moves the pipeline's version on, so an ETag read before it is stale too.
    fresh = {**tenant.headers, "If-Match": f'W/"{got["version"]}"'}
    stage = _stage(got, "招投标")
    changed = await client.patch(f"{url}/stages/{stage['id']}", headers=tenant.headers, json={"probability": 55})
    assert changed.status_code == 200, changed.text
    assert_problem(await client.patch(url, headers=fresh, json={"name": "again"}), 412)
    assert (await _get(client, tenant, url))["version"] > got["version"]


async def test_making_another_pipeline_the_default_moves_the_default(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await _default_pipeline(client, tenant)
    second = await _tender_pipeline(client, tenant, is_default=True)
    assert second["is_default"] is True
    old = await _get(client, tenant, f"{PIPELINES}/{first['id']}")
    assert old["is_default"] is False
    # The old default changed, so its old ETag no longer matches.
    assert old["version"] == first["version"] + 1
    listed = (await client.get(PIPELINES, headers=tenant.headers)).json()["items"]
    assert [(p["id"], p["is_default"]) for p in listed] == [(second["id"], True), (first["id"], False)]
    deal = await create(client, DEALS, tenant.headers, name="x", amount="1.00")
    assert (deal["pipeline_id"], deal["stage_id"]) == (second["id"], second["stages"][0]["id"])

    # PATCH moves it back.
    back = await client.patch(f"{PIPELINES}/{first['id']}", headers=tenant.headers, json={"is_default": True})
    assert back.status_code == 200, back.text
    assert back.json()["is_default"] is True
    assert (await _get(client, tenant, f"{PIPELINES}/{second['id']}"))["is_default"] is False
    assert (await _default_pipeline(client, tenant))["id"] == first["id"]

    # The default cannot just stop being one: another must become the default.
    refused = await client.patch(f"{PIPELINES}/{first['id']}", headers=tenant.headers, json={"is_default": False})
    assert_problem(refused, 422)
    assert error_locs(refused) == [["body", "is_default"]]
    assert (await _default_pipeline(client, tenant))["id"] == first["id"]

    entries = await _audit(client, tenant, first["id"])
    assert entries[0]["action"] == "update"
    assert entries[0]["changes"]["is_default"] == {"before": False, "after": True}


async def test_delete_a_pipeline(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}"
    response = await client.delete(url, headers={**tenant.headers, "If-Match": f'W/"{pipeline["version"]}"'})
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.get(f"{url}/stages", headers=tenant.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert await _pipeline_count(db, tenant.organization_id) == 1
    assert await _live_stage_count(db, pipeline["id"]) == 0
    listed = (await client.get(PIPELINES, headers=tenant.headers)).json()["items"]
    assert pipeline["id"] not in {p["id"] for p in listed} and len(listed) == 1
    entries = await _audit(client, tenant, pipeline["id"])
    assert [e["action"] for e in entries] == ["delete", "create"]
    assert entries[0]["changes"] == {"name": {"before": "大客户项目"}}


async def test_a_failed_create_leaves_the_default_alone(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    default = await _default_pipeline(client, tenant)
    clash = await client.post(PIPELINES, headers=tenant.headers, json={"name": "销售管道", "is_default": True})
    assert_problem(clash, 409)
    assert await _default_pipeline(client, tenant) == default
    assert await _pipeline_count(db, tenant.organization_id) == 1


async def test_an_organisation_has_at_most_50_pipelines_of_50_stages(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    too_many = [{"name": f"s{i}", "probability": 10} for i in range(49)] + TENDER_STAGES[2:]
    assert error_locs(await client.post(PIPELINES, headers=tenant.headers, json={"name": "x", "stages": too_many})) == [
        ["body", "stages"]
    ]
    default = await _default_pipeline(client, tenant)
    url = f"{PIPELINES}/{default['id']}/stages"
    for i in range(44):
        await create(client, url, tenant.headers, name=f"阶段 {i}", probability=i)
    assert_problem(await client.post(url, headers=tenant.headers, json={"name": "one more", "probability": 1}), 409)
    assert await _live_stage_count(db, default["id"]) == 50
    for i in range(49):
        await create(client, PIPELINES, tenant.headers, name=f"管道 {i}", stages=TENDER_STAGES)
    assert_problem(await client.post(PIPELINES, headers=tenant.headers, json={"name": "one more"}), 409)
    assert await _pipeline_count(db, tenant.organization_id) == 50
    listed = (await client.get(PIPELINES, headers=tenant.headers)).json()
    assert len(listed["items"]) == 50 and listed["next_cursor"] is None


async def test_the_default_pipeline_cannot_be_deleted(client: httpx.AsyncClient, tenant: Tenant) -> None:
    default = await _default_pipeline(client, tenant)
    assert_problem(await client.delete(f"{PIPELINES}/{default['id']}", headers=tenant.headers), 409)
    assert (await _default_pipeline(client, tenant))["id"] == default["id"]
    # Once another is the default, it can go.
    await _tender_pipeline(client, tenant, is_default=True)
    assert (await client.delete(f"{PIPELINES}/{default['id']}", headers=tenant.headers)).status_code == 204


async def test_a_pipeline_holding_deals_cannot_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline["stages"][0]["id"])
    assert_problem(await client.delete(f"{PIPELINES}/{pipeline['id']}", headers=tenant.headers), 409)
    # Archived deals count too: their pipeline must survive for them to be restored.
    assert (await client.delete(f"{DEALS}/{deal['id']}", headers=tenant.headers)).status_code in (200, 204)
    assert_problem(await client.delete(f"{PIPELINES}/{pipeline['id']}", headers=tenant.headers), 409)
    assert await _pipeline_count(db, tenant.organization_id) == 2
    assert await _live_stage_count(db, pipeline["id"]) == 4


async def test_a_pipeline_in_a_deals_stage_history_cannot_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    default = await _default_pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline["stages"][0]["id"])
    moved = await client.patch(
        f"{DEALS}/{deal['id']}", headers=tenant.headers, json={"stage_id": default["stages"][0]["id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["pipeline_id"] == default["id"]
    # No deal is in it any more, but one's history is: deleting it would rewrite that history.
    refused = assert_problem(await client.delete(f"{PIPELINES}/{pipeline['id']}", headers=tenant.headers), 409)
    assert "stage history" in refused["detail"]
    assert await _pipeline_count(db, tenant.organization_id) == 2
    history = (await client.get(f"{DEALS}/{deal['id']}/stage-history", headers=tenant.headers)).json()["items"]
    assert [v["stage_id"] for v in history] == [pipeline["stages"][0]["id"], default["stages"][0]["id"]]


# --- Stages -----------------------------------------------------------------------------------


async def test_add_stages(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}/stages"
    # An open stage goes before the first closed one by default.
    response = await client.post(url, headers=tenant.headers, json={"name": "商务谈判", "probability": 70})
    assert response.status_code == 201, response.text
    stage = response.json()
    assert (stage["name"], stage["probability"], stage["kind"], stage["position"]) == ("商务谈判", 70, "open", 2)
    assert stage["pipeline_id"] == pipeline["id"]
    assert response.headers["location"] == url
    # A closed stage goes last.
    lost = await create(client, url, tenant.headers, name="取消", probability=0, kind="lost")
    assert lost["position"] == 5
    # An explicit position puts it there; one past the end puts it last.
    first = await create(client, url, tenant.headers, name="线索", probability=5, position=0)
    assert first["position"] == 0
    last = await create(client, url, tenant.headers, name="复购", probability=100, kind="won", position=99)
    assert last["position"] == 7

    got = await _get(client, tenant, f"{PIPELINES}/{pipeline['id']}")
    assert _names(got) == ["线索", "初步接触", "招投标", "商务谈判", "中标", "未中标", "取消", "复购"]
    assert [s["position"] for s in got["stages"]] == list(range(8))
    assert got["version"] > pipeline["version"]
    assert await _get(client, tenant, url) == got["stages"]
    assert await _live_stage_count(db, pipeline["id"]) == 8

    [entry] = await _audit(client, tenant, stage["id"])
    assert (entry["entity_type"], entry["action"]) == ("pipeline_stage", "create")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"probability": 10}, ["body", "name"]),
        ({"name": "", "probability": 10}, ["body", "name"]),
        ({"name": "x" * 101, "probability": 10}, ["body", "name"]),
        ({"name": "x"}, ["body", "probability"]),
        ({"name": "x", "probability": 101}, ["body", "probability"]),
        ({"name": "x", "probability": -1}, ["body", "probability"]),
        ({"name": "x", "probability": "high"}, ["body", "probability"]),
        ({"name": "x", "probability": 10, "kind": "closed"}, ["body", "kind"]),
        ({"name": "x", "probability": 10, "position": -1}, ["body", "position"]),
        ({"name": "x", "probability": 10, "pipeline_id": str(uuid.uuid4())}, ["body", "pipeline_id"]),
    ],
)
async def test_stage_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    default = await _default_pipeline(client, tenant)
    response = await client.post(f"{PIPELINES}/{default['id']}/stages", headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    assert await _live_stage_count(db, default["id"]) == 6


async def test_stage_names_are_unique_within_a_pipeline(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    default = await _default_pipeline(client, tenant)
    url = f"{PIPELINES}/{default['id']}/stages"
    assert_problem(await client.post(url, headers=tenant.headers, json={"name": "成交", "probability": 5}), 409)
    assert await _live_stage_count(db, default["id"]) == 6
    renamed = await client.patch(
        f"{url}/{_stage(default, '输单')['id']}", headers=tenant.headers, json={"name": "成交"}
    )
    assert_problem(renamed, 409)
    assert _names(await _get(client, tenant, f"{PIPELINES}/{default['id']}")) == _names(default)
    # Another pipeline may use the same names.
    other = await _tender_pipeline(client, tenant)
    await create(client, f"{PIPELINES}/{other['id']}/stages", tenant.headers, name="成交", probability=90)


async def test_update_a_stage(client: httpx.AsyncClient, tenant: Tenant) -> None:
    default = await _default_pipeline(client, tenant)
    stage = _stage(default, "需求分析")
    url = f"{PIPELINES}/{default['id']}/stages/{stage['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"name": "需求调研", "probability": 25})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["id"], updated["name"], updated["probability"]) == (stage["id"], "需求调研", 25)
    assert (updated["kind"], updated["position"]) == ("open", 1)
    got = await _get(client, tenant, f"{PIPELINES}/{default['id']}")
    assert _stage(got, "需求调研") == updated and got["version"] > default["version"]
    for field in ("name", "probability", "kind"):
        assert error_locs(await client.patch(url, headers=tenant.headers, json={field: None})) == [["body", field]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"probability": 101})) == [
        ["body", "probability"]
    ]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"position": 3})) == [["body", "position"]]

    # The default stages were created with their pipeline: this is the stage's first entry of its own.
    [entry] = await _audit(client, tenant, stage["id"])
    assert (entry["entity_type"], entry["action"]) == ("pipeline_stage", "update")
    assert entry["changes"]["name"] == {"before": "需求分析", "after": "需求调研"}
    assert entry["changes"]["probability"] == {"before": 20, "after": 25}


async def test_stage_kind_changes_only_while_the_stage_is_empty(client: httpx.AsyncClient, tenant: Tenant) -> None:
    default = await _default_pipeline(client, tenant)
    negotiation = _stage(default, "商务谈判")
    url = f"{PIPELINES}/{default['id']}/stages/{negotiation['id']}"
    deal = await _deal(client, tenant, negotiation["id"])
    assert_problem(await client.patch(url, headers=tenant.headers, json={"kind": "won"}), 409)
    assert _stage(await _get(client, tenant, f"{PIPELINES}/{default['id']}"), "商务谈判")["kind"] == "open"
    got_deal = await _get(client, tenant, f"{DEALS}/{deal['id']}")
    assert got_deal["status"] == "open"
    # Empty, it may become a second won stage.
    empty = _stage(default, "方案制定")
    changed = await client.patch(
        f"{PIPELINES}/{default['id']}/stages/{empty['id']}", headers=tenant.headers, json={"kind": "won"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["kind"] == "won"


@pytest.mark.parametrize(("name", "kind"), [("成交", "open"), ("输单", "won")])
async def test_a_pipeline_keeps_an_open_a_won_and_a_lost_stage(
    client: httpx.AsyncClient, tenant: Tenant, name: str, kind: str
) -> None:
    default = await _default_pipeline(client, tenant)
    stage = _stage(default, name)
    url = f"{PIPELINES}/{default['id']}/stages/{stage['id']}"
    refused = await client.patch(url, headers=tenant.headers, json={"kind": kind})
    assert_problem(refused, 422)
    assert error_locs(refused) == [["body", "kind"]]
    deleted = await client.delete(url, headers=tenant.headers)
    assert_problem(deleted, 422)
    assert error_locs(deleted) == [["path", "stage_id"]]
    assert await _get(client, tenant, f"{PIPELINES}/{default['id']}") == default


async def test_the_last_open_stage_cannot_be_removed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}/stages"
    first, second = pipeline["stages"][0], pipeline["stages"][1]
    assert (await client.delete(f"{url}/{first['id']}", headers=tenant.headers)).status_code == 200
    assert_problem(await client.delete(f"{url}/{second['id']}", headers=tenant.headers), 422)
    changed = await client.patch(f"{url}/{second['id']}", headers=tenant.headers, json={"kind": "lost"})
    assert_problem(changed, 422)
    assert _names(await _get(client, tenant, f"{PIPELINES}/{pipeline['id']}")) == ["招投标", "中标", "未中标"]


async def test_changing_a_stages_probability_moves_the_deals_that_follow_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    default = await _default_pipeline(client, tenant)
    stage = _stage(default, "方案制定")
    following = await _deal(client, tenant, stage["id"])
    manual = await _deal(client, tenant, stage["id"], probability=35)
    elsewhere = await _deal(client, tenant, _stage(default, "需求分析")["id"])
    assert (following["probability"], following["probability_manual"]) == (40, False)
    assert (manual["probability"], manual["probability_manual"]) == (35, True)

    url = f"{PIPELINES}/{default['id']}/stages/{stage['id']}"
    assert (await client.patch(url, headers=tenant.headers, json={"probability": 45})).status_code == 200
    now_following = await _get(client, tenant, f"{DEALS}/{following['id']}")
    assert (now_following["probability"], now_following["probability_manual"]) == (45, False)
    assert now_following["version"] == following["version"] + 1
    now_manual = await _get(client, tenant, f"{DEALS}/{manual['id']}")
    assert (now_manual["probability"], now_manual["version"]) == (35, manual["version"])
    assert (await _get(client, tenant, f"{DEALS}/{elsewhere['id']}"))["probability"] == 20
    # A rename leaves deals alone.
    assert (await client.patch(url, headers=tenant.headers, json={"name": "方案"})).status_code == 200
    assert (await _get(client, tenant, f"{DEALS}/{following['id']}"))["version"] == following["version"] + 1


async def test_delete_an_empty_stage(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    default = await _default_pipeline(client, tenant)
    stage = _stage(default, "需求分析")
    url = f"{PIPELINES}/{default['id']}/stages/{stage['id']}"
    response = await client.delete(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    pipeline = response.json()
    assert response.headers["etag"] == f'W/"{pipeline["version"]}"'
    assert _names(pipeline) == ["潜在客户", "方案制定", "商务谈判", "成交", "输单"]
    assert [s["position"] for s in pipeline["stages"]] == list(range(5))
    assert pipeline["version"] > default["version"]
    assert await _get(client, tenant, f"{PIPELINES}/{default['id']}") == pipeline
    assert await _live_stage_count(db, default["id"]) == 5
    # It is archived, not removed, and its name is free again.
    archived = await db.scalar(select(PipelineStage).where(PipelineStage.id == uuid.UUID(stage["id"])))
    assert archived is not None and archived.archived_at is not None
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert_problem(await client.patch(url, headers=tenant.headers, json={"probability": 5}), 404)
    assert_problem(await client.post(DEALS, headers=tenant.headers, json={"name": "x", "stage_id": stage["id"]}), 422)
    await create(client, f"{PIPELINES}/{default['id']}/stages", tenant.headers, name="需求分析", probability=20)

    entries = await _audit(client, tenant, stage["id"])
    assert [e["action"] for e in entries] == ["delete"]
    assert entries[0]["entity_type"] == "pipeline_stage"


async def test_deleting_a_stage_with_deals_moves_them(client: httpx.AsyncClient, tenant: Tenant) -> None:
    default = await _default_pipeline(client, tenant)
    leaving = _stage(default, "需求分析")
    target = _stage(default, "方案制定")
    deal = await _deal(client, tenant, leaving["id"])
    manual = await _deal(client, tenant, leaving["id"], probability=33)
    url = f"{PIPELINES}/{default['id']}/stages/{leaving['id']}"

    without = await client.delete(url, headers=tenant.headers)
    assert_problem(without, 422)
    assert error_locs(without) == [["query", "move_to"]]
    to_itself = await client.delete(url, headers=tenant.headers, params={"move_to": leaving["id"]})
    assert error_locs(to_itself) == [["query", "move_to"]]
    other = await _tender_pipeline(client, tenant)
    to_other_pipeline = await client.delete(url, headers=tenant.headers, params={"move_to": other["stages"][0]["id"]})
    assert error_locs(to_other_pipeline) == [["query", "move_to"]]
    unknown = await client.delete(url, headers=tenant.headers, params={"move_to": str(uuid.uuid4())})
    assert error_locs(unknown) == [["query", "move_to"]]
    not_a_uuid = await client.delete(url, headers=tenant.headers, params={"move_to": "nope"})
    assert error_locs(not_a_uuid) == [["query", "move_to"]]
    assert leaving["id"] in {s["id"] for s in (await _get(client, tenant, f"{PIPELINES}/{default['id']}"))["stages"]}
    assert (await _get(client, tenant, f"{DEALS}/{deal['id']}"))["stage_id"] == leaving["id"]

    response = await client.delete(url, headers=tenant.headers, params={"move_to": target["id"]})
    assert response.status_code == 200, response.text
    assert leaving["id"] not in {s["id"] for s in response.json()["stages"]}

    moved = await _get(client, tenant, f"{DEALS}/{deal['id']}")
    assert (moved["stage_id"], moved["pipeline_id"], moved["probability"]) == (target["id"], default["id"], 40)
    assert (await _get(client, tenant, f"{DEALS}/{manual['id']}"))["probability"] == 33
    history = (await _get(client, tenant, f"{DEALS}/{deal['id']}/stage-history"))["items"]
    assert [v["stage_id"] for v in history] == [leaving["id"], target["id"]]
    assert history[0]["exited_at"] is not None and history[0]["exited_at"] == history[1]["entered_at"]
    assert history[1]["exited_at"] is None
    deal_audit = await _audit(client, tenant, deal["id"])
    assert deal_audit[0]["action"] == "update" and deal_audit[0]["changes"]["stage_id"] == {
        "before": leaving["id"],
        "after": target["id"],
    }


async def test_deleting_a_stage_moves_archived_deals_too(client: httpx.AsyncClient, tenant: Tenant) -> None:
    default = await _default_pipeline(client, tenant)
    leaving, target = _stage(default, "需求分析"), _stage(default, "输单")
    deal = await _deal(client, tenant, leaving["id"])
    assert (await client.delete(f"{DEALS}/{deal['id']}", headers=tenant.headers)).status_code in (200, 204)
    url = f"{PIPELINES}/{default['id']}/stages/{leaving['id']}"
    assert error_locs(await client.delete(url, headers=tenant.headers)) == [["query", "move_to"]]
    response = await client.delete(url, headers=tenant.headers, params={"move_to": target["id"]})
    assert response.status_code == 200, response.text
    moved = await _get(client, tenant, f"{DEALS}/{deal['id']}")
    assert (moved["stage_id"], moved["status"]) == (target["id"], "lost")


async def test_reorder_stages(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}/stages/reorder"
    ids = [s["id"] for s in pipeline["stages"]]
    order = [ids[1], ids[0], ids[3], ids[2]]
    response = await client.post(url, headers=tenant.headers, json={"stage_ids": order})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [s["id"] for s in body["stages"]] == order
    assert [s["position"] for s in body["stages"]] == [0, 1, 2, 3]
    assert body["version"] > pipeline["version"] and response.headers["etag"] == f'W/"{body["version"]}"'
    assert await _get(client, tenant, f"{PIPELINES}/{pipeline['id']}") == body
    assert [s["id"] for s in await _get(client, tenant, f"{PIPELINES}/{pipeline['id']}/stages")] == order

    [entry, _] = await _audit(client, tenant, pipeline["id"])
    assert entry["action"] == "update"
    assert entry["changes"] == {"stage_order": {"before": ids, "after": order}}


@pytest.mark.parametrize(
    "make",
    [
        lambda ids, other: ids[:-1],
        lambda ids, other: [*ids, ids[0]],
        lambda ids, other: [ids[0], *ids[:-1]],
        lambda ids, other: [*ids[:-1], other],
        lambda ids, other: [*ids[:-1], str(uuid.uuid4())],
        lambda ids, other: [],
        lambda ids, other: [*ids[:-1], "nope"],
    ],
    ids=["missing", "extra", "repeated", "another-pipelines-stage", "unknown", "empty", "not-a-uuid"],
)
async def test_reorder_must_be_a_permutation(client: httpx.AsyncClient, tenant: Tenant, make: Any) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    default = await _default_pipeline(client, tenant)
    ids = [s["id"] for s in pipeline["stages"]]
    url = f"{PIPELINES}/{pipeline['id']}/stages/reorder"
    response = await client.post(url, headers=tenant.headers, json={"stage_ids": make(ids, default["stages"][0]["id"])})
    assert_problem(response, 422)
    assert all(loc[:2] == ["body", "stage_ids"] for loc in error_locs(response)), error_locs(response)
    assert await _get(client, tenant, f"{PIPELINES}/{pipeline['id']}") == pipeline


async def test_an_archived_stage_is_no_part_of_the_order(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    ids = [s["id"] for s in pipeline["stages"]]
    url = f"{PIPELINES}/{pipeline['id']}/stages"
    assert (await client.delete(f"{url}/{ids[1]}", headers=tenant.headers)).status_code == 200
    with_archived = await client.post(f"{url}/reorder", headers=tenant.headers, json={"stage_ids": ids})
    assert_problem(with_archived, 422)
    live = [ids[3], ids[0], ids[2]]
    response = await client.post(f"{url}/reorder", headers=tenant.headers, json={"stage_ids": live})
    assert response.status_code == 200, response.text
    assert [s["id"] for s in response.json()["stages"]] == live


# --- Idempotency ------------------------------------------------------------------------------


async def test_idempotent_replay_creates_one_pipeline(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "大客户项目", "stages": TENDER_STAGES}
    first = await client.post(PIPELINES, headers=headers, json=body)
    second = await client.post(PIPELINES, headers=headers, json=body)
    assert first.status_code == second.status_code == 201, first.text
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["location"] == first.headers["location"]
    assert await _pipeline_count(db, tenant.organization_id) == 2
    assert error_locs(await client.post(PIPELINES, headers=headers, json={"name": "其他"})) == [
        ["header", "Idempotency-Key"]
    ]
    assert await _pipeline_count(db, tenant.organization_id) == 2


async def test_idempotent_replay_creates_one_stage(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    default = await _default_pipeline(client, tenant)
    url = f"{PIPELINES}/{default['id']}/stages"
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(url, headers=headers, json={"name": "试用", "probability": 30})
    second = await client.post(url, headers=headers, json={"name": "试用", "probability": 30})
    assert first.status_code == second.status_code == 201, first.text
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert await _live_stage_count(db, default["id"]) == 7


# --- Roles, scopes and tenancy ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["sales", "viewer", "support", "marketing"])
async def test_roles_without_pipelines_write_only_read(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    user = await add_user(client, tenant, role)
    default = await _default_pipeline(client, tenant)
    url = f"{PIPELINES}/{default['id']}"
    stage_url = f"{url}/stages/{default['stages'][1]['id']}"
    assert (await client.get(PIPELINES, headers=user.headers)).json()["items"] == [default]
    assert (await client.get(url, headers=user.headers)).status_code == 200
    assert (await client.get(f"{url}/stages", headers=user.headers)).status_code == 200
    refused = [
        await client.post(PIPELINES, headers=user.headers, json={"name": "x"}),
        await client.patch(url, headers=user.headers, json={"name": "x"}),
        await client.delete(url, headers=user.headers),
        await client.post(f"{url}/stages", headers=user.headers, json={"name": "x", "probability": 1}),
        await client.patch(stage_url, headers=user.headers, json={"probability": 1}),
        await client.delete(stage_url, headers=user.headers),
        await client.post(
            f"{url}/stages/reorder",
            headers=user.headers,
            json={"stage_ids": [s["id"] for s in reversed(default["stages"])]},
        ),
    ]
    for response in refused:
        assert_problem(response, 403)
    assert await _get(client, tenant, url) == default
    assert await _pipeline_count(db, tenant.organization_id) == 1


async def test_managers_and_admins_shape_pipelines(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for role in ("manager", "admin"):
        user = await add_user(client, tenant, role)
        pipeline = await create(client, PIPELINES, user.headers, name=f"{role} 管道")
        url = f"{PIPELINES}/{pipeline['id']}"
        assert (await client.patch(url, headers=user.headers, json={"name": f"{role} 2"})).status_code == 200
        await create(client, f"{url}/stages", user.headers, name="试用", probability=30)
        assert (await client.delete(url, headers=user.headers)).status_code == 204
        entries = await _audit(client, tenant, pipeline["id"])
        assert {e["actor_id"] for e in entries} == {user.user_id}


async def test_api_keys_need_the_pipelines_scopes(client: httpx.AsyncClient, tenant: Tenant) -> None:
    reader = await add_api_key(client, tenant, ["pipelines:read"])
    writer = await add_api_key(client, tenant, ["pipelines:read", "pipelines:write"])
    unrelated = await add_api_key(client, tenant, ["contacts:read"])
    default = await _default_pipeline(client, tenant)
    assert (await client.get(PIPELINES, headers=reader)).json()["items"] == [default]
    assert_problem(await client.get(PIPELINES, headers=unrelated), 403)
    assert_problem(await client.post(PIPELINES, headers=reader, json={"name": "x"}), 403)
    made = await create(client, PIPELINES, writer, name="x")
    entries = await _audit(client, tenant, made["id"])
    assert entries[0]["actor_type"] == "api_key"
    assert_problem(await client.get(PIPELINES), 401)
    assert_problem(await client.get(f"{PIPELINES}/{default['id']}"), 401)


async def test_another_organisations_pipelines_are_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _default_pipeline(client, other_tenant)
    mine = await _default_pipeline(client, tenant)
    their_stage = theirs["stages"][1]["id"]
    url = f"{PIPELINES}/{theirs['id']}"
    all_ids = [s["id"] for s in theirs["stages"]]
    attempts = [
        await client.get(url, headers=tenant.headers),
        await client.patch(url, headers=tenant.headers, json={"name": "mine now"}),
        await client.patch(url, headers=tenant.headers, json={"is_default": True}),
        await client.delete(url, headers=tenant.headers),
        await client.get(f"{url}/stages", headers=tenant.headers),
        await client.post(f"{url}/stages", headers=tenant.headers, json={"name": "x", "probability": 1}),
        await client.patch(f"{url}/stages/{their_stage}", headers=tenant.headers, json={"probability": 1}),
        await client.delete(f"{url}/stages/{their_stage}", headers=tenant.headers),
        await client.post(f"{url}/stages/reorder", headers=tenant.headers, json={"stage_ids": all_ids[::-1]}),
        # Their stage through my pipeline is no better.
        await client.patch(
            f"{PIPELINES}/{mine['id']}/stages/{their_stage}", headers=tenant.headers, json={"probability": 1}
        ),
        await client.delete(f"{PIPELINES}/{mine['id']}/stages/{their_stage}", headers=tenant.headers),
        await client.get(f"{url}/board", headers=tenant.headers),
        await client.get(f"{PIPELINES}/{uuid.uuid4()}", headers=tenant.headers),
    ]
    for response in attempts:
        assert_problem(response, 404)
    assert await _default_pipeline(client, other_tenant) == theirs
    assert await _default_pipeline(client, tenant) == mine
    assert [p["id"] for p in (await client.get(PIPELINES, headers=tenant.headers)).json()["items"]] == [mine["id"]]

    # Their stages cannot receive my deals, nor be part of my order.
    my_stage = mine["stages"][1]["id"]
    moved = await client.delete(
        f"{PIPELINES}/{mine['id']}/stages/{my_stage}", headers=tenant.headers, params={"move_to": their_stage}
    )
    assert error_locs(moved) == [["query", "move_to"]]
    foreign = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "stage_id": their_stage})
    assert_problem(foreign, 422)
    mixed = [s["id"] for s in mine["stages"][:-1]] + [theirs["stages"][-1]["id"]]
    assert_problem(
        await client.post(
            f"{PIPELINES}/{mine['id']}/stages/reorder", headers=tenant.headers, json={"stage_ids": mixed}
        ),
        422,
    )


async def test_writes_leave_audit_rows(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    pipeline = await _tender_pipeline(client, tenant)
    url = f"{PIPELINES}/{pipeline['id']}"
    stage = await create(client, f"{url}/stages", tenant.headers, name="试用", probability=30)
    await client.patch(f"{url}/stages/{stage['id']}", headers=tenant.headers, json={"probability": 35})
    await client.post(
        f"{url}/stages/reorder",
        headers=tenant.headers,
        json={"stage_ids": [*[s["id"] for s in reversed(pipeline["stages"])], stage["id"]]},
    )
    await client.delete(f"{url}/stages/{stage['id']}", headers=tenant.headers)
    await client.patch(url, headers=tenant.headers, json={"name": "政府项目"})
    await client.delete(url, headers=tenant.headers)
    rows = (
        await db.execute(
            select(AuditEntry.entity_type, AuditEntry.action, AuditEntry.entity_id)
            .where(
                AuditEntry.organization_id == uuid.UUID(tenant.organization_id),
                AuditEntry.entity_type.in_(["pipeline", "pipeline_stage"]),
            )
            .order_by(AuditEntry.id)
        )
    ).all()
    summary = [(entity_type, str(action), str(entity_id)) for entity_type, action, entity_id in rows]
    assert summary[1:] == [
        ("pipeline", "create", pipeline["id"]),
        ("pipeline_stage", "create", stage["id"]),
        ("pipeline_stage", "update", stage["id"]),
        ("pipeline", "update", pipeline["id"]),
        ("pipeline_stage", "delete", stage["id"]),
        ("pipeline", "update", pipeline["id"]),
        ("pipeline", "delete", pipeline["id"]),
    ]

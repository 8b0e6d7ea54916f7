"""POST /imports with entity=deals: the brief's opportunity table, linked to companies by 客户ID."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.core.settings import Settings
from app.models.deal import Deal
from app.services import imports
from app.services.import_mapping import auto_map, parse_amount
from tests.helpers import Tenant, add_user

DEALS = "/api/v1/deals"
HEADER = "机会ID,客户ID,产品名称,阶段,预计金额,负责人,截止日期\n"
BRIEF_DEALS = (
    HEADER + 'S001,C001,ERP系统,潜在客户,"150,000",王芳,2026/12/31\n'
    "S002,C002,CRM系统,需求分析,80000.50,李娜,2026-11-15\n"
    "S003,C001,数据平台,商务谈判,¥200000,王芳,2026年10月1日\n"
    "S004,C002,运维服务,成交,50000,,2026-09-30\n"
)


@pytest.fixture(autouse=True)
def files_in(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path)


async def _companies(client: httpx.AsyncClient, tenant: Tenant, *external_ids: str) -> dict[str, str]:
    ids = {}
    for external_id in external_ids:
        reply = await client.post(
            "/api/v1/companies", headers=tenant.headers, json={"name": f"客户{external_id}", "external_id": external_id}
        )
        assert reply.status_code == 201, reply.text
        ids[external_id] = reply.json()["id"]
    return ids


async def _import(client: httpx.AsyncClient, tenant: Tenant, app: Any, content: bytes, **fields: str) -> dict[str, Any]:
    created = await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": ("机会.csv", content)},
        data={"entity": "deals", **fields},
    )
    assert created.status_code == 202, created.text
    import_id = uuid.UUID(created.json()["id"])
    organization_id = uuid.UUID(tenant.organization_id)
    assert await imports.run_import(app.state.session_factory, organization_id, import_id) == "done"
    assert await imports.run_import(app.state.session_factory, organization_id, import_id) == "not claimable"
    reply = await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


async def _deals(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    reply = await client.get(f"{DEALS}?limit=200", headers=tenant.headers)
    assert reply.status_code == 200, reply.text
    return {deal["external_id"]: deal for deal in reply.json()["items"]}


async def _errors(client: httpx.AsyncClient, tenant: Tenant, import_id: str) -> list[dict[str, str]]:
    reply = await client.get(f"/api/v1/imports/{import_id}/errors", headers=tenant.headers)
    assert reply.status_code == 200
    return list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))


async def _stages(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    pipeline = (await client.get("/api/v1/pipelines", headers=tenant.headers)).json()["items"][0]
    assert pipeline["is_default"]
    return {stage["name"]: stage | {"pipeline_id": pipeline["id"]} for stage in pipeline["stages"]}


async def test_the_briefs_opportunity_table_imports_with_automatic_mapping(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    companies = await _companies(client, tenant, "C001", "C002")
    li_na = await add_user(client, tenant, "sales", full_name="李娜")
    result = await _import(client, tenant, app, BRIEF_DEALS.encode())
    assert result["entity"] == "deals"
    assert result["mapping"] == {
        "机会ID": "external_id",
        "客户ID": "company.external_id",
        "产品名称": "name",
        "阶段": "stage",
        "预计金额": "amount",
        "负责人": "owner",
        "截止日期": "expected_close_date",
    }
    assert (result["total"], result["processed"], result["created"], result["failed"]) == (4, 4, 4, 0)
    stages = await _stages(client, tenant)
    deals = await _deals(client, tenant)
    s1, s2, s3, s4 = (deals[key] for key in ("S001", "S002", "S003", "S004"))
    assert (s1["name"], s1["amount"], s1["expected_close_date"]) == ("ERP系统", "150000.00", "2026-12-31")
    assert (s1["company_id"], s1["owner_id"]) == (companies["C001"], tenant.user_id)
    assert (s1["stage_id"], s1["pipeline_id"]) == (stages["潜在客户"]["id"], stages["潜在客户"]["pipeline_id"])
    assert (s1["status"], s1["probability"], s1["closed_at"]) == ("open", 10, None)
    assert (s2["name"], s2["amount"], s2["expected_close_date"]) == ("CRM系统", "80000.50", "2026-11-15")
    assert (s2["company_id"], s2["owner_id"], s2["stage_id"]) == (
        companies["C002"],
        li_na.user_id,
        stages["需求分析"]["id"],
    )
    assert (s3["amount"], s3["expected_close_date"], s3["stage_id"]) == (
        "200000.00",
        "2026-10-01",
        stages["商务谈判"]["id"],
    )
    assert (s4["stage_id"], s4["status"], s4["probability"]) == (stages["成交"]["id"], "won", 100)
    assert s4["closed_at"] is not None and s4["owner_id"] == tenant.user_id  # no 负责人: the importer's
    assert all(deal["currency"] == "CNY" for deal in deals.values())
    for deal in deals.values():
        visits = (await client.get(f"{DEALS}/{deal['id']}/stage-history", headers=tenant.headers)).json()["items"]
        assert [(v["stage_id"], v["exited_at"]) for v in visits] == [(deal["stage_id"], None)]
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "deal.*"})).json()["items"]
    assert sum(event["type"] == "deal.created" for event in events) == 4


async def test_bad_rows_fail_alone_with_their_reason(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    await _companies(client, tenant, "C001")
    content = (
        HEADER + "S001,C001,好的,潜在客户,100,,2026-12-31\n"
        "S002,C001,阶段错,已签约,100,,2026-12-31\n"
        "S003,C999,客户错,潜在客户,100,,2026-12-31\n"
        "S004,C001,金额错,潜在客户,十万,,2026-12-31\n"
        "S005,C001,日期错,潜在客户,100,,2026-13-45\n"
        "S006,C001,负责人错,潜在客户,100,没这个人,2026-12-31\n"
        "S007,C001,负数,潜在客户,-5,,2026-12-31\n"
        "S001,C001,重复,潜在客户,100,,2026-12-31\n"
    )
    result = await _import(client, tenant, app, content.encode())
    assert (result["created"], result["failed"]) == (1, 7)
    errors = {e["机会ID"] + "/" + e["产品名称"]: e for e in await _errors(client, tenant, result["id"])}
    assert "no stage named '已签约'" in errors["S002/阶段错"]["reason"]
    assert "潜在客户, 需求分析, 方案制定, 商务谈判, 成交, 输单" in errors["S002/阶段错"]["reason"]
    assert errors["S003/客户错"]["reason"] == "company: no company has the external_id C999"
    assert errors["S004/金额错"]["reason"].startswith("预计金额: '十万' is not an amount")
    assert errors["S005/日期错"]["reason"].startswith("截止日期: '2026-13-45' is not a date")
    assert "没这个人" in errors["S006/负责人错"]["reason"] and errors["S006/负责人错"]["reason"].startswith("owner:")
    assert errors["S007/负数"]["reason"].startswith("amount:")
    assert errors["S001/重复"]["reason"] == "external_id: an earlier row has this external_id"
    assert {row["outcome"] for row in errors.values()} == {"failed"}
    [deal] = (await _deals(client, tenant)).values()
    assert deal["external_id"] == "S001"
    # A row failing in its savepoint after S001 was written loses nothing of S001's.
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "deal.*"})).json()["items"]
    assert [(event["type"], event["entity_id"]) for event in events] == [("deal.created", deal["id"])]


async def test_upsert_updates_by_the_deal_id_and_skip_duplicates_skips(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    await _companies(client, tenant, "C001", "C002")
    await add_user(client, tenant, "sales", full_name="李娜")
    first = await _import(client, tenant, app, BRIEF_DEALS.encode())
    assert first["created"] == 4
    before = await _deals(client, tenant)
    changed = (
        HEADER + 'S001,C001,ERP系统,商务谈判,"180,000",王芳,2026/12/31\n'
        "S002,C002,CRM系统,需求分析,80000.50,李娜,2026-11-15\n"
        "S005,C002,新机会,潜在客户,1万,,2027-01-31\n"
    )
    result = await _import(client, tenant, app, changed.encode(), mode="upsert")
    assert (result["updated"], result["unchanged"], result["created"], result["failed"]) == (1, 1, 1, 0)
    after = await _deals(client, tenant)
    s1 = after["S001"]
    assert s1["id"] == before["S001"]["id"] and s1["amount"] == "180000.00" and s1["version"] > 1
    stages = await _stages(client, tenant)
    assert (s1["stage_id"], s1["probability"]) == (stages["商务谈判"]["id"], 70)
    visits = (await client.get(f"{DEALS}/{s1['id']}/stage-history", headers=tenant.headers)).json()["items"]
    assert [v["stage_id"] for v in visits] == [stages["潜在客户"]["id"], stages["商务谈判"]["id"]]
    assert after["S002"]["amount"] == "80000.50"  # unchanged (see the counters)
    assert after["S005"]["amount"] == "10000.00"

    skipped = await _import(client, tenant, app, changed.encode(), mode="skip_duplicates")
    assert (skipped["skipped"], skipped["created"]) == (3, 0)
    assert {e["outcome"] for e in await _errors(client, tenant, skipped["id"])} == {"skipped"}
    created = await _import(client, tenant, app, changed.encode())
    assert (created["failed"], created["created"]) == (3, 0)


async def test_another_organisations_companies_are_never_linked(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, app: Any, db: Any
) -> None:
    await _companies(client, other_tenant, "C001")
    result = await _import(client, tenant, app, (HEADER + "S001,C001,ERP系统,潜在客户,100,,\n").encode())
    assert (result["created"], result["failed"]) == (0, 1)
    [error] = await _errors(client, tenant, result["id"])
    assert error["reason"] == "company: no company has the external_id C001"
    ours = await db.scalars(select(Deal).where(Deal.organization_id == uuid.UUID(tenant.organization_id)))
    assert ours.all() == []


async def test_a_gb18030_file_and_english_headers_import(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    companies = await _companies(client, tenant, "C001")
    result = await _import(client, tenant, app, BRIEF_DEALS.replace("李娜", "王芳").encode("gb18030"))
    assert result["encoding"] == "gb18030"
    assert (result["created"], result["failed"]) == (2, 2)  # C002 is not there
    english = (
        "Deal ID,Customer ID,Deal name,Stage,Amount,Owner,Close date\n"
        f'E001,C001,Support renewal,成交,"12,500.00",{tenant.email.upper()},2026-06-30\n'
    )
    result = await _import(client, tenant, app, english.encode())
    assert result["mapping"]["Customer ID"] == "company.external_id" and result["created"] == 1
    deal = (await _deals(client, tenant))["E001"]
    assert (deal["company_id"], deal["owner_id"], deal["amount"]) == (companies["C001"], tenant.user_id, "12500.00")
    assert deal["status"] == "won"


async def test_a_worker_killed_mid_import_resumes_without_writing_a_deal_twice(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, db: Any
) -> None:
    monkeypatch.setattr(settings, "imports_chunk_rows", 3)
    monkeypatch.setattr(settings, "imports_stale_after_seconds", 0)
    content = "机会ID,产品名称,预计金额\n" + "".join(f"S{i:03},产品{i},{i}000\n" for i in range(10))
    created = await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": ("deals.csv", content.encode())},
        data={"entity": "deals"},
    )
    import_id, organization_id = uuid.UUID(created.json()["id"]), uuid.UUID(tenant.organization_id)
    real_write, calls = imports.write_chunk, 0

    async def dies_in_the_third_chunk(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        outcome = await real_write(*args, **kwargs)  # the chunk's deals are written, then the worker dies
        if calls == 3:
            raise RuntimeError("worker killed")
        return outcome

    monkeypatch.setattr(imports, "write_chunk", dies_in_the_third_chunk)
    with pytest.raises(RuntimeError):
        await imports.run_import(app.state.session_factory, organization_id, import_id)
    stalled = (await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)).json()
    assert (stalled["processed"], stalled["created"]) == (6, 6)
    assert await imports.run_import(app.state.session_factory, organization_id, import_id) == "done"
    result = (await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)).json()
    assert (result["processed"], result["created"], result["runs"]) == (10, 10, 2)
    names = (await db.scalars(select(Deal.external_id).where(Deal.organization_id == organization_id))).all()
    assert sorted(names) == [f"S{i:03}" for i in range(10)]


async def test_an_explicit_mapping_and_a_missing_write_scope(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    content = "编号,名称,金额\nX1,年度合同,3000\n"
    bad = await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": ("d.csv", content.encode())},
        data={"entity": "deals", "mapping": '{"编号": "external_id", "名称": "email"}'},
    )
    assert bad.status_code == 422 and "not a field of deals" in bad.text
    result = await _import(
        client, tenant, app, content.encode(), mapping='{"编号": "external_id", "名称": "name", "金额": "amount"}'
    )
    assert result["created"] == 1 and (await _deals(client, tenant))["X1"]["amount"] == "3000.00"
    viewer = await add_user(client, tenant, "viewer")
    refused = await client.post(
        "/api/v1/imports", headers=viewer.headers, files={"file": ("d.csv", content.encode())}, data={"entity": "deals"}
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("cell", "amount"),
    [
        ("150,000", "150000"),
        ("80000.50", "80000.50"),
        ("¥150,000", "150000"),
        ("150000元", "150000"),
        ("15万", "150000"),
    ],
)
def test_amounts_are_read_exactly(cell: str, amount: str) -> None:
    assert parse_amount(cell) == Decimal(amount)


@pytest.mark.parametrize("cell", ["十万", "1e5", "12abc", "", "NaN"])
def test_what_is_not_an_amount(cell: str) -> None:
    with pytest.raises(ValueError, match="is not an amount"):
        parse_amount(cell)


def test_deal_headers_do_not_take_contact_fields() -> None:
    mapping = auto_map(["机会ID", "客户ID", "电话", "邮箱", "Close Date"], "deals", {})
    assert mapping == {"机会ID": "external_id", "客户ID": "company.external_id", "Close Date": "expected_close_date"}

"""POST /imports → the job writes the rows chunk by chunk → GET /imports/{id}, /errors, /cancel."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from openpyxl import Workbook
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.settings import Settings
from app.jobs import imports as import_jobs
from app.models.audit import AuditEntry
from app.models.contact import Contact
from app.models.data_import import DataImport, ImportIssue
from app.models.event import Event
from app.services import imports
from tests.helpers import PROBLEM, Tenant, add_api_key

BRIEF_CUSTOMERS = (
    "客户ID,客户名称,联系人,职位,电话,邮箱,行业,注册日期\n"
    "C001,A公司,王先生,经理,13800138000,wang@a-gongsi.cn,零售,2023-01-15\n"
    "C002,天元集团,李娜,主管,*,*,金融,2023/2/20\n"
)


@pytest.fixture(autouse=True)
def files_in(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path)


async def _upload(
    client: httpx.AsyncClient,
    tenant: Tenant,
    content: bytes,
    *,
    entity: str = "contacts",
    name: str = "customers.csv",
    **fields: str,
) -> httpx.Response:
    return await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": (name, content)},
        data={"entity": entity, **fields},
    )


async def _import(client: httpx.AsyncClient, tenant: Tenant, app: Any, content: bytes, **fields: str) -> dict[str, Any]:
    created = await _upload(client, tenant, content, **fields)
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "pending"
    import_id = created.json()["id"]
    result = await imports.run_import(
        app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(import_id)
    )
    assert result == "done"
    again = await imports.run_import(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(import_id))
    assert again == "not claimable"  # safe to run twice
    reply = await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


async def _contacts(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    reply = await client.get("/api/v1/contacts?limit=200", headers=tenant.headers)
    return reply.json()["items"]  # type: ignore[no-any-return]


async def _errors(client: httpx.AsyncClient, tenant: Tenant, import_id: str) -> list[dict[str, str]]:
    reply = await client.get(f"/api/v1/imports/{import_id}/errors", headers=tenant.headers)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))


async def test_the_briefs_customer_table_imports_with_automatic_mapping(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    result = await _import(client, tenant, app, BRIEF_CUSTOMERS.encode())
    assert result["mapping"] == {
        "客户ID": "customer_id",
        "客户名称": "company.name",
        "联系人": "name",
        "职位": "title",
        "电话": "phone",
        "邮箱": "email",
        "行业": "company.industry",
        "注册日期": "custom_fields.registration_date",
    }
    assert result["encoding"] == "utf-8"
    assert (result["total"], result["processed"], result["created"], result["failed"]) == (2, 2, 2, 0)
    assert result["companies_created"] == 2 and result["percent"] == 100.0
    people = {c["last_name"]: c for c in await _contacts(client, tenant)}
    wang = people["王"]
    assert wang["first_name"] is None and wang["title"] == "经理" and wang["phone"] == "+8613800138000"
    assert wang["source"] == "import" and wang["external_id"] is None
    assert wang["custom_fields"] == {"registration_date": "2023-01-15"}
    assert people["李"]["first_name"] == "娜" and people["李"]["email"] is None  # `*` is the brief's mask
    assert people["李"]["custom_fields"] == {"registration_date": "2023-02-20"}
    company = (await client.get(f"/api/v1/companies/{wang['company_id']}", headers=tenant.headers)).json()
    assert (company["name"], company["external_id"], company["industry"]) == ("A公司", "C001", "零售")

    # Again as an upsert: the companies are found by 客户ID, the contacts by e-mail or created.
    again = await _import(client, tenant, app, BRIEF_CUSTOMERS.encode(), mode="upsert")
    assert again["companies_created"] == 0
    assert (again["unchanged"], again["created"]) == (1, 1)  # 李娜 has no e-mail to be found by


async def test_gb18030_files_and_a_bom_are_read(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    gbk = "联系人,邮箱\n张伟,zhang@example.cn\n欧阳娜娜,ouyang@example.cn\n".encode("gbk")
    result = await _import(client, tenant, app, gbk)
    assert result["encoding"] == "gb18030" and result["created"] == 2
    bom = "\ufeffFirst Name;Last Name;E-mail\nAda;Lovelace;ada@example.com\n".encode()
    result = await _import(client, tenant, app, bom)
    assert result["encoding"] == "utf-8-sig" and result["created"] == 1
    names = {(c["last_name"], c["first_name"]) for c in await _contacts(client, tenant)}
    assert names == {("张", "伟"), ("欧阳", "娜娜"), ("Lovelace", "Ada")}


async def test_bad_rows_fail_alone_and_are_listed_with_their_reason(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    content = (
        b"name,email,phone\n"
        b"Good One,good@example.com,13800138000\n"
        b"Bad Mail,not-an-email,\n"
        b"Bad Phone,phone@example.com,12\n"
        b'"broken"quote,x@example.com,\n'
        b"Too,many,cells,here\n"
        b"\n"
        b"Twice,good@example.com,\n"
    )
    result = await _import(client, tenant, app, content, mode="skip_duplicates")
    assert (result["created"], result["failed"], result["skipped"]) == (1, 4, 2)
    errors = await _errors(client, tenant, result["id"])
    assert [e["row"] for e in errors] == ["3", "4", "5", "6", "8"]
    assert list(errors[0]) == ["row", "outcome", "reason", "name", "email", "phone"]
    assert errors[0]["email"] == "not-an-email" and "email" in errors[0]["reason"]
    assert "phone" in errors[1]["reason"]
    assert "Unreadable" in errors[2]["reason"] and "4 cells" in errors[3]["reason"]
    assert errors[4]["outcome"] == "skipped" and "email" in errors[4]["reason"]
    assert len(await _contacts(client, tenant)) == 1


async def test_an_xlsx_file_with_typed_cells_imports(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["联系人", "电话", "公司", "注册日期"])
    sheet.append(["张伟", 13800138000, "天元", 44941])  # a phone stored as a number, a date as a serial
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = await _import(client, tenant, app, buffer.getvalue(), name="people.xlsx")
    assert result["file_format"] == "xlsx" and result["created"] == 1, result
    [contact] = await _contacts(client, tenant)
    assert contact["phone"] == "+8613800138000"
    assert contact["custom_fields"] == {"registration_date": "2023-01-15"}


async def test_an_explicit_mapping_and_upsert_by_external_id(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    first = "Ref,Given,Family,Labels\nERP-1,Wei,Zhang,vip;华东\n".encode()
    mapping = '{"Ref": "external_id", "Given": "first_name", "Family": "last_name", "Labels": "tags"}'
    result = await _import(client, tenant, app, first, mapping=mapping)
    assert result["created"] == 1 and result["ignored_columns"] == []
    changed = b"Ref,Given,Family,Labels\nERP-1,Wei,Chang,vip\n"
    result = await _import(client, tenant, app, changed, mapping=mapping, mode="upsert")
    assert result["updated"] == 1
    [contact] = await _contacts(client, tenant)
    assert contact["last_name"] == "Chang" and contact["tags"] == ["vip"] and contact["version"] == 2
    history = await client.get(f"/api/v1/contacts/{contact['id']}/history", headers=tenant.headers)
    actions = [entry["action"] for entry in history.json()["items"]]
    assert sorted(actions) == ["create", "update"]


async def test_imported_records_are_audited_and_announced(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: Any
) -> None:
    result = await _import(client, tenant, app, b"email\na@example.com\nb@example.com\n")
    organization_id = uuid.UUID(tenant.organization_id)
    audit_rows = (
        (
            await db.execute(
                select(AuditEntry).where(
                    AuditEntry.organization_id == organization_id, AuditEntry.entity_type == "contact"
                )
            )
        )
        .scalars()
        .all()
    )
    assert len(audit_rows) == 2
    assert {row.request_id for row in audit_rows} == {f"import:{result['id']}"}
    assert all(row.changes["email"]["after"] for row in audit_rows)
    # The same changes an API create records for the row as stored.
    for row in audit_rows:
        contact = await db.get(Contact, (organization_id, row.entity_id))
        assert row.changes == audit.creation(audit.snapshot(contact))
    created_events = (
        (
            await db.execute(
                select(Event).where(Event.organization_id == organization_id, Event.type == "contact.created")
            )
        )
        .scalars()
        .all()
    )
    assert sorted(e.data["email"] for e in created_events) == ["a@example.com", "b@example.com"]


async def test_a_worker_that_died_mid_import_is_resumed_without_loss_or_double_writes(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, db: Any
) -> None:
    monkeypatch.setattr(settings, "imports_chunk_rows", 3)
    content = "email\n" + "".join(f"p{i}@example.com\n" for i in range(10))
    created = await _upload(client, tenant, content.encode())
    import_id = uuid.UUID(created.json()["id"])
    organization_id = uuid.UUID(tenant.organization_id)
    calls = 0
    real_write = imports.write_chunk

    async def dies_in_the_third_chunk(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("worker killed")
        return await real_write(*args, **kwargs)

    monkeypatch.setattr(imports, "write_chunk", dies_in_the_third_chunk)
    with pytest.raises(RuntimeError):
        await imports.run_import(app.state.session_factory, organization_id, import_id)
    stalled = (await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)).json()
    assert (stalled["status"], stalled["processed"], stalled["created"]) == ("running", 6, 6)
    # Another run cannot take it while the first one's heartbeat is fresh…
    assert await imports.run_import(app.state.session_factory, organization_id, import_id) == "not claimable"
    await db.execute(
        update(DataImport)
        .where(DataImport.id == import_id)
        .values(heartbeat_at=DataImport.heartbeat_at - timedelta(seconds=settings.imports_stale_after_seconds))
    )
    await db.commit()
    assert await imports.sweep(app.state.session_factory) == [(organization_id, import_id)]
    assert await imports.run_import(app.state.session_factory, organization_id, import_id) == "done"
    result = (await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)).json()
    assert (result["processed"], result["created"], result["runs"]) == (10, 10, 2)
    emails = (await db.execute(select(Contact.email).where(Contact.organization_id == organization_id))).scalars()
    assert sorted(emails) == sorted(f"p{i}@example.com" for i in range(10))


MIXED_ROWS = (
    "客户ID,客户名称,联系人,职位,电话,邮箱\n"
    "C1,天元集团,张伟,经理,138 0013 8000,zhang.wei@tianyuan.cn\n"
    "C2,天元集团,欧阳娜娜,主管,13900139000,ZHANG.WEI@tianyuan.cn\n"
    "C3,,李娜,,12,li.na@example.com\n"
    "\n"
    "C4,A公司,王先生,经理,,not-an-email\n"
    "C5,A公司,赵敏\n"
    "C6,,Wei Zhang,Sales,+49 30 901820,wei.zhang@example.de\n"
    "C7,B公司,钱七,,021-6234 5678,qian@b-gongsi.cn\n"
)


@pytest.mark.parametrize("second_process", [True, False])
async def test_rows_checked_in_a_second_process_are_written_as_those_checked_in_the_worker(
    client: httpx.AsyncClient,
    tenant: Tenant,
    app: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    second_process: bool,
) -> None:
    """An import longer than a chunk is read and checked in a second process, a chunk ahead:
    the outcome is the one the worker reaches alone, row for row."""
    pools: list[Any] = []

    class RecordedPool(imports.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(imports, "ProcessPoolExecutor", RecordedPool)
    monkeypatch.setattr(settings, "imports_chunk_rows", 2)
    monkeypatch.setattr(settings, "imports_check_process", second_process)
    result = await _import(client, tenant, app, MIXED_ROWS.encode(), mode="skip_duplicates")
    assert len(pools) == (1 if second_process else 0)
    counts = {key: result[key] for key in ("total", "processed", "created", "skipped", "failed", "companies_created")}
    # Blank lines are not counted as rows; a failed row's company is not made (C4's A公司 is made
    # for C5), a skipped one's is (its 客户ID names another company record).
    assert counts == {"total": 8, "processed": 8, "created": 4, "skipped": 2, "failed": 2, "companies_created": 4}
    errors = await _errors(client, tenant, result["id"])
    assert [(e["row"], e["outcome"], e["客户ID"]) for e in errors] == [
        ("3", "skipped", "C2"),
        ("4", "failed", "C3"),
        ("6", "failed", "C4"),
    ]
    assert errors[0]["reason"] == "row 2 has the same email"
    assert errors[1]["reason"].startswith("phone: ") and errors[2]["reason"].startswith("email: ")
    people = {f"{c['last_name']}{c['first_name']}": c for c in await _contacts(client, tenant)}
    assert sorted(people) == sorted(["张伟", "赵敏", "ZhangWei", "钱七"])
    assert people["张伟"]["phone"] == "+8613800138000" and people["张伟"]["company_id"] is not None
    assert people["ZhangWei"]["phone"] == "+4930901820" and people["ZhangWei"]["external_id"] == "C6"
    assert people["钱七"]["phone"] == "+862162345678"
    # Searchable by its national form (the search forms the checking process found).
    found = await client.get("/api/v1/contacts?q=02162345678", headers=tenant.headers)
    assert [c["last_name"] for c in found.json()["items"]] == ["钱"]


async def test_cancel_stops_the_import(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    created = await _upload(client, tenant, b"email\na@example.com\n")
    import_id = created.json()["id"]
    cancelled = await client.post(f"/api/v1/imports/{import_id}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/imports/{import_id}/cancel", headers=tenant.headers)
    assert again.status_code == 409
    ran = await imports.run_import(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(import_id))
    assert ran == "not claimable"
    assert await _contacts(client, tenant) == []


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        (b"", {}, "empty"),
        (b"name,email\n", {}, "no rows"),
        (b"colour,size\nred,1\n", {}, "No column could be mapped"),
        (b"email,email\na@example.com,b@example.com\n", {}, "repeated: email"),
        (b"email\na@example.com\n", {"mapping": '{"email": "shoe_size"}'}, "not a field of contacts"),
        (b"email\na@example.com\n", {"mapping": '{"nope": "email"}'}, "not in the file"),
        (b"email\na@example.com\n", {"mapping": "{oops"}, "not JSON"),
        (b"email\na@example.com\n", {"mode": "merge"}, "mode"),
        (b"email\na@example.com\n", {"mapping": '{"email": "custom_fields.nope"}'}, "No custom field"),
    ],
)
async def test_files_and_forms_that_cannot_be_imported_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, content: bytes, fields: dict[str, str], message: str
) -> None:
    reply = await _upload(client, tenant, content, **fields)
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"] == PROBLEM
    assert message in reply.text


async def test_limits_are_settings(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "imports_max_file_mb", 0.001)
    too_big = await _upload(client, tenant, b"email\n" + b"a@example.com\n" * 200)
    assert too_big.status_code == 413 and too_big.json()["limit"] == 1048
    monkeypatch.setattr(settings, "imports_max_file_mb", 10)
    monkeypatch.setattr(settings, "imports_max_columns", 5)
    wide = await _upload(client, tenant, ",".join(f"c{i}" for i in range(6)).encode() + b"\n1,2,3,4,5,6\n")
    assert wide.status_code == 422 and "limit is 5" in wide.text
    monkeypatch.setattr(settings, "imports_max_cell_chars", 100)
    result = await _import(client, tenant, app, b"name,title\nA,short\nB," + b"x" * 101 + b"\n")
    assert (result["created"], result["failed"]) == (1, 1)
    [error] = await _errors(client, tenant, result["id"])
    assert "limit of 100" in error["reason"]


async def test_another_organisations_import_is_a_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await _upload(client, tenant, b"email\na@example.com\n")
    import_id = created.json()["id"]
    for method, path in [
        ("GET", f"/api/v1/imports/{import_id}"),
        ("GET", f"/api/v1/imports/{import_id}/errors"),
        ("POST", f"/api/v1/imports/{import_id}/cancel"),
    ]:
        reply = await client.request(method, path, headers=other_tenant.headers)
        assert reply.status_code == 404, (method, path)


async def test_an_api_key_needs_the_write_scope_and_sees_only_its_own_imports(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    reader = await add_api_key(client, tenant, scopes=["contacts:read"])
    refused = await client.post(
        "/api/v1/imports",
        headers=reader,
        files={"file": ("a.csv", b"email\na@example.com\n")},
        data={"entity": "contacts"},
    )
    assert refused.status_code == 403
    writer = await add_api_key(client, tenant, scopes=["contacts:write", "contacts:read"])
    mine = await _upload(client, tenant, b"email\na@example.com\n")
    theirs = await client.get(f"/api/v1/imports/{mine.json()['id']}", headers=writer)
    assert theirs.status_code == 403


async def test_imported_rows_carry_the_grams_the_database_would_make(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: Any
) -> None:
    await _import(client, tenant, app, "联系人,邮箱,电话,公司\n张伟,zhang@example.cn,13800138000,天元\n".encode())
    row = (
        await db.execute(
            text(
                "SELECT search_grams, rapport_search_grams(search_text || chr(31) || company_search_text) AS made "
                "FROM contacts WHERE organization_id = :org"
            ),
            {"org": tenant.organization_id},
        )
    ).one()
    assert set(row.search_grams) == set(row.made) and {"张伟", "天元", "138"} <= set(row.search_grams)
    found = await client.get("/api/v1/contacts", params={"q": "天元"}, headers=tenant.headers)
    assert [c["email"] for c in found.json()["items"]] == ["zhang@example.cn"]


async def test_a_companies_import_keeps_the_customer_id_as_external_id(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    content = (
        "客户ID,客户名称,行业,网站,联系人\nC001,A公司,零售,https://www.a-gongsi.cn/about,王先生\nC002,天元集团,金融,,\n"
    )
    result = await _import(client, tenant, app, content.encode(), entity="companies")
    assert result["created"] == 2 and result["ignored_columns"] == ["联系人"]
    companies = (await client.get("/api/v1/companies", headers=tenant.headers)).json()["items"]
    assert sorted((c["external_id"], c["name"], c["industry"], c["domain"]) for c in companies) == [
        ("C001", "A公司", "零售", "a-gongsi.cn"),
        ("C002", "天元集团", "金融", None),
    ]
    again = await _import(client, tenant, app, content.encode(), entity="companies", mode="upsert")
    assert again["unchanged"] == 2


async def test_with_the_merge_rule_a_create_import_fills_in_the_email_twin(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    await client.patch("/api/v1/organization", headers=tenant.headers, json={"merge_email_duplicates": True})
    existing = await client.post(
        "/api/v1/contacts", headers=tenant.headers, json={"email": "li.na@example.cn", "first_name": "娜"}
    )
    result = await _import(client, tenant, app, "邮箱,联系人,职位\nli.na@example.cn,李娜,主管\n".encode())
    assert (result["created"], result["updated"]) == (0, 1)
    [contact] = await _contacts(client, tenant)
    assert contact["id"] == existing.json()["id"]
    assert (contact["first_name"], contact["last_name"], contact["title"]) == ("娜", "李", "主管")
    # Recorded as POST /contacts records it: a merge, not an update.
    merged = await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.merged"})
    assert [e["entity_id"] for e in merged.json()["items"]] == [contact["id"]]
    assert merged.json()["items"][0]["changes"]["merged_ids"]["after"] == ["(new)"]
    trail = await client.get(f"/api/v1/contacts/{contact['id']}/history", headers=tenant.headers)
    assert [entry["action"] for entry in trail.json()["items"]] == ["merge", "create"]


async def test_owners_are_given_by_email_and_unknown_ones_fail_the_row(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    me = (await client.get("/api/v1/auth/me", headers=tenant.headers)).json()["user"]
    content = f"email,负责人\na@example.com,{me['email'].upper()}\nb@example.com,nobody@example.com\n"
    result = await _import(client, tenant, app, content.encode())
    assert (result["created"], result["failed"]) == (1, 1)
    [contact] = await _contacts(client, tenant)
    assert contact["owner_id"] == me["id"]
    [error] = await _errors(client, tenant, result["id"])
    assert "owner" in error["reason"] and "nobody@example.com" in error["reason"]


async def test_a_value_refused_when_the_record_is_built_is_reported_by_its_field(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    """Values refused by the custom field rules (checked with the record, in the worker) read
    `field: message` in the errors CSV, as values refused by the schema do."""
    definition = await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "tier", "label": "Tier", "type": "select", "options": ["gold", "silver"]},
    )
    assert definition.status_code == 201, definition.text
    content = "email,tier\na@example.com,gold\nb@example.com,bronze\nnot-an-email,gold\n"
    result = await _import(
        client, tenant, app, content.encode(), mapping='{"email": "email", "tier": "custom_fields.tier"}'
    )
    assert (result["created"], result["failed"]) == (1, 2)
    refused, invalid = await _errors(client, tenant, result["id"])
    assert refused["row"] == "3" and refused["reason"].startswith("custom_fields.tier: "), refused["reason"]
    assert invalid["row"] == "4" and invalid["reason"].startswith("email: ")


async def test_an_import_keeps_the_planners_count_of_the_organisations_rows_current(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk's lookups are planned from it: counted at nothing, they scanned every row. The
    companies a contacts import creates are counted too."""
    monkeypatch.setattr(settings, "imports_chunk_rows", 100)

    async def planned_rows(table: str) -> int:
        plan = await db.scalar(
            text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE organization_id = '{tenant.organization_id}'")
        )
        await db.rollback()  # a fresh snapshot of the statistics next time
        return int(plan[0]["Plan"]["Plan Rows"])

    await db.execute(text("ANALYZE contacts"))
    await db.execute(text("ANALYZE companies"))
    await db.commit()
    assert await planned_rows("contacts") < 50
    assert await planned_rows("companies") < 50
    rows = "".join(f"客户{index},c{index}@example.cn,公司{index}\n" for index in range(600))
    result = await _import(client, tenant, app, f"联系人,邮箱,公司\n{rows}".encode())
    assert (result["created"], result["companies_created"]) == (600, 600)
    assert await planned_rows("contacts") >= 300
    assert await planned_rows("companies") >= 300


async def test_the_errors_csv_masks_cells_of_secret_fields(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: AsyncSession
) -> None:
    """A failed row's cells are kept for the errors CSV; a secret custom field's cell is masked
    there (and in the table behind it), as every other listing withholds it."""
    defined = await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "id_number", "label": "身份证号", "type": "secret"},
    )
    assert defined.status_code == 201, defined.text
    content = "first_name,phone,id_number\n伟,13800138000,310101199001011234\n娜,not a phone,310101199202022345\n"
    result = await _import(client, tenant, app, content.encode())
    assert (result["created"], result["failed"]) == (1, 1)
    [failed] = await _errors(client, tenant, result["id"])
    assert failed["row"] == "3" and failed["first_name"] == "娜" and failed["id_number"] == "***"
    kept = (
        await db.execute(select(ImportIssue.cells).where(ImportIssue.import_id == uuid.UUID(result["id"])))
    ).scalars()
    assert [cells[2] for cells in kept] == ["***"]
    again = await _import(client, tenant, app, "first_name,id_number\n娜,***\n".encode())
    assert again["created"] == 1  # the mask is skipped, not stored as the value
    unreadable = await _import(client, tenant, app, b"first_name,id_number\nnul\x00byte,310101199303033456\n")
    [failed] = await _errors(client, tenant, unreadable["id"])
    assert failed["first_name"] == "nul\ufffdbyte" and failed["id_number"] == "***"


async def test_an_over_long_quoted_cell_fails_its_row_and_none_of_its_contents_becomes_a_row(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "imports_max_cell_chars", 100)
    cell = "x" * 150 + "\nPhantom,phantom@example.com\n"
    content = f'name,email\nLong,"{cell}"\nReal,real@example.com\n'.encode()
    result = await _import(client, tenant, app, content)
    assert (result["total"], result["processed"], result["created"], result["failed"]) == (2, 2, 1, 1)
    [error] = await _errors(client, tenant, result["id"])
    assert error["row"] == "2" and error["reason"].startswith("A cell is longer than the limit of 100 characters")
    assert [contact["email"] for contact in await _contacts(client, tenant)] == ["real@example.com"]


async def test_a_stray_quote_fails_its_row_naming_the_lines_it_swallowed(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    lines = [f"Name{index},n{index}@a.cn,t" for index in range(3000)]
    lines[1] = 'Stray,"Quote,sq0@a.cn,t'
    content = ("name,email,tags\n" + "\n".join(lines) + "\n").encode()
    result = await _import(client, tenant, app, content)
    assert (result["total"], result["processed"], result["created"], result["failed"]) == (2, 2, 1, 1)
    [error] = await _errors(client, tenant, result["id"])
    assert error["row"] == "3" and "a quoted cell runs from line 3 to line 3001" in error["reason"]
    assert "the rows after it were not imported" in error["reason"]
    assert [contact["email"] for contact in await _contacts(client, tenant)] == ["n0@a.cn"]


async def test_a_nul_character_fails_its_row_alone_and_the_errors_csv_shows_its_cells(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    """PostgreSQL text cannot hold U+0000: the row fails in the reader, and the cells kept for the
    errors CSV show U+FFFD in its place."""
    content = b"name,email\nGood,good@example.com\nNul,n\x00ul@example.com\nAfter,after@example.com\n"
    result = await _import(client, tenant, app, content)
    assert (result["created"], result["failed"]) == (2, 1)
    [error] = await _errors(client, tenant, result["id"])
    assert error["row"] == "3" and "NUL character (U+0000" in error["reason"]
    assert (error["name"], error["email"]) == ("Nul", "n\ufffdul@example.com")


def _workbook_with_sheet(change: Callable[[bytes], bytes | None]) -> bytes:
    """An XLSX file of 2,000 contacts whose first sheet's XML is changed (None: left out)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["email", "name"])
    for index in range(2000):
        sheet.append([f"p{index}@example.com", f"Person {index}"])
    whole = io.BytesIO()
    workbook.save(whole)
    damaged = io.BytesIO()
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content: bytes | None = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = change(source.read(item.filename))
            if content is not None:
                target.writestr(item, content)
    return damaged.getvalue()


async def test_a_damaged_xlsx_file_is_refused_or_fails_its_import(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    """Damage the upload reads into (a sheet cut off in its first rows, no sheet at all) is a 422;
    damage further on fails the import with the same message instead of leaving it running."""
    cut_early = _workbook_with_sheet(lambda xml: xml[: xml.index(b"<sheetData>") + 15])
    no_sheet = _workbook_with_sheet(lambda xml: None)
    for content in (cut_early, no_sheet):
        refused = await _upload(client, tenant, content, name="people.xlsx")
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert "Not a readable XLSX file: " in refused.json()["detail"]
    cut_late = _workbook_with_sheet(lambda xml: xml[: len(xml) // 2])
    created = await _upload(client, tenant, cut_late, name="people.xlsx")
    assert created.status_code == 202, created.text
    import_id = created.json()["id"]
    ran = await imports.run_import(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(import_id))
    assert ran == "failed"
    result = (await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)).json()
    assert result["status"] == "failed" and result["error"].startswith("Not a readable XLSX file: ")
    assert await _contacts(client, tenant) == []


async def test_a_header_followed_by_blank_lines_has_no_rows(client: httpx.AsyncClient, tenant: Tenant) -> None:
    reply = await _upload(client, tenant, b"name,email\n\n\r\n")
    assert reply.status_code == 422, reply.text
    assert "The file has a header but no rows" in reply.json()["detail"]


async def test_the_sweep_runs_every_lost_import_though_one_of_them_breaks(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    organization_id = uuid.UUID(tenant.organization_id)
    lost = []
    for email in (b"a@example.com", b"b@example.com"):
        created = await _upload(client, tenant, b"email\n" + email + b"\n")
        lost.append((organization_id, uuid.UUID(created.json()["id"])))
    broken = lost[0][1]
    run_import = imports.run_import

    async def sweep(sessions: Any) -> list[tuple[uuid.UUID, uuid.UUID]]:
        return lost

    async def breaks_on_the_first(sessions: Any, organization_id: uuid.UUID, import_id: uuid.UUID) -> str:
        if import_id == broken:
            raise RuntimeError("a row that breaks the job")
        return await run_import(sessions, organization_id, import_id)

    monkeypatch.setattr(imports, "sweep", sweep)
    monkeypatch.setattr(imports, "run_import", breaks_on_the_first)
    log = structlog.testing.CapturingLogger()
    monkeypatch.setattr(import_jobs, "log", log)
    assert await import_jobs.sweep_imports({"sessions": app.state.session_factory}) == 2
    assert [contact["email"] for contact in await _contacts(client, tenant)] == ["b@example.com"]
    [call] = log.calls
    assert (call.method_name, call.args, call.kwargs["import_id"]) == ("exception", ("import_run_failed",), str(broken))


async def test_a_cancel_waits_for_the_chunk_being_written_and_answers_its_counts(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    created = await _upload(client, tenant, b"email\na@example.cn\n")
    import_id = uuid.UUID(created.json()["id"])
    async with app.state.session_factory() as chunk, chunk.begin():
        # A chunk in flight: it holds the import's row until it commits its counts.
        await chunk.execute(
            update(DataImport)
            .where(DataImport.id == import_id)
            .values(status="running", processed=5000, created=4990, skipped=10)
        )
        cancel = asyncio.create_task(client.post(f"/api/v1/imports/{import_id}/cancel", headers=tenant.headers))
        await asyncio.sleep(0.3)
        assert not cancel.done()
    reply = await cancel
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["processed"], reply.json()["created"]) == ("cancelled", 5000, 4990)

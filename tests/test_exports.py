"""POST /exports → the job writes the file → GET /exports/{id}/download."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from openpyxl.cell.cell import Cell
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.models.base import utcnow
from app.models.export import Export
from app.services import exports, records
from tests.helpers import PROBLEM, Tenant, add_api_key


@pytest.fixture(autouse=True)
def files_in(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path)


def _files_in(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


async def _seed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "id_number", "label": "ID", "type": "secret"},
    )
    for i in range(3):
        await client.post(
            "/api/v1/contacts",
            headers=tenant.headers,
            json={
                "first_name": f"伟{i}",
                "city": "上海",
                "title": "=HYPERLINK(1)",
                "custom_fields": {"id_number": "S3"},
            },
        )
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "外", "city": "北京"})


async def _export(client: httpx.AsyncClient, tenant: Tenant, app: Any, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.post("/api/v1/exports", headers=tenant.headers, json=body)
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "pending"
    export_id = created.json()["id"]
    early = await client.get(f"/api/v1/exports/{export_id}/download", headers=tenant.headers)
    assert early.status_code == 409
    done = await exports.run_export(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(export_id))
    assert done == "done"
    again = await exports.run_export(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(export_id))
    assert again == "not pending"  # the job is safe to run twice
    return (await client.get(f"/api/v1/exports/{export_id}", headers=tenant.headers)).json()  # type: ignore[no-any-return]


async def test_a_csv_export_holds_every_match_and_no_secret(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    await _seed(client, tenant)
    export = await _export(
        client, tenant, app, {"entity": "contacts", "filter": {"field": "city", "op": "eq", "value": "上海"}}
    )
    assert export["status"] == "done" and export["rows"] == 3 and export["expires_at"]
    download = await client.get(f"/api/v1/exports/{export['id']}/download", headers=tenant.headers)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert sorted(r["first_name"] for r in rows) == ["伟0", "伟1", "伟2"]
    assert {r["title"] for r in rows} == {"'=HYPERLINK(1)"}
    assert "S3" not in download.text and "custom_fields.id_number" in rows[0]


async def _xlsx_rows(client: httpx.AsyncClient, tenant: Tenant, export: dict[str, Any]) -> list[list[Cell]]:
    download = await client.get(f"/api/v1/exports/{export['id']}/download", headers=tenant.headers)
    assert download.headers["content-type"].startswith("application/vnd.openxmlformats")
    with zipfile.ZipFile(io.BytesIO(download.content)) as package:
        sheets = [name for name in package.namelist() if name.startswith("xl/worksheets/")]
        assert sheets and all(b"<f>" not in package.read(name) for name in sheets)  # no formula anywhere
    sheet = load_workbook(io.BytesIO(download.content)).active
    assert sheet is not None
    return [list(row) for row in sheet.iter_rows()]


async def test_an_xlsx_export_writes_text_cells_without_an_apostrophe(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    await _seed(client, tenant)
    await client.post(
        "/api/v1/contacts",
        headers=tenant.headers,
        json={"first_name": "伟3", "phone": "+86 138 0013 8000", "title": "=1+1"},
    )
    export = await _export(
        client,
        tenant,
        app,
        {"entity": "contacts", "format": "xlsx", "columns": ["first_name", "title", "phone"], "q": "伟"},
    )
    rows = await _xlsx_rows(client, tenant, export)
    assert [cell.value for cell in rows[0]] == ["first_name", "title", "phone"]
    by_name = {row[0].value: row for row in rows[1:]}
    assert sorted(by_name) == ["伟0", "伟1", "伟2", "伟3"]
    assert {by_name[f"伟{i}"][1].value for i in range(3)} == {"=HYPERLINK(1)"}
    _, title, phone = by_name["伟3"]
    assert phone.value == "+8613800138000"
    assert title.value == "=1+1" and title.data_type == "s"


async def test_xlsx_cells_hold_control_characters_as_a_replacement_character(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    created = await client.post(
        "/api/v1/contacts", headers=tenant.headers, json={"title": "ctl\x01char", "first_name": "控"}
    )
    assert created.status_code == 201, created.text
    export = await _export(client, tenant, app, {"entity": "contacts", "format": "xlsx", "columns": ["title"]})
    assert [cell.value for row in await _xlsx_rows(client, tenant, export) for cell in row] == [
        "title",
        "ctl\ufffdchar",
    ]


async def test_an_export_that_breaks_unexpectedly_fails_with_a_reason(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _seed(client, tenant)
    written_before_breaking = records.export_rows

    async def breaking_rows(*args: Any) -> tuple[list[str], AsyncIterator[dict[str, Any]]]:
        columns, rows = await written_before_breaking(*args)

        async def first_then_break() -> AsyncIterator[dict[str, Any]]:
            yield await anext(rows)
            raise RuntimeError("the disk is gone")

        return columns, first_then_break()

    monkeypatch.setattr(records, "export_rows", breaking_rows)
    created = (await client.post("/api/v1/exports", headers=tenant.headers, json={"entity": "contacts"})).json()
    outcome = await exports.run_export(
        app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(created["id"])
    )
    assert outcome == "failed"
    export = (await client.get(f"/api/v1/exports/{created['id']}", headers=tenant.headers)).json()
    assert export["status"] == "failed" and export["finished_at"]
    assert "RuntimeError" in export["error"] and "the disk is gone" not in export["error"]
    download = await client.get(f"/api/v1/exports/{created['id']}/download", headers=tenant.headers)
    assert download.status_code == 409
    assert _files_in(tmp_path) == []  # no half-written file left


async def test_expired_files_are_gone_and_lost_exports_run_again(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: AsyncSession
) -> None:
    await _seed(client, tenant)
    export = await _export(client, tenant, app, {"entity": "companies"})
    await db.execute(
        update(Export).where(Export.id == uuid.UUID(export["id"])).values(expires_at=utcnow() - timedelta(1))
    )
    await db.commit()
    await exports.sweep(app.state.session_factory)
    gone = await client.get(f"/api/v1/exports/{export['id']}/download", headers=tenant.headers)
    assert gone.status_code == 410 and gone.headers["content-type"] == PROBLEM

    lost = (await client.post("/api/v1/exports", headers=tenant.headers, json={"entity": "contacts"})).json()
    await db.execute(
        update(Export).where(Export.id == uuid.UUID(lost["id"])).values(created_at=utcnow() - timedelta(minutes=5))
    )
    await db.commit()
    assert (uuid.UUID(tenant.organization_id), uuid.UUID(lost["id"])) in await exports.sweep(app.state.session_factory)


async def test_a_lost_export_runs_again_until_it_is_an_hour_old(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, app: Any
) -> None:
    ages = {"young": timedelta(minutes=50), "old": timedelta(minutes=61)}
    ids = {}
    for name, age in ages.items():
        created = (await client.post("/api/v1/exports", headers=tenant.headers, json={"entity": "contacts"})).json()
        ids[name] = uuid.UUID(created["id"])
        await db.execute(
            update(Export)
            .where(Export.id == ids[name])
            .values(status="running", created_at=utcnow() - age, started_at=utcnow() - timedelta(minutes=16))
        )
    await db.commit()
    to_run = await exports.sweep(app.state.session_factory)
    assert (uuid.UUID(tenant.organization_id), ids["young"]) in to_run
    assert (uuid.UUID(tenant.organization_id), ids["old"]) not in to_run
    old = (await client.get(f"/api/v1/exports/{ids['old']}", headers=tenant.headers)).json()
    assert old["status"] == "failed" and "kept stopping" in old["error"] and old["finished_at"]
    young = (await client.get(f"/api/v1/exports/{ids['young']}", headers=tenant.headers)).json()
    assert young["status"] == "pending"


async def test_bad_requests_permissions_and_tenancy(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, app: Any
) -> None:
    bad_filter = await client.post(
        "/api/v1/exports",
        headers=tenant.headers,
        json={"entity": "contacts", "filter": {"field": "nope", "op": "eq", "value": 1}},
    )
    assert bad_filter.status_code == 422
    assert (await client.post("/api/v1/exports", headers=tenant.headers, json={"entity": "deals"})).status_code == 422
    key = await add_api_key(client, tenant, ["companies:read"])
    assert (await client.post("/api/v1/exports", headers=key, json={"entity": "contacts"})).status_code == 403
    export = await _export(client, tenant, app, {"entity": "companies"})
    for path in (f"/api/v1/exports/{export['id']}", f"/api/v1/exports/{export['id']}/download"):
        assert (await client.get(path, headers=other_tenant.headers)).status_code == 404


async def test_unknown_columns_are_refused_naming_them(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    await _seed(client, tenant)  # defines the secret custom field id_number
    refused = await client.post(
        "/api/v1/exports",
        headers=tenant.headers,
        json={
            "entity": "contacts",
            "format": "xlsx",
            "columns": ["first_name", "=cmd|' /C calc'!A0", "custom_fields.nope"],
        },
    )
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
    [error] = refused.json()["errors"]
    assert error["loc"] == ["body", "columns"]
    assert "=cmd|' /C calc'!A0" in error["msg"] and "custom_fields.nope" in error["msg"]
    assert "first_name" not in error["msg"]
    asked = select(func.count()).where(Export.organization_id == uuid.UUID(tenant.organization_id))
    assert (await db.execute(asked)).scalar_one() == 0
    accepted = await client.post(
        "/api/v1/exports",
        headers=tenant.headers,
        json={"entity": "contacts", "columns": ["full_name", "custom_fields.id_number"]},
    )
    assert accepted.status_code == 202, accepted.text


async def test_asking_enqueues_the_job_once_committed(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings
) -> None:
    import asyncio

    created = (await client.post("/api/v1/exports", headers=tenant.headers, json={"entity": "contacts"})).json()
    for _ in range(100):
        queued = await app.state.job_queue.queued_jobs(queue_name=settings.queue_name)
        if any(job.function == "run_export" and created["id"] in job.args for job in queued):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("run_export was not enqueued")

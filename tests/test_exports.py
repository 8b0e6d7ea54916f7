"""POST /exports → the job writes the file → GET /exports/{id}/download."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.models.base import utcnow
from app.models.export import Export
from app.services import exports
from tests.helpers import PROBLEM, Tenant, add_api_key


@pytest.fixture(autouse=True)
def files_in(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path)


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


async def test_an_xlsx_export_with_chosen_columns(client: httpx.AsyncClient, tenant: Tenant, app: Any) -> None:
    await _seed(client, tenant)
    export = await _export(
        client, tenant, app, {"entity": "contacts", "format": "xlsx", "columns": ["first_name", "title"], "q": "伟"}
    )
    download = await client.get(f"/api/v1/exports/{export['id']}/download", headers=tenant.headers)
    assert download.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(download.content)).active
    assert sheet is not None
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == ["first_name", "title"]
    assert sorted(v[0] for v in values[1:]) == ["伟0", "伟1", "伟2"]
    assert {v[1] for v in values[1:]} == {"'=HYPERLINK(1)"}


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

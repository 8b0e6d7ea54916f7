"""Custom fields of type `secret`: sealed at rest, absent from lists, searches, CSV, events and
audit values, shown on single reads to owners and admins only, every such read audited."""

from __future__ import annotations

import base64
import os
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import secrets
from app.core.settings import Settings
from app.models.contact import Contact
from tests.helpers import Tenant, add_api_key, add_user

ID_NUMBER = "310101199001011234"


async def _secret_contact(client: httpx.AsyncClient, tenant: Tenant) -> str:
    defined = await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "id_number", "label": "身份证号", "type": "secret"},
    )
    assert defined.status_code == 201, defined.text
    created = await client.post(
        "/api/v1/contacts",
        headers=tenant.headers,
        json={"first_name": "伟", "custom_fields": {"id_number": ID_NUMBER}},
    )
    assert created.status_code == 201, created.text
    assert "id_number" not in created.json()["custom_fields"]
    return created.json()["id"]  # type: ignore[no-any-return]


async def test_secret_values_are_sealed_and_shown_only_to_admins(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    cid = await _secret_contact(client, tenant)
    stored = (await db.execute(select(Contact.custom_fields).where(Contact.id == uuid.UUID(cid)))).scalar_one()
    assert ID_NUMBER not in str(stored) and secrets.is_sealed(stored["id_number"])

    owner_read = await client.get(f"/api/v1/contacts/{cid}", headers=tenant.headers)
    assert owner_read.json()["custom_fields"]["id_number"] == ID_NUMBER
    manager = await add_user(client, tenant, "manager")
    assert (
        "id_number"
        not in (await client.get(f"/api/v1/contacts/{cid}", headers=manager.headers)).json()["custom_fields"]
    )
    key = await add_api_key(client, tenant, ["contacts:read"])
    assert "id_number" not in (await client.get(f"/api/v1/contacts/{cid}", headers=key)).json()["custom_fields"]

    everywhere = [
        await client.get("/api/v1/contacts", headers=tenant.headers),
        await client.post("/api/v1/contacts/search", headers=tenant.headers, json={}),
        await client.get("/api/v1/contacts", headers={**tenant.headers, "Accept": "text/csv"}),
        await client.get("/api/v1/events", headers=tenant.headers),
        await client.get(f"/api/v1/contacts/{cid}/history", headers=tenant.headers),
    ]
    for response in everywhere:
        assert response.status_code == 200
        assert ID_NUMBER not in response.text, response.request.url

    history = (await client.get(f"/api/v1/contacts/{cid}/history", headers=tenant.headers)).json()["items"]
    reads = [entry for entry in history if entry["action"] == "read"]
    assert len(reads) == 1 and reads[0]["actor_id"] == tenant.user_id
    assert reads[0]["changes"] == {"custom_fields.id_number": {"before": None, "after": "(read)"}}


async def test_secret_fields_cannot_be_filtered_and_changes_are_audited_blind(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    cid = await _secret_contact(client, tenant)
    search = await client.post(
        "/api/v1/contacts/search",
        headers=tenant.headers,
        json={"filter": {"field": "custom_fields.id_number", "op": "eq", "value": ID_NUMBER}},
    )
    assert search.status_code == 422
    changed = await client.patch(
        f"/api/v1/contacts/{cid}", headers=tenant.headers, json={"custom_fields": {"id_number": "110101198001010000"}}
    )
    assert changed.status_code == 200
    history = (await client.get(f"/api/v1/contacts/{cid}/history", headers=tenant.headers)).json()["items"]
    update = next(entry for entry in history if entry["action"] == "update")
    values = update["changes"]["custom_fields"]
    assert values["before"]["id_number"].startswith("(secret ") and values["after"]["id_number"].startswith("(secret ")
    assert values["before"] != values["after"]
    assert "110101198001010000" not in str(history)
    bad = await client.patch(
        f"/api/v1/contacts/{cid}", headers=tenant.headers, json={"custom_fields": {"id_number": 5}}
    )
    assert bad.status_code == 422


async def test_keys_rotate(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = f"old:{base64.b64encode(os.urandom(32)).decode()}"
    new = f"new:{base64.b64encode(os.urandom(32)).decode()}"
    monkeypatch.setattr(settings, "secret_field_keys", type(settings.secret_key)(old))
    cid = await _secret_contact(client, tenant)
    monkeypatch.setattr(settings, "secret_field_keys", type(settings.secret_key)(f"{new},{old}"))
    assert (await client.get(f"/api/v1/contacts/{cid}", headers=tenant.headers)).json()["custom_fields"][
        "id_number"
    ] == ID_NUMBER
    await client.patch(f"/api/v1/contacts/{cid}", headers=tenant.headers, json={"custom_fields": {"id_number": "X1"}})
    monkeypatch.setattr(settings, "secret_field_keys", type(settings.secret_key)(new))
    assert (await client.get(f"/api/v1/contacts/{cid}", headers=tenant.headers)).json()["custom_fields"][
        "id_number"
    ] == "X1"


async def test_a_value_sealed_under_a_retired_key_is_left_out_not_a_failed_read(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = f"old:{base64.b64encode(os.urandom(32)).decode()}"
    monkeypatch.setattr(settings, "secret_field_keys", type(settings.secret_key)(old))
    cid = await _secret_contact(client, tenant)
    for retired_ring in (
        f"new:{base64.b64encode(os.urandom(32)).decode()}",  # the old key is gone
        f"old:{base64.b64encode(os.urandom(32)).decode()}",  # its id now names another key
    ):
        monkeypatch.setattr(settings, "secret_field_keys", type(settings.secret_key)(retired_ring))
        read = await client.get(f"/api/v1/contacts/{cid}", headers=tenant.headers)
        assert read.status_code == 200, read.text
        assert "id_number" not in read.json()["custom_fields"] and read.json()["first_name"] == "伟"


async def test_personal_data_holds_the_secret_fields_for_an_admin(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cid = await _secret_contact(client, tenant)
    held = await client.get(f"/api/v1/contacts/{cid}/personal-data", headers=tenant.headers)
    assert held.status_code == 200, held.text
    assert held.json()["contact"]["custom_fields"]["id_number"] == ID_NUMBER
    trail = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": cid})
    reads = [entry for entry in trail.json()["items"] if entry["action"] == "read"]
    assert [list(entry["changes"]) for entry in reads] == [["custom_fields.id_number"]]

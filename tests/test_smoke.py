from __future__ import annotations

import httpx

from tests.helpers import Tenant, create


async def test_create_and_read_a_contact(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(
        client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张", email="Zhang@Example.com"
    )
    response = await client.get(f"/api/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "zhang@example.com"
    assert response.json()["full_name"] == "张伟"

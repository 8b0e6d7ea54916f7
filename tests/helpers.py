"""Small factories for tests: tenants, users, API keys, records."""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

MIGRATIONS = Path(__file__).parents[1] / "migrations" / "versions"
PASSWORD = "correct horse battery staple"
PROBLEM = "application/problem+json"


@dataclass
class Tenant:
    organization_id: str
    user_id: str
    email: str
    access_token: str
    refresh_token: str
    headers: dict[str, str] = field(default_factory=dict)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signup(client: httpx.AsyncClient, *, organization_name: str = "天元贸易") -> Tenant:
    email = unique_email("owner")
    response = await client.post(
        "/api/v1/auth/signup",
        json={"organization_name": organization_name, "email": email, "password": PASSWORD, "full_name": "王芳"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Tenant(
        organization_id=body["organization"]["id"],
        user_id=body["user"]["id"],
        email=email,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        headers=bearer(body["access_token"]),
    )


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def add_user(client: httpx.AsyncClient, tenant: Tenant, role: str, *, full_name: str = "李娜") -> Tenant:
    """A user of `tenant` with `role`, signed in."""
    email = unique_email(role)
    response = await client.post(
        "/api/v1/users",
        headers=tenant.headers,
        json={"email": email, "full_name": full_name, "role": role, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    tokens = await login(client, email)
    return Tenant(
        organization_id=tenant.organization_id,
        user_id=response.json()["id"],
        email=email,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        headers=bearer(tokens["access_token"]),
    )


async def add_api_key(client: httpx.AsyncClient, tenant: Tenant, scopes: list[str]) -> dict[str, str]:
    response = await client.post(
        "/api/v1/api-keys", headers=tenant.headers, json={"name": "integration", "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["secret"]}


async def create(client: httpx.AsyncClient, path: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(path, headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:rapport:problem:")
    assert body["title"] and body["detail"]
    return body


def error_locs(response: httpx.Response) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["errors"]]


def migration(file_name: str) -> ModuleType:
    """A migration's module, loaded from its file, so a test can run the SQL it runs."""
    spec = importlib.util.spec_from_file_location(file_name.removesuffix(".py"), MIGRATIONS / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

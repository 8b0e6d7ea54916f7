"""Sign-up, sign-in, refresh rotation, and every way an access token can be bad."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
from jose import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.organization import RefreshToken
from tests.helpers import PASSWORD, Tenant, add_user, assert_problem, bearer, error_locs, login, signup, unique_email

SECRET = "test-secret-key-that-is-long-enough-for-hs256"


def _claims(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "rapport",
        "sub": tenant.user_id,
        "org": tenant.organization_id,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
    } | overrides


async def test_signup_returns_organisation_user_and_tokens(client: httpx.AsyncClient) -> None:
    email = unique_email("founder")
    response = await client.post(
        "/api/v1/auth/signup",
        json={"organization_name": "天元贸易", "email": email.upper(), "password": PASSWORD, "full_name": "王芳"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["organization"]["name"] == "天元贸易"
    assert body["user"]["email"] == email
    assert body["user"]["role"] == "owner"
    assert "password_hash" not in body["user"]
    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["user"]["id"] == body["user"]["id"]
    assert "contacts:write" in me.json()["scopes"]


async def test_signup_validation_errors_name_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/signup",
        json={"organization_name": "", "email": "not-an-email", "password": PASSWORD, "full_name": "x", "admin": True},
    )
    body = assert_problem(response, 422)
    locs = error_locs(response)
    assert ["body", "organization_name"] in locs
    assert ["body", "email"] in locs
    assert ["body", "admin"] in locs
    assert all(set(error) == {"loc", "msg"} for error in body["errors"])


async def test_signup_refuses_a_short_password_and_a_taken_email(client: httpx.AsyncClient, tenant: Tenant) -> None:
    short = await client.post(
        "/api/v1/auth/signup",
        json={"organization_name": "x", "email": unique_email(), "password": "short", "full_name": "x"},
    )
    assert error_locs(short) == [["body", "password"]]
    taken = await client.post(
        "/api/v1/auth/signup",
        json={"organization_name": "x", "email": tenant.email, "password": PASSWORD, "full_name": "x"},
    )
    assert_problem(taken, 409)


async def test_signup_can_be_switched_off(app: Any, client: httpx.AsyncClient, monkeypatch: Any) -> None:
    from app.core.settings import get_settings

    monkeypatch.setattr(get_settings(), "signup_enabled", False)
    response = await client.post(
        "/api/v1/auth/signup",
        json={"organization_name": "x", "email": unique_email(), "password": PASSWORD, "full_name": "x"},
    )
    assert_problem(response, 403)


async def test_password_grant(client: httpx.AsyncClient, tenant: Tenant) -> None:
    tokens = await login(client, tenant.email.upper())
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))).status_code == 200
    wrong = await client.post("/api/v1/auth/token", data={"username": tenant.email, "password": "wrong password"})
    assert_problem(wrong, 401)
    nobody = await client.post("/api/v1/auth/token", data={"username": unique_email(), "password": PASSWORD})
    assert_problem(nobody, 401)
    assert wrong.json()["detail"] == nobody.json()["detail"]


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": tenant.refresh_token})
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != tenant.refresh_token
    assert (await client.get("/api/v1/auth/me", headers=bearer(first.json()["access_token"]))).status_code == 200

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": tenant.refresh_token})
    assert assert_problem(reused, 401)["type"].endswith("refresh-token-reused")
    # The family is revoked, so the token issued by the rotation is dead too.
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated}), 401)
    rows = (await db.execute(select(RefreshToken).where(RefreshToken.user_id == tenant.user_id))).scalars().all()
    assert len(rows) == 2 and all(row.revoked_at is not None for row in rows)


async def test_refresh_with_an_unknown_token_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"}), 401)


async def test_a_second_sign_in_is_its_own_family(client: httpx.AsyncClient, tenant: Tenant) -> None:
    other_session = await login(client, tenant.email)
    await client.post("/api/v1/auth/refresh", json={"refresh_token": tenant.refresh_token})
    await client.post("/api/v1/auth/refresh", json={"refresh_token": tenant.refresh_token})  # reuse: family 1 dies
    survivor = await client.post("/api/v1/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    assert survivor.status_code == 200


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


async def test_bad_access_tokens_are_401_problems(client: httpx.AsyncClient, tenant: Tenant) -> None:
    now = int(time.time())
    header, payload, signature = tenant.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered_claims = {**claims, "sub": "01a2084d-1079-7398-ac7c-2ce4a0b0e27f"}
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bad_tokens = {
        "expired": jwt.encode(_claims(tenant, iat=now - 7200, exp=now - 3600), SECRET, algorithm="HS256"),
        "tampered": f"{header}.{_b64(tampered_claims)}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong algorithm": jwt.encode(_claims(tenant), SECRET, algorithm="HS512"),
        "asymmetric algorithm": jwt.encode(_claims(tenant), rsa_key.decode(), algorithm="RS256"),
        "other secret": jwt.encode(_claims(tenant), "another-secret-that-is-also-long-enough", algorithm="HS256"),
        "not a refresh-type claim": jwt.encode(_claims(tenant, typ="refresh"), SECRET, algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in _claims(tenant).items() if k != "exp"}, SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }
    for name, token in bad_tokens.items():
        response = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer", name
    assert (await client.get("/api/v1/auth/me", headers=bearer(jwt.encode(_claims(tenant), SECRET)))).status_code == 200


async def test_no_credentials_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/contacts"), 401)


async def test_deactivated_user_loses_access_at_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sales = await add_user(client, tenant, "sales")
    assert (await client.get("/api/v1/auth/me", headers=sales.headers)).status_code == 200
    response = await client.post(f"/api/v1/users/{sales.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_problem(await client.get("/api/v1/auth/me", headers=sales.headers), 401)
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": sales.refresh_token}), 401)
    assert_problem(await client.post("/api/v1/auth/token", data={"username": sales.email, "password": PASSWORD}), 401)


async def test_password_change(client: httpx.AsyncClient, tenant: Tenant) -> None:
    wrong = await client.post(
        "/api/v1/auth/password",
        headers=tenant.headers,
        json={"current_password": "nope", "new_password": "another long passphrase"},
    )
    assert error_locs(wrong) == [["body", "current_password"]]
    changed = await client.post(
        "/api/v1/auth/password",
        headers=tenant.headers,
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
    )
    assert changed.status_code == 204
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tenant.refresh_token}), 401)
    await login(client, tenant.email, "another long passphrase")


async def test_signup_tenants_are_separate(client: httpx.AsyncClient) -> None:
    first, second = await signup(client), await signup(client)
    assert first.organization_id != second.organization_id

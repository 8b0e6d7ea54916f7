"""The API conventions every route shares (DESIGN.md §4)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.main import create_app
from tests.helpers import Tenant, assert_problem, create, error_locs


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nothing-here"), 404)
    assert body["instance"] == "/api/v1/nothing-here"


async def test_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.put("/api/v1/contacts", headers=tenant.headers, json={})
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/v1/contacts", headers={**tenant.headers, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert_problem(response, 422)


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, tenant: Tenant, settings: Settings) -> None:
    huge = b'{"first_name": "' + b"x" * (settings.max_request_body_bytes + 10) + b'"}'
    response = await client.post(
        "/api/v1/contacts", headers={**tenant.headers, "Content-Type": "application/json"}, content=huge
    )
    problem = assert_problem(response, 413)
    assert problem["type"].endswith("payload-too-large") and problem["limit"] == settings.max_request_body_bytes
    assert problem["instance"] == "/api/v1/contacts"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield huge

    response = await client.post(
        "/api/v1/contacts", headers={**tenant.headers, "Content-Type": "application/json"}, content=streamed()
    )
    problem = assert_problem(response, 413)
    assert problem["type"].endswith("payload-too-large") and problem["limit"] == settings.max_request_body_bytes


async def test_unexpected_errors_are_a_500_problem_without_a_trace(settings: Settings) -> None:
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/explode", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/explode")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


async def test_request_ids_are_made_or_echoed(client: httpx.AsyncClient) -> None:
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def test_probes_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'rapport_http_requests_total{method="GET",route="/readyz",status="200"}' in metrics.text


async def test_readiness_reports_a_dead_redis(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "ok" and response.json()["redis"].startswith("error")


async def test_rate_limit_headers_and_429(settings: Settings, client: httpx.AsyncClient, tenant: Tenant) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_user_per_minute": 3}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        replies = [await http.get("/api/v1/auth/me", headers=tenant.headers) for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in replies] == ["2", "1", "0", "0"]
    assert replies[0].headers["ratelimit-limit"] == "3"
    assert replies[0].headers["ratelimit-policy"] == "3;w=60"
    limited = assert_problem(replies[3], 429)
    assert 1 <= int(replies[3].headers["retry-after"]) <= 60
    assert limited["type"].endswith("rate-limited")


async def test_anonymous_auth_endpoints_are_limited_per_address(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_anonymous_per_minute": 2}))
    address = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        await app.state.redis.delete(f"rapport:rl:ip:{address}")
        codes = [
            (await http.post("/api/v1/auth/token", data={"username": "x@example.com", "password": "y"})).status_code
            for _ in range(3)
        ]
    assert codes == [401, 401, 429]


@pytest.mark.parametrize("limit", ["0", "501", "abc"])
async def test_limit_is_bounded(client: httpx.AsyncClient, tenant: Tenant, limit: str) -> None:
    response = await client.get("/api/v1/contacts", params={"limit": limit}, headers=tenant.headers)
    assert error_locs(response) == [["query", "limit"]]


async def test_bad_cursors_are_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for index in range(3):
        await create(client, "/api/v1/contacts", tenant.headers, first_name=f"n{index}")
    page = (
        await client.get("/api/v1/contacts", params={"limit": 1, "sort": "first_name"}, headers=tenant.headers)
    ).json()
    assert page["next_cursor"]
    other_sort = await client.get(
        "/api/v1/contacts", params={"cursor": page["next_cursor"], "sort": "-first_name"}, headers=tenant.headers
    )
    assert error_locs(other_sort) == [["query", "cursor"]]
    garbage = await client.get("/api/v1/contacts", params={"cursor": "!!!"}, headers=tenant.headers)
    assert error_locs(garbage) == [["query", "cursor"]]


async def test_sort_fields_are_checked(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/api/v1/contacts", params={"sort": "password,-nope"}, headers=tenant.headers)
    assert_problem(response, 422)
    assert len(response.json()["errors"]) == 2


async def test_etag_and_if_match_formats(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="a")
    url = f"/api/v1/contacts/{contact['id']}"
    read = await client.get(url, headers=tenant.headers)
    assert read.headers["etag"] == 'W/"1"'
    for header, status in (('"1"', 200), ('W/"1"', 412), ("*", 200), ("garbage", 412)):
        response = await client.patch(url, headers={**tenant.headers, "If-Match": header}, json={"title": header})
        assert response.status_code == status, header


def _routes(app: Any) -> list[Any]:
    return [route for route in app.routes if getattr(route, "path", "").startswith("/api/v1")]


async def test_every_error_a_route_documents_is_a_problem_schema(app: Any) -> None:
    spec = app.openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert "application/problem+json" in response["content"], (method, path, status)


async def test_the_rate_limiter_leases_capacity_without_exceeding_the_limit(app: Any) -> None:
    """Two API processes (two limiters on one Redis) never grant more than the limit together,
    and concurrent requests share one Redis claim per lease instead of each making one."""
    from app.core.ratelimit import RateLimiter

    identity = f"test:{uuid.uuid4()}"
    first, second = RateLimiter(app.state.redis), RateLimiter(app.state.redis)
    claims = 0
    original = RateLimiter._lease

    async def counted(self: RateLimiter, *args: Any) -> Any:
        nonlocal claims
        claims += 1
        return await original(self, *args)

    RateLimiter._lease = counted  # type: ignore[method-assign]
    try:
        states = await asyncio.gather(
            *(limiter.hit(identity, limit=1000) for limiter in (first, second) for _ in range(300))
        )
        assert all(state is not None and not state.exceeded for state in states)
        assert claims <= 2 * (300 // 10 + 1), claims  # leases of 10 at this limit, one claim each
        small = f"test:{uuid.uuid4()}"
        states = await asyncio.gather(*(limiter.hit(small, limit=30) for limiter in (first, second) for _ in range(50)))
        assert sum(1 for state in states if state is not None and not state.exceeded) == 30
    finally:
        RateLimiter._lease = original  # type: ignore[method-assign]


async def test_database_exhaustion_is_a_503_to_retry(settings: Settings) -> None:
    import asyncpg

    app = create_app(settings)

    async def exhausted() -> None:
        raise asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")

    app.add_api_route("/exhausted", exhausted)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/exhausted")
    assert assert_problem(response, 503)["type"].endswith("unavailable")
    assert response.headers["retry-after"] == "1"

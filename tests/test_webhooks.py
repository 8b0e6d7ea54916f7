"""Webhooks: subscriptions, signed deliveries to a real receiver on 127.0.0.1, retries, order,
disabling, secret rotation, the delivery log, and the SSRF guard end to end."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import outbound
from app.core.settings import Settings
from app.models.base import utcnow
from app.models.webhook import Webhook, WebhookDelivery
from app.services import webhooks
from app.services.relay import RETRY_DELAYS, Relay
from tests.helpers import PROBLEM, Tenant, add_api_key, add_user
from tests.receiver import Received, Receiver


async def _subscribe(
    client: httpx.AsyncClient, tenant: Tenant, url: str, events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/webhooks", headers=tenant.headers, json={"url": url, "events": events or ["contact.*"], **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _contact(client: httpx.AsyncClient, tenant: Tenant, name: str = "伟") -> dict[str, Any]:
    response = await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _deliveries(client: httpx.AsyncClient, tenant: Tenant, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def _answer(status: int, **headers: str) -> Any:
    async def respond(_: Received) -> web.StreamResponse:
        return web.Response(status=status, headers=headers)

    return respond


async def test_create_shows_the_secret_once(client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"url": receiver.url(), "events": ["contact.*", "company.created"], "description": "ERP"}
    created = await client.post("/api/v1/webhooks", headers=headers, json=body)
    assert created.status_code == 201
    webhook = created.json()
    assert webhook["secret"].startswith("whsec_")
    assert webhook["events"] == ["company.created", "contact.*"]
    assert webhook["active"] is True and webhook["version"] == 1
    assert created.headers["location"] == f"/api/v1/webhooks/{webhook['id']}"
    replay = await client.post("/api/v1/webhooks", headers=headers, json=body)
    assert replay.json()["secret"] is None and replay.json()["id"] == webhook["id"]
    read = await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers)
    assert "secret" not in read.json()
    assert read.headers["etag"] == 'W/"1"'
    listed = await client.get("/api/v1/webhooks", headers=tenant.headers)
    assert [w["id"] for w in listed.json()["items"]] == [webhook["id"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "https://93.184.215.14/x", "events": ["contact.nothing"]}, ["body", "events", 0]),
        ({"url": "https://93.184.215.14/x", "events": ["nope.*"]}, ["body", "events", 0]),
        ({"url": "https://93.184.215.14/x", "events": ["Contact Created"]}, ["body", "events", 0]),
        ({"url": "https://93.184.215.14/x", "events": []}, ["body", "events"]),
        ({"url": "ftp://example.com/x", "events": ["*"]}, ["body", "url"]),
        ({"url": "https://user:pw@127.0.0.1/x", "events": ["*"]}, ["body", "url"]),
        ({"url": "https://10.0.0.8/x", "events": ["*"]}, ["body", "url"]),
        ({"url": "https://169.254.169.254/latest/meta-data", "events": ["*"]}, ["body", "url"]),
        ({"url": "https://[::ffff:127.0.0.1]/x", "events": ["*"]}, ["body", "url"]),
        ({"url": "https://" + "a" * 2050 + ".com/", "events": ["*"]}, ["body", "url"]),
        ({"events": ["*"]}, ["body", "url"]),
    ],
)
async def test_bad_subscriptions_are_422(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post("/api/v1/webhooks", headers=tenant.headers, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert loc in [error["loc"] for error in response.json()["errors"]]


async def test_guard_refuses_loopback_and_http_unless_allowed(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "webhooks_allow_loopback", False)
    for url in ("http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x", "http://127.1:9/x"):
        response = await client.post("/api/v1/webhooks", headers=tenant.headers, json={"url": url, "events": ["*"]})
        assert response.status_code == 422, url
    monkeypatch.setattr(settings, "webhooks_allow_loopback", True)
    monkeypatch.setattr(settings, "webhooks_allow_http", False)
    response = await client.post(
        "/api/v1/webhooks", headers=tenant.headers, json={"url": "http://127.0.0.1:9/x", "events": ["*"]}
    )
    assert response.status_code == 422
    assert "https" in response.json()["errors"][0]["msg"]


async def test_a_delivery_is_signed_and_carries_the_event(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    webhook = await _subscribe(client, tenant, receiver.url())
    contact = await _contact(client, tenant)
    await client.post("/api/v1/companies", headers=tenant.headers, json={"name": "不订阅的公司"})
    report = await relay.run(budget_seconds=10)
    assert report.delivered >= 1
    (got,) = receiver.at("/hook")
    event = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.*"})).json()["items"][
        0
    ]
    assert got.verifies_with(webhook["secret"])
    assert not got.verifies_with(webhooks.signatures.new_secret())
    assert got.headers["webhook-id"] == event["id"]
    assert got.headers["content-type"] == "application/json"
    assert got.event == event
    assert got.event["data"] == contact
    (delivery,) = await _deliveries(client, tenant, webhook["id"])
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 204
    assert delivery["last_latency_ms"] is not None
    assert delivery["event_id"] == event["id"]
    assert delivery["next_attempt_at"] is None
    assert len(delivery["attempt_log"]) == 1


async def test_failures_are_retried_on_schedule_and_by_hand(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    receiver.responders["/hook"] = _answer(500)
    webhook = await _subscribe(client, tenant, receiver.url())
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    (delivery,) = await _deliveries(client, tenant, webhook["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500"
    wait = _seconds(delivery["next_attempt_at"]) - _seconds(delivery["last_attempt_at"])
    assert RETRY_DELAYS[0] * 0.9 <= wait <= RETRY_DELAYS[0] * 1.1
    # Not due yet: a relay run sends nothing.
    await relay.run(budget_seconds=10)
    assert len(receiver.at("/hook")) == 1

    receiver.responders["/hook"] = _answer(200)
    retried = await client.post(
        f"/api/v1/webhooks/{webhook['id']}/deliveries/{delivery['id']}/retry", headers=tenant.headers
    )
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    await relay.run(budget_seconds=10)
    done = (
        await client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/{delivery['id']}", headers=tenant.headers)
    ).json()
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert [a.get("status_code") for a in done["attempt_log"]] == [500, 200]
    first, second = receiver.at("/hook")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    health = (await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers)).json()
    assert health["consecutive_failures"] == 0 and health["last_success_at"] is not None
    failed_only = await client.get(
        f"/api/v1/webhooks/{webhook['id']}/deliveries", headers=tenant.headers, params={"status": "failed"}
    )
    assert failed_only.json()["items"] == []


def _seconds(timestamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(timestamp).timestamp()


async def test_retry_after_is_honoured(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    receiver.responders["/hook"] = _answer(503, **{"Retry-After": "120"})
    webhook = await _subscribe(client, tenant, receiver.url())
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    (delivery,) = await _deliveries(client, tenant, webhook["id"])
    assert _seconds(delivery["next_attempt_at"]) - _seconds(delivery["last_attempt_at"]) == pytest.approx(120, abs=1)


async def test_the_last_retry_fails_the_delivery_for_good(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay, db: AsyncSession
) -> None:
    receiver.responders["/hook"] = _answer(500)
    webhook = await _subscribe(client, tenant, receiver.url())
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    # As if the nine retries had failed too: the tenth attempt is the last.
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == uuid.UUID(webhook["id"]))
        .values(attempts=len(RETRY_DELAYS), next_attempt_at=utcnow())
    )
    await db.commit()
    await relay.run(budget_seconds=10)
    (delivery,) = await _deliveries(client, tenant, webhook["id"])
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None


async def test_gone_disables_the_subscription_and_says_so(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    receiver.responders["/gone"] = _answer(410)
    gone = await _subscribe(client, tenant, receiver.url("/gone"))
    watcher = await _subscribe(client, tenant, receiver.url("/watch"), events=["webhook.disabled"])
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    disabled = (await client.get(f"/api/v1/webhooks/{gone['id']}", headers=tenant.headers)).json()
    assert disabled["active"] is False
    assert "410" in disabled["disabled_reason"]
    assert disabled["version"] == 2
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "webhook.*"})).json()["items"]
    assert [(e["type"], e["entity_id"], e["actor_type"]) for e in events] == [
        ("webhook.disabled", gone["id"], "system")
    ]
    assert events[0]["data"]["active"] is False
    (notice,) = receiver.at("/watch")
    assert notice.event["type"] == "webhook.disabled" and notice.verifies_with(watcher["secret"])

    # Disabled: new events are not fanned out to it; re-enabling starts afresh.
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    assert len(receiver.at("/gone")) == 1
    receiver.responders.pop("/gone")
    enabled = await client.patch(
        f"/api/v1/webhooks/{gone['id']}", headers={**tenant.headers, "If-Match": 'W/"2"'}, json={"active": True}
    )
    assert enabled.status_code == 200
    assert enabled.json()["disabled_reason"] is None and enabled.json()["consecutive_failures"] == 0
    await relay.run(budget_seconds=10)
    (delivery,) = await _deliveries(client, tenant, gone["id"])
    assert delivery["status"] == "delivered"


async def test_failing_for_days_disables_the_subscription(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay, db: AsyncSession
) -> None:
    receiver.responders["/hook"] = _answer(502)
    webhook = await _subscribe(client, tenant, receiver.url())
    await db.execute(
        update(Webhook)
        .where(Webhook.id == uuid.UUID(webhook["id"]))
        .values(consecutive_failures=40, failing_since=utcnow() - timedelta(days=4))
    )
    await db.commit()
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    disabled = (await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers)).json()
    assert disabled["active"] is False
    assert "41 attempts" in disabled["disabled_reason"]


async def test_one_failure_does_not_disable(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    receiver.responders["/hook"] = _answer(502)
    webhook = await _subscribe(client, tenant, receiver.url())
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    state = (await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers)).json()
    assert state["active"] is True and state["consecutive_failures"] == 1 and state["failing_since"] is not None


async def test_an_entitys_events_arrive_in_order(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    async def slow_then_fine(_: Received) -> web.StreamResponse:
        await asyncio.sleep(0.02)
        return web.Response(status=200)

    receiver.responders["/hook"] = slow_then_fine
    await _subscribe(client, tenant, receiver.url())
    contacts = [await _contact(client, tenant, f"人{i}") for i in range(3)]
    for round_ in range(4):
        for contact in contacts:
            response = await client.patch(
                f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"title": f"round {round_}"}
            )
            assert response.status_code == 200
    await relay.run(budget_seconds=30)
    got = [r.event for r in receiver.at("/hook")]
    assert len(got) == 15
    for contact in contacts:
        positions = [e["position"] for e in got if e["entity_id"] == contact["id"]]
        assert positions == sorted(positions) and len(positions) == 5


async def test_a_receiver_that_never_answers_does_not_stall_the_others(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    release = asyncio.Event()

    async def hang(_: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    receiver.responders["/hang"] = hang
    await _subscribe(client, tenant, receiver.url("/hang"))
    await _subscribe(client, tenant, receiver.url("/fast"))
    for i in range(20):
        await _contact(client, tenant, f"客{i}")
    running = asyncio.create_task(relay.run(budget_seconds=30))
    try:
        # Every fast delivery arrives while the hanging receiver still holds its requests.
        await receiver.wait_for(lambda: len(receiver.at("/fast")) == 20, within=20)
        assert not release.is_set()
    finally:
        release.set()
        await running
    assert len(receiver.at("/hang")) == 20


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    webhook = await _subscribe(client, tenant, receiver.url())
    rotated = await client.post(
        f"/api/v1/webhooks/{webhook['id']}/rotate-secret", headers=tenant.headers, json={"overlap_seconds": 3600}
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != webhook["secret"] and rotated.json()["previous_secret_expires_at"]
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    (got,) = receiver.at("/hook")
    assert len(got.headers["webhook-signature"].split()) == 2
    assert got.verifies_with(new_secret) and got.verifies_with(webhook["secret"])

    again = await client.post(
        f"/api/v1/webhooks/{webhook['id']}/rotate-secret", headers=tenant.headers, json={"overlap_seconds": 0}
    )
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    latest = receiver.at("/hook")[-1]
    assert latest.verifies_with(again.json()["secret"])
    assert not latest.verifies_with(new_secret)
    history = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": webhook["id"]})
    assert all("whsec_" not in str(entry) for entry in history.json()["items"])


async def test_the_test_ping_reports_what_the_receiver_said(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver
) -> None:
    webhook = await _subscribe(client, tenant, receiver.url())
    ping = await client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=tenant.headers)
    assert ping.status_code == 200
    assert ping.json()["delivered"] is True and ping.json()["status_code"] == 204
    (got,) = receiver.at("/hook")
    assert got.event["type"] == "webhook.test" and got.verifies_with(webhook["secret"])
    receiver.responders["/hook"] = _answer(418)
    teapot = (await client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=tenant.headers)).json()
    assert teapot["delivered"] is False and teapot["status_code"] == 418


async def test_the_guard_holds_at_delivery_time(
    client: httpx.AsyncClient,
    tenant: Tenant,
    receiver: Receiver,
    app: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A subscription made while loopback was allowed is refused once it is not: no request
    reaches the receiver, from the relay or from a test ping."""
    webhook = await _subscribe(client, tenant, receiver.url())
    monkeypatch.setattr(settings, "webhooks_allow_loopback", False)
    await _contact(client, tenant)
    policy = webhooks.target_policy(settings)
    async with outbound.open_session(policy) as http:
        await Relay(app.state.session_factory, http, settings).run(budget_seconds=10)
    (delivery,) = await _deliveries(client, tenant, webhook["id"])
    assert delivery["status"] == "pending" and delivery["last_error"].startswith("refused")
    ping = (await client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=tenant.headers)).json()
    assert ping["delivered"] is False and "loopback" in ping["error"]
    assert receiver.received == []


async def test_changes_deletes_and_their_audit(client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver) -> None:
    webhook = await _subscribe(client, tenant, receiver.url())
    stale = await client.patch(
        f"/api/v1/webhooks/{webhook['id']}", headers={**tenant.headers, "If-Match": 'W/"9"'}, json={"active": False}
    )
    assert stale.status_code == 412
    changed = await client.patch(
        f"/api/v1/webhooks/{webhook['id']}",
        headers=tenant.headers,
        json={"events": ["company.*"], "active": False, "url": receiver.url("/other")},
    )
    assert changed.status_code == 200
    assert changed.json()["events"] == ["company.*"]
    assert changed.json()["disabled_reason"] == "disabled by a user"
    assert changed.headers["etag"] == 'W/"2"'
    null = await client.patch(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": None})
    assert null.status_code == 422
    deleted = await client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=tenant.headers)).status_code == 404
    audit = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": webhook["id"]})
    assert sorted(entry["action"] for entry in audit.json()["items"]) == ["create", "delete", "update"]


async def test_the_subscription_limit(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "webhooks_per_organization", 2)
    await _subscribe(client, tenant, receiver.url("/a"))
    await _subscribe(client, tenant, receiver.url("/b"))
    third = await client.post("/api/v1/webhooks", headers=tenant.headers, json={"url": receiver.url(), "events": ["*"]})
    assert third.status_code == 409


async def test_another_organisations_webhooks_are_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    webhook = await _subscribe(client, tenant, receiver.url())
    await _contact(client, tenant)
    await relay.run(budget_seconds=10)
    (delivery,) = await _deliveries(client, tenant, webhook["id"])
    base = f"/api/v1/webhooks/{webhook['id']}"
    theirs = other_tenant.headers
    calls = [
        client.get(base, headers=theirs),
        client.patch(base, headers=theirs, json={"active": False}),
        client.delete(base, headers=theirs),
        client.post(f"{base}/rotate-secret", headers=theirs, json={}),
        client.post(f"{base}/test", headers=theirs),
        client.get(f"{base}/deliveries", headers=theirs),
        client.get(f"{base}/deliveries/{delivery['id']}", headers=theirs),
        client.post(f"{base}/deliveries/{delivery['id']}/retry", headers=theirs),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 404, response.request.url
    assert (await client.get("/api/v1/webhooks", headers=theirs)).json()["items"] == []
    # A delivery id under another of our own webhooks is not found either.
    other = await _subscribe(client, tenant, receiver.url("/x"))
    misplaced = await client.get(f"/api/v1/webhooks/{other['id']}/deliveries/{delivery['id']}", headers=tenant.headers)
    assert misplaced.status_code == 404


async def test_only_webhook_managers_may_manage(client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver) -> None:
    manager = await add_user(client, tenant, "manager")
    assert (await client.get("/api/v1/webhooks", headers=manager.headers)).status_code == 403
    key = await add_api_key(client, tenant, ["webhooks:manage"])
    created = await client.post("/api/v1/webhooks", headers=key, json={"url": receiver.url(), "events": ["*"]})
    assert created.status_code == 201


async def test_an_entitys_later_deliveries_wait_for_the_earlier_one_to_end(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay, db: AsyncSession
) -> None:
    """A failing delivery holds back the same entity's later events (they wait, unsent) but not
    other entities'; once it is delivered, the next is released and sent."""
    receiver.responders["/hook"] = _answer(500)
    webhook = await _subscribe(client, tenant, receiver.url())
    contact = await _contact(client, tenant, "等")
    for title in ("一", "二"):
        await client.patch(f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"title": title})
    other = await _contact(client, tenant, "别")
    await relay.run(budget_seconds=10)
    sent = receiver.at("/hook")
    assert sorted(r.event["entity_id"] for r in sent) == sorted([contact["id"], other["id"]])
    deliveries = await _deliveries(client, tenant, webhook["id"])
    waiting = [d for d in deliveries if d["next_attempt_at"] is None and d["status"] == "pending"]
    assert [d["event_type"] for d in waiting] == ["contact.updated", "contact.updated"]

    receiver.responders["/hook"] = _answer(200)
    first = next(d for d in deliveries if d["entity_id"] == contact["id"] and d["event_type"] == "contact.created")
    await client.post(f"/api/v1/webhooks/{webhook['id']}/deliveries/{first['id']}/retry", headers=tenant.headers)
    await relay.run(budget_seconds=10)
    ours = [r.event for r in receiver.at("/hook") if r.event["entity_id"] == contact["id"]]
    assert [e["type"] for e in ours] == ["contact.created", "contact.created", "contact.updated", "contact.updated"]
    assert [e["data"]["title"] for e in ours[2:]] == ["一", "二"]


async def test_a_stranded_waiting_delivery_is_released_by_the_sweep(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay, db: AsyncSession
) -> None:
    """If a delivery was made waiting just as the one before it ended, nothing releases it but
    the sweep: it sends it once nothing open is ahead of it."""
    webhook = await _subscribe(client, tenant, receiver.url())
    await _contact(client, tenant)
    await relay.fan_out()
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == uuid.UUID(webhook["id"]))
        .values(next_attempt_at=None)
    )
    await db.commit()
    await relay.run(budget_seconds=10)
    assert receiver.at("/hook") == []
    assert await relay.release_stranded() >= 1
    await relay.run(budget_seconds=10)
    assert len(receiver.at("/hook")) == 1


async def test_a_relay_out_of_budget_finishes_what_it_claimed_and_stops(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Relay
) -> None:
    await _subscribe(client, tenant, receiver.url())
    for i in range(3):
        await _contact(client, tenant, f"预{i}")
    report = await relay.run(budget_seconds=0)
    assert report.delivered == 0 and receiver.received == []
    await relay.run(budget_seconds=10)
    assert len(receiver.at("/hook")) == 3

"""The relay in a real worker process: woken by commits, and losing nothing when killed."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from aiohttp import web

from app.core.settings import Settings
from tests.helpers import Tenant
from tests.receiver import Received, Receiver

# Small shares and a short timeout (hence short leases), so a killed worker's leases run out
# quickly and a burst takes long enough to be interrupted.
RELAY_ENV = {"RAPPORT_WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT": "2", "RAPPORT_WEBHOOKS_TIMEOUT_SECONDS": "2"}


def _ids(received: list[Received]) -> set[str]:
    return {r.headers["webhook-id"] for r in received}


async def _event_ids(client: httpx.AsyncClient, tenant: Tenant) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/events", headers=tenant.headers, params=params)).json()
        ids |= {e["id"] for e in page["items"]}
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return ids


async def test_a_killed_worker_loses_no_event(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, start_worker: Any
) -> None:
    async def slow(_: Received) -> web.StreamResponse:
        # Two deliveries in flight at 50 ms each: at most 40 a second, so the 300 events are
        # still being delivered when the worker is killed, however fast they were created
        # (at 10 ms a delivery all of them once arrived before the kill).
        await asyncio.sleep(0.05)
        return web.Response(status=200)

    receiver.responders["/hook"] = slow
    created = await client.post(
        "/api/v1/webhooks", headers=tenant.headers, json={"url": receiver.url(), "events": ["contact.*"]}
    )
    assert created.status_code == 201
    worker = start_worker(**RELAY_ENV)

    # Woken by the commit: the first event arrives without waiting for a sweep.
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "第一"})
    await receiver.wait_for(lambda: len(receiver.received) == 1, within=30)

    async def create(i: int) -> None:
        response = await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": f"客{i}"})
        assert response.status_code == 201

    await asyncio.gather(*(create(i) for i in range(300)))
    await receiver.wait_for(lambda: len(receiver.received) >= 60, within=60)
    worker.kill()
    worker.wait()
    delivered_before_the_kill = len(_ids(receiver.received))
    assert delivered_before_the_kill < 301

    start_worker(**RELAY_ENV)
    expected = await _event_ids(client, tenant)
    assert len(expected) == 301
    await receiver.wait_for(lambda: _ids(receiver.received) >= expected, within=90)
    assert _ids(receiver.received) == expected


async def test_a_commit_with_events_enqueues_the_relay(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings
) -> None:
    """The wake-up itself, without a worker: the relay job is queued once the commit is done."""
    from app.core.events import RELAY_JOB_ID, RELAY_WAKE_FLAG

    queue = app.state.job_queue
    await queue.delete(f"arq:job:{RELAY_JOB_ID}", RELAY_WAKE_FLAG)
    await queue.zrem(settings.queue_name, RELAY_JOB_ID)
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "醒"})
    for _ in range(100):
        if await queue.zscore(settings.queue_name, RELAY_JOB_ID) is not None:
            break
        await asyncio.sleep(0.02)
    assert await queue.zscore(settings.queue_name, RELAY_JOB_ID) is not None
    assert await queue.exists(RELAY_WAKE_FLAG)
    await queue.delete(f"arq:job:{RELAY_JOB_ID}", RELAY_WAKE_FLAG)
    await queue.zrem(settings.queue_name, RELAY_JOB_ID)

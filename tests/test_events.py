"""The outbox and GET /events: every change is an event, in commit order, seen once by a poller."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import events
from app.models.event import Event, EventStream
from tests.helpers import PROBLEM, Tenant, add_api_key, add_user


async def _events(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/events", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _all_events(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await _events(client, tenant, limit=500, **({"cursor": cursor} if cursor else {}), **params)
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items


async def _contact(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "伟", **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_each_change_is_an_event_carrying_the_resource_as_the_api_shows_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    contact = await _contact(client, tenant, last_name="张", email="zhang.wei@example.com")
    cid = contact["id"]
    sales = await add_user(client, tenant, "sales")
    updated = await client.patch(
        f"/api/v1/contacts/{cid}",
        headers={**tenant.headers, "If-Match": 'W/"1"'},
        json={"title": "采购经理", "owner_id": sales.user_id, "lifecycle_stage": "customer"},
    )
    assert updated.status_code == 200
    assert (await client.delete(f"/api/v1/contacts/{cid}", headers=tenant.headers)).status_code == 200
    assert (await client.post(f"/api/v1/contacts/{cid}/restore", headers=tenant.headers)).status_code == 200
    current = (await client.get(f"/api/v1/contacts/{cid}", headers=tenant.headers)).json()

    events = await _all_events(client, tenant, entity_id=cid)
    assert [e["type"] for e in events] == [
        "contact.created",
        "contact.updated",
        "contact.assigned",
        "contact.lifecycle_stage_changed",
        "contact.archived",
        "contact.restored",
    ]
    created, update, *_, restored = events
    assert created["data"] == contact
    assert update["data"] == updated.json()
    assert restored["data"] == current
    assert update["changes"]["title"] == {"before": None, "after": "采购经理"}
    assert update["changes"]["owner_id"] == {"before": tenant.user_id, "after": sales.user_id}
    assert created["changes"] is None
    assert {e["actor_type"] for e in events} == {"user"}
    assert {e["actor_id"] for e in events} == {tenant.user_id}
    assert all(e["entity_type"] == "contact" and e["request_id"] for e in events)
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)


async def test_companies_emit_events_and_api_keys_are_the_actor(client: httpx.AsyncClient, tenant: Tenant) -> None:
    key = await add_api_key(client, tenant, ["companies:write", "companies:read", "events:read"])
    created = await client.post("/api/v1/companies", headers=key, json={"name": "上海天元贸易有限公司"})
    assert created.status_code == 201
    events = (await client.get("/api/v1/events", headers=key, params={"type": "company.*"})).json()["items"]
    assert [e["type"] for e in events] == ["company.created"]
    assert events[0]["actor_type"] == "api_key"
    assert events[0]["data"] == created.json()


async def test_a_change_that_does_not_commit_leaves_no_event(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    contact = await _contact(client, tenant)
    stale = await client.patch(
        f"/api/v1/contacts/{contact['id']}", headers={**tenant.headers, "If-Match": 'W/"7"'}, json={"title": "x"}
    )
    assert stale.status_code == 412
    invalid = await client.patch(
        f"/api/v1/contacts/{contact['id']}",
        headers=tenant.headers,
        json={"first_name": None, "last_name": None, "email": None, "phone": None},
    )
    assert invalid.status_code == 422
    unchanged = await client.patch(
        f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"first_name": "伟"}
    )
    assert unchanged.status_code == 200
    count = await db.scalar(
        select(func.count()).select_from(Event).where(Event.organization_id == uuid.UUID(tenant.organization_id))
    )
    assert count == 1


def _emit_note(session: AsyncSession, organization_id: uuid.UUID, note: str) -> None:
    events.emit(
        session,
        organization_id=organization_id,
        type="contact.updated",
        entity_type="contact",
        entity_id=uuid.uuid4(),
        data={"note": note},
        actor=events.SYSTEM,
    )


async def test_savepoints_keep_their_events_until_the_outermost_commit(
    app: Any, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A batch writes each record in a savepoint: a record rolled back loses its events, the others
    keep theirs, and the organisation's stream row is not locked before the batch commits (other
    writers of the organisation would wait for the whole batch)."""
    organization_id = uuid.UUID(tenant.organization_id)
    await _contact(client, tenant)  # the organisation's stream row exists from its first event
    woken: list[bool] = []

    def wake() -> None:
        woken.append(True)

    events.add_commit_listener(wake)
    try:
        async with app.state.session_factory() as batch, batch.begin():
            _emit_note(batch, organization_id, "before")
            async with batch.begin_nested():
                _emit_note(batch, organization_id, "kept")
            failed_record = await batch.begin_nested()
            _emit_note(batch, organization_id, "rolled back")
            await failed_record.rollback()
            async with batch.begin_nested():
                _emit_note(batch, organization_id, "after")
            # Another writer of the organisation is not kept waiting by the open batch.
            async with app.state.session_factory() as other, other.begin():
                locked = await other.execute(
                    text("SELECT 1 FROM event_streams WHERE organization_id = :id FOR UPDATE NOWAIT"),
                    {"id": organization_id},
                )
                assert locked.scalar_one() == 1
            assert not woken, "nothing is announced before the outermost commit"
    finally:
        events.remove_commit_listener(wake)
    assert woken == [True]
    async with app.state.session_factory() as session:
        notes = await session.scalars(
            select(Event.data["note"].astext)
            .where(Event.organization_id == organization_id, Event.data["note"].is_not(None))
            .order_by(Event.position)
        )
        assert list(notes) == ["before", "kept", "after"]


async def _notes(app: Any, organization_id: uuid.UUID) -> list[str]:
    async with app.state.session_factory() as session:
        notes = await session.scalars(
            select(Event.data["note"].astext)
            .where(Event.organization_id == organization_id, Event.data["note"].is_not(None))
            .order_by(Event.position)
        )
        return list(notes)


async def test_a_savepoint_whose_flush_fails_drops_its_events(
    app: Any, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A record whose flush fails inside its savepoint (a unique index refuses a row) is rolled back
    by SQLAlchemy itself, and the savepoint is then only closed: its events go with its rows, and the
    events of the records around it stay."""
    organization_id = uuid.UUID(tenant.organization_id)
    await _contact(client, tenant)  # the organisation's stream row exists from its first event
    async with app.state.session_factory() as batch, batch.begin():

        async def refused_record() -> None:
            async with batch.begin_nested():
                _emit_note(batch, organization_id, "refused")
                batch.add(EventStream(organization_id=organization_id))  # the stream row exists
                await batch.flush()

        _emit_note(batch, organization_id, "before")
        with pytest.raises(IntegrityError):
            await refused_record()
        async with batch.begin_nested():
            _emit_note(batch, organization_id, "after")
    assert await _notes(app, organization_id) == ["before", "after"]


async def test_a_poller_sees_every_event_once_in_commit_order_while_writers_race(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Concurrent writers commit in an order nobody chose; a poller reading all the while from its
    last cursor must still see each event once, with positions 1, 2, 3, … and no gap."""
    contacts = [await _contact(client, tenant, last_name=str(i)) for i in range(5)]
    seen: list[dict[str, Any]] = []
    writing = True

    async def poll() -> None:
        cursor = None
        while True:
            still_writing = writing
            page = await _events(client, tenant, limit=7, **({"cursor": cursor} if cursor else {}))
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if not still_writing and not page["has_more"]:
                return

    async def write(i: int) -> None:
        contact = contacts[i % len(contacts)]
        if i % 3 == 0:
            response = await client.post("/api/v1/contacts", headers=tenant.headers, json={"last_name": f"新{i}"})
        else:
            response = await client.patch(
                f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"title": f"title {i}"}
            )
        assert response.status_code in (200, 201, 409), response.text

    poller = asyncio.create_task(poll())
    await asyncio.gather(*(write(i) for i in range(60)))
    writing = False
    await poller

    positions = [e["position"] for e in seen]
    assert positions == list(range(1, len(positions) + 1))
    assert len({e["id"] for e in seen}) == len(seen)
    assert len(seen) == len(await _all_events(client, tenant))


async def test_the_cursor_stays_put_until_something_new_commits(client: httpx.AsyncClient, tenant: Tenant) -> None:
    empty = await _events(client, tenant)
    assert empty == {"items": [], "next_cursor": None, "has_more": False}
    await _contact(client, tenant)
    await _contact(client, tenant)
    first = await _events(client, tenant, limit=1)
    assert len(first["items"]) == 1 and first["has_more"] is True
    second = await _events(client, tenant, cursor=first["next_cursor"])
    assert [e["position"] for e in second["items"]] == [2]
    assert second["has_more"] is False
    idle = await _events(client, tenant, cursor=second["next_cursor"])
    assert idle == {"items": [], "next_cursor": second["next_cursor"], "has_more": False}
    await _contact(client, tenant)
    later = await _events(client, tenant, cursor=idle["next_cursor"])
    assert [e["position"] for e in later["items"]] == [3]


async def test_filters_by_type_pattern_and_entity(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await _contact(client, tenant)
    await client.post("/api/v1/companies", headers=tenant.headers, json={"name": "天元"})
    await client.patch(f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"title": "经理"})
    assert [e["type"] for e in await _all_events(client, tenant, type="contact.*")] == [
        "contact.created",
        "contact.updated",
    ]
    both = await _all_events(client, tenant, type=["contact.updated", "company.created"])
    assert [e["type"] for e in both] == ["company.created", "contact.updated"]
    assert len(await _all_events(client, tenant, entity_type="company")) == 1
    assert len(await _all_events(client, tenant, entity_id=contact["id"])) == 2


@pytest.mark.parametrize(
    "params",
    [{"type": "contact.nope"}, {"type": "nothing.*"}, {"cursor": "garbage"}, {"entity_id": "x"}, {"limit": 501}],
)
async def test_bad_queries_are_422(client: httpx.AsyncClient, tenant: Tenant, params: dict[str, Any]) -> None:
    response = await client.get("/api/v1/events", headers=tenant.headers, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_another_organisation_sees_none_of_our_events(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    contact = await _contact(client, tenant)
    assert await _all_events(client, other_tenant) == []
    assert await _all_events(client, other_tenant, entity_id=contact["id"]) == []
    ours = await _events(client, tenant)
    theirs = await client.get("/api/v1/events", headers=other_tenant.headers, params={"cursor": ours["next_cursor"]})
    assert theirs.status_code == 200 and theirs.json()["items"] == []


async def test_only_event_readers_may_read(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sales = await add_user(client, tenant, "sales")
    assert (await client.get("/api/v1/events", headers=sales.headers)).status_code == 403
    key = await add_api_key(client, tenant, ["contacts:read"])
    assert (await client.get("/api/v1/events", headers=key)).status_code == 403
    assert (await client.get("/api/v1/events")).status_code == 401
    types = await client.get("/api/v1/event-types", headers=tenant.headers)
    assert "contact.created" in types.json()["items"]

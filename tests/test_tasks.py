"""Tasks and reminders: create, change, complete and reopen, delete, lists in due order, concurrency
control, idempotency, roles, visibility, tenancy, and the exactly-once `task.due` sweep."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.jobs.tasks import announce_due_tasks
from app.models.task import Task
from app.services import tasks as task_service
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

TASKS = "/api/v1/tasks"


def _at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def _task(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, TASKS, tenant.headers, **({"title": "回访客户"} | body))


async def _events(client: httpx.AsyncClient, tenant: Tenant, task_id: str, *types: str) -> list[str]:
    response = await client.get(
        "/api/v1/events", headers=tenant.headers, params={"type": list(types) or "task.*", "limit": 500}
    )
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["items"] if event["entity_id"] == task_id]


async def _related(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")
    company = await create(client, "/api/v1/companies", tenant.headers, name="天元贸易")
    deal = await create(client, "/api/v1/deals", tenant.headers, name="ERP 升级")
    return {"contact_id": contact["id"], "company_id": company["id"], "deal_id": deal["id"]}


async def test_create_fills_in_status_and_assignee(client: httpx.AsyncClient, tenant: Tenant) -> None:
    related = await _related(client, tenant)
    due_at = "2026-12-01T10:00:00+08:00"
    response = await client.post(
        TASKS,
        headers=tenant.headers,
        json={"kind": "call", "title": " 回访王总：确认报价 ", "description": "带上新报价单", "due_at": due_at}
        | related,
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert response.headers["location"] == f"{TASKS}/{task['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert task["title"] == "回访王总：确认报价" and task["kind"] == "call"
    assert datetime.fromisoformat(task["due_at"]) == datetime.fromisoformat(due_at)
    assert task["assignee_id"] == tenant.user_id
    assert task["status"] == "open" and task["completed_at"] is None and task["version"] == 1
    assert {key: task[key] for key in related} == related
    assert (await client.get(f"{TASKS}/{task['id']}", headers=tenant.headers)).json() == task
    assert await _events(client, tenant, task["id"]) == ["task.created"]
    audit = await client.get(
        "/api/v1/audit-log", headers=tenant.headers, params={"entity_type": "task", "entity_id": task["id"]}
    )
    [entry] = audit.json()["items"]
    assert entry["action"] == "create" and entry["changes"]["assignee_id"]["after"] == tenant.user_id

    todo = await _task(client, tenant)
    assert todo["kind"] == "todo" and todo["due_at"] is None and todo["contact_id"] is None


async def test_create_refuses_bad_input(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    response = await client.post(
        TASKS,
        headers=tenant.headers,
        json={"title": " ", "kind": "fax", "due_at": "2026-12-01T10:00:00", "status": "completed"},
    )
    assert_problem(response, 422)
    assert sorted(error_locs(response)) == sorted(
        [["body", "title"], ["body", "kind"], ["body", "due_at"], ["body", "status"]]
    )
    theirs = await _related(client, other_tenant)
    response = await client.post(TASKS, headers=tenant.headers, json={"title": "x"} | theirs)
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "contact_id"], ["body", "company_id"], ["body", "deal_id"]]
    response = await client.post(TASKS, headers=tenant.headers, json={"title": "x", "deal_id": str(uuid.uuid4())})
    assert error_locs(response) == [["body", "deal_id"]]
    response = await client.post(
        TASKS, headers=tenant.headers, json={"title": "x", "assignee_id": other_tenant.user_id}
    )
    assert error_locs(response) == [["body", "assignee_id"]]
    assert (await client.get(TASKS, headers=tenant.headers)).json()["items"] == []


async def test_an_inactive_user_cannot_be_assigned(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    task = await _task(client, tenant, assignee_id=rep.user_id)
    assert task["assignee_id"] == rep.user_id
    response = await client.post(f"/api/v1/users/{rep.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200, response.text
    response = await client.post(TASKS, headers=tenant.headers, json={"title": "x", "assignee_id": rep.user_id})
    assert error_locs(response) == [["body", "assignee_id"]]
    response = await client.patch(f"{TASKS}/{task['id']}", headers=tenant.headers, json={"title": "仍然分配给他"})
    assert response.status_code == 200, response.text
    unassigned = await client.patch(f"{TASKS}/{task['id']}", headers=tenant.headers, json={"assignee_id": None})
    assert unassigned.json()["assignee_id"] is None
    response = await client.patch(f"{TASKS}/{task['id']}", headers=tenant.headers, json={"assignee_id": rep.user_id})
    assert error_locs(response) == [["body", "assignee_id"]]


async def test_update_complete_and_reopen(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    task = await _task(client, tenant, due_at=_at(24))
    url = f"{TASKS}/{task['id']}"
    related = await _related(client, tenant)
    response = await client.patch(url, headers=tenant.headers, json={"kind": "meeting", "title": "上门拜访"} | related)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["kind"] == "meeting" and changed["deal_id"] == related["deal_id"] and changed["version"] == 2
    assert response.headers["etag"] == 'W/"2"'

    unchanged = await client.patch(url, headers=tenant.headers, json={"title": "上门拜访"})
    assert unchanged.json()["version"] == 2

    theirs = await _related(client, other_tenant)
    response = await client.patch(url, headers=tenant.headers, json={"company_id": theirs["company_id"]})
    assert error_locs(response) == [["body", "company_id"]]
    for body in ({"title": None}, {"status": None}, {"kind": None}, {"status": "done"}, {"version": 9}):
        assert_problem(await client.patch(url, headers=tenant.headers, json=body), 422)

    completed = (await client.post(f"{url}/complete", headers=tenant.headers)).json()
    assert completed["status"] == "completed" and completed["completed_at"] is not None
    assert completed["version"] == 3
    again = (await client.post(f"{url}/complete", headers=tenant.headers)).json()
    assert again["version"] == 3 and again["completed_at"] == completed["completed_at"]
    reopened = (await client.post(f"{url}/reopen", headers=tenant.headers)).json()
    assert reopened["status"] == "open" and reopened["completed_at"] is None and reopened["version"] == 4
    by_patch = (await client.patch(url, headers=tenant.headers, json={"status": "completed"})).json()
    assert by_patch["completed_at"] is not None
    cancelled = (await client.patch(url, headers=tenant.headers, json={"status": "cancelled"})).json()
    assert cancelled["status"] == "cancelled" and cancelled["completed_at"] is None

    assert await _events(client, tenant, task["id"]) == [
        "task.created",
        "task.updated",
        "task.updated",
        "task.completed",
        "task.updated",
        "task.updated",
        "task.completed",
        "task.updated",
    ]
    history = await client.get(
        "/api/v1/audit-log", headers=tenant.headers, params={"entity_type": "task", "entity_id": task["id"]}
    )
    latest = history.json()["items"][0]["changes"]
    assert latest["status"] == {"before": "completed", "after": "cancelled"}
    assert latest["completed_at"]["after"] is None


async def test_lists_are_in_due_order_with_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    related = await _related(client, tenant)
    later = await _task(client, tenant, title="later", due_at=_at(48), kind="email")
    undated = await _task(client, tenant, title="undated")
    soon = await _task(client, tenant, title="soon", due_at=_at(1), assignee_id=rep.user_id, **related)
    overdue = await _task(client, tenant, title="overdue", due_at=_at(-5), kind="call")
    done = await _task(client, tenant, title="done", due_at=_at(-1))
    await client.post(f"{TASKS}/{done['id']}/complete", headers=tenant.headers)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(TASKS, headers=tenant.headers, params=params)).json()
        seen += [t["id"] for t in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [overdue["id"], done["id"], soon["id"], later["id"], undated["id"]]

    async def ids(**params: Any) -> list[str]:
        response = await client.get(TASKS, headers=tenant.headers, params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids(assignee_id=rep.user_id) == [soon["id"]]
    assert await ids(status="open", due_before=_at(0)) == [overdue["id"]]
    assert await ids(due_after=_at(0)) == [soon["id"], later["id"]]
    assert await ids(due_after=_at(0), due_before=_at(24)) == [soon["id"]]
    assert await ids(kind="email") == [later["id"]]
    assert await ids(status="completed") == [done["id"]]
    for field, value in related.items():
        assert await ids(**{field: value}) == [soon["id"]]
    assert error_locs(await client.get(TASKS, headers=tenant.headers, params={"status": "x"})) == [["query", "status"]]
    naive = await client.get(TASKS, headers=tenant.headers, params={"due_before": "2026-01-01T00:00:00"})
    assert error_locs(naive) == [["query", "due_before"]]
    assert error_locs(await client.get(TASKS, headers=tenant.headers, params={"cursor": "!!"})) == [["query", "cursor"]]


async def test_delete_removes_the_task_and_keeps_its_trail(client: httpx.AsyncClient, tenant: Tenant) -> None:
    task = await _task(client, tenant)
    url = f"{TASKS}/{task['id']}"
    response = await client.delete(url, headers=tenant.headers | {"If-Match": 'W/"1"'})
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert await _events(client, tenant, task["id"]) == ["task.created", "task.deleted"]
    audit = await client.get(
        "/api/v1/audit-log", headers=tenant.headers, params={"entity_type": "task", "entity_id": task["id"]}
    )
    deleted = audit.json()["items"][0]
    assert deleted["action"] == "delete" and deleted["changes"]["title"] == {"before": "回访客户", "after": None}


async def test_stale_if_match_is_412_and_writes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    task = await _task(client, tenant)
    url = f"{TASKS}/{task['id']}"
    await client.patch(url, headers=tenant.headers, json={"title": "第二版"})
    stale = tenant.headers | {"If-Match": 'W/"1"'}
    for response in (
        await client.patch(url, headers=stale, json={"title": "第三版"}),
        await client.post(f"{url}/complete", headers=stale),
        await client.post(f"{url}/reopen", headers=stale),
        await client.delete(url, headers=stale),
    ):
        assert_problem(response, 412)
    current = (await client.get(url, headers=tenant.headers)).json()
    assert current["title"] == "第二版" and current["status"] == "open" and current["version"] == 2
    fresh = tenant.headers | {"If-Match": 'W/"2"'}
    assert (await client.post(f"{url}/complete", headers=fresh)).status_code == 200


async def test_idempotent_create(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers | {"Idempotency-Key": "task-1"}
    first = await client.post(TASKS, headers=headers, json={"title": "一次"})
    again = await client.post(TASKS, headers=headers, json={"title": "一次"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len((await client.get(TASKS, headers=tenant.headers)).json()["items"]) == 1
    assert_problem(await client.post(TASKS, headers=headers, json={"title": "两次"}), 422)


async def test_viewers_read_and_writers_write(client: httpx.AsyncClient, tenant: Tenant) -> None:
    task = await _task(client, tenant)
    url = f"{TASKS}/{task['id']}"
    viewer = await add_user(client, tenant, "viewer")
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    for response in (
        await client.post(TASKS, headers=viewer.headers, json={"title": "x"}),
        await client.patch(url, headers=viewer.headers, json={"title": "x"}),
        await client.post(f"{url}/complete", headers=viewer.headers),
        await client.post(f"{url}/reopen", headers=viewer.headers),
        await client.delete(url, headers=viewer.headers),
    ):
        assert_problem(response, 403)
    for role in ("manager", "sales", "support", "marketing"):
        writer = await add_user(client, tenant, role)
        assert (await _task(client, writer))["assignee_id"] == writer.user_id
    key = await add_api_key(client, tenant, ["tasks:read", "tasks:write"])
    response = await client.post(TASKS, headers=key, json={"title": "来自 ERP"})
    assert response.status_code == 201 and response.json()["assignee_id"] is None
    reader = await add_api_key(client, tenant, ["tasks:read"])
    assert (await client.get(url, headers=reader)).status_code == 200
    assert_problem(await client.post(TASKS, headers=reader, json={"title": "x"}), 403)
    contacts_only = await add_api_key(client, tenant, ["contacts:read"])
    assert_problem(await client.get(TASKS, headers=contacts_only), 403)


async def test_a_sales_rep_under_own_visibility_sees_their_tasks(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    assert response.status_code == 200, response.text
    rep = await add_user(client, tenant, "sales")
    manager = await add_user(client, tenant, "manager")
    hidden = await _task(client, tenant, title="老板的")
    assigned = await _task(client, tenant, title="给销售的", assignee_id=rep.user_id)
    own = await _task(client, rep, title="自己建的")
    assert own["assignee_id"] == rep.user_id

    listed = (await client.get(TASKS, headers=rep.headers)).json()["items"]
    assert {t["id"] for t in listed} == {assigned["id"], own["id"]}
    url = f"{TASKS}/{hidden['id']}"
    for response in (
        await client.get(url, headers=rep.headers),
        await client.patch(url, headers=rep.headers, json={"title": "x"}),
        await client.post(f"{url}/complete", headers=rep.headers),
        await client.delete(url, headers=rep.headers),
    ):
        assert_problem(response, 404)
    assert (await client.post(f"{TASKS}/{assigned['id']}/complete", headers=rep.headers)).status_code == 200
    # Handing a task to someone else hands over who sees it.
    response = await client.patch(f"{TASKS}/{own['id']}", headers=rep.headers, json={"assignee_id": tenant.user_id})
    assert response.status_code == 200, response.text
    assert_problem(await client.get(f"{TASKS}/{own['id']}", headers=rep.headers), 404)
    # Others are not restricted.
    everything = (await client.get(TASKS, headers=manager.headers)).json()["items"]
    assert {t["id"] for t in everything} == {hidden["id"], assigned["id"], own["id"]}


async def test_another_organisations_task_is_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _task(client, other_tenant)
    url = f"{TASKS}/{theirs['id']}"
    for response in (
        await client.get(url, headers=tenant.headers),
        await client.patch(url, headers=tenant.headers, json={"title": "x"}),
        await client.post(f"{url}/complete", headers=tenant.headers),
        await client.post(f"{url}/reopen", headers=tenant.headers),
        await client.delete(url, headers=tenant.headers),
    ):
        assert_problem(response, 404)
    assert (await client.get(TASKS, headers=tenant.headers)).json()["items"] == []
    assert (await client.get(url, headers=other_tenant.headers)).json()["version"] == 1


async def _due_events(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    response = await client.get("/api/v1/events", headers=tenant.headers, params={"type": "task.due", "limit": 500})
    assert response.status_code == 200, response.text
    return [event["entity_id"] for event in response.json()["items"]]


async def test_due_tasks_are_announced_exactly_once_by_concurrent_sweeps(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: AsyncSession, settings: Settings
) -> None:
    due = [await _task(client, tenant, title=f"到期 {n}", due_at=_at(-1 - n)) for n in range(5)]
    future = await _task(client, tenant, due_at=_at(2))
    undated = await _task(client, tenant)
    finished = await _task(client, tenant, due_at=_at(-1))
    await client.post(f"{TASKS}/{finished['id']}/complete", headers=tenant.headers)

    sessions = app.state.session_factory
    # Four sweeps at once, as several workers would run the cron job (arq #196), each in small
    # batches so they interleave.
    counts = await asyncio.gather(*(task_service.announce_due(sessions, settings, batch_size=2) for _ in range(4)))
    assert sum(counts) >= len(due)
    announced = await _due_events(client, tenant)
    assert sorted(announced) == sorted(t["id"] for t in due)
    assert {future["id"], undated["id"], finished["id"]}.isdisjoint(announced)

    # Run again, through the worker's job function: nothing is announced twice.
    await announce_due_tasks({"sessions": sessions, "settings": settings})
    assert len(await _due_events(client, tenant)) == len(due)
    # The reminder is not an edit: the task's version (its ETag) stays.
    fetched = (await client.get(f"{TASKS}/{due[0]['id']}", headers=tenant.headers)).json()
    assert fetched == due[0]
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "task.due"})).json()["items"]
    assert {(e["actor_type"], e["actor_id"]) for e in events} == {("system", None)}
    assert {e["data"]["id"] for e in events} == {t["id"] for t in due}


async def test_moving_the_due_time_into_the_future_rearms_the_reminder(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: AsyncSession, settings: Settings
) -> None:
    task = await _task(client, tenant, due_at=_at(-1))
    url = f"{TASKS}/{task['id']}"
    task_id = uuid.UUID(task["id"])
    await announce_due_tasks({"sessions": app.state.session_factory, "settings": settings})
    assert (await _due_events(client, tenant)) == [task["id"]]

    async def notified_at() -> datetime | None:
        db.expire_all()
        return await db.scalar(select(Task.due_notified_at).where(Task.id == task_id))

    assert await notified_at() is not None
    # Another past time is not a new reminder; a future one is.
    await client.patch(url, headers=tenant.headers, json={"due_at": _at(-2)})
    assert await notified_at() is not None
    await client.patch(url, headers=tenant.headers, json={"due_at": _at(3)})
    assert await notified_at() is None
    await announce_due_tasks({"sessions": app.state.session_factory, "settings": settings})
    assert len(await _due_events(client, tenant)) == 1

    # Time passes (the due time is moved back behind the API's back): the reminder comes again.
    await db.execute(update(Task).where(Task.id == task_id).values(due_at=text("now() - interval '1 minute'")))
    await db.commit()
    await announce_due_tasks({"sessions": app.state.session_factory, "settings": settings})
    assert await _due_events(client, tenant) == [task["id"], task["id"]]

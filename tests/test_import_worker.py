"""An import in a real worker process, killed mid-file: the next worker resumes it from the last
committed chunk, and every row ends up written exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.core.settings import Settings
from app.models.contact import Contact
from tests.helpers import Tenant

ROWS = 12_000
WORKER_ENV = {"RAPPORT_IMPORTS_CHUNK_ROWS": "500", "RAPPORT_IMPORTS_STALE_AFTER_SECONDS": "2"}


async def _state(client: httpx.AsyncClient, tenant: Tenant, import_id: str) -> dict[str, Any]:
    return (await client.get(f"/api/v1/imports/{import_id}", headers=tenant.headers)).json()  # type: ignore[no-any-return]


async def _wait_for(
    client: httpx.AsyncClient, tenant: Tenant, import_id: str, done: Any, within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = await _state(client, tenant, import_id)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {within} s: {state}")


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def _alive(pid: int) -> bool:
    """Running, not ended (a zombie waits only for its new parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_a_killed_worker_is_resumed_without_loss_or_double_writes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_worker: Any,
    db: Any,
) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    content = "联系人,邮箱,电话\n" + "".join(f"张{i},p{i}@example.cn,138{i:08d}\n" for i in range(ROWS))
    created = await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": ("people.csv", content.encode())},
        data={"entity": "contacts", "mode": "skip_duplicates"},
    )
    assert created.status_code == 202, created.text
    import_id = created.json()["id"]

    worker = start_worker(**WORKER_ENV)
    state = await _wait_for(client, tenant, import_id, lambda s: s["processed"] >= 1500, within=120)
    checking = _children(worker.pid)
    assert checking, "the import's rows are checked in a second process"
    worker.kill()  # SIGKILL: no chance to finish the chunk in hand
    worker.wait()
    # Its checking process, left without a parent, ends too rather than living on.
    for _ in range(100):
        if not any(_alive(pid) for pid in checking):
            break
        await asyncio.sleep(0.1)
    assert not any(_alive(pid) for pid in checking)
    killed_at = await _state(client, tenant, import_id)
    assert killed_at["status"] == "running" and killed_at["processed"] < ROWS, killed_at
    organization_id = uuid.UUID(tenant.organization_id)
    written = await db.scalar(
        select(func.count()).select_from(Contact).where(Contact.organization_id == organization_id)
    )
    # Nothing of a chunk in progress is left behind: what is written is what was counted.
    assert written == killed_at["created"] == killed_at["processed"]

    start_worker(**WORKER_ENV)  # its start-up sweep finds the stalled import once its heartbeat is stale
    state = await _wait_for(client, tenant, import_id, lambda s: s["status"] != "running", within=180)
    assert state["status"] == "done", state
    assert (state["processed"], state["created"], state["failed"], state["skipped"]) == (ROWS, ROWS, 0, 0)
    assert state["runs"] == 2
    rows = await db.execute(
        select(Contact.email, func.count()).where(Contact.organization_id == organization_id).group_by(Contact.email)
    )
    counts = dict(rows.all())
    assert len(counts) == ROWS and set(counts.values()) == {1}

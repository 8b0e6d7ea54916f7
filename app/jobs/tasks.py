"""Task reminders: the cron job that emits `task.due` (and queues reminder e-mails) when a task's
due time passes."""

from __future__ import annotations

from typing import Any

from app.services import tasks


async def announce_due_tasks(ctx: dict[str, Any]) -> int:
    return await tasks.announce_due(ctx["sessions"], ctx["settings"])

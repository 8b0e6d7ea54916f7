"""Mail delivery: the cron job that sends what the mail outbox holds."""

from __future__ import annotations

from typing import Any, Final

import structlog

from app.services import mail

log = structlog.get_logger(__name__)

# A run hands over to the next cron run after this long, so one run never nears the job timeout.
SEND_BUDGET_SECONDS: Final = 45.0


async def send_mail(ctx: dict[str, Any]) -> dict[str, int]:
    report = await mail.send_due(ctx["sessions"], ctx["settings"], budget_seconds=SEND_BUDGET_SECONDS)
    summary = {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}
    if report.sent or report.retrying or report.failed:
        log.info("mail_sent", **summary)
    return summary

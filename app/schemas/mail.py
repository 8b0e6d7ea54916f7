"""The mail outbox as the API shows it: what was sent to whom, and why a message failed."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.core.enums import MailStatus
from app.schemas.common import Page, ReadSchema


class MailMessageRead(ReadSchema):
    id: uuid.UUID
    task_id: uuid.UUID = Field(description="The task this reminder is about")
    recipient: str
    subject: str
    body_text: str
    message_id: str = Field(description="The Message-ID header: the same at every attempt, so a resend is recognisable")
    status: MailStatus
    attempts: int = Field(description="Attempts started so far")
    next_attempt_at: datetime | None = Field(description="When a pending message is tried next")
    last_attempt_at: datetime | None
    last_error: str | None = Field(description="The SMTP server's reply, or why it could not be reached")
    sent_at: datetime | None = Field(description="When the SMTP server accepted the message")
    created_at: datetime


class MailMessagePage(Page[MailMessageRead]):
    pass

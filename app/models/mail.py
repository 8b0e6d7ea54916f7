"""The mail outbox: e-mails Rapport sends (task reminders), written in the transaction that decides
to send them and delivered by a worker job."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import MailStatus
from app.models.base import Base, TenantMixin, str_enum, utcnow

# Messages a sender still has to send (or is sending under a lease).
OPEN_MAIL = text("status IN ('pending', 'sending')")


class MailMessage(TenantMixin, Base):
    __tablename__ = "mail_messages"
    __table_args__ = (
        # A deleted task takes its reminders with it: one not sent yet is no longer wanted.
        ForeignKeyConstraint(["organization_id", "task_id"], ["tasks.organization_id", "tasks.id"], ondelete="CASCADE"),
        Index("ix_mail_messages_organization_id_task_id", "organization_id", "task_id"),
        # The sender reads across organisations, only what is still to be sent, soonest due first.
        Index("ix_mail_messages_due", "next_attempt_at", postgresql_where=OPEN_MAIL),
    )

    task_id: Mapped[uuid.UUID]
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    # `<id@sender-domain>`, made when the message is queued: a message sent twice (the server
    # accepted it, then the sender died before marking it sent) carries the same one both times.
    message_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[MailStatus] = mapped_column(str_enum(MailStatus, "mail_status"), default=MailStatus.pending)
    # Attempts started, counted when a sender claims the message: a sender that dies mid-send used
    # one too, so a message that crashes its senders still ends.
    attempts: Mapped[int] = mapped_column(default=0)
    # When a pending message is due, or when a sending one's lease runs out; NULL once it is over.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

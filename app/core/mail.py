"""Outgoing e-mail: composing a message and sending it over SMTP (aiosmtplib) as the settings say.

SMTP gives no way to send exactly once: a server can accept a message and the connection can
break before its reply arrives (or the sender can die before it records the reply), and the
message is sent again. The Message-ID is made once per message and kept, so a resend carries the
same one and mail systems (and people) can recognise it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from app.core.settings import Settings

MAX_ERROR_CHARS = 500
# Headers are encoded as RFC 2047 words where they are not ASCII (a Chinese subject stays intact),
# and lines end in CRLF as SMTP wants.
_POLICY = policy.SMTP


class SendFailed(Exception):
    """A message was not sent; `reason` is fit to keep with it (the server's reply where it gave one)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionFailed(SendFailed):
    """The server could not be reached, refused the session or dropped it: every message would
    fail the same way, so a sender stops trying until later."""


class MessageRefused(SendFailed):
    """The server refused this message (its sender, recipient or content); others may still go."""


def message_id(mail_id: uuid.UUID, sender_address: str) -> str:
    """A Message-ID unique to one queued message, under the sender's own domain (RFC 5322 §3.6.4)."""
    return f"<{mail_id}@{sender_address.rpartition('@')[2]}>"


def compose(
    settings: Settings, *, recipient: str, subject: str, body_text: str, message_id: str, written_at: datetime
) -> EmailMessage:
    """The message as sent, the same at every attempt (its Date is when it was queued)."""
    if settings.smtp_from_address is None:
        raise ValueError("mail is not configured: no sender address")
    message = EmailMessage(policy=_POLICY)
    message["From"] = Address(settings.smtp_from_name, addr_spec=settings.smtp_from_address)
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(written_at)
    message["Message-ID"] = message_id
    # RFC 3834: a machine wrote this, so vacation responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps the body 7-bit, so servers without 8BITMIME take it unchanged.
    message.set_content(body_text, cte="quoted-printable")
    return message


def describe_failure(exc: BaseException) -> str:
    """What went wrong, as the server said it where it said something."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{refused.code} {refused.message}" for refused in exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


class MailServer:
    """One SMTP session, opened for the first message and kept for the next ones.

    `send` raises `ConnectionFailed` when the session cannot be had or breaks, `MessageRefused`
    when the server refuses the message; after a refusal the session is opened afresh for the next
    message, so no half-finished SMTP transaction is carried over. Connecting, and sending each
    message, take at most `smtp_timeout_seconds`.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        settings = self._settings
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port_or_default(),
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            use_tls=settings.smtp_security == "tls",
            # False, not None: with "none" aiosmtplib would otherwise upgrade whenever the server offers it.
            start_tls=settings.smtp_security == "starttls",
            timeout=settings.smtp_timeout_seconds,
        )
        try:
            async with asyncio.timeout(settings.smtp_timeout_seconds):
                await client.connect()
        except (OSError, aiosmtplib.SMTPException) as exc:
            raise ConnectionFailed(describe_failure(exc)) from exc
        self._client = client
        return client

    async def send(self, message: EmailMessage) -> None:
        client = await self._connected()
        try:
            async with asyncio.timeout(self._settings.smtp_timeout_seconds):
                await client.send_message(message)
        except OSError as exc:
            self._drop()
            raise ConnectionFailed(describe_failure(exc)) from exc
        except aiosmtplib.SMTPException as exc:
            self._drop()
            raise MessageRefused(describe_failure(exc)) from exc

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Ends the session politely if there is one; a server that has gone away is no error."""
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            async with asyncio.timeout(self._settings.smtp_timeout_seconds):
                await client.quit()
        except (OSError, aiosmtplib.SMTPException):
            client.close()

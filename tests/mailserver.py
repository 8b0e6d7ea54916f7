"""A real SMTP server (aiosmtpd) on 127.0.0.1, in the test's own event loop: keeps what it
accepts, and refuses recipients when told to."""

from __future__ import annotations

import asyncio
import email
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    """`refusal` (an SMTP reply such as "550 …") is given to every RCPT while it is set. With
    `login` set, a session must sign in with that user name and password before it may send.
    `delay` seconds pass before a message's DATA is answered (a slow server)."""

    port: int = 0
    delivered: list[Delivered] = field(default_factory=list)
    refusal: str | None = None
    login: tuple[str, str] | None = None
    delay: float = 0.0

    def to(self, address: str) -> list[Delivered]:
        return [d for d in self.delivered if address in d.rcpt_tos]

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.refusal is not None:
            return self.refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert envelope.mail_from is not None and isinstance(envelope.content, bytes)
        await asyncio.sleep(self.delay)
        self.delivered.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


async def start_mailbox(*, login: tuple[str, str] | None = None) -> tuple[Mailbox, asyncio.Server]:
    mailbox = Mailbox(login=login)

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        given = (data.login.decode(), data.password.decode()) if isinstance(data, LoginPassword) else None
        return AuthResult(success=given == mailbox.login)

    def protocol() -> Any:
        # Sign-in over plain text is fine on loopback; production servers are reached over TLS.
        return SMTP(
            mailbox,
            hostname="mail.rapport.test",
            auth_required=login is not None,
            auth_require_tls=False,
            authenticator=authenticate,
        )

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    return mailbox, server

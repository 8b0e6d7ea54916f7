"""Webhook subscriptions: the rules for creating, changing, rotating and testing them, and
their delivery log. Sending lives in app/services/relay.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import aiohttp
import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, events, outbound, secrets, signatures
from app.core.enums import AuditAction, DeliveryStatus
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import Settings, get_settings
from app.models.base import utcnow
from app.models.webhook import Webhook, WebhookDelivery
from app.schemas.event import EventRead
from app.schemas.webhook import TestDelivery, WebhookCreate, WebhookUpdate

SECRET_PURPOSE = "webhook-secret"
# Failure bookkeeping the relay keeps: not a change anyone made.
_NOT_AUDITED = ("secret_sealed", "previous_secret_sealed", "consecutive_failures", "failing_since", "last_success_at")


@dataclass(frozen=True, slots=True)
class WebhookWithSecret:
    webhook: Webhook
    secret: str


def target_policy(settings: Settings) -> outbound.TargetPolicy:
    return outbound.TargetPolicy(
        allow_http=settings.webhooks_allow_http, allow_loopback=settings.webhooks_allow_loopback
    )


def seal_secret(secret: str, settings: Settings) -> bytes:
    return secrets.seal(secret, server_secret=settings.jwt_secret(), purpose=SECRET_PURPOSE)


def signing_secrets(webhook: Any, settings: Settings) -> tuple[str, ...]:
    """The current secret, and the previous one while a rotation's overlap lasts."""
    expires = webhook.previous_secret_expires_at
    previous = webhook.previous_secret_sealed if expires is not None and expires > utcnow() else None
    return _open_secrets(webhook.secret_sealed, previous, settings.jwt_secret())


@lru_cache(maxsize=1024)
def _open_secrets(sealed: bytes, previous: bytes | None, server_secret: str) -> tuple[str, ...]:
    """Cached: the relay signs every delivery, and a subscription's sealed secret rarely changes."""
    opened = (secrets.unseal(sealed, server_secret=server_secret, purpose=SECRET_PURPOSE),)
    if previous is None:
        return opened
    return (*opened, secrets.unseal(previous, server_secret=server_secret, purpose=SECRET_PURPOSE))


async def _checked_url(url: str, settings: Settings) -> str:
    try:
        await outbound.check_url(url, target_policy(settings))
    except outbound.RefusedTarget as refused:
        raise ValidationFailed(FieldError(("body", "url"), refused.reason)) from refused
    return url


def event_body(event: Any) -> bytes:
    """A delivery's body: the event exactly as `GET /events` shows it."""
    return EventRead.model_validate(event).model_dump_json().encode()


def ping_body(message_id: str, webhook_id: uuid.UUID) -> bytes:
    return orjson.dumps(
        {
            "id": message_id,
            "type": "webhook.test",
            "timestamp": utcnow().isoformat(),
            "data": {"webhook_id": str(webhook_id)},
        }
    )


def _checked_patterns(patterns: list[str]) -> list[str]:
    if unknown := events.unknown_patterns(patterns):
        raise ValidationFailed(
            [FieldError(("body", "events", patterns.index(p)), f"no event type matches {p!r}") for p in unknown]
        )
    return sorted(set(patterns))


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[Webhook]:
    return TenantRepository(Webhook, session, principal, label="webhook")


def _audit(session: AsyncSession, principal: Principal, action: AuditAction, webhook: Webhook, changes: Any) -> None:
    audit.record(session, principal, action=action, entity_type="webhook", entity_id=webhook.id, changes=changes)


async def create_webhook(session: AsyncSession, principal: Principal, *, data: WebhookCreate) -> WebhookWithSecret:
    settings = get_settings()
    count = await session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.organization_id == principal.organization_id)
    )
    if (count or 0) >= settings.webhooks_per_organization:
        raise Conflict(f"An organisation has at most {settings.webhooks_per_organization} webhooks")
    secret = signatures.new_secret()
    patterns = _checked_patterns(data.events)
    webhook = Webhook(
        organization_id=principal.organization_id,
        url=await _checked_url(data.url, settings),
        event_types=patterns,
        description=data.description,
        active=data.active,
        disabled_reason=None if data.active else "created inactive",
        disabled_at=None if data.active else utcnow(),
        secret_sealed=seal_secret(secret, settings),
    )
    session.add(webhook)
    await session.flush()
    _audit(
        session, principal, AuditAction.create, webhook, audit.creation(audit.snapshot(webhook, exclude=_NOT_AUDITED))
    )
    return WebhookWithSecret(webhook, secret)


async def list_webhooks(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> Page[Webhook]:
    repository = _repository(session, principal)
    return await repository.page(repository.scoped(), Keyset.of([], Webhook.id), cursor=cursor, limit=limit)


async def get_webhook(session: AsyncSession, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
    return await _repository(session, principal).get(webhook_id)


async def _editable(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, expected_version: int | None
) -> Webhook:
    webhook = await _repository(session, principal).locked(webhook_id, expected_version=expected_version)
    return webhook


async def update_webhook(
    session: AsyncSession,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    data: WebhookUpdate,
    expected_version: int | None,
) -> Webhook:
    settings = get_settings()
    webhook = await _editable(session, principal, webhook_id, expected_version)
    before = audit.snapshot(webhook, exclude=_NOT_AUDITED)
    changes = data.changes()
    if "url" in changes and changes["url"] != webhook.url:
        webhook.url = await _checked_url(changes["url"], settings)
    if "events" in changes:
        webhook.event_types = _checked_patterns(changes["events"])
    if "description" in changes:
        webhook.description = changes["description"]
    if "active" in changes and changes["active"] != webhook.active:
        webhook.active = changes["active"]
        if webhook.active:
            # A fresh start: failures before it was re-enabled do not count towards disabling it again.
            webhook.disabled_reason = webhook.disabled_at = webhook.failing_since = None
            webhook.consecutive_failures = 0
            # The receiver is said to be fixed: what waited for it goes now, not at its next retry.
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.organization_id == principal.organization_id,
                    WebhookDelivery.webhook_id == webhook.id,
                    WebhookDelivery.status == DeliveryStatus.pending,
                    # Deliveries waiting for an earlier one of their entity keep waiting.
                    WebhookDelivery.next_attempt_at.is_not(None),
                )
                .values(next_attempt_at=utcnow())
            )
            events.wake_relay_after_commit(session)
        else:
            webhook.disabled_reason, webhook.disabled_at = "disabled by a user", utcnow()
    if delta := audit.diff(before, audit.snapshot(webhook, exclude=_NOT_AUDITED)):
        await session.flush()
        _audit(session, principal, AuditAction.update, webhook, delta)
    return webhook


async def delete_webhook(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, *, expected_version: int | None
) -> None:
    """Deletes the subscription and its delivery log; events already sent stay in the stream."""
    webhook = await _editable(session, principal, webhook_id, expected_version)
    _audit(
        session, principal, AuditAction.delete, webhook, audit.diff(audit.snapshot(webhook, exclude=_NOT_AUDITED), {})
    )
    await session.execute(
        delete(Webhook).where(Webhook.organization_id == principal.organization_id, Webhook.id == webhook.id)
    )


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    overlap_seconds: int,
    expected_version: int | None,
) -> WebhookWithSecret:
    settings = get_settings()
    webhook = await _editable(session, principal, webhook_id, expected_version)
    secret = signatures.new_secret()
    webhook.previous_secret_sealed = webhook.secret_sealed if overlap_seconds else None
    webhook.previous_secret_expires_at = utcnow() + timedelta(seconds=overlap_seconds) if overlap_seconds else None
    webhook.secret_sealed = seal_secret(secret, settings)
    await session.flush()
    expiry = webhook.previous_secret_expires_at
    _audit(
        session,
        principal,
        AuditAction.update,
        webhook,
        {"secret": {"before": "(rotated)", "after": "(new)"}}
        | {"previous_secret_expires_at": {"before": None, "after": expiry.isoformat() if expiry else None}},
    )
    return WebhookWithSecret(webhook, secret)


def _deliveries(session: AsyncSession, principal: Principal) -> TenantRepository[WebhookDelivery]:
    return TenantRepository(WebhookDelivery, session, principal, label="delivery")


# Event ids are time-ordered and unique per subscription: the unique (subscription, event) index
# serves this order, so deliveries need no index of their own for listing.
_NEWEST_EVENT_FIRST = Keyset.of(
    [SortKey("event_id", WebhookDelivery.__table__.c.event_id, ValueKind.uuid, descending=True, nullable=False)],
    WebhookDelivery.__table__.c.id,
)


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[WebhookDelivery]:
    """The subscription's deliveries, newest first."""
    await get_webhook(session, principal, webhook_id)
    repository = _deliveries(session, principal)
    statement = repository.scoped().where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    return await repository.page(statement, _NEWEST_EVENT_FIRST, cursor=cursor, limit=limit)


async def _delivery(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID, *, for_update: bool
) -> WebhookDelivery:
    await get_webhook(session, principal, webhook_id)
    delivery = await _deliveries(session, principal).get(delivery_id, for_update=for_update)
    if delivery.webhook_id != webhook_id:
        raise NotFound(f"No delivery with id {delivery_id}")
    return delivery


async def get_delivery(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    return await _delivery(session, principal, webhook_id, delivery_id, for_update=False)


async def retry_delivery(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Sends the delivery again as soon as the relay can (also one already delivered: a resend)."""
    delivery = await _delivery(session, principal, webhook_id, delivery_id, for_update=True)
    if delivery.status is DeliveryStatus.sending:
        raise Conflict("The delivery is being sent right now")
    delivery.status = DeliveryStatus.pending
    delivery.next_attempt_at = utcnow()
    await session.flush()
    events.wake_relay_after_commit(session)
    return delivery


async def send_test(session: AsyncSession, principal: Principal, webhook_id: uuid.UUID) -> TestDelivery:
    """Sends a signed `webhook.test` ping now and reports the receiver's answer. It goes through
    the same guard, signature and timeout as deliveries, but is not logged as one."""
    settings = get_settings()
    webhook = await get_webhook(session, principal, webhook_id)
    message_id = str(new_id())
    body = ping_body(message_id, webhook.id)
    headers = signatures.signed_headers(signing_secrets(webhook, settings), message_id, body)
    policy = target_policy(settings)
    async with outbound.open_session(policy, timeout_seconds=settings.webhooks_timeout_seconds) as http:
        try:
            reply = await outbound.post(http, webhook.url, body=body, headers=headers, policy=policy)
        except outbound.RefusedTarget as refused:
            return TestDelivery(delivered=False, status_code=None, latency_ms=None, error=refused.reason, response=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return TestDelivery(
                delivered=False, status_code=None, latency_ms=None, error=describe_failure(exc), response=None
            )
    return TestDelivery(
        delivered=200 <= reply.status < 300,
        status_code=reply.status,
        latency_ms=reply.latency_ms,
        error=None,
        response=reply.body,
    )


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:500]

"""/api/v1/webhooks"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.core.enums import DeliveryStatus
from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.core.routing import redacted_in_replays
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    CursorDep,
    ExpectedVersionDep,
    LimitDep,
    SessionDep,
    problems,
    record_reply,
    require,
)
from app.schemas.webhook import (
    DeliveryPage,
    DeliveryRead,
    SecretRotation,
    TestDelivery,
    WebhookCreate,
    WebhookPage,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
)
from app.services import webhooks

router = APIRouter(prefix=API_PREFIX + "/webhooks", tags=["webhooks"], route_class=ApiRoute)
Manager = Annotated[Principal, require(Scope.webhooks_manage)]


def _with_secret(created: webhooks.WebhookWithSecret, *, status_code: int, location: str | None = None) -> Response:
    reply = WebhookWithSecret.model_validate(
        {**WebhookRead.model_validate(created.webhook).model_dump(), "secret": created.secret}
    )
    return record_reply(reply, status_code=status_code, location=location)


@router.get("", operation_id="webhooks_list", response_model=WebhookPage, responses=problems(*AUTHENTICATED))
async def list_webhooks(
    session: SessionDep, principal: Manager, cursor: CursorDep = None, limit: LimitDep = DEFAULT_LIMIT
) -> WebhookPage:
    page = await webhooks.list_webhooks(session, principal, cursor=cursor, limit=limit)
    return WebhookPage(items=[WebhookRead.model_validate(w) for w in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    operation_id="webhooks_create",
    status_code=201,
    response_model=WebhookWithSecret,
    responses=problems(*AUTHENTICATED, 409),
    summary="Subscribe a URL to events (the signing secret is in this reply only)",
)
@redacted_in_replays("secret")
async def create_webhook(session: SessionDep, principal: Manager, body: WebhookCreate) -> Response:
    created = await webhooks.create_webhook(session, principal, data=body)
    return _with_secret(created, status_code=201, location=f"{API_PREFIX}/webhooks/{created.webhook.id}")


@router.get(
    "/{webhook_id}", operation_id="webhooks_get", response_model=WebhookRead, responses=problems(*AUTHENTICATED, 404)
)
async def get_webhook(session: SessionDep, principal: Manager, webhook_id: uuid.UUID) -> Response:
    return record_reply(WebhookRead.model_validate(await webhooks.get_webhook(session, principal, webhook_id)))


@router.patch(
    "/{webhook_id}",
    operation_id="webhooks_update",
    response_model=WebhookRead,
    responses=problems(*AUTHENTICATED, 404, 412),
    summary="Change a subscription; `active: true` re-enables a disabled one",
)
async def update_webhook(
    session: SessionDep, principal: Manager, webhook_id: uuid.UUID, body: WebhookUpdate, version: ExpectedVersionDep
) -> Response:
    webhook = await webhooks.update_webhook(session, principal, webhook_id, data=body, expected_version=version)
    return record_reply(WebhookRead.model_validate(webhook))


@router.delete(
    "/{webhook_id}",
    operation_id="webhooks_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 412),
)
async def delete_webhook(
    session: SessionDep, principal: Manager, webhook_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    await webhooks.delete_webhook(session, principal, webhook_id, expected_version=version)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    operation_id="webhooks_rotate_secret",
    response_model=WebhookWithSecret,
    responses=problems(*AUTHENTICATED, 404, 412),
    summary="Replace the signing secret; the old one keeps signing too for `overlap_seconds`",
)
@redacted_in_replays("secret")
async def rotate_secret(
    session: SessionDep,
    principal: Manager,
    webhook_id: uuid.UUID,
    version: ExpectedVersionDep,
    body: SecretRotation | None = None,
) -> Response:
    rotation = body or SecretRotation()
    rotated = await webhooks.rotate_secret(
        session, principal, webhook_id, overlap_seconds=rotation.overlap_seconds, expected_version=version
    )
    return _with_secret(rotated, status_code=200)


@router.post(
    "/{webhook_id}/test",
    operation_id="webhooks_test",
    response_model=TestDelivery,
    responses=problems(*AUTHENTICATED, 404),
    summary="Send a signed `webhook.test` ping now and report the receiver's answer",
)
async def test_webhook(session: SessionDep, principal: Manager, webhook_id: uuid.UUID) -> TestDelivery:
    return await webhooks.send_test(session, principal, webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="webhooks_deliveries_list",
    response_model=DeliveryPage,
    responses=problems(*AUTHENTICATED, 404),
    summary="The subscription's deliveries, newest first",
)
async def list_deliveries(
    session: SessionDep,
    principal: Manager,
    webhook_id: uuid.UUID,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this state")] = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> DeliveryPage:
    page = await webhooks.list_deliveries(session, principal, webhook_id, status=status, cursor=cursor, limit=limit)
    return DeliveryPage(items=[DeliveryRead.model_validate(d) for d in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    operation_id="webhooks_deliveries_get",
    response_model=DeliveryRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_delivery(
    session: SessionDep, principal: Manager, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    return DeliveryRead.model_validate(await webhooks.get_delivery(session, principal, webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    operation_id="webhooks_deliveries_retry",
    response_model=DeliveryRead,
    responses=problems(*AUTHENTICATED, 404, 409),
    summary="Send a delivery again now (a failed one, or a resend of a delivered one)",
)
async def retry_delivery(
    session: SessionDep, principal: Manager, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    return DeliveryRead.model_validate(await webhooks.retry_delivery(session, principal, webhook_id, delivery_id))

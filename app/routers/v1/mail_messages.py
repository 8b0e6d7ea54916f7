"""/api/v1/mail-messages: the organisation's outgoing e-mails (task reminders), read-only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.enums import MailStatus
from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import API_PREFIX, AUTHENTICATED, ApiRoute, CursorDep, LimitDep, SessionDep, problems, require
from app.schemas.mail import MailMessagePage, MailMessageRead
from app.services import mail

router = APIRouter(prefix=API_PREFIX + "/mail-messages", tags=["mail"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.mail_read)]


@router.get(
    "",
    operation_id="mail_messages_list",
    response_model=MailMessagePage,
    responses=problems(*AUTHENTICATED),
    summary="The organisation's outgoing e-mails, newest first",
)
async def list_mail_messages(
    session: SessionDep,
    principal: Reader,
    status: Annotated[MailStatus | None, Query(description="Only messages in this state")] = None,
    task_id: Annotated[uuid.UUID | None, Query(description="Only the reminders of this task")] = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> MailMessagePage:
    page = await mail.find_mail_messages(session, principal, status=status, task_id=task_id, cursor=cursor, limit=limit)
    return MailMessagePage(items=[MailMessageRead.model_validate(m) for m in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{mail_id}",
    operation_id="mail_messages_get",
    response_model=MailMessageRead,
    responses=problems(*AUTHENTICATED, 404),
    summary="One outgoing e-mail, with its attempts and last error",
)
async def get_mail_message(session: SessionDep, principal: Reader, mail_id: uuid.UUID) -> MailMessageRead:
    return MailMessageRead.model_validate(await mail.get_mail_message(session, principal, mail_id))

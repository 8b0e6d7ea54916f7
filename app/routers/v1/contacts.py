"""/api/v1/contacts"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import ContactSource, LifecycleStage
from app.core.pagination import DEFAULT_LIMIT, Page
from app.core.permissions import Scope
from app.core.principal import Principal
from app.core.settings import get_settings
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    CSV_REPLY,
    ApiRoute,
    ColumnsDep,
    CsvDep,
    CursorDep,
    ExpectedVersionDep,
    ExternalIdPath,
    LimitDep,
    SessionDep,
    SortDep,
    csv_reply,
    merged_reply,
    problems,
    record_reply,
    require,
    search_query,
)
from app.schemas.audit import AuditEntryPage, AuditEntryRead
from app.schemas.batch import BatchCreate, BatchRead, BatchResultRead
from app.schemas.common import CountryCode, Email, Phone
from app.schemas.contact import ContactCreate, ContactPage, ContactRead, ContactUpdate
from app.schemas.duplicate import DuplicatePage, DuplicateRead, DuplicateScanRead
from app.schemas.merge import MergeCreate, MergeRead
from app.schemas.search import SearchRequest
from app.services import contacts, custom_fields, duplicates, privacy
from app.services.records import FindQuery

router = APIRouter(prefix=API_PREFIX + "/contacts", tags=["contacts"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.contacts_read)]
Writer = Annotated[Principal, require(Scope.contacts_write)]
PrivacyOfficer = Annotated[Principal, require(Scope.privacy_manage)]


async def _csv(session: AsyncSession, principal: Principal, query: FindQuery, columns: str | None) -> Response:
    found = await contacts.find_all_contacts(session, principal, query, at_most=get_settings().csv_max_rows)
    return csv_reply(
        [ContactRead.model_validate(record) for record in found],
        schema=ContactRead,
        columns=columns,
        filename="contacts.csv",
    )


def _page(page: Page[Any]) -> ContactPage:
    return ContactPage(
        items=[ContactRead.model_validate(c) for c in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "",
    operation_id="contacts_list",
    response_model=ContactPage,
    responses=problems(*AUTHENTICATED) | CSV_REPLY,
)
async def list_contacts(
    session: SessionDep,
    principal: Reader,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Substring of a name, e-mail, phone or company name",
        ),
    ] = None,
    email: Email | None = None,
    phone: Phone | None = None,
    city: str | None = None,
    region: str | None = None,
    country: CountryCode | None = None,
    lifecycle_stage: LifecycleStage | None = None,
    source: ContactSource | None = None,
    owner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    tag: str | None = None,
    external_id: str | None = None,
    archived: Annotated[bool, Query(description="List archived contacts instead of active ones")] = False,
    sort: SortDep = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
    csv: CsvDep = False,
    columns: ColumnsDep = None,
) -> ContactPage | Response:
    equals = {
        "email": email,
        "phone": phone,
        "city": city,
        "region": region,
        "country": country,
        "lifecycle_stage": lifecycle_stage,
        "source": source,
        "owner_id": owner_id,
        "company_id": company_id,
        "tags": tag,
        "external_id": external_id,
    }
    query = FindQuery(
        equals={k: str(v) for k, v in equals.items() if v is not None},
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
        archived=archived,
    )
    if csv:
        return await _csv(session, principal, query, columns)
    return _page(await contacts.find_contacts(session, principal, query))


@router.post(
    "/search",
    operation_id="contacts_search",
    response_model=ContactPage,
    responses=problems(*AUTHENTICATED) | CSV_REPLY,
)
async def search_contacts(
    session: SessionDep, principal: Reader, body: SearchRequest, csv: CsvDep = False, columns: ColumnsDep = None
) -> ContactPage | Response:
    if csv:
        return await _csv(session, principal, search_query(body), columns)
    return _page(await contacts.find_contacts(session, principal, search_query(body)))


@router.post(
    "",
    operation_id="contacts_create",
    status_code=201,
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 409)
    | {
        200: {
            "description": "Merged into the contact with this e-mail (when the organisation merges e-mail duplicates)",
            "model": ContactRead,
        }
    },
)
async def create_contact(session: SessionDep, principal: Writer, body: ContactCreate) -> Response:
    contact, merged = await contacts.create_or_merge_contact(session, principal, data=body)
    if merged:
        return record_reply(ContactRead.model_validate(contact), location=f"/api/v1/contacts/{contact.id}")
    return record_reply(ContactRead.model_validate(contact), status_code=201, location=f"/api/v1/contacts/{contact.id}")


@router.get(
    "/duplicates",
    operation_id="contacts_duplicates",
    response_model=DuplicatePage,
    responses=problems(*AUTHENTICATED),
    summary="Likely duplicate pairs, most likely first",
    description="Same e-mail, same phone, or a similar name at the same company; "
    "each pair has a score (0–1) and its reasons. Archived records and records you may not see are left out. "
    "From the latest stored scan when there is one (`scan_id`), else found for this request.",
)
async def contacts_duplicates(
    session: SessionDep, principal: Reader, cursor: CursorDep = None, limit: LimitDep = DEFAULT_LIMIT
) -> DuplicatePage:
    page, scan = await duplicates.duplicate_page(session, principal, "contacts", cursor=cursor, limit=limit)
    return DuplicatePage(
        items=[DuplicateRead(ids=(p.first_id, p.second_id), score=p.score, reasons=p.reasons) for p in page.items],
        next_cursor=page.next_cursor,
        scan_id=scan.id if scan else None,
        scanned_at=scan.finished_at if scan else None,
    )


@router.post(
    "/duplicates/scans",
    operation_id="contacts_duplicate_scans_create",
    status_code=202,
    response_model=DuplicateScanRead,
    responses=problems(*AUTHENTICATED),
    summary="Scan every contact for duplicates in a job; GET /duplicates then pages through its pairs",
)
async def request_contact_duplicate_scan(
    session: SessionDep, principal: Writer, response: Response
) -> DuplicateScanRead:
    scan = await duplicates.request_scan(session, principal, "contacts")
    response.headers["Location"] = f"{API_PREFIX}/contacts/duplicates/scans/{scan.id}"
    return DuplicateScanRead.model_validate(scan)


@router.get(
    "/duplicates/scans/{scan_id}",
    operation_id="contacts_duplicate_scans_get",
    response_model=DuplicateScanRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_contact_duplicate_scan(session: SessionDep, principal: Reader, scan_id: uuid.UUID) -> DuplicateScanRead:
    return DuplicateScanRead.model_validate(await duplicates.get_scan(session, principal, "contacts", scan_id))


@router.get(
    "/{contact_id}",
    operation_id="contacts_get",
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_contact(session: SessionDep, principal: Reader, contact_id: uuid.UUID) -> Response:
    contact = await contacts.get_contact(session, principal, contact_id)
    if contact["merged_into_id"] is not None:
        return merged_reply("contact", contact_id, contact["merged_into_id"])
    reply = ContactRead.model_validate(contact)
    reply.custom_fields |= custom_fields.reveal_secrets(
        session, principal, entity_type="contact", record_id=contact_id, values=contact["custom_fields"]
    )
    return record_reply(reply)


@router.post(
    "/batch",
    operation_id="contacts_batch",
    response_model=BatchRead,
    responses=problems(*AUTHENTICATED, 409),
    summary="Create or upsert up to 1,000 contacts, one result per record",
    description="Upsert matches on `external_id`, else `email`. "
    "A bad record fails alone (its result carries a problem document) unless `atomic=true`, "
    "when any failure is a 422 and nothing is written.",
)
async def batch_contacts(
    session: SessionDep,
    principal: Writer,
    body: BatchCreate,
    atomic: Annotated[bool, Query(description="All records or none")] = False,
) -> BatchRead:
    results = await contacts.write_contacts(session, principal, mode=body.mode, items=body.records, atomic=atomic)
    return BatchRead(results=[BatchResultRead.model_validate(r, from_attributes=True) for r in results])


@router.put(
    "/external/{external_id:path}",
    operation_id="contacts_upsert",
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Create or update the contact another system knows by `external_id`",
    description="The body is a PATCH body: on an existing contact only the fields sent change; a new one is "
    "created from them (201). Safe to repeat, so integrations can sync without looking up ids first.",
)
async def upsert_contact(
    session: SessionDep,
    principal: Writer,
    external_id: ExternalIdPath,
    body: ContactUpdate,
    version: ExpectedVersionDep,
) -> Response:
    contact, created = await contacts.upsert_contact(
        session, principal, external_id, data=body, expected_version=version
    )
    reply = ContactRead.model_validate(contact)
    if created:
        return record_reply(reply, status_code=201, location=f"{API_PREFIX}/contacts/{contact.id}")
    return record_reply(reply)


@router.patch(
    "/{contact_id}",
    operation_id="contacts_update",
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_contact(
    session: SessionDep,
    principal: Writer,
    contact_id: uuid.UUID,
    body: ContactUpdate,
    version: ExpectedVersionDep,
) -> Response:
    contact = await contacts.update_contact(session, principal, contact_id, data=body, expected_version=version)
    return record_reply(ContactRead.model_validate(contact))


@router.delete(
    "/{contact_id}",
    operation_id="contacts_archive",
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Archive a contact (restorable)",
)
async def archive_contact(
    session: SessionDep,
    principal: Writer,
    contact_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    contact = await contacts.archive_contact(session, principal, contact_id, expected_version=version)
    return record_reply(ContactRead.model_validate(contact))


@router.post(
    "/{contact_id}/restore",
    operation_id="contacts_restore",
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def restore_contact(
    session: SessionDep,
    principal: Writer,
    contact_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    contact = await contacts.restore_contact(session, principal, contact_id, expected_version=version)
    return record_reply(ContactRead.model_validate(contact))


@router.get(
    "/{contact_id}/personal-data",
    operation_id="contacts_personal_data",
    response_model=dict[str, Any],
    responses=problems(*AUTHENTICATED, 404),
    summary="Everything held about the person (a subject access request)",
    description="The contact (and the duplicates merged into it), its audit trail and events, and every record "
    "that refers to it: tasks and their reminder e-mails, activities, lifecycle history, lead score, "
    "deal roles, orders. Needs `privacy:manage`.",
)
async def contact_personal_data(
    session: SessionDep, principal: PrivacyOfficer, contact_id: uuid.UUID
) -> dict[str, Any]:
    return await privacy.personal_data(session, principal, contact_id)


@router.post(
    "/{contact_id}/erase",
    operation_id="contacts_erase",
    response_model=ContactRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Erase the person's data, irreversibly (right to erasure)",
    description="Clears the personal fields here and in the audit trail, the events and stored replies, and of "
    "the duplicates merged into it; replaces the person's names, e-mails and phones with `(erased)` "
    "in the text about them (tasks, their history and reminder e-mails, order notes, deal roles); "
    "keeps the non-personal fields and records for aggregates and archives the contact. Audited; "
    "emits `contact.erased`. Needs `privacy:manage`.",
)
async def erase_contact(
    session: SessionDep, principal: PrivacyOfficer, contact_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    contact = await privacy.erase_contact(session, principal, contact_id, expected_version=version)
    return record_reply(ContactRead.model_validate(contact))


@router.post(
    "/{contact_id}/merge",
    operation_id="contacts_merge",
    response_model=MergeRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Merge other contacts into this one",
    description="Every row that refers to a merged contact (in any table) is repointed here; the merged ones are "
    "archived with `merged_into_id`, and GET on their ids answers 301 to this one. Audited; emits `contact.merged`.",
)
async def merge_contacts(
    session: SessionDep, principal: Writer, contact_id: uuid.UUID, body: MergeCreate, version: ExpectedVersionDep
) -> MergeRead:
    survivor, moved = await contacts.merge_contacts(
        session,
        principal,
        contact_id,
        merge_ids=body.merge_ids,
        field_choices=body.field_choices,
        expected_version=version,
    )
    return MergeRead(survivor=ContactRead.model_validate(survivor).model_dump(mode="json"), moved=moved)


@router.get(
    "/{contact_id}/history",
    operation_id="contacts_history",
    response_model=AuditEntryPage,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_contact_history(
    session: SessionDep,
    principal: Reader,
    contact_id: uuid.UUID,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> AuditEntryPage:
    page = await contacts.contact_history(session, principal, contact_id, cursor=cursor, limit=limit)
    return AuditEntryPage(
        items=[AuditEntryRead.model_validate(e) for e in page.items],
        next_cursor=page.next_cursor,
    )

"""/api/v1/companies"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import CompanySize
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
from app.schemas.common import CountryCode, Domain
from app.schemas.company import CompanyCreate, CompanyPage, CompanyRead, CompanyUpdate
from app.schemas.duplicate import DuplicatePage, DuplicateRead, DuplicateScanRead
from app.schemas.merge import MergeCreate, MergeRead
from app.schemas.search import SearchRequest
from app.services import companies, custom_fields, duplicates
from app.services.records import FindQuery

router = APIRouter(prefix=API_PREFIX + "/companies", tags=["companies"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.companies_read)]
Writer = Annotated[Principal, require(Scope.companies_write)]


async def _csv(session: AsyncSession, principal: Principal, query: FindQuery, columns: str | None) -> Response:
    found = await companies.find_all_companies(session, principal, query, at_most=get_settings().csv_max_rows)
    return csv_reply(
        [CompanyRead.model_validate(record) for record in found],
        schema=CompanyRead,
        columns=columns,
        filename="companies.csv",
    )


def _page(page: Page[Any]) -> CompanyPage:
    return CompanyPage(
        items=[CompanyRead.model_validate(c) for c in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "",
    operation_id="companies_list",
    response_model=CompanyPage,
    responses=problems(*AUTHENTICATED) | CSV_REPLY,
)
async def list_companies(
    session: SessionDep,
    principal: Reader,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Substring of the name, domain or phone"),
    ] = None,
    domain: Domain | None = None,
    industry: str | None = None,
    size: CompanySize | None = None,
    city: str | None = None,
    region: str | None = None,
    country: CountryCode | None = None,
    owner_id: uuid.UUID | None = None,
    tag: str | None = None,
    external_id: str | None = None,
    archived: Annotated[bool, Query(description="List archived companies instead of active ones")] = False,
    sort: SortDep = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
    csv: CsvDep = False,
    columns: ColumnsDep = None,
) -> CompanyPage | Response:
    equals = {
        "domain": domain,
        "industry": industry,
        "size": size,
        "city": city,
        "region": region,
        "country": country,
        "owner_id": owner_id,
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
    return _page(await companies.find_companies(session, principal, query))


@router.post(
    "/search",
    operation_id="companies_search",
    response_model=CompanyPage,
    responses=problems(*AUTHENTICATED) | CSV_REPLY,
)
async def search_companies(
    session: SessionDep, principal: Reader, body: SearchRequest, csv: CsvDep = False, columns: ColumnsDep = None
) -> CompanyPage | Response:
    if csv:
        return await _csv(session, principal, search_query(body), columns)
    return _page(await companies.find_companies(session, principal, search_query(body)))


@router.post(
    "",
    operation_id="companies_create",
    status_code=201,
    response_model=CompanyRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_company(session: SessionDep, principal: Writer, body: CompanyCreate) -> Response:
    company = await companies.create_company(session, principal, data=body)
    return record_reply(
        CompanyRead.model_validate(company), status_code=201, location=f"/api/v1/companies/{company.id}"
    )


@router.get(
    "/duplicates",
    operation_id="companies_duplicates",
    response_model=DuplicatePage,
    responses=problems(*AUTHENTICATED),
    summary="Likely duplicate pairs, most likely first",
    description="Same domain or the same name; "
    "each pair has a score (0–1) and its reasons. Archived records and records you may not see are left out. "
    "From the latest stored scan when there is one (`scan_id`), else found for this request.",
)
async def companies_duplicates(
    session: SessionDep, principal: Reader, cursor: CursorDep = None, limit: LimitDep = DEFAULT_LIMIT
) -> DuplicatePage:
    page, scan = await duplicates.duplicate_page(session, principal, "companies", cursor=cursor, limit=limit)
    return DuplicatePage(
        items=[DuplicateRead(ids=(p.first_id, p.second_id), score=p.score, reasons=p.reasons) for p in page.items],
        next_cursor=page.next_cursor,
        scan_id=scan.id if scan else None,
        scanned_at=scan.finished_at if scan else None,
    )


@router.post(
    "/duplicates/scans",
    operation_id="companies_duplicate_scans_create",
    status_code=202,
    response_model=DuplicateScanRead,
    responses=problems(*AUTHENTICATED),
    summary="Scan every company for duplicates in a job; GET /duplicates then pages through its pairs",
)
async def request_company_duplicate_scan(
    session: SessionDep, principal: Writer, response: Response
) -> DuplicateScanRead:
    scan = await duplicates.request_scan(session, principal, "companies")
    response.headers["Location"] = f"{API_PREFIX}/companies/duplicates/scans/{scan.id}"
    return DuplicateScanRead.model_validate(scan)


@router.get(
    "/duplicates/scans/{scan_id}",
    operation_id="companies_duplicate_scans_get",
    response_model=DuplicateScanRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_company_duplicate_scan(session: SessionDep, principal: Reader, scan_id: uuid.UUID) -> DuplicateScanRead:
    return DuplicateScanRead.model_validate(await duplicates.get_scan(session, principal, "companies", scan_id))


@router.get(
    "/{company_id}",
    operation_id="companies_get",
    response_model=CompanyRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_company(session: SessionDep, principal: Reader, company_id: uuid.UUID) -> Response:
    company = await companies.get_company(session, principal, company_id)
    if company["merged_into_id"] is not None:
        return merged_reply("company", company_id, company["merged_into_id"])
    reply = CompanyRead.model_validate(company)
    reply.custom_fields |= custom_fields.reveal_secrets(
        session, principal, entity_type="company", record_id=company_id, values=company["custom_fields"]
    )
    return record_reply(reply)


@router.post(
    "/batch",
    operation_id="companies_batch",
    response_model=BatchRead,
    responses=problems(*AUTHENTICATED, 409),
    summary="Create or upsert up to 1,000 companies, one result per record",
    description="Upsert matches on `external_id`, else `domain`. "
    "A bad record fails alone (its result carries a problem document) unless `atomic=true`, "
    "when any failure is a 422 and nothing is written.",
)
async def batch_companies(
    session: SessionDep,
    principal: Writer,
    body: BatchCreate,
    atomic: Annotated[bool, Query(description="All records or none")] = False,
) -> BatchRead:
    results = await companies.write_companies(session, principal, mode=body.mode, items=body.records, atomic=atomic)
    return BatchRead(results=[BatchResultRead.model_validate(r, from_attributes=True) for r in results])


@router.put(
    "/external/{external_id:path}",
    operation_id="companies_upsert",
    response_model=CompanyRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Create or update the company another system knows by `external_id`",
    description="The body is a PATCH body: on an existing company only the fields sent change; a new one is "
    "created from them (201). Safe to repeat, so integrations can sync without looking up ids first.",
)
async def upsert_company(
    session: SessionDep,
    principal: Writer,
    external_id: ExternalIdPath,
    body: CompanyUpdate,
    version: ExpectedVersionDep,
) -> Response:
    company, created = await companies.upsert_company(
        session, principal, external_id, data=body, expected_version=version
    )
    reply = CompanyRead.model_validate(company)
    if created:
        return record_reply(reply, status_code=201, location=f"{API_PREFIX}/companies/{company.id}")
    return record_reply(reply)


@router.patch(
    "/{company_id}",
    operation_id="companies_update",
    response_model=CompanyRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_company(
    session: SessionDep,
    principal: Writer,
    company_id: uuid.UUID,
    body: CompanyUpdate,
    version: ExpectedVersionDep,
) -> Response:
    company = await companies.update_company(session, principal, company_id, data=body, expected_version=version)
    return record_reply(CompanyRead.model_validate(company))


@router.delete(
    "/{company_id}",
    operation_id="companies_archive",
    response_model=CompanyRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Archive a company (restorable)",
)
async def archive_company(
    session: SessionDep,
    principal: Writer,
    company_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    company = await companies.archive_company(session, principal, company_id, expected_version=version)
    return record_reply(CompanyRead.model_validate(company))


@router.post(
    "/{company_id}/restore",
    operation_id="companies_restore",
    response_model=CompanyRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def restore_company(
    session: SessionDep,
    principal: Writer,
    company_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    company = await companies.restore_company(session, principal, company_id, expected_version=version)
    return record_reply(CompanyRead.model_validate(company))


@router.post(
    "/{company_id}/merge",
    operation_id="companies_merge",
    response_model=MergeRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Merge other companies into this one",
    description="Every row that refers to a merged company (in any table) is repointed here; the merged ones are "
    "archived with `merged_into_id`, and GET on their ids answers 301 to this one. Audited; emits `company.merged`.",
)
async def merge_companies(
    session: SessionDep, principal: Writer, company_id: uuid.UUID, body: MergeCreate, version: ExpectedVersionDep
) -> MergeRead:
    survivor, moved = await companies.merge_companies(
        session,
        principal,
        company_id,
        merge_ids=body.merge_ids,
        field_choices=body.field_choices,
        expected_version=version,
    )
    return MergeRead(survivor=CompanyRead.model_validate(survivor).model_dump(mode="json"), moved=moved)


@router.get(
    "/{company_id}/history",
    operation_id="companies_history",
    response_model=AuditEntryPage,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_company_history(
    session: SessionDep,
    principal: Reader,
    company_id: uuid.UUID,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> AuditEntryPage:
    page = await companies.company_history(session, principal, company_id, cursor=cursor, limit=limit)
    return AuditEntryPage(
        items=[AuditEntryRead.model_validate(e) for e in page.items],
        next_cursor=page.next_cursor,
    )

"""/api/v1/contracts and /api/v1/contract-templates"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from app.core.enums import ContractStatus
from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
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
from app.schemas.contract import (
    ContractCreate,
    ContractPage,
    ContractRead,
    ContractRender,
    ContractTemplateCreate,
    ContractTemplatePage,
    ContractTemplateRead,
    ContractTemplateUpdate,
    ContractTransition,
    ContractUpdate,
)
from app.services import contract_templates, contracts

router = APIRouter(prefix=API_PREFIX, tags=["contracts"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.contracts_read)]
Writer = Annotated[Principal, require(Scope.contracts_write)]

# A template's author writes its HTML, scripts included: the document is shown as a page that
# may run nothing and load nothing, whoever opens it from the API's origin.
_DOCUMENT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
}


def _reply(contract: Any, *, created: bool = False) -> Response:
    reply = ContractRead.model_validate(contract)
    if created:
        return record_reply(reply, status_code=201, location=f"{API_PREFIX}/contracts/{reply.id}")
    return record_reply(reply)


@router.get(
    "/contracts", operation_id="contracts_list", response_model=ContractPage, responses=problems(*AUTHENTICATED)
)
async def list_contracts(
    session: SessionDep,
    principal: Reader,
    status: ContractStatus | None = None,
    company_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> ContractPage:
    """Contracts, newest first: a sales rep under `own` or `team` visibility sees only theirs or their team's."""
    page = await contracts.find_contracts(
        session,
        principal,
        status=status,
        company_id=company_id,
        deal_id=deal_id,
        owner_id=owner_id,
        cursor=cursor,
        limit=limit,
    )
    return ContractPage(items=[ContractRead.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.post(
    "/contracts",
    operation_id="contracts_create",
    status_code=201,
    response_model=ContractRead,
    responses=problems(*AUTHENTICATED),
    summary="Create a draft contract; it is numbered HT-<year>-<sequence>",
)
async def create_contract(session: SessionDep, principal: Writer, body: ContractCreate) -> Response:
    return _reply(await contracts.create_contract(session, principal, data=body), created=True)


@router.get(
    "/contracts/{contract_id}",
    operation_id="contracts_get",
    response_model=ContractRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_contract(session: SessionDep, principal: Reader, contract_id: uuid.UUID) -> Response:
    return _reply(await contracts.get_contract(session, principal, contract_id))


@router.patch(
    "/contracts/{contract_id}",
    operation_id="contracts_update",
    response_model=ContractRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Change a contract; only `renewal_notice_days` and `owner_id` once it has left draft",
)
async def update_contract(
    session: SessionDep, principal: Writer, contract_id: uuid.UUID, body: ContractUpdate, version: ExpectedVersionDep
) -> Response:
    contract = await contracts.update_contract(session, principal, contract_id, data=body, expected_version=version)
    return _reply(contract)


@router.post(
    "/contracts/{contract_id}/transition",
    operation_id="contracts_transition",
    response_model=ContractRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Move a contract to another status",
    description="draft → sent; sent → signed; signed → active; active → expired (after its end_date); "
    "any of those → terminated. Anything else is a 409. Emits `contract.status_changed` and the status's event.",
)
async def transition_contract(
    session: SessionDep,
    principal: Writer,
    contract_id: uuid.UUID,
    body: ContractTransition,
    version: ExpectedVersionDep,
) -> Response:
    contract = await contracts.transition_contract(
        session, principal, contract_id, to=body.to, expected_version=version
    )
    return _reply(contract)


@router.post(
    "/contracts/{contract_id}/render",
    operation_id="contracts_render",
    response_model=ContractRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Render the contract's document from its template and store it (drafts only)",
    description="A template that fails (a syntax error, a sandbox violation, too slow or too long) is a 422 "
    "at `template_id` with the reason.",
)
async def render_contract(
    session: SessionDep,
    principal: Writer,
    contract_id: uuid.UUID,
    version: ExpectedVersionDep,
    body: ContractRender | None = None,
) -> Response:
    contract = await contracts.render_contract(
        session,
        principal,
        contract_id,
        template_id=body.template_id if body is not None else None,
        expected_version=version,
    )
    return _reply(contract)


@router.get(
    "/contracts/{contract_id}/document",
    operation_id="contracts_document",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The rendered document"},
        **problems(*AUTHENTICATED, 404),
    },
    summary="The contract's rendered HTML document",
)
async def get_contract_document(session: SessionDep, principal: Reader, contract_id: uuid.UUID) -> HTMLResponse:
    html = await contracts.contract_document(session, principal, contract_id)
    return HTMLResponse(html, headers=_DOCUMENT_HEADERS)


@router.get(
    "/contract-templates",
    operation_id="contract_templates_list",
    response_model=ContractTemplatePage,
    responses=problems(*AUTHENTICATED),
)
async def list_contract_templates(
    session: SessionDep, principal: Reader, cursor: CursorDep = None, limit: LimitDep = DEFAULT_LIMIT
) -> ContractTemplatePage:
    """Templates in name order."""
    page = await contract_templates.find_templates(session, principal, cursor=cursor, limit=limit)
    return ContractTemplatePage(
        items=[ContractTemplateRead.model_validate(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/contract-templates",
    operation_id="contract_templates_create",
    status_code=201,
    response_model=ContractTemplateRead,
    responses=problems(*AUTHENTICATED, 409),
    summary="Create a template; it is tried on sample data first (a failure is a 422 at `body`)",
)
async def create_contract_template(session: SessionDep, principal: Writer, body: ContractTemplateCreate) -> Response:
    template = await contract_templates.create_template(session, principal, data=body)
    return record_reply(
        ContractTemplateRead.model_validate(template),
        status_code=201,
        location=f"{API_PREFIX}/contract-templates/{template.id}",
    )


@router.get(
    "/contract-templates/{template_id}",
    operation_id="contract_templates_get",
    response_model=ContractTemplateRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_contract_template(session: SessionDep, principal: Reader, template_id: uuid.UUID) -> Response:
    template = await contract_templates.get_template(session, principal, template_id)
    return record_reply(ContractTemplateRead.model_validate(template))


@router.patch(
    "/contract-templates/{template_id}",
    operation_id="contract_templates_update",
    response_model=ContractTemplateRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_contract_template(
    session: SessionDep,
    principal: Writer,
    template_id: uuid.UUID,
    body: ContractTemplateUpdate,
    version: ExpectedVersionDep,
) -> Response:
    template = await contract_templates.update_template(
        session, principal, template_id, data=body, expected_version=version
    )
    return record_reply(ContractTemplateRead.model_validate(template))

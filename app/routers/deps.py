"""FastAPI dependencies shared by every router: session, caller, scopes, ETags, paging."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar

import orjson
from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import csv_export, idempotency
from app.core.errors import PROBLEM_BASE, PreconditionFailed, RateLimited, Unauthorized
from app.core.middleware import RATE_LIMIT_STATE_KEY
from app.core.pagination import MAX_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.core.ratelimit import RateLimiter
from app.core.routing import (
    IDEMPOTENCY_CLAIM_STATE_KEY,
    IdempotentReplay,
    TransactionalRoute,
    request_session,
)
from app.core.settings import Settings
from app.schemas.common import Problem
from app.schemas.search import SearchRequest
from app.services import auth
from app.services.records import FindQuery

API_PREFIX = "/api/v1"
SessionDep = Annotated[AsyncSession, Depends(request_session)]

# The two ways to authenticate, as OpenAPI describes them. Requests are not parsed through these
# (a dependency layer per request costs more than reading two headers); see `described_security`.
_bearer = OAuth2PasswordBearer(tokenUrl=API_PREFIX + "/auth/token", auto_error=False, scheme_name="bearer")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="api_key")
SECURITY_SCHEMES = {"bearer": _bearer.model, "api_key": _api_key.model}


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _limit(request: Request, identity: str, limit: int) -> None:
    if not app_settings(request).rate_limit_enabled:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    state = await limiter.hit(identity, limit=limit)
    if state is None:
        return
    setattr(request.state, RATE_LIMIT_STATE_KEY, state)
    if state.exceeded:
        raise RateLimited(state.reset_seconds)


def _credentials(request: Request) -> tuple[str | None, str | None]:
    """(bearer token, API key) from the headers, as OAuth2PasswordBearer and APIKeyHeader read them."""
    headers = request.headers
    token = None
    if authorization := headers.get("authorization"):
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            token = value
    return token, headers.get("x-api-key") or None


_CALLER_STATE_KEY = "caller"


async def caller(request: Request) -> Principal | None:
    """The caller, if it sent credentials; bad credentials are a 401 even where auth is optional.
    Resolved once per request (the dependencies below share it without a layer of their own)."""
    state = request.state
    if hasattr(state, _CALLER_STATE_KEY):
        resolved: Principal | None = getattr(state, _CALLER_STATE_KEY)
        return resolved
    token, api_key = _credentials(request)
    principal: Principal | None = None
    if api_key or token:
        settings = app_settings(request)
        session = await request_session(request)
        if api_key:
            principal = await auth.authenticate_api_key(session, api_key)
            await _limit(request, f"api_key:{principal.id}", settings.rate_limit_api_key_per_minute)
        else:
            assert token is not None
            principal = await auth.authenticate_bearer(session, token)
            await _limit(request, f"user:{principal.id}", settings.rate_limit_user_per_minute)
    setattr(state, _CALLER_STATE_KEY, principal)
    return principal


async def _authenticated(request: Request) -> Principal:
    principal = await caller(request)
    if principal is None:
        raise Unauthorized("Send a bearer token (Authorization: Bearer …) or an API key (X-API-Key)")
    return principal


def _needs_credentials(dependency: Any) -> Any:
    dependency.needs_credentials = True
    return dependency


@_needs_credentials
async def current_principal(request: Request) -> Principal:
    return await _authenticated(request)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(scope: Scope) -> Any:
    """`Annotated[Principal, require(Scope.contacts_write)]`: the caller, holding that scope."""

    @_needs_credentials
    async def holding_scope(request: Request) -> Principal:
        principal = await _authenticated(request)
        principal.require(scope)
        return principal

    holding_scope.__name__ = f"require_{scope.name}"
    return Depends(holding_scope)


def described_security(route: Any) -> list[dict[str, list[str]]]:
    """The OpenAPI `security` of a route: both schemes where a dependency needs credentials."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if getattr(dependant.call, "needs_credentials", False):
            return [{name: []} for name in SECURITY_SCHEMES]
        pending.extend(dependant.dependencies)
    return []


async def anonymous_rate_limit(request: Request) -> None:
    """Sign-up and sign-in are limited per client address, against guessing passwords."""
    client = request.client.host if request.client else "unknown"
    await _limit(request, f"ip:{client}", app_settings(request).rate_limit_anonymous_per_minute)


async def idempotency_guard(
    request: Request,
    session: SessionDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Makes the POST safe to retry for 24 h: a repeat replays the first reply",
        ),
    ] = None,
) -> None:
    if idempotency_key is None:
        return
    principal = await caller(request)
    settings = app_settings(request)
    body = await request.body()
    outcome = await idempotency.claim(
        session,
        scope=f"{principal.kind}:{principal.id}" if principal else "anonymous",
        key=idempotency_key,
        organization_id=principal.organization_id if principal else None,
        request_fingerprint=idempotency.fingerprint(request.method, request.url.path, request.url.query, body),
        ttl_seconds=settings.idempotency_ttl_seconds,
        lock_timeout_ms=settings.idempotency_lock_timeout_ms,
    )
    if isinstance(outcome, idempotency.StoredReply):
        raise IdempotentReplay(outcome)
    setattr(request.state, IDEMPOTENCY_CLAIM_STATE_KEY, outcome)


class ApiRoute(TransactionalRoute):
    post_dependencies: ClassVar[list[Any]] = [Depends(idempotency_guard)]


_ETAG = re.compile(r'^(?:W/)?"(\d{1,10})"$')


async def expected_version(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='An ETag from a read, such as W/"3"; the write fails with 412 if stale',
        ),
    ] = None,
) -> int | None:
    """The version `If-Match` names; `*` or no header means any version. Weak and strong forms
    both compare by version number (the version is exact, the W/ only says the body may vary)."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise PreconditionFailed('If-Match must be one ETag as returned by a read, such as W/"3"')
    return int(match.group(1))


ExpectedVersionDep = Annotated[int | None, Depends(expected_version)]
LimitDep = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
ExternalIdPath = Annotated[
    str, Path(min_length=1, max_length=200, description="The record's id in the other system (`external_id`)")
]
CursorDep = Annotated[str | None, Query(max_length=2000, description="`next_cursor` of the previous page")]
SortDep = Annotated[
    str | None,
    Query(max_length=200, description="Comma-separated fields; `-` sorts descending"),
]


def record_reply(record: Any, *, status_code: int = 200, location: str | None = None) -> Response:
    """A single record as the reply, with its ETag (and Location when created). Rendering it
    here skips FastAPI's second validation of the model; `response_model` still documents it."""
    headers = {"ETag": f'W/"{record.version}"'}
    if location is not None:
        headers["Location"] = location
    return Response(record.model_dump_json(), status_code=status_code, headers=headers, media_type="application/json")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problem documents a route can return."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": _DESCRIPTIONS[status],
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "The caller lacks the scope or role",
    404: "No such record in the caller's organisation (or not visible to the caller)",
    409: "Conflicts with the current state or a concurrent request",
    412: "If-Match named a stale version; nothing was written",
    410: "It existed but is gone for good (an expired export file)",
    413: "The request body is too large",
    422: "The request is invalid; `errors` lists each problem",
    429: "Rate limit exceeded; see Retry-After",
}
AUTHENTICATED = (401, 403, 422, 429)


def search_query(body: SearchRequest) -> FindQuery:
    return FindQuery(
        filter=body.filter,
        q=body.q,
        sort=body.sort or None,
        cursor=body.cursor,
        limit=body.limit,
        archived=body.archived,
        filter_loc=("body", "filter"),
        sort_loc=("body", "sort"),
    )


CSV_REPLY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or every match as CSV with `Accept: text/csv`"}
}
ColumnsDep = Annotated[
    str | None,
    Query(
        max_length=2000,
        description="CSV only: the columns, comma-separated (`custom_fields.<key>` too); an unknown name is a 422",
    ),
]


def wants_csv(request: Request) -> bool:
    """`Accept: text/csv` (ahead of any JSON type the client also lists)."""
    accept = [part.split(";")[0].strip().lower() for part in request.headers.get("accept", "").split(",")]
    return "text/csv" in accept and (
        "application/json" not in accept or accept.index("text/csv") < accept.index("application/json")
    )


CsvDep = Annotated[bool, Depends(wants_csv)]


def csv_reply(items: Iterable[BaseModel], *, schema: type[BaseModel], columns: str | None, filename: str) -> Response:
    rows = [csv_export.flatten(item.model_dump(mode="json")) for item in items]
    if columns:
        chosen = [c.strip() for c in columns.split(",") if c.strip()]
        # The organisation's custom field definitions are not at hand here: any well-formed
        # `custom_fields.<key>` passes, a key no field has gives an empty column.
        csv_export.check_columns(
            chosen, csv_export.record_columns(schema, ()), loc=("query", "columns"), any_custom_key=True
        )
    else:
        prefix = csv_export.CUSTOM_COLUMN_PREFIX
        custom = {key.removeprefix(prefix) for row in rows for key in row if key.startswith(prefix)}
        chosen = csv_export.record_columns(schema, custom)
    return Response(
        csv_export.render(rows, chosen),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def merged_reply(label: str, record_id: uuid.UUID, survivor_id: uuid.UUID) -> Response:
    """A merged record's id answers 301 to its survivor, with a problem document saying so."""
    plural = "companies" if label == "company" else f"{label}s"
    location = f"{API_PREFIX}/{plural}/{survivor_id}"
    body = {
        "type": PROBLEM_BASE + "merged",
        "title": "Merged",
        "status": 301,
        "detail": f"The {label} {record_id} was merged into {survivor_id}",
        "survivor_id": str(survivor_id),
    }
    return Response(
        orjson.dumps(body), status_code=301, headers={"Location": location}, media_type="application/problem+json"
    )

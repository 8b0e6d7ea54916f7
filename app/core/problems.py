"""RFC 9457 problem documents for every failure, rendered in one place (STYLE habit 8)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException

from app.core.context import request_id_var
from app.core.db import sqlstate
from app.core.errors import PROBLEM_BASE, DomainError
from app.core.logging import get_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = get_logger(__name__)

_HTTP_SLUGS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}

# Unique indexes whose violation is a user-facing conflict, with what to say about it.
_UNIQUE_MESSAGES = {
    "uq_users_email": "A user with this e-mail already exists",
    "uq_contacts_organization_id_external_id": "A contact with this external_id already exists",
    "uq_companies_organization_id_external_id": "A company with this external_id already exists",
    "uq_teams_organization_id_name": "A team with this name already exists",
    "uq_custom_field_definitions_organization_id_entity_key": "A custom field with this key already exists",
    "uq_pipelines_organization_id_name": "A pipeline with this name already exists",
    "uq_pipeline_stages_live_name": "The pipeline already has a stage with this name",
    "uq_products_organization_id_sku": "A product with this SKU already exists",
    "uq_deals_organization_id_external_id": "A deal with this external_id already exists",
    "uq_contract_templates_organization_id_name": "A contract template with this name already exists",
}


def problem_response(
    request: Request | None,
    *,
    status: int,
    slug: str,
    title: str | None = None,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or title or HTTPStatus(status).phrase,
    }
    if request is not None:
        body["instance"] = request.url.path
    if (request_id := request_id_var.get()) is not None:
        body["request_id"] = request_id
    body.update(extensions or {})
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(
        request,
        status=exc.status_code,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        extensions=exc.extensions(),
    )


def _loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(error.get("loc", ())), "msg": str(error.get("msg", ""))} for error in exc.errors()]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem_response(
        request,
        status=422,
        slug="validation-error",
        title="Validation failed",
        detail=detail,
        extensions={"errors": errors},
    )


def _allowed_methods(request: Request) -> set[str]:
    """Every method some route serves at this path (Starlette reports only the first route's)."""
    methods: set[str] = set()
    routes = list(request.app.router.routes)
    while routes:
        route = routes.pop()
        if (included := getattr(route, "original_router", None)) is not None:
            routes.extend(included.routes)
        elif (regex := getattr(route, "path_regex", None)) is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return methods


class BodyTooLarge(HTTPException):
    """A request body found over its limit while it is read: an HTTPException, which FastAPI's
    body parsing lets through (any other error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes")
        self.limit = limit


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = sorted(_allowed_methods(request))
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; use {', '.join(allowed)}"
    return problem_response(
        request,
        status=exc.status_code,
        slug=_HTTP_SLUGS.get(exc.status_code, "http-error"),
        detail=detail,
        headers=headers,
        extensions={"limit": exc.limit} if isinstance(exc, BodyTooLarge) else None,
    )


async def _integrity_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IntegrityError)
    code = sqlstate(exc)
    constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    if code == "23505":
        message = _UNIQUE_MESSAGES.get(constraint or "", "A record with these values already exists")
        return problem_response(request, status=409, slug="conflict", title="Conflict", detail=message)
    if code == "23503":
        return problem_response(
            request,
            status=409,
            slug="conflict",
            title="Conflict",
            detail="A referenced record does not exist or is still referenced",
        )
    log.error("integrity_error", sqlstate=code, constraint=constraint)
    return problem_response(
        request,
        status=422,
        slug="validation-error",
        title="Validation failed",
        detail="The record breaks a data rule",
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    code = sqlstate(exc)
    if code in {"40001", "40P01"}:
        return problem_response(
            request,
            status=409,
            slug="concurrent-modification",
            title="Conflict",
            detail="The request collided with a concurrent one; retry it",
            headers={"Retry-After": "1"},
        )
    if code == "57014":
        return problem_response(
            request,
            status=503,
            slug="timeout",
            detail="The query took too long",
            headers={"Retry-After": "5"},
        )
    if code is not None and code.startswith(("08", "53", "57P")):
        # Connection failures, too many connections, a server shutting down: try again shortly.
        log.warning("database_unavailable", sqlstate=code, error=str(exc))
        return problem_response(
            request,
            status=503,
            slug="unavailable",
            detail="The database is not available right now; retry shortly",
            headers={"Retry-After": "1"},
        )
    log.exception("database_error", sqlstate=code)
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        detail="An unexpected error occurred",
    )


async def _stale_data(request: Request, exc: Exception) -> Response:
    return problem_response(
        request,
        status=409,
        slug="concurrent-modification",
        title="Conflict",
        detail="The record was changed by a concurrent request; reload it and retry",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(StaleDataError, _stale_data)
    app.add_exception_handler(DBAPIError, _database_error)
    # The read pool (core/reads.py) uses asyncpg directly.
    app.add_exception_handler(asyncpg.PostgresError, _database_error)
    app.add_exception_handler(asyncpg.InterfaceError, _database_error)

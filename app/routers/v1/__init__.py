"""Version 1 of the API, under /api/v1 (each router carries the full prefix, so route
templates in logs and metrics read as the client sees them). Routes are matched in this
order, so the busiest resources come first."""

from fastapi import APIRouter

from app.routers.v1 import (
    api_keys,
    audit_log,
    auth,
    companies,
    contacts,
    custom_fields,
    events,
    exports,
    imports,
    organization,
    teams,
    users,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        auth,
        organization,
        users,
        teams,
        api_keys,
        custom_fields,
        contacts,
        companies,
        audit_log,
        events,
        exports,
        imports,
        webhooks,
    )
)

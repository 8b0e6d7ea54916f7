"""Version 1 of the API, under /api/v1 (each router carries the full prefix, so route
templates in logs and metrics read as the client sees them). Routes are matched in this
order, so the busiest resources come first."""

from fastapi import APIRouter

from app.routers.v1 import (
    api_keys,
    assignment_rules,
    audit_log,
    auth,
    companies,
    contacts,
    contracts,
    custom_fields,
    deals,
    events,
    exports,
    imports,
    leads,
    mail_messages,
    orders,
    organization,
    pipelines,
    products,
    reports,
    scoring_rules,
    tasks,
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
        deals,
        tasks,
        pipelines,
        products,
        orders,
        contracts,
        leads,
        scoring_rules,
        assignment_rules,
        reports,
        audit_log,
        events,
        exports,
        imports,
        webhooks,
        mail_messages,
    )
)

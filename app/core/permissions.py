"""Roles, scopes and record visibility (DESIGN.md §4).

A role is a named set of scopes; an API key carries scopes directly. Every route asks for one
scope, so people and integrations are authorised by the same check.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    contacts_read = "contacts:read"
    contacts_write = "contacts:write"
    companies_read = "companies:read"
    companies_write = "companies:write"
    custom_fields_read = "custom_fields:read"
    custom_fields_write = "custom_fields:write"
    users_read = "users:read"
    users_write = "users:write"
    teams_read = "teams:read"
    teams_write = "teams:write"
    api_keys_manage = "api_keys:manage"
    audit_read = "audit:read"
    organization_read = "organization:read"
    organization_write = "organization:write"
    events_read = "events:read"
    webhooks_manage = "webhooks:manage"
    privacy_manage = "privacy:manage"
    pipelines_read = "pipelines:read"
    pipelines_write = "pipelines:write"
    deals_read = "deals:read"
    deals_write = "deals:write"
    products_read = "products:read"
    products_write = "products:write"
    orders_read = "orders:read"
    orders_write = "orders:write"
    contracts_read = "contracts:read"
    contracts_write = "contracts:write"
    tasks_read = "tasks:read"
    tasks_write = "tasks:write"
    scoring_read = "scoring:read"
    scoring_write = "scoring:write"
    assignment_read = "assignment:read"
    assignment_write = "assignment:write"
    reports_read = "reports:read"
    # The organisation's outgoing e-mails (reminders) and why one failed: owners and admins.
    mail_read = "mail:read"


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    manager = "manager"
    sales = "sales"
    support = "support"
    marketing = "marketing"
    viewer = "viewer"


class Visibility(StrEnum):
    """Which contacts and companies the restricted roles (sales, support) see."""

    all = "all"
    team = "team"
    own = "own"


_EVERYONE = frozenset(
    {
        Scope.contacts_read,
        Scope.companies_read,
        Scope.custom_fields_read,
        Scope.users_read,
        Scope.teams_read,
        Scope.organization_read,
        Scope.pipelines_read,
        Scope.deals_read,
        Scope.products_read,
        Scope.orders_read,
        Scope.contracts_read,
        Scope.tasks_read,
        Scope.scoring_read,
        Scope.assignment_read,
    }
)
_RECORD_WRITERS = _EVERYONE | {
    Scope.contacts_write,
    Scope.companies_write,
    Scope.deals_write,
    Scope.orders_write,
    Scope.contracts_write,
}
# Managers shape the sales process: pipelines, stages and the catalogue.
_SALES_SETUP = frozenset({Scope.pipelines_write, Scope.products_write, Scope.scoring_write, Scope.assignment_write})
# Everyone who works with customers keeps a to-do list; viewers only look.
_TASK_WRITERS = frozenset({Scope.tasks_write})
# Sales reports: for those who sell or oversee selling, and viewers. A sales rep's reports count
# only the deals their record visibility shows them.
_REPORT_READERS = frozenset({Scope.reports_read})

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.owner: frozenset(Scope),
    Role.admin: frozenset(Scope),
    Role.manager: _RECORD_WRITERS | _SALES_SETUP | _TASK_WRITERS | _REPORT_READERS | {Scope.teams_write},
    Role.sales: _RECORD_WRITERS | _TASK_WRITERS | _REPORT_READERS,
    Role.support: _EVERYONE | _TASK_WRITERS | {Scope.contacts_write},
    # Marketing tunes lead scoring: it decides what makes a lead worth a salesperson's time.
    Role.marketing: _EVERYONE | _TASK_WRITERS | {Scope.contacts_write, Scope.scoring_write},
    Role.viewer: _EVERYONE | _REPORT_READERS,
}

RESTRICTED_ROLES = frozenset({Role.sales, Role.support})

# Integrations get data scopes; managing people and keys stays with people.
API_KEY_SCOPES = frozenset(
    {
        Scope.contacts_read,
        Scope.contacts_write,
        Scope.companies_read,
        Scope.companies_write,
        Scope.custom_fields_read,
        Scope.users_read,
        Scope.teams_read,
        Scope.audit_read,
        Scope.organization_read,
        Scope.events_read,
        Scope.webhooks_manage,
        Scope.privacy_manage,
        Scope.pipelines_read,
        Scope.pipelines_write,
        Scope.deals_read,
        Scope.deals_write,
        Scope.products_read,
        Scope.products_write,
        Scope.orders_read,
        Scope.orders_write,
        Scope.contracts_read,
        Scope.contracts_write,
        Scope.tasks_read,
        Scope.tasks_write,
        Scope.scoring_read,
        Scope.scoring_write,
        Scope.assignment_read,
        Scope.assignment_write,
        Scope.reports_read,
        Scope.mail_read,
    }
)

# Who may grant which role: an admin cannot mint owners.
ASSIGNABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.owner: frozenset(Role),
    Role.admin: frozenset(Role) - {Role.owner},
}

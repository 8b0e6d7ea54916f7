"""Companies: the rules for creating, changing and finding organisations a CRM sells to."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, text_search
from app.core.enums import AuditAction, CompanySize, CustomFieldEntity
from app.core.errors import Conflict
from app.core.normalize import phone_search_forms
from app.core.pagination import Page
from app.core.principal import Principal
from app.core.repository import check_version
from app.models.audit import AuditEntry
from app.models.company import Company
from app.models.contact import Contact
from app.schemas.company import CompanyCreate, CompanyUpdate
from app.services import custom_fields, records, users
from app.services.filters import FieldSpec, FieldType
from app.services.records import FindQuery, RecordType, builtin

SEARCHED_FIELDS = frozenset({"name", "domain", "phone"})


def _fields() -> dict[str, FieldSpec]:
    c = Company.__table__.c
    text = FieldType.text
    specs = [
        builtin(c.name, "name", text, nullable=False),
        builtin(c.domain, "domain", text),
        builtin(c.industry, "industry", text),
        builtin(c.size, "size", FieldType.enum, choices=frozenset(CompanySize)),
        builtin(c.phone, "phone", text),
        builtin(c.address_line1, "address_line1", text),
        builtin(c.city, "city", text),
        builtin(c.region, "region", text),
        builtin(c.postal_code, "postal_code", text),
        builtin(c.country, "country", text),
        builtin(c.owner_id, "owner_id", FieldType.uuid),
        builtin(c.tags, "tags", FieldType.tags, nullable=False),
        builtin(c.external_id, "external_id", text),
        builtin(c.created_at, "created_at", FieldType.datetime, nullable=False),
        builtin(c.updated_at, "updated_at", FieldType.datetime, nullable=False),
        builtin(c.archived_at, "archived_at", FieldType.datetime),
    ]
    return {spec.name: spec for spec in specs}


def _search_columns() -> list[ColumnElement[str]]:
    return [Company.__table__.c.search_text]


COMPANIES: RecordType[Company] = RecordType(
    model=Company,
    label="company",
    custom_entity=CustomFieldEntity.company,
    builtin_fields=_fields,
    search_columns=_search_columns,
)


def search_document(company: Company) -> str:
    phones = phone_search_forms(company.phone) if company.phone else []
    return text_search.document([company.name, company.domain, *phones])


def contact_search_text(company: Company) -> str:
    """What a contact's search finds of its company: the name."""
    return text_search.normalize(company.name)


async def create_company(session: AsyncSession, principal: Principal, *, data: CompanyCreate) -> Company:
    definitions = await custom_fields.definitions_for(
        session,
        principal.organization_id,
        CustomFieldEntity.company,
        for_write=bool(data.custom_fields),
    )
    company = Company(
        organization_id=principal.organization_id,
        **data.model_dump(exclude={"custom_fields"}),
        custom_fields=custom_fields.validate_values(definitions, data.custom_fields),
    )
    if "owner_id" not in data.model_fields_set:
        company.owner_id = principal.user_id
    elif data.owner_id is not None:
        await users.ensure_assignable(session, principal, data.owner_id)
    company.search_text = search_document(company)
    session.add(company)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=COMPANIES.label,
        entity_id=company.id,
        changes=audit.creation(audit.snapshot(company)),
    )
    return company


async def get_company(session: AsyncSession, principal: Principal, company_id: uuid.UUID) -> Mapping[str, Any]:
    """The company as its columns, for a reply (read without the ORM: GET by id is the hot path)."""
    return await COMPANIES.repository(session, principal).read(company_id)


async def update_company(
    session: AsyncSession,
    principal: Principal,
    company_id: uuid.UUID,
    *,
    data: CompanyUpdate,
    expected_version: int | None,
) -> Company:
    company = await COMPANIES.repository(session, principal).get(company_id, for_update=True)
    check_version(company.version, expected_version)
    if company.archived_at is not None:
        raise Conflict("The company is archived; restore it before changing it")
    changes = data.changes()
    before = audit.snapshot(company)
    if "custom_fields" in changes:
        definitions = await custom_fields.definitions_for(
            session,
            principal.organization_id,
            CustomFieldEntity.company,
            for_write=True,
        )
        changes["custom_fields"] = custom_fields.validate_values(
            definitions, changes["custom_fields"], current=company.custom_fields
        )
    if changes.get("owner_id") is not None and changes["owner_id"] != company.owner_id:
        await users.ensure_assignable(session, principal, changes["owner_id"])
    renamed = "name" in changes and changes["name"] != company.name
    for name, value in changes.items():
        setattr(company, name, value)
    if SEARCHED_FIELDS & changes.keys():
        company.search_text = search_document(company)
    if renamed:
        # Contacts are found by their company's name too.
        await session.execute(
            update(Contact)
            .where(
                Contact.organization_id == principal.organization_id,
                Contact.company_id == company.id,
            )
            .values(company_search_text=contact_search_text(company))
            .execution_options(synchronize_session=False)
        )
    if delta := audit.diff(before, audit.snapshot(company)):
        await session.flush()
        audit.record(
            session,
            principal,
            action=AuditAction.update,
            entity_type=COMPANIES.label,
            entity_id=company.id,
            changes=delta,
        )
    return company


async def archive_company(
    session: AsyncSession,
    principal: Principal,
    company_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> Company:
    return await records.archive(session, principal, COMPANIES, company_id, expected_version=expected_version)


async def restore_company(
    session: AsyncSession,
    principal: Principal,
    company_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> Company:
    return await records.restore(session, principal, COMPANIES, company_id, expected_version=expected_version)


async def find_companies(session: AsyncSession, principal: Principal, query: FindQuery) -> Page[Company]:
    return await records.find(session, principal, COMPANIES, query)


async def company_history(
    session: AsyncSession,
    principal: Principal,
    company_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    return await records.history(session, principal, COMPANIES, company_id, cursor=cursor, limit=limit)

"""Companies: the rules for creating, changing and finding organisations a CRM sells to."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, text_search
from app.core.enums import CompanySize, CustomFieldEntity
from app.core.normalize import phone_search_forms
from app.core.pagination import Page
from app.core.principal import Principal
from app.models.audit import AuditEntry
from app.models.company import Company
from app.models.contact import Contact
from app.schemas.company import CompanyCreate, CompanyRead, CompanyUpdate
from app.services import records
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
    read_schema=CompanyRead,
    transitions={"owner_id": "assigned"},
)


def search_document(company: Company) -> str:
    phones = phone_search_forms(company.phone) if company.phone else []
    return text_search.document([company.name, company.domain, *phones])


def contact_search_text(company: Company) -> str:
    """What a contact's search finds of its company: the name."""
    return text_search.normalize(company.name)


async def create_company(session: AsyncSession, principal: Principal, *, data: CompanyCreate) -> Company:
    company = Company(
        organization_id=principal.organization_id,
        **data.model_dump(exclude={"custom_fields", "owner_id"}),
        owner_id=await records.initial_owner(
            session, principal, sent="owner_id" in data.model_fields_set, owner_id=data.owner_id
        ),
        custom_fields=await records.custom_values(session, principal, COMPANIES, data.custom_fields),
    )
    company.search_text = search_document(company)
    return await records.created(session, principal, COMPANIES, company)


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
    company = await records.editable(session, principal, COMPANIES, company_id, expected_version=expected_version)
    changes = data.changes()
    before = audit.snapshot(company)
    if "custom_fields" in changes:
        changes["custom_fields"] = await records.custom_values(
            session, principal, COMPANIES, changes["custom_fields"], current=company.custom_fields
        )
    await records.check_new_owner(session, principal, changes, company.owner_id)
    renamed = "name" in changes and changes["name"] != company.name
    for name, value in changes.items():
        setattr(company, name, value)
    if SEARCHED_FIELDS & changes.keys():
        company.search_text = search_document(company)
    if renamed:
        # Contacts are found by their company's name too.
        await session.execute(
            update(Contact)
            .where(Contact.organization_id == principal.organization_id, Contact.company_id == company.id)
            .values(company_search_text=contact_search_text(company))
            .execution_options(synchronize_session=False)
        )
    return await records.updated(session, principal, COMPANIES, company, before=before)


async def upsert_company(
    session: AsyncSession,
    principal: Principal,
    external_id: str,
    *,
    data: CompanyUpdate,
    expected_version: int | None,
) -> tuple[Company, bool]:
    async def create() -> Company:
        fields = records.as_create(CompanyCreate, data.changes(), external_id=external_id)
        return await create_company(session, principal, data=fields)

    async def update(company_id: uuid.UUID) -> Company:
        return await update_company(session, principal, company_id, data=data, expected_version=expected_version)

    return await records.upsert_by_external_id(
        session,
        principal,
        COMPANIES,
        external_id,
        expected_version=expected_version,
        sent_external_id=data.changes().get("external_id"),
        create=create,
        update=update,
    )


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

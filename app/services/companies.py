"""Companies: the rules for creating, changing and finding organisations a CRM sells to."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, text_search
from app.core.db import new_record
from app.core.enums import CompanySize, CustomFieldEntity
from app.core.normalize import phone_search_forms
from app.core.pagination import Page
from app.core.principal import Principal
from app.models.audit import AuditEntry
from app.models.company import Company
from app.models.contact import Contact
from app.schemas.company import CompanyCreate, CompanyRead, CompanyUpdate
from app.services import merges, records, users
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
    gram_document=lambda company: company.search_text,
)


def search_document(company: Company) -> str:
    phones = phone_search_forms(company.phone) if company.phone else []
    return text_search.document([company.name, company.domain, *phones])


def contact_search_text(company: Company) -> str:
    """What a contact's search finds of its company: the name."""
    return text_search.normalize(company.name)


async def create_company(session: AsyncSession, principal: Principal, *, data: CompanyCreate) -> Company:
    return await records.created(session, principal, COMPANIES, await build_company(session, principal, data))


async def build_company(session: AsyncSession, principal: Principal, data: CompanyCreate) -> Company:
    """A new company, checked and filled in, not yet added to the session."""
    company = new_record(
        Company,
        organization_id=principal.organization_id,
        **data.model_dump(exclude={"custom_fields", "owner_id"}),
        owner_id=await records.initial_owner(
            session, principal, sent="owner_id" in data.model_fields_set, owner_id=data.owner_id
        ),
        custom_fields=await records.custom_values(session, principal, COMPANIES, data.custom_fields),
    )
    company.search_text = search_document(company)
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
    company = await records.editable(session, principal, COMPANIES, company_id, expected_version=expected_version)
    before = audit.snapshot(company)
    await apply_company_changes(session, principal, company, data)
    return await records.updated(session, principal, COMPANIES, company, before=before)


async def apply_company_changes(
    session: AsyncSession, principal: Principal, company: Company, data: CompanyUpdate
) -> None:
    """Checks a PATCH body against the company and applies it (nothing is written yet, except
    its contacts' copy of a new name)."""
    changes = data.changes()
    if "custom_fields" in changes:
        changes["custom_fields"] = await records.custom_values(
            session, principal, COMPANIES, changes["custom_fields"], current=company.custom_fields
        )
    await records.check_new_owner(session, principal, changes, company.owner_id)
    # Only real changes are set (see apply_contact_changes).
    changed = {name for name, value in changes.items() if getattr(company, name) != value}
    renamed = "name" in changed
    for name in changed:
        setattr(company, name, changes[name])
    if SEARCHED_FIELDS & changed:
        company.search_text = search_document(company)
    if renamed:
        await _refresh_contacts_search(session, principal, company)


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


async def find_all_companies(
    session: AsyncSession, principal: Principal, query: FindQuery, *, at_most: int
) -> list[Company]:
    return await records.find_all(session, principal, COMPANIES, query, at_most=at_most)


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


async def _prefetch_for_batch(session: AsyncSession, principal: Principal, bodies: list[dict[str, Any]]) -> None:
    await users.prefetch_assignable(session, principal, {b["owner_id"] for b in bodies if b.get("owner_id")})


COMPANY_BATCHES: records.BatchRules[Company] = records.BatchRules(
    kind=COMPANIES,
    create_schema=CompanyCreate,
    update_schema=CompanyUpdate,
    build=build_company,
    apply=apply_company_changes,
    upsert_keys=("external_id", "domain"),
    prefetch=_prefetch_for_batch,
)


async def write_companies(
    session: AsyncSession, principal: Principal, *, mode: str, items: list[dict[str, Any]], atomic: bool
) -> list[records.BatchResult]:
    return await records.write_batch(session, principal, COMPANY_BATCHES, mode=mode, items=items, atomic=atomic)


async def _refresh_contacts_search(session: AsyncSession, principal: Principal, company: Company) -> None:
    """Contacts are found by their company's name too: after a rename, or once a merge moved them."""
    await session.execute(
        update(Contact)
        .where(Contact.organization_id == principal.organization_id, Contact.company_id == company.id)
        .values(company_search_text=contact_search_text(company))
        .execution_options(synchronize_session=False)
    )


async def _refresh_after_merge(session: AsyncSession, principal: Principal, company: Company) -> None:
    company.search_text = search_document(company)
    await _refresh_contacts_search(session, principal, company)


async def merge_companies(
    session: AsyncSession,
    principal: Principal,
    survivor_id: uuid.UUID,
    *,
    merge_ids: list[uuid.UUID],
    field_choices: dict[str, uuid.UUID],
    expected_version: int | None,
) -> tuple[Company, dict[str, int]]:
    return await merges.merge(
        session,
        principal,
        COMPANIES,
        survivor_id,
        merge_ids=merge_ids,
        field_choices=field_choices,
        expected_version=expected_version,
        after_move=_refresh_after_merge,
    )

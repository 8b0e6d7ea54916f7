"""Contacts: the rules for creating, changing and finding people."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, text_search
from app.core.db import new_record, transaction_cache
from app.core.enums import AuditAction, ContactSource, CustomFieldEntity, LifecycleStage
from app.core.errors import FieldError, ValidationFailed
from app.core.normalize import phone_search_forms
from app.core.pagination import Page
from app.core.principal import Principal
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.models.company import Company
from app.models.contact import Contact
from app.models.organization import Organization
from app.schemas.contact import ContactCreate, ContactRead, ContactUpdate
from app.services import assignment, companies, lifecycle, merges, records, scoring, users
from app.services.filters import FieldSpec, FieldType
from app.services.records import FindQuery, RecordType, builtin

SEARCHED_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        "phone",
        "additional_emails",
        "additional_phones",
    }
)
IDENTIFYING_FIELDS = ("first_name", "last_name", "email", "phone")


def _fields() -> dict[str, FieldSpec]:
    c = Contact.__table__.c
    text = FieldType.text
    specs = [
        builtin(c.first_name, "first_name", text),
        builtin(c.last_name, "last_name", text),
        builtin(c.title, "title", text),
        builtin(c.email, "email", text),
        builtin(c.phone, "phone", text),
        builtin(c.company_id, "company_id", FieldType.uuid),
        builtin(c.address_line1, "address_line1", text),
        builtin(c.city, "city", text),
        builtin(c.region, "region", text),
        builtin(c.postal_code, "postal_code", text),
        builtin(c.country, "country", text),
        builtin(
            c.source,
            "source",
            FieldType.enum,
            choices=frozenset(ContactSource),
            nullable=False,
        ),
        builtin(
            c.lifecycle_stage,
            "lifecycle_stage",
            FieldType.enum,
            choices=frozenset(LifecycleStage),
            nullable=False,
        ),
        builtin(c.owner_id, "owner_id", FieldType.uuid),
        builtin(c.tags, "tags", FieldType.tags, nullable=False),
        builtin(c.external_id, "external_id", text),
        builtin(c.email_opt_in, "email_opt_in", FieldType.boolean, nullable=False),
        builtin(c.email_opt_in_at, "email_opt_in_at", FieldType.datetime),
        builtin(c.created_at, "created_at", FieldType.datetime, nullable=False),
        builtin(c.updated_at, "updated_at", FieldType.datetime, nullable=False),
        builtin(c.archived_at, "archived_at", FieldType.datetime),
    ]
    return {spec.name: spec for spec in specs}


def _search_columns() -> list[ColumnElement[str]]:
    return [Contact.__table__.c.search_text, Contact.__table__.c.company_search_text]


CONTACTS: RecordType[Contact] = RecordType(
    model=Contact,
    label="contact",
    custom_entity=CustomFieldEntity.contact,
    builtin_fields=_fields,
    search_columns=_search_columns,
    read_schema=ContactRead,
    transitions={"owner_id": "assigned", "lifecycle_stage": "lifecycle_stage_changed"},
    gram_document=lambda contact: contact.search_text + text_search.SEPARATOR + contact.company_search_text,
    # Deferred to call time: scoring and assignment read CONTACTS' fields, so they import each other.
    refresh_derived=lambda session, principal, written: scoring.refresh_contacts(session, principal, written),
    follow_up=lambda session, principal, announced: _follow_up(session, principal, announced),
)


async def _follow_up(session: AsyncSession, principal: Principal, announced: Sequence[Contact]) -> None:
    """Contacts just written and announced: lifecycle moves their new scores earn, and the
    assignments rules made when they were built."""
    await lifecycle.after_scoring(session, principal, announced)
    await assignment.announce(session, principal, announced)


def search_document(contact: Contact) -> str:
    """Names in both orders (张伟 and "wei zhang"), every e-mail, every phone as digits."""
    first, last = contact.first_name or "", contact.last_name or ""
    phones = [contact.phone, *(entry["phone"] for entry in contact.additional_phones)]
    return text_search.document(
        [
            first,
            last,
            f"{first} {last}".strip(),
            f"{last}{first}",
            contact.email,
            *(entry["email"] for entry in contact.additional_emails),
            *(form for phone in phones if phone for form in phone_search_forms(phone)),
        ]
    )


async def _linkable_company(session: AsyncSession, principal: Principal, company_id: uuid.UUID) -> Company:
    known = transaction_cache(session, "linkable_companies")
    if company_id not in known:
        await prefetch_companies(session, principal, [company_id])
    found = known[company_id]
    if isinstance(found, str):
        raise ValidationFailed(FieldError(("body", "company_id"), found))
    return found  # type: ignore[no-any-return]


async def prefetch_companies(session: AsyncSession, principal: Principal, company_ids: Iterable[uuid.UUID]) -> None:
    """Looks up companies contacts may be linked to, in one query, for `_linkable_company`."""
    known = transaction_cache(session, "linkable_companies")
    wanted = set(company_ids) - known.keys()
    if not wanted:
        return
    repository = companies.COMPANIES.repository(session, principal)
    found = {c.id: c for c in (await session.execute(repository.scoped().where(Company.id.in_(wanted)))).scalars()}
    for company_id in wanted:
        company = found.get(company_id)
        known[company_id] = (
            "no such company" if company is None else "the company is archived" if company.archived_at else company
        )


def _consent_given(contact: Contact, *, source: str | None, principal: Principal) -> None:
    contact.email_opt_in_at = utcnow()
    contact.email_opt_in_source = source or ("api" if principal.kind == "api_key" else "manual")


async def create_contact(session: AsyncSession, principal: Principal, *, data: ContactCreate) -> Contact:
    return await records.created(session, principal, CONTACTS, await build_contact(session, principal, data))


async def create_or_merge_contact(
    session: AsyncSession, principal: Principal, *, data: ContactCreate
) -> tuple[Contact, bool]:
    """Creates the contact; or, when the organisation merges e-mail duplicates and a contact the
    caller can see already has this e-mail, fills that one in instead (True)."""
    existing = await _email_twin(session, principal, data.email) if data.email else None
    if existing is None:
        return await create_contact(session, principal, data=data), False
    before = audit.snapshot(existing)
    fold_into(existing, await build_contact(session, principal, data))
    await session.flush()
    await CONTACTS.written(session, principal, [existing])
    changes = audit.diff(before, audit.snapshot(existing)) | records.folded_in()
    records.announce(session, principal, CONTACTS, existing, action=AuditAction.merge, event="merged", changes=changes)
    await CONTACTS.announced(session, principal, [existing])
    return existing, True


def fold_into(existing: Contact, incoming: Contact) -> None:
    """Fills the existing contact in from a new one with its e-mail (the merge rule)."""
    for field, value in merges.folded(CONTACTS, existing, [incoming], {}).items():
        if getattr(existing, field) != value:
            setattr(existing, field, value)
    existing.search_text = search_document(existing)


async def _email_twin(session: AsyncSession, principal: Principal, email: str) -> Contact | None:
    organization = await session.get(Organization, principal.organization_id)
    if organization is None or not organization.merge_email_duplicates:
        return None
    statement = (
        CONTACTS.repository(session, principal)
        .scoped()
        .where(Contact.email == email, Contact.archived_at.is_(None))
        .order_by(Contact.id)
        .limit(1)
        .with_for_update()
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def build_contact(session: AsyncSession, principal: Principal, data: ContactCreate) -> Contact:
    """A new contact, checked and filled in, not yet added to the session."""
    owner_sent = "owner_id" in data.model_fields_set
    contact = new_record(
        Contact,
        organization_id=principal.organization_id,
        **data.model_dump(exclude={"custom_fields", "source", "email_opt_in_source", "owner_id"}),
        source=data.source or (ContactSource.api if principal.kind == "api_key" else ContactSource.manual),
        owner_id=await records.initial_owner(session, principal, sent=owner_sent, owner_id=data.owner_id),
        custom_fields=await records.custom_values(session, principal, CONTACTS, data.custom_fields),
    )
    if data.company_id is not None:
        company = await _linkable_company(session, principal, data.company_id)
        contact.company_search_text = companies.contact_search_text(company)
    if data.email_opt_in:
        _consent_given(contact, source=data.email_opt_in_source, principal=principal)
    contact.search_text = search_document(contact)
    if not owner_sent:
        # An owner sent is kept; otherwise the assignment rules may route the contact.
        await assignment.assign_new(session, principal, contact)
    return contact


async def get_contact(session: AsyncSession, principal: Principal, contact_id: uuid.UUID) -> Mapping[str, Any]:
    """The contact as its columns, for a reply (read without the ORM: GET by id is the hot path)."""
    return await CONTACTS.repository(session, principal).read(contact_id)


async def update_contact(
    session: AsyncSession,
    principal: Principal,
    contact_id: uuid.UUID,
    *,
    data: ContactUpdate,
    expected_version: int | None,
) -> Contact:
    contact = await records.editable(session, principal, CONTACTS, contact_id, expected_version=expected_version)
    before = audit.snapshot(contact)
    await apply_contact_changes(session, principal, contact, data)
    return await records.updated(session, principal, CONTACTS, contact, before=before)


async def apply_contact_changes(
    session: AsyncSession, principal: Principal, contact: Contact, data: ContactUpdate
) -> None:
    """Checks a PATCH body against the contact and applies it (nothing is written yet)."""
    changes = data.changes()
    if "custom_fields" in changes:
        changes["custom_fields"] = await records.custom_values(
            session, principal, CONTACTS, changes["custom_fields"], current=contact.custom_fields
        )
    await records.check_new_owner(session, principal, changes, contact.owner_id)
    if "company_id" in changes and changes["company_id"] != contact.company_id:
        company_id = changes["company_id"]
        company = await _linkable_company(session, principal, company_id) if company_id else None
        contact.company_search_text = companies.contact_search_text(company) if company else ""
    consent_source = changes.pop("email_opt_in_source", None)
    opting_in = changes.get("email_opt_in")
    if opting_in is not None and opting_in != contact.email_opt_in:
        if opting_in:
            _consent_given(contact, source=consent_source, principal=principal)
        else:
            contact.email_opt_in_at = utcnow()
            contact.email_opt_in_source = consent_source
    # Only real changes are set: setting a field to its value still marks it dirty, and a search
    # column recomputed for nothing would make an UPDATE (and a new version) out of no change.
    changed = {name for name, value in changes.items() if getattr(contact, name) != value}
    stage_before = contact.lifecycle_stage
    for name in changed:
        setattr(contact, name, changes[name])
    if "lifecycle_stage" in changed:
        lifecycle.record_manual(session, principal, contact, stage_before)
    if not any(getattr(contact, name) for name in IDENTIFYING_FIELDS):
        raise ValidationFailed(
            FieldError(("body",), "a contact needs at least one of first_name, last_name, email or phone")
        )
    if SEARCHED_FIELDS & changed:
        contact.search_text = search_document(contact)


async def upsert_contact(
    session: AsyncSession,
    principal: Principal,
    external_id: str,
    *,
    data: ContactUpdate,
    expected_version: int | None,
) -> tuple[Contact, bool]:
    async def create() -> Contact:
        fields = records.as_create(ContactCreate, data.changes(), external_id=external_id)
        return await create_contact(session, principal, data=fields)

    async def update(contact_id: uuid.UUID) -> Contact:
        return await update_contact(session, principal, contact_id, data=data, expected_version=expected_version)

    return await records.upsert_by_external_id(
        session,
        principal,
        CONTACTS,
        external_id,
        expected_version=expected_version,
        sent_external_id=data.changes().get("external_id"),
        create=create,
        update=update,
    )


async def archive_contact(
    session: AsyncSession,
    principal: Principal,
    contact_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> Contact:
    return await records.archive(session, principal, CONTACTS, contact_id, expected_version=expected_version)


async def restore_contact(
    session: AsyncSession,
    principal: Principal,
    contact_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> Contact:
    return await records.restore(session, principal, CONTACTS, contact_id, expected_version=expected_version)


async def find_all_contacts(
    session: AsyncSession, principal: Principal, query: FindQuery, *, at_most: int
) -> list[Contact]:
    return await records.find_all(session, principal, CONTACTS, query, at_most=at_most)


async def find_contacts(session: AsyncSession, principal: Principal, query: FindQuery) -> Page[Contact]:
    return await records.find(session, principal, CONTACTS, query)


async def contact_history(
    session: AsyncSession,
    principal: Principal,
    contact_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    return await records.history(session, principal, CONTACTS, contact_id, cursor=cursor, limit=limit)


async def _prefetch_for_batch(session: AsyncSession, principal: Principal, bodies: list[dict[str, Any]]) -> None:
    await users.prefetch_assignable(session, principal, {b["owner_id"] for b in bodies if b.get("owner_id")})
    await prefetch_companies(session, principal, {b["company_id"] for b in bodies if b.get("company_id")})


CONTACT_BATCHES: records.BatchRules[Contact] = records.BatchRules(
    kind=CONTACTS,
    create_schema=ContactCreate,
    update_schema=ContactUpdate,
    build=build_contact,
    apply=apply_contact_changes,
    upsert_keys=("external_id", "email"),
    prefetch=_prefetch_for_batch,
)


async def write_contacts(
    session: AsyncSession, principal: Principal, *, mode: str, items: list[dict[str, Any]], atomic: bool
) -> list[records.BatchResult]:
    fold = await email_fold(session, principal) if mode == "create" else None
    return await records.write_batch(
        session, principal, CONTACT_BATCHES, mode=mode, items=items, atomic=atomic, fold_on_email=fold
    )


async def email_fold(session: AsyncSession, principal: Principal) -> Callable[[Contact, Contact], None] | None:
    """How a batch or import creating contacts treats an e-mail a contact already has: folded into
    it when the organisation merges e-mail duplicates (as POST does), else nothing."""
    organization = await session.get(Organization, principal.organization_id)
    return fold_into if organization is not None and organization.merge_email_duplicates else None


async def _refresh_after_merge(session: AsyncSession, principal: Principal, contact: Contact) -> None:
    contact.search_text = search_document(contact)
    company = (
        await session.get(Company, (principal.organization_id, contact.company_id)) if contact.company_id else None
    )
    contact.company_search_text = companies.contact_search_text(company) if company else ""


async def merge_contacts(
    session: AsyncSession,
    principal: Principal,
    survivor_id: uuid.UUID,
    *,
    merge_ids: list[uuid.UUID],
    field_choices: dict[str, uuid.UUID],
    expected_version: int | None,
) -> tuple[Contact, dict[str, int]]:
    return await merges.merge(
        session,
        principal,
        CONTACTS,
        survivor_id,
        merge_ids=merge_ids,
        field_choices=field_choices,
        expected_version=expected_version,
        after_move=_refresh_after_merge,
    )

"""Custom field definitions, and validation of the values records carry for them."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

import structlog
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, secrets
from app.core.db import transaction_cache
from app.core.enums import AuditAction, CustomFieldEntity, CustomFieldType
from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.pagination import Keyset, Page
from app.core.permissions import Role
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import get_settings
from app.models.base import utcnow
from app.models.company import Company
from app.models.contact import Contact
from app.models.custom_field import CustomFieldDefinition
from app.schemas.custom_field import CHOICE_TYPES, CustomFieldCreate, CustomFieldUpdate, options_problem
from app.services.filters import FieldSpec, FieldType, custom_field_spec

log = structlog.get_logger(__name__)

MAX_TEXT_VALUE = 2000
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RECORD_TABLES: dict[CustomFieldEntity, Any] = {
    CustomFieldEntity.contact: Contact,
    CustomFieldEntity.company: Company,
}
_FILTER_TYPES = {
    CustomFieldType.text: FieldType.text,
    CustomFieldType.number: FieldType.number,
    CustomFieldType.date: FieldType.date,
    CustomFieldType.boolean: FieldType.boolean,
    CustomFieldType.select: FieldType.enum,
    CustomFieldType.multi_select: FieldType.tags,
}

Definitions = Mapping[str, CustomFieldDefinition]


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[CustomFieldDefinition]:
    return TenantRepository(CustomFieldDefinition, session, principal, label="custom field")


async def list_definitions(
    session: AsyncSession,
    principal: Principal,
    *,
    entity: CustomFieldEntity | None,
    cursor: str | None,
    limit: int,
) -> Page[CustomFieldDefinition]:
    repository = _repository(session, principal)
    statement = repository.scoped()
    if entity is not None:
        statement = statement.where(CustomFieldDefinition.entity == entity)
    return await repository.page(statement, Keyset.of([], CustomFieldDefinition.id), cursor=cursor, limit=limit)


async def get_definition(
    session: AsyncSession, principal: Principal, definition_id: uuid.UUID
) -> CustomFieldDefinition:
    return await _repository(session, principal).get(definition_id)


async def create_definition(
    session: AsyncSession, principal: Principal, *, data: CustomFieldCreate
) -> CustomFieldDefinition:
    definition = CustomFieldDefinition(organization_id=principal.organization_id, **data.model_dump())
    session.add(definition)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type="custom_field",
        entity_id=definition.id,
        changes=audit.creation(audit.snapshot(definition)),
    )
    return definition


async def update_definition(
    session: AsyncSession,
    principal: Principal,
    definition_id: uuid.UUID,
    *,
    data: CustomFieldUpdate,
    expected_version: int | None,
) -> CustomFieldDefinition:
    definition = await _repository(session, principal).locked(definition_id, expected_version=expected_version)
    changes = data.changes()
    if "options" in changes:
        if problem := options_problem(definition.type, changes["options"]):
            raise ValidationFailed(FieldError(("body", "options"), problem))
        await _refuse_removing_options_in_use(session, principal, definition, changes["options"])
    before = audit.snapshot(definition)
    for name, value in changes.items():
        setattr(definition, name, value)
    await session.flush()
    if delta := audit.diff(before, audit.snapshot(definition)):
        audit.record(
            session,
            principal,
            action=AuditAction.update,
            entity_type="custom_field",
            entity_id=definition.id,
            changes=delta,
        )
    return definition


async def _refuse_removing_options_in_use(
    session: AsyncSession, principal: Principal, definition: CustomFieldDefinition, options: list[str]
) -> None:
    """Stored values stay valid: an option still held by a record cannot be removed."""
    table = _RECORD_TABLES[definition.entity]
    in_use = []
    for option in set(definition.options) - set(options):
        value = [option] if definition.type is CustomFieldType.multi_select else option
        held = select(table.id).where(
            table.organization_id == principal.organization_id,
            table.custom_fields.contains({definition.key: value}),
        )
        if (await session.execute(held.limit(1))).first() is not None:
            in_use.append(option)
    if in_use:
        raise Conflict(f"Records still hold the options {', '.join(sorted(in_use))}; change them first")


async def delete_definition(
    session: AsyncSession,
    principal: Principal,
    definition_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> None:
    """Deletes the definition and removes its values from every record of the entity (one audit
    row, for the definition; the records get new versions)."""
    definition = await _repository(session, principal).locked(definition_id, expected_version=expected_version)
    table = _RECORD_TABLES[definition.entity]
    await session.execute(
        update(table)
        .where(
            table.organization_id == principal.organization_id,
            table.custom_fields.has_key(definition.key),
        )
        .values(
            custom_fields=table.custom_fields.op("-")(definition.key),
            # Their representation changed: new versions, so stale ETags are refused.
            version=table.version + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        principal,
        action=AuditAction.delete,
        entity_type="custom_field",
        entity_id=definition.id,
        changes={k: {"before": v, "after": None} for k, v in audit.snapshot(definition).items()},
    )
    await session.delete(definition)
    await session.flush()


async def definitions_for(
    session: AsyncSession,
    organization_id: uuid.UUID,
    entity: CustomFieldEntity,
    *,
    for_write: bool = False,
) -> Definitions:
    """With `for_write`, the definitions are share-locked until commit, so a definition cannot be
    deleted (its values stripped) while a record is being written with a value for it."""
    cache = transaction_cache(session, "custom_field_definitions")
    key = (organization_id, entity, for_write)
    if key in cache:
        return cache[key]  # type: ignore[no-any-return]
    statement = select(CustomFieldDefinition).where(
        CustomFieldDefinition.organization_id == organization_id,
        CustomFieldDefinition.entity == entity,
    )
    if for_write:
        statement = statement.with_for_update(key_share=True, read=True)
    rows = await session.execute(statement)
    cache[key] = definitions = {definition.key: definition for definition in rows.scalars()}
    return definitions


def filter_fields(definitions: Definitions, column: ColumnElement[Any]) -> dict[str, FieldSpec]:
    fields: dict[str, FieldSpec] = {}
    for key, definition in definitions.items():
        if definition.type is CustomFieldType.secret:
            continue  # sealed values cannot be compared: not a filter or sort field
        choices = frozenset(definition.options) if definition.type in CHOICE_TYPES else None
        spec = custom_field_spec(column, key, _FILTER_TYPES[definition.type], choices)
        fields[spec.name] = spec
    return fields


def validate_values(
    definitions: Definitions,
    incoming: Mapping[str, Any],
    *,
    current: Mapping[str, Any] | None = None,
    loc: tuple[str, ...] = ("body", "custom_fields"),
) -> dict[str, Any]:
    """Merges `incoming` into `current` (None on create); a null value removes its key."""
    merged = dict(current or {})
    errors: list[FieldError] = []
    for key, value in incoming.items():
        definition = definitions.get(key)
        if definition is None:
            errors.append(FieldError((*loc, key), "no custom field with this key is defined"))
            continue
        if value is None:
            if definition.required:
                errors.append(FieldError((*loc, key), "is required"))
            merged.pop(key, None)
            continue
        try:
            merged[key] = _coerce(definition, value)
        except ValueError as exc:
            errors.append(FieldError((*loc, key), str(exc)))
    if current is None:
        reported = {error.loc[-1] for error in errors}
        for key, definition in definitions.items():
            if definition.required and key not in merged and key not in reported:
                errors.append(FieldError((*loc, key), "is required"))
    if errors:
        raise ValidationFailed(errors)
    return merged


def _coerce(definition: CustomFieldDefinition, value: Any) -> Any:
    match definition.type:
        case CustomFieldType.secret:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if len(value) > MAX_TEXT_VALUE:
                raise ValueError(f"at most {MAX_TEXT_VALUE} characters")
            settings = get_settings()
            return secrets.seal_field(
                value, server_secret=settings.jwt_secret(), configured_keys=settings.secret_field_key_ring()
            )
        case CustomFieldType.text:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if len(value) > MAX_TEXT_VALUE:
                raise ValueError(f"at most {MAX_TEXT_VALUE} characters")
            return value
        case CustomFieldType.number:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError("must be a number")
            return value
        case CustomFieldType.date:
            if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
                raise ValueError("must be a date, YYYY-MM-DD")
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError as exc:
                raise ValueError("must be a date, YYYY-MM-DD") from exc
        case CustomFieldType.boolean:
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        case CustomFieldType.select:
            if value not in definition.options:
                raise ValueError(f"must be one of: {', '.join(definition.options)}")
            return value
        case CustomFieldType.multi_select:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("must be a list of options")
            unknown = [v for v in value if v not in definition.options]
            if unknown:
                raise ValueError(f"unknown options: {', '.join(unknown)}")
            return list(dict.fromkeys(value))
    raise AssertionError(definition.type)


def reveal_secrets(
    session: AsyncSession, principal: Principal, *, entity_type: str, record_id: uuid.UUID, values: Mapping[str, Any]
) -> dict[str, str]:
    """The record's `secret` values in clear, for an owner or admin reading one record; each
    read is audited (which keys, by whom), never the values. Others get nothing. A value sealed
    under a key no longer configured is left out (and logged), not a failed read of the record."""
    sealed = {key: value for key, value in values.items() if secrets.is_sealed(value)}
    if not sealed or principal.role not in (Role.owner, Role.admin):
        return {}
    settings = get_settings()
    revealed = {}
    for key, value in sealed.items():
        try:
            revealed[key] = secrets.unseal_field(
                value, server_secret=settings.jwt_secret(), configured_keys=settings.secret_field_key_ring()
            )
        except secrets.UnreadableSecret as error:
            log.error(
                "secret_field_unreadable", entity_type=entity_type, record_id=str(record_id), key=key, reason=str(error)
            )
    if not revealed:
        return {}
    audit.record(
        session,
        principal,
        action=AuditAction.read,
        entity_type=entity_type,
        entity_id=record_id,
        changes={f"custom_fields.{key}": {"before": None, "after": "(read)"} for key in sorted(revealed)},
    )
    return revealed

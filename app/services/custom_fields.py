"""Custom field definitions, and validation of the values records carry for them."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction, CustomFieldEntity, CustomFieldType
from app.core.errors import FieldError, ValidationFailed
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository, check_version
from app.models.company import Company
from app.models.contact import Contact
from app.models.custom_field import CustomFieldDefinition
from app.schemas.custom_field import CHOICE_TYPES, CustomFieldCreate, CustomFieldUpdate
from app.services.filters import FieldSpec, FieldType, custom_field_spec

MAX_TEXT_VALUE = 2000
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
    definition = await _repository(session, principal).get(definition_id, for_update=True)
    check_version(definition.version, expected_version)
    changes = data.changes()
    if "options" in changes:
        options = changes["options"]
        if definition.type not in CHOICE_TYPES and options:
            raise ValidationFailed(
                FieldError(
                    ("body", "options"),
                    f"a {definition.type.value} field takes no options",
                )
            )
        if definition.type in CHOICE_TYPES and not options:
            raise ValidationFailed(FieldError(("body", "options"), "a choice field needs options"))
        if len(set(options)) != len(options):
            raise ValidationFailed(FieldError(("body", "options"), "options must be unique"))
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


async def delete_definition(
    session: AsyncSession,
    principal: Principal,
    definition_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> None:
    """Deletes the definition and removes its values from every record of the entity."""
    definition = await _repository(session, principal).get(definition_id, for_update=True)
    check_version(definition.version, expected_version)
    table = _RECORD_TABLES[definition.entity]
    await session.execute(
        update(table)
        .where(
            table.organization_id == principal.organization_id,
            table.custom_fields.has_key(definition.key),
        )
        .values(custom_fields=table.custom_fields - definition.key)
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
    statement = select(CustomFieldDefinition).where(
        CustomFieldDefinition.organization_id == organization_id,
        CustomFieldDefinition.entity == entity,
    )
    if for_write:
        statement = statement.with_for_update(key_share=True, read=True)
    rows = await session.execute(statement)
    return {definition.key: definition for definition in rows.scalars()}


def filter_fields(definitions: Definitions, column: ColumnElement[Any]) -> dict[str, FieldSpec]:
    fields: dict[str, FieldSpec] = {}
    for key, definition in definitions.items():
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
        for key, definition in definitions.items():
            if definition.required and key not in merged:
                errors.append(FieldError((*loc, key), "is required"))
    if errors:
        raise ValidationFailed(errors)
    return merged


def _coerce(definition: CustomFieldDefinition, value: Any) -> Any:
    match definition.type:
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
            try:
                return date.fromisoformat(value).isoformat()
            except (TypeError, ValueError) as exc:
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

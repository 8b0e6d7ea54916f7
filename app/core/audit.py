"""Audit rows, written by services in the request's own transaction (DESIGN.md §2)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import secrets
from app.core.context import request_id_var
from app.core.enums import AuditAction
from app.core.ids import new_id
from app.core.jsonable import jsonable
from app.core.principal import Principal
from app.models.audit import AuditEntry
from app.models.base import utcnow

# Derived or bookkeeping columns: never "a change" a person made.
_NOT_AUDITED = frozenset(
    {
        "organization_id",
        "id",
        "version",
        "created_at",
        "updated_at",
        "search_text",
        "company_search_text",
        "search_grams",
        "password_hash",
        # Derived from rules, not changed by anyone (see services/scoring).
        "lead_score",
        "lead_grade",
    }
)

Snapshot = dict[str, Any]
Changes = dict[str, dict[str, Any]]


def snapshot(entity: Any, *, exclude: Iterable[str] = ()) -> Snapshot:
    """The audited column values of an ORM object, as JSON values. A sealed (`secret`) value is
    recorded as a fingerprint of its ciphertext: a change shows, the value never does."""
    skip = _NOT_AUDITED | set(exclude)
    return {
        attr.key: _masked(jsonable(getattr(entity, attr.key)))
        for attr in inspect(entity).mapper.column_attrs
        if attr.key not in skip
    }


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: f"(secret {hashlib.sha256(inner[secrets.SEALED_MARK].encode()).hexdigest()[:8]})"
            if secrets.is_sealed(inner)
            else inner
            for key, inner in value.items()
        }
    return value


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Changes:
    return {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def creation_from_values(values: Mapping[str, Any]) -> Changes:
    """A new row's changes from its column values, as `creation(snapshot(row))` gives them, for
    bulk writers that hold the values already (JSON-converted only where not empty)."""
    return {
        key: {"before": None, "after": _masked(jsonable(value))}
        for key, value in sorted(values.items())
        if key not in _NOT_AUDITED and value not in (None, [], {})
    }


def creation(after: Mapping[str, Any]) -> Changes:
    return {
        key: {"before": None, "after": value} for key, value in sorted(after.items()) if value not in (None, [], {})
    }


def record(
    session: AsyncSession,
    principal: Principal,
    *,
    action: AuditAction,
    entity_type: str,
    entity_id: uuid.UUID,
    changes: Changes,
) -> None:
    session.add(
        AuditEntry(
            **entry_values(principal, action=action, entity_type=entity_type, entity_id=entity_id, changes=changes)
        )
    )


def record_as(
    session: AsyncSession,
    actor: Any,
    *,
    organization_id: uuid.UUID,
    action: AuditAction,
    entity_type: str,
    entity_id: uuid.UUID,
    changes: Changes,
) -> None:
    """An audit row for a change a job made: `actor` is an events.Actor (the system, or whoever
    asked for the work)."""
    session.add(
        AuditEntry(
            organization_id=organization_id,
            id=new_id(),
            occurred_at=utcnow(),
            actor_type=actor.type,
            actor_id=actor.id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            changes=changes,
            request_id=request_id_var.get(),
        )
    )


def entry_values(
    principal: Principal, *, action: AuditAction, entity_type: str, entity_id: uuid.UUID, changes: Changes
) -> dict[str, Any]:
    """An audit row's columns, for `record` and for bulk writers that COPY their audit rows."""
    return {
        "organization_id": principal.organization_id,
        "id": new_id(),
        "occurred_at": utcnow(),
        "actor_type": principal.kind,
        "actor_id": principal.id,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "changes": changes,
        "request_id": request_id_var.get(),
    }

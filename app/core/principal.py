"""Who is calling: a user (JWT) or an API key, always inside one organisation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from app.core.errors import PermissionDenied
from app.core.permissions import RESTRICTED_ROLES, Role, Scope, Visibility


@dataclass(frozen=True, slots=True)
class Principal:
    organization_id: uuid.UUID
    kind: Literal["user", "api_key"]
    id: uuid.UUID
    scopes: frozenset[Scope]
    role: Role | None = None
    organization_visibility: Visibility = Visibility.all

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.id if self.kind == "user" else None

    @property
    def visibility(self) -> Visibility:
        """Record visibility for this caller: the organisation's setting binds only restricted roles."""
        if self.role in RESTRICTED_ROLES:
            return self.organization_visibility
        return Visibility.all

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"This action needs the `{scope}` scope")

    def require_requester(self, requested_by_id: uuid.UUID, what: str) -> None:
        """Job records (exports, imports): people see their organisation's, an API key its own."""
        if requested_by_id != self.id and self.role is None:
            raise PermissionDenied(f"An API key sees only its own {what}")

"""Tenancy and identity: organisations, users, teams, refresh tokens and API keys."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.core.permissions import Role, Visibility
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum

# Score thresholds are opt-in: qualifying leads by score is each organisation's call.
DEFAULT_LIFECYCLE_RULES: dict[str, Any] = {
    "mql_score": None,
    "sql_score": None,
    "loyal_orders": 5,
    "loyal_spend": None,
    "churn_days": 180,
}


class Organization(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    record_visibility: Mapped[Visibility] = mapped_column(
        str_enum(Visibility, "record_visibility"), default=Visibility.all
    )
    # A new contact whose e-mail an existing one has is merged into it instead of created.
    merge_email_duplicates: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Deals, products and orders are in this currency unless they name another.
    currency: Mapped[str] = mapped_column(String(3), default="CNY", server_default="CNY")
    # The least lead score of grades A, B and C (below C is D).
    lead_grade_thresholds: Mapped[dict[str, int]] = mapped_column(
        JSONB, default=lambda: {"A": 80, "B": 50, "C": 20}, server_default='{"A": 80, "B": 50, "C": 20}'
    )
    # When rules move contacts along the lifecycle (see services/lifecycle; null turns a rule off).
    lifecycle_rules: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        default=lambda: dict(DEFAULT_LIFECYCLE_RULES),
        server_default=(
            '{"mql_score": null, "sql_score": null, "loyal_orders": 5, "loyal_spend": null, "churn_days": 180}'
        ),
    )
    # Set when scoring rules or thresholds change; cleared by the job that rescored everyone.
    rescore_requested_at: Mapped[datetime | None] = mapped_column(default=None)


class User(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Sign-in is by e-mail alone, so an address belongs to one user anywhere.
        Index("uq_users_email", "email", unique=True),
    )

    email: Mapped[str] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(str_enum(Role, "user_role"))
    is_active: Mapped[bool] = mapped_column(default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(default=None)
    # Away on these days (both included; no end: until further notice): assignment skips them.
    out_of_office_from: Mapped[date | None] = mapped_column(default=None)
    out_of_office_until: Mapped[date | None] = mapped_column(default=None)


class Team(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "teams"
    __table_args__ = (Index("uq_teams_organization_id_name", "organization_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["organization_id", "user_id"], ["users.organization_id", "users.id"]),
        Index("ix_team_members_organization_id_user_id", "organization_id", "user_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
        sort_order=-20,
    )
    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class RefreshToken(TenantMixin, Base):
    """One row per issued refresh token; a family is one sign-in and its rotations."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "user_id"], ["users.organization_id", "users.id"]),
        Index("uq_refresh_tokens_token_hash", "token_hash", unique=True),
        Index(
            "ix_refresh_tokens_organization_id_family_id",
            "organization_id",
            "family_id",
        ),
    )

    user_id: Mapped[uuid.UUID]
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiKey(TenantMixin, TimestampMixin, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "created_by_id"], ["users.organization_id", "users.id"]),
        Index("uq_api_keys_prefix", "prefix", unique=True),
    )

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_by_id: Mapped[uuid.UUID]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

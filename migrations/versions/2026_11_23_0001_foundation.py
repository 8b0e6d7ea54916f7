"""Foundation: tenancy, identity, contacts, companies, custom fields, audit, idempotency.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:05:12.885318
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Every run of one, two and three characters of each word: the grams a `?q=` term is looked up
# by (app/core/text_search.py makes the same ones for the query). Words split on whitespace and
# on the U+001F separator between a record's fields.
SEARCH_GRAMS = r"""
CREATE FUNCTION rapport_search_grams(document text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(DISTINCT gram), ARRAY[]::text[])
    FROM regexp_split_to_table(document, '[[:space:]\x1f]+') AS word
    CROSS JOIN LATERAL generate_series(1, char_length(word)) AS position
    CROSS JOIN LATERAL (
        VALUES (substr(word, position, 1)), (substr(word, position, 2)), (substr(word, position, 3))
    ) AS grams(gram)
$$
"""


# Search asks pg_stats which grams are common (app/core/text_search.py); a longer list of most
# common elements (10,000 instead of 1,000) reaches grams held by 0.1 % of records.
GRAM_STATISTICS = "ALTER TABLE {table} ALTER COLUMN search_grams SET STATISTICS 1000"


def upgrade() -> None:
    op.execute(SEARCH_GRAMS)
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_status", sa.SmallInteger(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False)
    op.create_index("uq_idempotency_keys_scope_key", "idempotency_keys", ["scope", "key"], unique=True)
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "record_visibility",
            sa.Enum("all", "team", "own", name="record_visibility", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "audit_log",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column(
            "action",
            sa.Enum(
                "create", "update", "delete", "restore", name="audit_action", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_log_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_organization_id_actor_id_id", "audit_log", ["organization_id", "actor_id", "id"], unique=False
    )
    op.create_index(
        "ix_audit_log_organization_id_entity",
        "audit_log",
        ["organization_id", "entity_type", "entity_id", "id"],
        unique=False,
    )
    op.create_table(
        "custom_field_definitions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "entity",
            sa.Enum("contact", "company", name="custom_field_entity", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "text",
                "number",
                "date",
                "boolean",
                "select",
                "multi_select",
                name="custom_field_type",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("required", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_custom_field_definitions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_custom_field_definitions")),
    )
    op.create_index(
        "uq_custom_field_definitions_organization_id_entity_key",
        "custom_field_definitions",
        ["organization_id", "entity", "key"],
        unique=True,
    )
    op.create_table(
        "teams",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_teams_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_teams")),
    )
    op.create_index("uq_teams_organization_id_name", "teams", ["organization_id", "name"], unique=True)
    op.create_table(
        "users",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "owner",
                "admin",
                "manager",
                "sales",
                "support",
                "marketing",
                "viewer",
                name="user_role",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_users_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_users")),
    )
    op.create_index("uq_users_email", "users", ["email"], unique=True)
    op.create_table(
        "api_keys",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scopes", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "created_by_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_api_keys_organization_id_created_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_api_keys")),
    )
    op.create_index("uq_api_keys_prefix", "api_keys", ["prefix"], unique=True)
    op.create_table(
        "companies",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column(
            "size",
            sa.Enum(
                "1-10",
                "11-50",
                "51-200",
                "201-500",
                "501-1000",
                "1001-5000",
                "5001+",
                name="company_size",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("tags", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("custom_fields", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "search_grams",
            sa.ARRAY(sa.Text()),
            sa.Computed("rapport_search_grams(search_text)", persisted=True),
            nullable=False,
        ),
        sa.Column("address_line1", sa.String(length=300), nullable=True),
        sa.Column("address_line2", sa.String(length=300), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "owner_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_companies_organization_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_companies_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_companies")),
    )
    op.create_index(
        "ix_companies_custom_fields",
        "companies",
        ["custom_fields"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
    op.create_index("ix_companies_organization_id_domain", "companies", ["organization_id", "domain"], unique=False)
    op.create_index(
        "ix_companies_organization_id_name_id", "companies", ["organization_id", "name", "id"], unique=False
    )
    op.create_index(
        "ix_companies_organization_id_owner_id_id", "companies", ["organization_id", "owner_id", "id"], unique=False
    )
    op.create_index(
        "ix_companies_organization_id_updated_at_id", "companies", ["organization_id", "updated_at", "id"], unique=False
    )
    op.create_index("ix_companies_search_grams", "companies", ["search_grams"], unique=False, postgresql_using="gin")
    op.execute(GRAM_STATISTICS.format(table="companies"))
    op.create_index("ix_companies_tags", "companies", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(
        "uq_companies_organization_id_external_id",
        "companies",
        ["organization_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_refresh_tokens_organization_id_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_refresh_tokens_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_refresh_tokens")),
    )
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"], unique=False)
    op.create_index(
        "ix_refresh_tokens_organization_id_family_id", "refresh_tokens", ["organization_id", "family_id"], unique=False
    )
    op.create_index("uq_refresh_tokens_token_hash", "refresh_tokens", ["token_hash"], unique=True)
    op.create_table(
        "team_members",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name=op.f("fk_team_members_organization_id_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_team_members_organization_id_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_team_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "team_id", "user_id", name=op.f("pk_team_members")),
    )
    op.create_index(
        "ix_team_members_organization_id_user_id", "team_members", ["organization_id", "user_id"], unique=False
    )
    op.create_table(
        "contacts",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("additional_emails", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("additional_phones", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column(
            "source",
            sa.Enum(
                "manual",
                "api",
                "web_form",
                "import",
                "integration",
                "email",
                "phone",
                "social",
                "event",
                "referral",
                "other",
                name="contact_source",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "lifecycle_stage",
            sa.Enum(
                "subscriber",
                "lead",
                "marketing_qualified_lead",
                "sales_qualified_lead",
                "opportunity",
                "customer",
                "evangelist",
                "other",
                name="lifecycle_stage",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("tags", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("custom_fields", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("email_opt_in", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("email_opt_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_opt_in_source", sa.String(length=100), nullable=True),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        sa.Column("company_search_text", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "search_grams",
            sa.ARRAY(sa.Text()),
            sa.Computed("rapport_search_grams(search_text || chr(31) || company_search_text)", persisted=True),
            nullable=False,
        ),
        sa.Column("address_line1", sa.String(length=300), nullable=True),
        sa.Column("address_line2", sa.String(length=300), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "company_id"],
            ["companies.organization_id", "companies.id"],
            name=op.f("fk_contacts_organization_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "owner_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_contacts_organization_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contacts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_contacts")),
    )
    op.create_index(
        "ix_contacts_custom_fields",
        "contacts",
        ["custom_fields"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_contacts_organization_id_company_id", "contacts", ["organization_id", "company_id"], unique=False
    )
    op.create_index("ix_contacts_organization_id_email", "contacts", ["organization_id", "email"], unique=False)
    op.create_index(
        "ix_contacts_organization_id_owner_id_id", "contacts", ["organization_id", "owner_id", "id"], unique=False
    )
    op.create_index("ix_contacts_organization_id_phone", "contacts", ["organization_id", "phone"], unique=False)
    op.create_index(
        "ix_contacts_organization_id_updated_at_id", "contacts", ["organization_id", "updated_at", "id"], unique=False
    )
    op.create_index("ix_contacts_search_grams", "contacts", ["search_grams"], unique=False, postgresql_using="gin")
    op.execute(GRAM_STATISTICS.format(table="contacts"))
    op.create_index("ix_contacts_tags", "contacts", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(
        "uq_contacts_organization_id_external_id",
        "contacts",
        ["organization_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_contacts_organization_id_external_id",
        table_name="contacts",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index("ix_contacts_tags", table_name="contacts", postgresql_using="gin")
    op.drop_index("ix_contacts_search_grams", table_name="contacts", postgresql_using="gin")
    op.drop_index("ix_contacts_organization_id_updated_at_id", table_name="contacts")
    op.drop_index("ix_contacts_organization_id_phone", table_name="contacts")
    op.drop_index("ix_contacts_organization_id_owner_id_id", table_name="contacts")
    op.drop_index("ix_contacts_organization_id_email", table_name="contacts")
    op.drop_index("ix_contacts_organization_id_company_id", table_name="contacts")
    op.drop_index(
        "ix_contacts_custom_fields",
        table_name="contacts",
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
    op.drop_table("contacts")
    op.drop_index("ix_team_members_organization_id_user_id", table_name="team_members")
    op.drop_table("team_members")
    op.drop_index("uq_refresh_tokens_token_hash", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_organization_id_family_id", table_name="refresh_tokens")
    op.drop_index(op.f("ix_refresh_tokens_expires_at"), table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index(
        "uq_companies_organization_id_external_id",
        table_name="companies",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index("ix_companies_tags", table_name="companies", postgresql_using="gin")
    op.drop_index("ix_companies_search_grams", table_name="companies", postgresql_using="gin")
    op.drop_index("ix_companies_organization_id_updated_at_id", table_name="companies")
    op.drop_index("ix_companies_organization_id_owner_id_id", table_name="companies")
    op.drop_index("ix_companies_organization_id_name_id", table_name="companies")
    op.drop_index("ix_companies_organization_id_domain", table_name="companies")
    op.drop_index(
        "ix_companies_custom_fields",
        table_name="companies",
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
    op.drop_table("companies")
    op.drop_index("uq_api_keys_prefix", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("uq_users_email", table_name="users")
    op.drop_table("users")
    op.drop_index("uq_teams_organization_id_name", table_name="teams")
    op.drop_table("teams")
    op.drop_index("uq_custom_field_definitions_organization_id_entity_key", table_name="custom_field_definitions")
    op.drop_table("custom_field_definitions")
    op.drop_index("ix_audit_log_organization_id_entity", table_name="audit_log")
    op.drop_index("ix_audit_log_organization_id_actor_id_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("organizations")
    op.drop_index("uq_idempotency_keys_scope_key", table_name="idempotency_keys")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.execute("DROP FUNCTION rapport_search_grams(text)")

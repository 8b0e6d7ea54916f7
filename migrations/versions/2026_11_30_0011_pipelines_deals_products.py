"""Sales pipelines and stages, products, deals with contacts, line items and stage history.

Deals are searched like contacts and companies (grams by trigger, see 0009), take custom fields
(`deal` joins the custom field entities), and every existing organisation gets the default sales
pipeline a new one is founded with.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 05:18:06.392750
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from uuid_utils import compat

_DEAL_GRAMS = """
CREATE FUNCTION rapport_deals_search_grams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.search_grams IS NULL THEN
            NEW.search_grams := rapport_search_grams(NEW.search_text);
        END IF;
    ELSIF NEW.search_text IS DISTINCT FROM OLD.search_text
          AND NEW.search_grams IS NOT DISTINCT FROM OLD.search_grams THEN
        NEW.search_grams := rapport_search_grams(NEW.search_text);
    END IF;
    RETURN NEW;
END
$$
"""

# As app/services/pipelines.DEFAULT_STAGES had them when this ran.
_DEFAULT_PIPELINE = "销售管道"
_DEFAULT_STAGES = (
    ("潜在客户", 10, "open"),
    ("需求分析", 20, "open"),
    ("方案制定", 40, "open"),
    ("商务谈判", 70, "open"),
    ("成交", 100, "won"),
    ("输单", 0, "lost"),
)


def _entity_check(*entities: str) -> None:
    op.drop_constraint(
        op.f("ck_custom_field_definitions_custom_field_entity"), "custom_field_definitions", type_="check"
    )
    listed = ", ".join(f"'{entity}'" for entity in entities)
    op.create_check_constraint(
        op.f("ck_custom_field_definitions_custom_field_entity"), "custom_field_definitions", f"entity IN ({listed})"
    )


def _default_pipelines() -> None:
    connection = op.get_bind()
    now = datetime.now(UTC)
    for (organization_id,) in connection.execute(sa.text("SELECT id FROM organizations")):
        pipeline_id = compat.uuid7()
        connection.execute(
            sa.text(
                "INSERT INTO pipelines (organization_id, id, name, is_default, created_at, updated_at, version) "
                "VALUES (:organization_id, :id, :name, true, :now, :now, 1)"
            ),
            {"organization_id": organization_id, "id": pipeline_id, "name": _DEFAULT_PIPELINE, "now": now},
        )
        for position, (name, probability, kind) in enumerate(_DEFAULT_STAGES):
            connection.execute(
                sa.text(
                    "INSERT INTO pipeline_stages (organization_id, id, pipeline_id, name, position, probability, "
                    "kind, created_at, updated_at) VALUES (:organization_id, :id, :pipeline_id, :name, :position, "
                    ":probability, :kind, :now, :now)"
                ),
                {
                    "organization_id": organization_id,
                    "id": compat.uuid7(),
                    "pipeline_id": pipeline_id,
                    "name": name,
                    "position": position,
                    "probability": probability,
                    "kind": kind,
                    "now": now,
                },
            )


revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("organizations", sa.Column("currency", sa.String(length=3), server_default="CNY", nullable=False))
    op.create_table(
        "pipelines",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_pipelines_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("organization_id", "name", name=op.f("uq_pipelines_organization_id_name")),
    )
    op.create_index(
        "uq_pipelines_default", "pipelines", ["organization_id"], unique=True, postgresql_where=sa.text("is_default")
    )
    op.create_table(
        "products",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("price", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("price >= 0", name=op.f("ck_products_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_products_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_products")),
        sa.UniqueConstraint("organization_id", "sku", name=op.f("uq_products_organization_id_sku")),
    )
    op.create_table(
        "pipeline_stages",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("probability", sa.SmallInteger(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("open", "won", "lost", name="stage_kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("probability BETWEEN 0 AND 100", name=op.f("ck_pipeline_stages_probability_range")),
        sa.ForeignKeyConstraint(
            ["organization_id", "pipeline_id"],
            ["pipelines.organization_id", "pipelines.id"],
            name=op.f("fk_pipeline_stages_organization_id_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_pipeline_stages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_pipeline_stages")),
        sa.UniqueConstraint(
            "organization_id", "pipeline_id", "id", name=op.f("uq_pipeline_stages_organization_id_pipeline_id_id")
        ),
    )
    op.create_index(
        "uq_pipeline_stages_live_name",
        "pipeline_stages",
        ["organization_id", "pipeline_id", "name"],
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
    )
    op.create_table(
        "deals",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("probability", sa.SmallInteger(), nullable=False),
        sa.Column("probability_manual", sa.Boolean(), nullable=False),
        sa.Column("expected_close_date", sa.Date(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
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
                name="deal_source",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum("open", "won", "lost", name="deal_status", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lost_reason", sa.String(length=500), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("custom_fields", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        sa.Column("search_grams", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_deals_amount_not_negative")),
        sa.CheckConstraint("probability BETWEEN 0 AND 100", name=op.f("ck_deals_probability_range")),
        sa.ForeignKeyConstraint(
            ["organization_id", "company_id"],
            ["companies.organization_id", "companies.id"],
            name=op.f("fk_deals_organization_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "owner_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_deals_organization_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "pipeline_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.pipeline_id", "pipeline_stages.id"],
            name=op.f("fk_deals_organization_id_pipeline_id_stage_id_pipeline_stages"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_deals_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_deals")),
    )
    op.create_index("ix_deals_board", "deals", ["organization_id", "pipeline_id", "stage_id", "id"], unique=False)
    op.create_index(
        "ix_deals_custom_fields",
        "deals",
        ["custom_fields"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_deals_forecast",
        "deals",
        ["organization_id", "expected_close_date"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_deals_organization_id_company_id", "deals", ["organization_id", "company_id"], unique=False)
    op.create_index(
        "ix_deals_organization_id_owner_id_id", "deals", ["organization_id", "owner_id", "id"], unique=False
    )
    op.create_index(
        "ix_deals_organization_id_updated_at_id", "deals", ["organization_id", "updated_at", "id"], unique=False
    )
    op.create_index("ix_deals_search_grams", "deals", ["search_grams"], unique=False, postgresql_using="gin")
    op.create_index("ix_deals_tags", "deals", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(
        "uq_deals_organization_id_external_id",
        "deals",
        ["organization_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "deal_contacts",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_deal_contacts_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "deal_id"],
            ["deals.organization_id", "deals.id"],
            name=op.f("fk_deal_contacts_organization_id_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "deal_id", "contact_id", name=op.f("pk_deal_contacts")),
    )
    op.create_index(
        "ix_deal_contacts_organization_id_contact_id", "deal_contacts", ["organization_id", "contact_id"], unique=False
    )
    op.create_table(
        "deal_line_items",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("discount_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.CheckConstraint("discount_percent BETWEEN 0 AND 100", name=op.f("ck_deal_line_items_discount_range")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_deal_line_items_quantity_positive")),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_deal_line_items_unit_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["organization_id", "deal_id"],
            ["deals.organization_id", "deals.id"],
            name=op.f("fk_deal_line_items_organization_id_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "product_id"],
            ["products.organization_id", "products.id"],
            name=op.f("fk_deal_line_items_organization_id_product_id_products"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_deal_line_items_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_deal_line_items")),
    )
    op.create_index(
        "ix_deal_line_items_deal", "deal_line_items", ["organization_id", "deal_id", "position"], unique=False
    )
    op.create_table(
        "deal_stage_history",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id", "deal_id"],
            ["deals.organization_id", "deals.id"],
            name=op.f("fk_deal_stage_history_organization_id_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "pipeline_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.pipeline_id", "pipeline_stages.id"],
            name=op.f("fk_deal_stage_history_organization_id_pipeline_id_stage_id_pipeline_stages"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_deal_stage_history_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_deal_stage_history")),
    )
    op.create_index(
        "ix_deal_stage_history_deal", "deal_stage_history", ["organization_id", "deal_id", "entered_at"], unique=False
    )
    op.create_index(
        "ix_deal_stage_history_funnel",
        "deal_stage_history",
        ["organization_id", "pipeline_id", "entered_at", "stage_id"],
        unique=False,
    )
    op.execute(_DEAL_GRAMS)
    op.execute(
        "CREATE TRIGGER deals_search_grams BEFORE INSERT OR UPDATE ON deals "
        "FOR EACH ROW EXECUTE FUNCTION rapport_deals_search_grams()"
    )
    op.execute("ALTER TABLE deals ALTER COLUMN search_grams SET STATISTICS 1000")
    _entity_check("contact", "company", "deal")
    _default_pipelines()


def downgrade() -> None:
    op.execute("DELETE FROM custom_field_definitions WHERE entity = 'deal'")
    _entity_check("contact", "company")
    op.drop_column("organizations", "currency")
    op.drop_index("ix_deal_stage_history_funnel", table_name="deal_stage_history")
    op.drop_index("ix_deal_stage_history_deal", table_name="deal_stage_history")
    op.drop_table("deal_stage_history")
    op.drop_index("ix_deal_line_items_deal", table_name="deal_line_items")
    op.drop_table("deal_line_items")
    op.drop_index("ix_deal_contacts_organization_id_contact_id", table_name="deal_contacts")
    op.drop_table("deal_contacts")
    op.drop_index(
        "uq_deals_organization_id_external_id", table_name="deals", postgresql_where=sa.text("external_id IS NOT NULL")
    )
    op.drop_index("ix_deals_tags", table_name="deals", postgresql_using="gin")
    op.drop_index("ix_deals_search_grams", table_name="deals", postgresql_using="gin")
    op.drop_index("ix_deals_organization_id_updated_at_id", table_name="deals")
    op.drop_index("ix_deals_organization_id_owner_id_id", table_name="deals")
    op.drop_index("ix_deals_organization_id_company_id", table_name="deals")
    op.drop_index("ix_deals_forecast", table_name="deals", postgresql_where=sa.text("status = 'open'"))
    op.drop_index(
        "ix_deals_custom_fields",
        table_name="deals",
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
    op.drop_index("ix_deals_board", table_name="deals")
    op.drop_table("deals")
    op.execute("DROP FUNCTION rapport_deals_search_grams()")
    op.drop_index(
        "uq_pipeline_stages_live_name", table_name="pipeline_stages", postgresql_where=sa.text("archived_at IS NULL")
    )
    op.drop_table("pipeline_stages")
    op.drop_table("products")
    op.drop_index("uq_pipelines_default", table_name="pipelines", postgresql_where=sa.text("is_default"))
    op.drop_table("pipelines")

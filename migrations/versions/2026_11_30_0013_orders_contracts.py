"""Orders and contracts.

Orders with server-priced line items; contracts with their per-organisation, per-year number
counters and the templates their documents are rendered from. The partial index on active
contracts' end dates serves the reminder and expiry jobs, which scan across organisations.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 05:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_number_counters",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contract_number_counters_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "year", name=op.f("pk_contract_number_counters")),
    )
    op.create_table(
        "contract_templates",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contract_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_contract_templates")),
        sa.UniqueConstraint("organization_id", "name", name=op.f("uq_contract_templates_organization_id_name")),
    )
    op.create_table(
        "contracts",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=True),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "sent",
                "signed",
                "active",
                "expired",
                "terminated",
                name="contract_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("value", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("renewal_notice_days", sa.SmallInteger(), nullable=False),
        sa.Column("renewal_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("document_html", sa.Text(), nullable=True),
        sa.Column("document_rendered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("end_date >= start_date", name=op.f("ck_contracts_ends_after_start")),
        sa.CheckConstraint("renewal_notice_days BETWEEN 0 AND 365", name=op.f("ck_contracts_renewal_notice_range")),
        sa.CheckConstraint("value >= 0", name=op.f("ck_contracts_value_not_negative")),
        sa.ForeignKeyConstraint(
            ["organization_id", "company_id"],
            ["companies.organization_id", "companies.id"],
            name=op.f("fk_contracts_organization_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "deal_id"],
            ["deals.organization_id", "deals.id"],
            name=op.f("fk_contracts_organization_id_deal_id_deals"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "template_id"],
            ["contract_templates.organization_id", "contract_templates.id"],
            name=op.f("fk_contracts_organization_id_template_id_contract_templates"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contracts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("organization_id", "number", name=op.f("uq_contracts_organization_id_number")),
    )
    op.create_index(
        "ix_contracts_active_end_date",
        "contracts",
        ["end_date"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_contracts_organization_id_company_id", "contracts", ["organization_id", "company_id"], unique=False
    )
    op.create_index("ix_contracts_organization_id_deal_id", "contracts", ["organization_id", "deal_id"], unique=False)
    op.create_index(
        "ix_contracts_organization_id_status_id", "contracts", ["organization_id", "status", "id"], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("deal_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "confirmed",
                "fulfilled",
                "paid",
                "cancelled",
                name="order_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("tax_total", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("total", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("contact_id IS NOT NULL OR company_id IS NOT NULL", name=op.f("ck_orders_has_customer")),
        sa.CheckConstraint(
            "subtotal >= 0 AND tax_total >= 0 AND total = subtotal + tax_total", name=op.f("ck_orders_totals")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "company_id"],
            ["companies.organization_id", "companies.id"],
            name=op.f("fk_orders_organization_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_orders_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "deal_id"],
            ["deals.organization_id", "deals.id"],
            name=op.f("fk_orders_organization_id_deal_id_deals"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_orders_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_organization_id_company_id", "orders", ["organization_id", "company_id"], unique=False)
    op.create_index("ix_orders_organization_id_contact_id", "orders", ["organization_id", "contact_id"], unique=False)
    op.create_index("ix_orders_organization_id_deal_id", "orders", ["organization_id", "deal_id"], unique=False)
    op.create_index("ix_orders_organization_id_status_id", "orders", ["organization_id", "status", "id"], unique=False)
    op.create_table(
        "order_line_items",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("discount_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("tax_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("net_amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("tax_amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.CheckConstraint("discount_percent BETWEEN 0 AND 100", name=op.f("ck_order_line_items_discount_range")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_line_items_quantity_positive")),
        sa.CheckConstraint("tax_percent BETWEEN 0 AND 100", name=op.f("ck_order_line_items_tax_range")),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_order_line_items_unit_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["organization_id", "order_id"],
            ["orders.organization_id", "orders.id"],
            name=op.f("fk_order_line_items_organization_id_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "product_id"],
            ["products.organization_id", "products.id"],
            name=op.f("fk_order_line_items_organization_id_product_id_products"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_order_line_items_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_order_line_items")),
    )
    op.create_index(
        "ix_order_line_items_order", "order_line_items", ["organization_id", "order_id", "position"], unique=False
    )
    op.create_index(
        "ix_order_line_items_organization_id_product_id",
        "order_line_items",
        ["organization_id", "product_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_order_line_items_organization_id_product_id", table_name="order_line_items")
    op.drop_index("ix_order_line_items_order", table_name="order_line_items")
    op.drop_table("order_line_items")
    op.drop_index("ix_orders_organization_id_status_id", table_name="orders")
    op.drop_index("ix_orders_organization_id_deal_id", table_name="orders")
    op.drop_index("ix_orders_organization_id_contact_id", table_name="orders")
    op.drop_index("ix_orders_organization_id_company_id", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_contracts_organization_id_status_id", table_name="contracts")
    op.drop_index("ix_contracts_organization_id_deal_id", table_name="contracts")
    op.drop_index("ix_contracts_organization_id_company_id", table_name="contracts")
    op.drop_index("ix_contracts_active_end_date", table_name="contracts", postgresql_where=sa.text("status = 'active'"))
    op.drop_table("contracts")
    op.drop_table("contract_templates")
    op.drop_table("contract_number_counters")

"""Indexes for the sales reports (funnel, forecast, rep performance, velocity).

Each is covering, so a report reads an index and not the deals heap (a deal row carries its
search text and grams):

- `ix_deals_report_open`: open, active deals by expected close date (forecast; open pipeline
  amounts and open deal counts);
- `ix_deals_report_closed`: won and lost deals by close time (won amounts, win rates, cycles);
- `ix_deal_stage_history_report`: stage visits by pipeline and entry time (funnel);
- `ix_deals_archived`: the few archived deals, which the funnel leaves out of the stage history
  (without it that costs a scan of every deal).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deals_report_open",
        "deals",
        ["organization_id", "expected_close_date"],
        unique=False,
        postgresql_include=["pipeline_id", "owner_id", "currency", "amount", "probability"],
        postgresql_where=sa.text("status = 'open' AND archived_at IS NULL"),
    )
    op.create_index(
        "ix_deals_report_closed",
        "deals",
        ["organization_id", "closed_at"],
        unique=False,
        postgresql_include=["pipeline_id", "owner_id", "status", "currency", "amount", "created_at"],
        postgresql_where=sa.text("closed_at IS NOT NULL AND archived_at IS NULL"),
    )
    op.create_index(
        "ix_deal_stage_history_report",
        "deal_stage_history",
        ["organization_id", "pipeline_id", "entered_at"],
        unique=False,
        postgresql_include=["stage_id", "deal_id", "exited_at"],
    )

    op.create_index(
        "ix_deals_archived",
        "deals",
        ["organization_id", "id"],
        unique=False,
        postgresql_where=sa.text("archived_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deals_archived", table_name="deals")
    op.drop_index("ix_deal_stage_history_report", table_name="deal_stage_history")
    op.drop_index("ix_deals_report_closed", table_name="deals")
    op.drop_index("ix_deals_report_open", table_name="deals")

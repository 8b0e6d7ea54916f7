"""Funnel facts: the stage history by deal, covering, for a restricted caller's funnel.

A sales rep's funnel (record visibility `own`/`team`) reads the stage visits of the deals the rep
may see. Starting from those deals (`ix_deals_organization_id_owner_id_id`) and fetching their
visits by deal needs each visit's pipeline, stage and exit time: `ix_deal_stage_history_deal`
now carries them (INCLUDE), so that lookup is index-only instead of one heap fetch per visit.
The key columns are unchanged, so every other use of the index is served as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deal_stage_history_deal", table_name="deal_stage_history")
    op.create_index(
        "ix_deal_stage_history_deal",
        "deal_stage_history",
        ["organization_id", "deal_id", "entered_at"],
        unique=False,
        postgresql_include=["pipeline_id", "stage_id", "exited_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_deal_stage_history_deal", table_name="deal_stage_history")
    op.create_index(
        "ix_deal_stage_history_deal", "deal_stage_history", ["organization_id", "deal_id", "entered_at"], unique=False
    )

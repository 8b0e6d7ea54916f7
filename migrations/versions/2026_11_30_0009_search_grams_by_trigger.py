"""Search grams: a plain column a trigger fills in, instead of a generated one.

A generated column cannot be given: every bulk writer paid for `rapport_search_grams` in the
database (about 170 µs a contact, most of an import's database time). Now a writer may give the
grams (imports compute them in Python, the same ones); when it does not, or changes the text
without them, the trigger computes them as the generated column did. Existing values stay.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 03:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → the document its grams are made of (as the generated columns had it)
_DOCUMENTS = {
    "contacts": "{row}.search_text || chr(31) || {row}.company_search_text",
    "companies": "{row}.search_text",
}

_TRIGGER_FUNCTION = """
CREATE FUNCTION rapport_{table}_search_grams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.search_grams IS NULL THEN
            NEW.search_grams := rapport_search_grams({new_document});
        END IF;
    ELSIF ({new_document}) IS DISTINCT FROM ({old_document})
          AND NEW.search_grams IS NOT DISTINCT FROM OLD.search_grams THEN
        NEW.search_grams := rapport_search_grams({new_document});
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    for table, document in _DOCUMENTS.items():
        op.execute(f"ALTER TABLE {table} ALTER COLUMN search_grams DROP EXPRESSION")
        op.execute(
            _TRIGGER_FUNCTION.format(
                table=table, new_document=document.format(row="NEW"), old_document=document.format(row="OLD")
            )
        )
        op.execute(
            f"CREATE TRIGGER {table}_search_grams BEFORE INSERT OR UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION rapport_{table}_search_grams()"
        )


def downgrade() -> None:
    for table, document in _DOCUMENTS.items():
        op.execute(f"DROP TRIGGER {table}_search_grams ON {table}")
        op.execute(f"DROP FUNCTION rapport_{table}_search_grams()")
        op.execute(f"ALTER TABLE {table} DROP COLUMN search_grams")
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN search_grams text[] "
            f"GENERATED ALWAYS AS (rapport_search_grams({document.format(row=table)})) STORED"
        )
        op.execute(f"CREATE INDEX ix_{table}_search_grams ON {table} USING gin (search_grams)")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN search_grams SET STATISTICS 1000")

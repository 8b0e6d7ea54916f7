"""Which columns refer to a table, read from PostgreSQL's catalogue rather than listed by hand.

A merge repoints every reference it finds here, and the privacy rights check their own list of
what refers to a contact against it, so a table added by a later issue is either moved, exported
and scrubbed, or fails a test; it is never silently left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_REFERENCES = text(
    """
    SELECT c.conrelid::regclass::text AS referring_table,
           array_agg(a.attname::text ORDER BY k.ordinality) AS columns
    FROM pg_constraint c
    CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ordinality)
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
    WHERE c.contype = 'f' AND c.confrelid = CAST(:table AS regclass)
    GROUP BY c.oid, c.conrelid
    ORDER BY referring_table
    """
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A foreign key into a tenant table: `table.column`, next to its `organization_id`."""

    table: str
    column: str

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


async def references_to(session: AsyncSession, table: str) -> list[Reference]:
    """Every foreign key into `table`. Each must be composite with the tenant key first
    (`(organization_id, x_id)`, DESIGN.md §3): one that is not is a schema error, raised."""
    found = []
    for referring_table, columns in await session.execute(_REFERENCES, {"table": table}):
        if len(columns) != 2 or columns[0] != "organization_id":
            raise RuntimeError(f"{referring_table} refers to {table} without the composite tenant key")
        found.append(Reference(referring_table, columns[1]))
    return found

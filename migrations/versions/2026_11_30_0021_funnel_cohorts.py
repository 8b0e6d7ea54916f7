"""Funnel facts kept at write time: the cohort funnel reads them instead of the stage history.

Reading stage history cannot give a funnel over a million deals in under 300 ms (`count(*)` of a
year's visits alone takes 436 ms on the bench machine), so the facts are aggregated when history
is written, in a form that does not depend on the stages' order:

- `funnel_deal_paths`: per deal and pipeline, the day (UTC) it first entered the pipeline (its
  cohort), its owner, whether it is active (not archived), the sorted set of stage ids it has
  entered there and its finished visits (stage and length, parallel arrays). Everything the
  deal's facts hold, so that they can be subtracted from it alone; never read by reports.
- `funnel_cohorts`: active deals per (pipeline, cohort day, owner, stage set). A report maps each
  set to its furthest step with the stages' order *now*, so a reorder, rename, kind change or
  archived stage needs no rebuild.
- `funnel_stays`: the finished stage visits of those deals as histograms per (pipeline, cohort
  day, owner, stage, log-spaced bucket of the stay's length): how many, and their summed
  microseconds (exact averages).

Both fact tables also hold organisation-wide rows (`all_owners`, owner collapsed): the unrestricted
funnel reads those, 20 times fewer rows on the bench data than summing every owner's (the stays
histograms of a year are 700,000 owner rows). Restricted callers and `owner_id=` read the owner
rows. `owner_id` may be NULL (unowned deals), hence `UNIQUE NULLS NOT DISTINCT` keys.

Statement-level AFTER triggers with transition tables on `deal_stage_history` (INSERT, UPDATE,
DELETE) and `deals` (UPDATE of the owner or archived state, DELETE) only queue the deals a
statement touched in `funnel_dirty`, keyed by the writing transaction's id (`ON CONFLICT DO
NOTHING`: repeats cost an index probe, and two transactions never meet on a key). The facts are
applied at COMMIT, once per transaction, by a deferred constraint trigger on `funnel_dirty`: its
first invocation takes the transaction's queue (DELETE … RETURNING), subtracts the deals' stored
paths, adds the paths recomputed from the history and deals as the transaction leaves them, in one
set-based statement, and deletes rows that reach zero; the invocations after it find their row
gone and return. So every writer (API, batches, imports, COPY) keeps the facts exact, yet the
shared fact rows (today's cohort of a pipeline above all) are locked only while a transaction
commits, not from its first write on: a 200-deal import chunk holds no fact row while it writes,
and two multi-deal transactions cannot deadlock on them. Each transaction upserts in key order
(cohorts, then stays), and the app's `before_commit` has already taken the organisation's
`event_streams` row (app/core/events.py), so same-organisation commits apply one after another.
A savepoint rolled back takes its queued rows (and their trigger events) with it, and its writes;
the deals it touched are recomputed only if queued outside it too, from the history as the
transaction leaves it. TRUNCATE stays immediate (the facts are emptied with the table). A deal's
writers are serialised by its own row (every app write to its history updates it) before commit.

`funnel_dirty` is UNLOGGED: a row never outlives its transaction (the commit deletes it, an abort
leaves it dead), so it needs no crash safety, and WAL is spared two writes per touched deal.

Foreign keys: the organisation with ON DELETE CASCADE, and the stays' stage (stages are archived,
never deleted; they go with their pipeline). None to `pipelines`: checking it, a new fact row would
lock the pipeline's row (FOR KEY SHARE) at COMMIT, with the organisation's event stream already
held, while a stage change holds that row FOR UPDATE and then waits for the stream to write its
deals' events: a deadlock. A pipeline whose history holds visits cannot be deleted, so none
leaves facts behind. None to `deals`: the commit needs a deleted deal's
path row to subtract it, and a cascade would remove it first. None to `users`: `owner_id` is a
copy of the deal's, which its own foreign key already guards.

`rapport_rebuild_funnel_facts(organization)` recomputes an organisation's facts (every one's when
NULL) from the history: the backfill below, and bench loads that write with triggers disabled.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A stay's bucket: 0 below one second, else 1 + floor(log_1.05(seconds)), so bucket b ≥ 1 holds
# [1.05^(b-1), 1.05^b) seconds. `app.services.funnel_cohorts.STAY_BUCKET_RATIO` reads them back;
# a median interpolated inside its bucket is within 5 % (or one second) of the exact one.
_BUCKET = """
CREATE FUNCTION rapport_funnel_stay_bucket(microseconds bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN microseconds < 1000000 THEN 0
                ELSE 1 + floor(ln(microseconds / 1e6::float8) / ln(1.05::float8))::integer END::smallint
$$
"""

_STAY = "(extract(epoch FROM v.exited_at - v.entered_at) * 1000000)::bigint"

# The paths of the deals whose visits `visits` names (aliased v), from the history as it is now;
# the finished visits in entry order.
_PATHS_NOW = """
SELECT v.organization_id, v.deal_id, v.pipeline_id,
       (min(v.entered_at) AT TIME ZONE 'UTC')::date AS cohort_day,
       d.owner_id, d.archived_at IS NULL AS active,
       array_agg(DISTINCT v.stage_id ORDER BY v.stage_id) AS stage_ids,
       coalesce(array_agg(v.stage_id ORDER BY v.entered_at, v.id) FILTER (WHERE v.exited_at IS NOT NULL), '{{}}')
           AS stay_stage_ids,
       coalesce(array_agg({stay} ORDER BY v.entered_at, v.id) FILTER (WHERE v.exited_at IS NOT NULL), '{{}}')
           AS stay_microseconds
FROM {visits}
JOIN deals AS d ON d.organization_id = v.organization_id AND d.id = v.deal_id
GROUP BY v.organization_id, v.deal_id, v.pipeline_id, d.owner_id, d.archived_at IS NULL
"""
_DIRTY_VISITS = (
    "dirty AS t JOIN deal_stage_history AS v ON v.organization_id = t.organization_id AND v.deal_id = t.deal_id"
)
_EVERY_VISIT = "(SELECT * FROM deal_stage_history WHERE organization IS NULL OR organization_id = organization) AS v"

# Adds signed path changes (`changes`: a path row's columns and `sign`) to funnel_cohorts, and
# signed stays (`stays`: organisation, pipeline, cohort day, owner, stage, microseconds, sign) to
# funnel_stays, each once for its owner and once for the organisation; returns the ctids of rows
# that reached zero (locked by this transaction until it ends) for the caller to delete.
_ADD = """
cohort_rows AS (
    INSERT INTO funnel_cohorts AS f (organization_id, pipeline_id, all_owners, owner_id, cohort_day, stage_ids, deals)
    SELECT c.organization_id, c.pipeline_id, scope.all_owners, scope.owner_id, c.cohort_day, c.stage_ids, sum(c.sign)
    FROM changes AS c
    CROSS JOIN LATERAL (VALUES (false, c.owner_id), (true, NULL::uuid)) AS scope (all_owners, owner_id)
    WHERE c.active
    GROUP BY c.organization_id, c.pipeline_id, scope.all_owners, scope.owner_id, c.cohort_day, c.stage_ids
    HAVING sum(c.sign) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (organization_id, pipeline_id, all_owners, owner_id, cohort_day, stage_ids)
    DO UPDATE SET deals = f.deals + excluded.deals
    RETURNING f.ctid, f.deals
),
stay_rows AS (
    INSERT INTO funnel_stays AS f
        (organization_id, pipeline_id, all_owners, owner_id, cohort_day, stage_id, bucket, stays, microseconds)
    SELECT s.organization_id, s.pipeline_id, scope.all_owners, scope.owner_id, s.cohort_day, s.stage_id,
           rapport_funnel_stay_bucket(s.microseconds), sum(s.sign), sum(s.sign * s.microseconds)
    FROM stays AS s
    CROSS JOIN LATERAL (VALUES (false, s.owner_id), (true, NULL::uuid)) AS scope (all_owners, owner_id)
    GROUP BY s.organization_id, s.pipeline_id, scope.all_owners, scope.owner_id, s.cohort_day, s.stage_id,
             rapport_funnel_stay_bucket(s.microseconds)
    HAVING sum(s.sign) <> 0 OR sum(s.sign * s.microseconds) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (organization_id, pipeline_id, all_owners, owner_id, cohort_day, stage_id, bucket)
    DO UPDATE SET stays = f.stays + excluded.stays, microseconds = f.microseconds + excluded.microseconds
    RETURNING f.ctid, f.stays
)
SELECT (SELECT array_agg(ctid) FROM cohort_rows WHERE deals = 0),
       (SELECT array_agg(ctid) FROM stay_rows WHERE stays = 0)
INTO empty_cohorts, empty_stays;
IF empty_cohorts IS NOT NULL THEN
    DELETE FROM funnel_cohorts WHERE ctid = ANY (empty_cohorts) AND deals = 0;
END IF;
IF empty_stays IS NOT NULL THEN
    DELETE FROM funnel_stays WHERE ctid = ANY (empty_stays) AND stays = 0;
END IF;
"""

_PATH_COLUMNS = (
    "organization_id, deal_id, pipeline_id, cohort_day, owner_id, active, stage_ids, stay_stage_ids, stay_microseconds"
)

# The transaction's first invocation applies its whole queue; each later one (one per queued deal)
# finds its own row gone, which one probe of the primary key tells.
_APPLY = """
CREATE FUNCTION rapport_apply_funnel_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    empty_cohorts tid[];
    empty_stays tid[];
BEGIN
    PERFORM FROM funnel_dirty
    WHERE xact_id = NEW.xact_id AND organization_id = NEW.organization_id AND deal_id = NEW.deal_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH dirty AS (
        DELETE FROM funnel_dirty WHERE xact_id = NEW.xact_id RETURNING organization_id, deal_id
    ),
    fresh AS ({paths_now}),
    gone AS (
        DELETE FROM funnel_deal_paths AS p USING dirty AS t
        WHERE p.organization_id = t.organization_id AND p.deal_id = t.deal_id
        RETURNING p.*
    ),
    added AS (
        INSERT INTO funnel_deal_paths ({path_columns}) SELECT {path_columns} FROM fresh
        RETURNING *
    ),
    changes AS (
        SELECT {path_columns}, -1 AS sign FROM gone
        UNION ALL
        SELECT {path_columns}, 1 FROM added
    ),
    stays AS (
        SELECT p.organization_id, p.pipeline_id, p.cohort_day, p.owner_id, s.stage_id, s.microseconds, p.sign
        FROM changes AS p
        CROSS JOIN LATERAL unnest(p.stay_stage_ids, p.stay_microseconds) AS s (stage_id, microseconds)
        WHERE p.active
    ),
{add}
    RETURN NULL;
END
$$
"""

# Statement-level: each queues the deals its statement touched, for the commit to apply.
_QUEUE = """
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE funnel_deal_paths, funnel_cohorts, funnel_stays;
{branches}
    END IF;
    RETURN NULL;
END
$$
"""
_QUEUE_ROWS = (
    "        INSERT INTO funnel_dirty (xact_id, organization_id, deal_id)\n"
    "        SELECT txid_current(), organization_id, deal_id FROM ({touched}) AS touched\n"
    "        ON CONFLICT DO NOTHING;"
)
# What a statement touched: history rows written or removed (any column may move a deal's path);
# deals whose owner or archived state changed, or that were deleted.
_TOUCHED = {
    "deal_stage_history": {
        "INSERT": "SELECT organization_id, deal_id FROM new_rows",
        "UPDATE": "SELECT organization_id, deal_id FROM new_rows UNION SELECT organization_id, deal_id FROM old_rows",
        "DELETE": "SELECT organization_id, deal_id FROM old_rows",
    },
    "deals": {
        "UPDATE": (
            "SELECT n.organization_id, n.id AS deal_id FROM new_rows AS n "
            "JOIN old_rows AS o ON o.organization_id = n.organization_id AND o.id = n.id "
            "WHERE o.owner_id IS DISTINCT FROM n.owner_id OR (o.archived_at IS NULL) <> (n.archived_at IS NULL)"
        ),
        "DELETE": "SELECT organization_id, id AS deal_id FROM old_rows",
    },
}
_QUEUE_FUNCTIONS = {"deal_stage_history": "rapport_deal_stage_history_funnel", "deals": "rapport_deals_funnel"}

_TRIGGERS = {
    "insert": "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    "update": "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
    "delete": "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    "truncate": "AFTER TRUNCATE ON {table} FOR EACH STATEMENT",
}
# A deal's first stage visit is written after the deal, so an INSERT of deals has nothing to queue.
_TRIGGERED = {
    "deal_stage_history": ("insert", "update", "delete", "truncate"),
    "deals": ("update", "delete", "truncate"),
}

_REBUILD = """
CREATE FUNCTION rapport_rebuild_funnel_facts(organization uuid) RETURNS void LANGUAGE plpgsql
SET work_mem = '256MB' AS $$
BEGIN
    DELETE FROM funnel_deal_paths WHERE organization IS NULL OR organization_id = organization;
    DELETE FROM funnel_cohorts WHERE organization IS NULL OR organization_id = organization;
    DELETE FROM funnel_stays WHERE organization IS NULL OR organization_id = organization;
    INSERT INTO funnel_deal_paths ({path_columns})
    {paths_now};
    INSERT INTO funnel_cohorts (organization_id, pipeline_id, all_owners, owner_id, cohort_day, stage_ids, deals)
    SELECT p.organization_id, p.pipeline_id, scope.all_owners, scope.owner_id, p.cohort_day, p.stage_ids, count(*)
    FROM funnel_deal_paths AS p
    CROSS JOIN LATERAL (VALUES (false, p.owner_id), (true, NULL::uuid)) AS scope (all_owners, owner_id)
    WHERE p.active AND (organization IS NULL OR p.organization_id = organization)
    GROUP BY 1, 2, 3, 4, 5, 6;
    INSERT INTO funnel_stays
        (organization_id, pipeline_id, all_owners, owner_id, cohort_day, stage_id, bucket, stays, microseconds)
    SELECT p.organization_id, p.pipeline_id, scope.all_owners, scope.owner_id, p.cohort_day, v.stage_id,
           rapport_funnel_stay_bucket({stay}), count(*), sum({stay})
    FROM funnel_deal_paths AS p
    JOIN deal_stage_history AS v
      ON v.organization_id = p.organization_id AND v.deal_id = p.deal_id AND v.pipeline_id = p.pipeline_id
    CROSS JOIN LATERAL (VALUES (false, p.owner_id), (true, NULL::uuid)) AS scope (all_owners, owner_id)
    WHERE p.active AND v.exited_at IS NOT NULL AND (organization IS NULL OR p.organization_id = organization)
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
END
$$
"""


def _queue_function(table: str) -> str:
    branches = [
        f"    ELSIF TG_OP = '{op_name}' THEN\n" + _QUEUE_ROWS.format(touched=touched)
        for op_name, touched in _TOUCHED[table].items()
    ]
    return _QUEUE.format(name=_QUEUE_FUNCTIONS[table], branches="\n".join(branches))


def _apply_function() -> str:
    return _APPLY.format(
        paths_now=_PATHS_NOW.format(visits=_DIRTY_VISITS, stay=_STAY), path_columns=_PATH_COLUMNS, add=_ADD
    )


def _organization_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "funnel_deal_paths",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("cohort_day", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stage_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("stay_stage_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("stay_microseconds", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        _organization_key("funnel_deal_paths"),
        sa.PrimaryKeyConstraint("organization_id", "deal_id", "pipeline_id", name=op.f("pk_funnel_deal_paths")),
    )
    op.create_table(
        "funnel_cohorts",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("all_owners", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("cohort_day", sa.Date(), nullable=False),
        sa.Column("stage_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("deals", sa.Integer(), nullable=False),
        _organization_key("funnel_cohorts"),
        sa.UniqueConstraint(
            "organization_id",
            "pipeline_id",
            "all_owners",
            "owner_id",
            "cohort_day",
            "stage_ids",
            name=op.f("uq_funnel_cohorts_organization_id_pipeline_id_all_owners_owner_id_cohort_day_stage_ids"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "funnel_stays",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("all_owners", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("cohort_day", sa.Date(), nullable=False),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("stays", sa.Integer(), nullable=False),
        sa.Column("microseconds", sa.BigInteger(), nullable=False),
        _organization_key("funnel_stays"),
        sa.ForeignKeyConstraint(
            ["organization_id", "pipeline_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.pipeline_id", "pipeline_stages.id"],
            name=op.f("fk_funnel_stays_organization_id_pipeline_id_stage_id_pipeline_stages"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "organization_id",
            "pipeline_id",
            "all_owners",
            "owner_id",
            "cohort_day",
            "stage_id",
            "bucket",
            name=op.f("uq_funnel_stays_organization_id_pipeline_id_all_owners_owner_id_cohort_day_stage_id_bucket"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "funnel_dirty",
        sa.Column("xact_id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("xact_id", "organization_id", "deal_id", name=op.f("pk_funnel_dirty")),
        prefixes=["UNLOGGED"],
    )
    op.execute(_BUCKET)
    op.execute(
        _REBUILD.format(
            path_columns=_PATH_COLUMNS, paths_now=_PATHS_NOW.format(visits=_EVERY_VISIT, stay=_STAY), stay=_STAY
        )
    )
    # Built under a lock that lets reads through and holds writes back until the triggers are in
    # place, so no change falls between the backfill and the first trigger.
    op.execute("LOCK TABLE deals, deal_stage_history IN SHARE MODE")
    op.execute(_apply_function())
    op.execute(
        "CREATE CONSTRAINT TRIGGER funnel_dirty_apply AFTER INSERT ON funnel_dirty "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION rapport_apply_funnel_dirty()"
    )
    for table, events in _TRIGGERED.items():
        op.execute(_queue_function(table))
        for event in events:
            op.execute(
                f"CREATE TRIGGER {table}_funnel_{event} {_TRIGGERS[event].format(table=table)} "
                f"EXECUTE FUNCTION {_QUEUE_FUNCTIONS[table]}()"
            )
    op.execute("SELECT rapport_rebuild_funnel_facts(NULL)")


def downgrade() -> None:
    for table, events in _TRIGGERED.items():
        for event in events:
            op.execute(f"DROP TRIGGER {table}_funnel_{event} ON {table}")
    for function in _QUEUE_FUNCTIONS.values():
        op.execute(f"DROP FUNCTION {function}()")
    op.execute("DROP TRIGGER funnel_dirty_apply ON funnel_dirty")
    op.execute("DROP FUNCTION rapport_apply_funnel_dirty()")
    op.execute("DROP FUNCTION rapport_rebuild_funnel_facts(uuid)")
    op.execute("DROP FUNCTION rapport_funnel_stay_bucket(bigint)")
    op.drop_table("funnel_dirty")
    op.drop_table("funnel_stays")
    op.drop_table("funnel_cohorts")
    op.drop_table("funnel_deal_paths")

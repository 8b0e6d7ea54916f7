"""Issue 5's report figures: the funnel and the forecast over 1,000,000 deals, each under 300 ms.

    uv run python -m bench.reports [--reset] [--deals 1000000] [--runs 15]

Data (database `rapport_bench_deals`, or RAPPORT_BENCH_DATABASE_URL), made once and kept: one
organisation founded by the app's own service (so it has the default pipeline 潜在客户 → 需求分析 →
方案制定 → 商务谈判 → 成交 / 输单) and 20 users (the owner and 19 sales reps, as bench/seed.py makes
them), then N deals written with COPY, each with a realistic stage history: created over the last
24 months, they move forward stage by stage (sometimes back one), stay 3–40 days in a stage, and
are won, lost or still open when "now" comes (about 3 stage visits a deal). Amounts are
log-normal around ¥50,000 (90 % CNY, 7 % USD, 3 % EUR, 4 % without an amount), owners skewed
across the 20 users, expected close dates spread over 24 months, 0.5 % archived. Every column
is written as the app writes it (UUIDv7 ids, the stage's probability and kind, closed_at,
stage_entered_at, search text and grams, one version per change). Loaded in numbered batches
(resumable), secondary indexes dropped during the load and rebuilt after, then VACUUM ANALYZE.

Measurement, in this process: the app (httpx ASGI transport) as the organisation's owner; each
report is warmed up, then requested `--runs` times, and the median and p95 are printed as ratios
against a baseline measured in the same run through asyncpg:

- funnel (`basis=cohort`, read from the facts of migration 0021): a bare `GROUP BY stage_ids` of
  the same cohort days' organisation-wide set counts (the rows any cohort funnel must read);
- funnel `basis=entered` (raw history, 90 days only; `--skip-entered` leaves it out): a bare
  `SELECT stage_id, count(*) … GROUP BY stage_id` of the same stage visits;
- forecast: a bare `GROUP BY` month and currency of the same open deals, with their amounts.

A restricted sales rep's funnel (record visibility `own`, set for the run and reset after) is
timed too, and rep performance and velocity without a baseline. `--moves N` times N deal moves
through the app instead (the write path the funnel triggers add to), against deal renames.
`--contention N` times a batch of N deal creates (`POST /deals/batch`, one transaction) alone and
with single deal moves of the same pipeline and cohort day running beside it, and the moves beside
an open N-deal transaction that emits no events, against the moves' latency alone (the funnel
facts' shared rows, and the organisation's event stream, are where such writers could queue).
Seeding writes with triggers off (`session_replication_role = replica`), so it ends with
`rapport_rebuild_funnel_facts`, the migration's backfill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

os.environ.setdefault("RAPPORT_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport_bench_deals")

from bench import common, data
from bench.common import log

common.use_app_environment()

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.core import text_search  # noqa: E402
from app.core.ids import new_id  # noqa: E402

DEFAULT_BATCH = 20_000
DAY = 86_400.0
HISTORY_DAYS = 730

DEAL_COLUMNS = [
    "organization_id", "id", "name", "pipeline_id", "stage_id", "company_id", "amount", "currency", "probability",
    "probability_manual", "expected_close_date", "owner_id", "source", "status", "stage_entered_at", "closed_at",
    "lost_reason", "tags", "external_id", "custom_fields", "search_text", "search_grams", "created_at",
    "updated_at", "archived_at", "version",
]  # fmt: skip
VISIT_COLUMNS = ["organization_id", "id", "deal_id", "pipeline_id", "stage_id", "entered_at", "exited_at"]

PRODUCTS = ["ERP 升级", "CRM 实施", "云服务器", "数据中台", "年度维保", "安防系统", "培训服务", "OA 系统", "财务软件"]
LOST_REASONS = ["价格", "选择了竞争对手", "预算取消", "需求变化", "无回应"]
DEAL_SOURCES = ["manual", "referral", "web_form", "event", "phone", "email", "import"]

BENCH_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.deal_run (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS bench.deal_batches (batch integer PRIMARY KEY, deals integer NOT NULL,
                                               visits integer NOT NULL);
CREATE TABLE IF NOT EXISTS bench.deal_dropped_indexes (name text PRIMARY KEY, definition text NOT NULL);
"""


_DROPPED_INDEXES = "bench.deal_dropped_indexes"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class Stage:
    id: uuid.UUID
    position: int
    probability: int
    kind: str


@dataclass(frozen=True, slots=True)
class Plan:
    dsn: str
    organization_id: uuid.UUID
    pipeline_id: uuid.UUID
    owner_ids: list[uuid.UUID]
    stages: list[Stage]  # live stages in order: the open ones, then won, then lost
    deals: int
    batch_size: int
    seed: int
    now: datetime


def _amount(rng: random.Random) -> Decimal | None:
    if rng.random() < 0.04:
        return None
    value = math.exp(rng.gauss(math.log(50_000), 1.0))
    return Decimal(f"{min(value, 5e8):.2f}")


def _path(rng: random.Random, stages: list[Stage], created: float, now: float) -> list[tuple[Stage, float]]:
    """The stages a deal visits and when it enters each (POSIX seconds), up to `now`."""
    opens = [s for s in stages if s.kind == "open"]
    won = next(s for s in stages if s.kind == "won")
    lost = next(s for s in stages if s.kind == "lost")
    visits = [(opens[0], created)]
    current, at = 0, created
    while True:
        at += rng.uniform(3, 40) * DAY
        if at >= now:
            return visits
        roll = rng.random()
        if roll < 0.15:  # stays where it is (still open today)
            return visits
        if roll < 0.30:
            visits.append((lost, at))
            return visits
        if roll < 0.35 and current > 0:  # back one stage
            current -= 1
            visits.append((opens[current], at))
            continue
        if current + 1 < len(opens):
            current += 1
            visits.append((opens[current], at))
            continue
        visits.append((won, at))
        return visits


def batch_rows(plan: Plan, batch: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = random.Random(plan.seed * 1_000_003 + batch)
    first = batch * plan.batch_size
    last = min(first + plan.batch_size, plan.deals)
    now = plan.now.timestamp()
    today = plan.now.date()
    owners = plan.owner_ids
    org, pipeline = plan.organization_id, plan.pipeline_id
    deals: list[tuple[Any, ...]] = []
    visits: list[tuple[Any, ...]] = []
    for index in range(first, last):
        deal_id = new_id()
        created = now - rng.random() * HISTORY_DAYS * DAY
        path = _path(rng, plan.stages, created, now)
        stage, _ = path[-1]
        moments = [datetime.fromtimestamp(at, UTC) for _, at in path]
        for n, (visited, _) in enumerate(path):
            exited = moments[n + 1] if n + 1 < len(path) else None
            visits.append((org, new_id(), deal_id, pipeline, visited.id, moments[n], exited))
        city = data.CITIES[data.city_index(rng)][0]
        name = f"{city}{rng.choice(PRODUCTS)}项目 {index + 1}"
        external_id = f"S{index + 1:07d}" if rng.random() < 0.3 else None
        search_text = text_search.document([name, external_id])
        currency = "CNY" if (r := rng.random()) < 0.9 else "USD" if r < 0.97 else "EUR"
        closed_at = moments[-1] if stage.kind != "open" else None
        if stage.kind == "open":
            expected = today + timedelta(days=rng.randrange(-60, HISTORY_DAYS - 60))
        else:
            expected = moments[-1].date() + timedelta(days=rng.randrange(-30, 30))
        updated = moments[-1]
        archived_at = updated + timedelta(seconds=rng.randrange(60, 86_400)) if rng.random() < 0.005 else None
        deals.append(
            (
                org,
                deal_id,
                name,
                pipeline,
                stage.id,
                None,
                _amount(rng),
                currency,
                stage.probability,
                False,
                expected,
                owners[min(int(len(owners) * rng.random() ** 1.3), len(owners) - 1)],
                rng.choice(DEAL_SOURCES),
                stage.kind,
                moments[-1],
                closed_at,
                rng.choice(LOST_REASONS) if stage.kind == "lost" and rng.random() < 0.7 else None,
                [],
                external_id,
                "{}",
                search_text,
                text_search.document_grams(search_text),
                moments[0],
                archived_at or updated,
                archived_at,
                len(path) + (1 if archived_at else 0),
            )
        )
    return deals, visits


def load_batches(plan: Plan, batches: list[int]) -> dict[str, float]:
    """In a worker process: generate each batch and COPY it with its number, one transaction each.
    Foreign keys and the grams trigger are skipped (`session_replication_role = replica`): the rows
    are consistent by construction and carry their grams."""

    async def run() -> dict[str, float]:
        generating = copying = 0.0
        connection = await asyncpg.connect(
            plan.dsn, server_settings={"synchronous_commit": "off", "session_replication_role": "replica"}
        )
        try:
            for batch in batches:
                t0 = time.perf_counter()
                deals, visits = batch_rows(plan, batch)
                t1 = time.perf_counter()
                async with connection.transaction():
                    await connection.copy_records_to_table("deals", records=deals, columns=DEAL_COLUMNS)
                    await connection.copy_records_to_table("deal_stage_history", records=visits, columns=VISIT_COLUMNS)
                    await connection.execute(
                        "INSERT INTO bench.deal_batches (batch, deals, visits) VALUES ($1, $2, $3)",
                        batch,
                        len(deals),
                        len(visits),
                    )
                t2 = time.perf_counter()
                generating += t1 - t0
                copying += t2 - t1
                print(f"  batch {batch}: {len(deals)} deals, {len(visits)} visits "
                      f"(python {t1 - t0:.1f} s, copy {t2 - t1:.1f} s)", flush=True)  # fmt: skip
        finally:
            await connection.close()
        return {"generate_s": generating, "copy_s": copying}

    return asyncio.run(run())


async def seed(args: argparse.Namespace) -> None:
    from bench import seed as contacts_seed  # the organisation and its 20 users, made the same way

    dsn = common.asyncpg_dsn()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(BENCH_SCHEMA)
    finally:
        await connection.close()
    organization_id, user_ids = await contacts_seed.ensure_tenant()
    connection = await asyncpg.connect(dsn)
    try:
        pipeline_id = await connection.fetchval(
            "SELECT id FROM pipelines WHERE organization_id = $1 AND is_default", organization_id
        )
        stage_rows = await connection.fetch(
            "SELECT id, position, probability, kind FROM pipeline_stages "
            "WHERE organization_id = $1 AND pipeline_id = $2 AND archived_at IS NULL ORDER BY position",
            organization_id,
            pipeline_id,
        )
        wanted = {"deals": args.deals, "batch_size": args.batch_size, "seed": args.seed}
        stored = await connection.fetchval("SELECT value FROM bench.deal_run WHERE key = 'parameters'")
        if stored is None:
            now = datetime.now(UTC).replace(microsecond=0)
            await connection.execute(
                "INSERT INTO bench.deal_run VALUES ('parameters', $1::jsonb), ('now', to_jsonb($2::text))",
                json.dumps(wanted),
                now.isoformat(),
            )
        elif json.loads(stored) != wanted:
            raise SystemExit(f"the deals were seeded with {stored}; rerun with --reset to change that")
        now = datetime.fromisoformat(json.loads(await connection.fetchval(
            "SELECT value FROM bench.deal_run WHERE key = 'now'"
        )))  # fmt: skip
        done = {r["batch"] for r in await connection.fetch("SELECT batch FROM bench.deal_batches")}
        total = -(-args.deals // args.batch_size)
        todo = [b for b in range(total) if b not in done]
        if todo:
            tables = ["deals", "deal_stage_history"]
            if dropped := await common.drop_secondary_indexes(connection, tables, _DROPPED_INDEXES):
                log(f"dropped {dropped} secondary indexes on deals and their history for the load")
    finally:
        await connection.close()
    plan = Plan(
        dsn=dsn,
        organization_id=organization_id,
        pipeline_id=pipeline_id,
        owner_ids=user_ids,
        stages=[Stage(r["id"], r["position"], r["probability"], r["kind"]) for r in stage_rows],
        deals=args.deals,
        batch_size=args.batch_size,
        seed=args.seed,
        now=now,
    )
    if todo:
        log(f"deals: loading {len(todo)} of {total} batches with {args.workers} processes")
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        shares = [todo[i :: args.workers] for i in range(args.workers)]
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
            stats = list(pool.map(load_batches, [plan] * args.workers, shares))
        log(
            f"deals: loaded in {time.perf_counter() - started:.1f} s (summed over processes: python "
            f"{sum(s['generate_s'] for s in stats):.1f} s, COPY {sum(s['copy_s'] for s in stats):.1f} s)"
        )
    if seconds := await common.rebuild_indexes(dsn, _DROPPED_INDEXES, maintenance_work_mem="1GB"):
        log(f"indexes rebuilt in {seconds:.1f} s")
    connection = await asyncpg.connect(dsn)
    try:
        # The loader's COPY ran with triggers off: the funnel facts are built from the history once.
        if await connection.fetchval("SELECT value FROM bench.deal_run WHERE key = 'funnel_facts'") is None:
            started = time.perf_counter()
            async with connection.transaction():
                await connection.execute("SELECT rapport_rebuild_funnel_facts($1)", organization_id)
                await connection.execute("INSERT INTO bench.deal_run VALUES ('funnel_facts', 'true')")
            for table in ("funnel_deal_paths", "funnel_cohorts", "funnel_stays"):
                await connection.execute(f"VACUUM (ANALYZE) {table}")
            log(f"funnel facts rebuilt from the history in {time.perf_counter() - started:.1f} s")
        if await connection.fetchval("SELECT value FROM bench.deal_run WHERE key = 'analyzed'") is None:
            started = time.perf_counter()
            for table in ("users", "pipelines", "pipeline_stages", "deals", "deal_stage_history"):
                await connection.execute(f"VACUUM (ANALYZE) {table}")
            await connection.execute("INSERT INTO bench.deal_run VALUES ('analyzed', 'true')")
            log(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
        counts = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM deals WHERE organization_id = $1) AS deals, "
            "(SELECT count(*) FROM deal_stage_history WHERE organization_id = $1) AS visits",
            organization_id,
        )
        sizes = await connection.fetch(
            "SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS heap, "
            "pg_size_pretty(pg_total_relation_size(oid)) AS total FROM pg_class "
            "WHERE relname IN ('deals', 'deal_stage_history')"
        )
    finally:
        await connection.close()
    if counts["deals"] != args.deals:
        raise SystemExit(f"expected {args.deals} deals, found {counts['deals']}")
    per_deal = counts["visits"] / counts["deals"]
    log(f"{counts['deals']:,} deals, {counts['visits']:,} stage visits ({per_deal:.2f} a deal)")
    for row in sizes:
        log(f"{row['relname']}: heap {row['heap']}, with indexes {row['total']}")


# --------------------------------------------------------------------------- measurement


FUNNEL_BASELINE = """
SELECT stage_id, count(*) FROM deal_stage_history
WHERE organization_id = $1 AND pipeline_id = $2 AND entered_at >= $3 AND entered_at < $4
GROUP BY stage_id
"""
# The cohort funnel's floor: the organisation-wide set counts of the same cohort days, grouped.
COHORT_BASELINE = """
SELECT stage_ids, sum(deals) FROM funnel_cohorts
WHERE organization_id = $1 AND pipeline_id = $2 AND all_owners AND owner_id IS NULL
  AND cohort_day >= $3 AND cohort_day < $4
GROUP BY stage_ids
"""
FORECAST_BASELINE = """
SELECT date_trunc('month', expected_close_date), currency, count(*), sum(amount)
FROM deals
WHERE organization_id = $1 AND status = 'open' AND archived_at IS NULL
  AND expected_close_date >= $2 AND expected_close_date < $3
GROUP BY 1, 2
"""


def _months_after(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


async def _timed(call: Callable[[], Awaitable[Any]], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(args: argparse.Namespace) -> None:
    from app.core.settings import get_settings
    from app.main import create_app

    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    org = uuid.UUID(organization_id)
    pipeline_id = await connection.fetchval("SELECT id FROM pipelines WHERE organization_id = $1 AND is_default", org)
    now = datetime.fromisoformat(
        json.loads(await connection.fetchval("SELECT value FROM bench.deal_run WHERE key = 'now'"))
    )
    rep_email = await connection.fetchval(
        "SELECT u.email FROM users u JOIN deals d ON d.organization_id = u.organization_id AND d.owner_id = u.id "
        "WHERE u.organization_id = $1 AND u.role = 'sales' GROUP BY u.email ORDER BY count(*) DESC LIMIT 1",
        org,
    )
    this_month = now.date().replace(day=1)
    # The funnel's periods: the last quarter, the last year, and everything (24 months).
    periods = {
        "90 days": (now - timedelta(days=90), now),
        "12 months": (now - timedelta(days=365), now),
        "24 months": (now - timedelta(days=HISTORY_DAYS + 1), now + timedelta(seconds=1)),
    }
    results: dict[str, Any] = {}
    app = create_app(get_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:

            async def sign_in(email: str) -> dict[str, str]:
                reply = await client.post(
                    "/api/v1/auth/token", data={"username": email, "password": common.OWNER_PASSWORD}
                )
                reply.raise_for_status()
                return {"Authorization": f"Bearer {reply.json()['access_token']}"}

            owner = await sign_in(common.OWNER_EMAIL)
            await client.patch("/api/v1/organization", headers=owner, json={"record_visibility": "own"})
            rep = await sign_in(rep_email)

            async def get(path: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
                reply = await client.get(path, params=params, headers=headers)
                if reply.status_code != 200:
                    raise RuntimeError(f"{path}: {reply.status_code} {reply.text}")
                return reply.json()

            cases: list[tuple[str, str, dict[str, Any], dict[str, str], str, tuple[Any, ...]]] = []
            for label, (since, until) in periods.items():
                params = {"pipeline_id": str(pipeline_id), "since": since.isoformat(), "until": until.isoformat()}
                days = (org, pipeline_id, since.date(), until.date() + timedelta(days=1))
                cases.append((f"funnel, {label}", "/api/v1/reports/funnel", params, owner, COHORT_BASELINE, days))
            since, until = periods["12 months"]
            params = {"pipeline_id": str(pipeline_id), "since": since.isoformat(), "until": until.isoformat()}
            days = (org, pipeline_id, since.date(), until.date() + timedelta(days=1))
            cases.append(("funnel, 12 months, a sales rep (visibility own)", "/api/v1/reports/funnel", params, rep,
                          COHORT_BASELINE, days))  # fmt: skip
            if not args.skip_entered:
                since, until = periods["90 days"]
                params = {"pipeline_id": str(pipeline_id), "since": since.isoformat(), "until": until.isoformat()}
                cases.append(("funnel, basis=entered, 90 days", "/api/v1/reports/funnel", params | {"basis": "entered"},
                              owner, FUNNEL_BASELINE, (org, pipeline_id, since, until)))  # fmt: skip
            for months in (12, 24):
                for group_by in ("month", "owner"):
                    params = {"from": this_month.isoformat(), "months": months, "group_by": group_by}
                    window = (org, this_month, _months_after(this_month, months))
                    label = f"forecast, {months} months by {group_by}"
                    cases.append((label, "/api/v1/reports/forecast", params, owner, FORECAST_BASELINE, window))
            since, until = periods["12 months"]
            params = {"since": since.isoformat(), "until": until.isoformat()}
            cases.append(("rep performance, 12 months", "/api/v1/reports/rep-performance", params, owner, "", ()))
            params |= {"pipeline_id": str(pipeline_id)}
            cases.append(("velocity, 12 months", "/api/v1/reports/velocity", params, owner, "", ()))

            print(f"{'report':<52} {'median':>8} {'p95':>8} {'baseline':>9} {'× base':>7}")
            for label, path, params, headers, baseline_sql, baseline_args in cases:
                common.wait_until_quiet(max_busy_cores=0.3, timeout=60)
                reply = await get(path, params, headers)
                api = await _timed(lambda: get(path, params, headers), args.runs, args.warmup)  # noqa: B023
                base: list[float] = []
                if baseline_sql:
                    base = await _timed(lambda: connection.fetch(baseline_sql, *baseline_args), args.runs, args.warmup)  # noqa: B023
                api_ms, base_ms = common.summary_ms(api), common.summary_ms(base) if base else None
                ratio = f"{api_ms['p50'] / base_ms['p50']:.2f}" if base_ms else "-"
                base_text = f"{base_ms['p50']:.1f}" if base_ms else "-"
                print(f"{label:<52} {api_ms['p50']:>6.1f}ms {api_ms['p95']:>6.1f}ms {base_text:>7}ms {ratio:>7}")
                results[label] = {"params": params, "api_ms": api_ms, "baseline_ms": base_ms, "reply": reply}
            await client.patch("/api/v1/organization", headers=owner, json={"record_visibility": "all"})
    counts = await connection.fetchrow(
        "SELECT (SELECT count(*) FROM deals WHERE organization_id = $1) AS deals, "
        "(SELECT count(*) FROM deal_stage_history WHERE organization_id = $1) AS visits",
        org,
    )
    await connection.close()
    funnel = results["funnel, 12 months"]["reply"]
    print(f"\n{counts['deals']:,} deals, {counts['visits']:,} stage visits; funnel over the last 12 months:")
    for step in funnel["steps"]:
        print(f"  {step['name']:<6} reached {step['reached']:>8,}  from previous {step['conversion_from_previous']}"
              f"  from first {step['conversion_from_first']}  median days {step['median_days']}")  # fmt: skip
    for label in ("funnel, 90 days", "funnel, 24 months", "forecast, 12 months by month"):
        verdict = "met" if results[label]["api_ms"]["p95"] < 300 else "MISSED"
        print(f"{label}: p95 {results[label]['api_ms']['p95']:.0f} ms (target < 300 ms): {verdict}")
    result = {"machine": common.machine_info(), "args": vars(args), "counts": dict(counts), "results": results}
    print(f"saved {common.save_result('reports', result)}")


async def measure_moves(args: argparse.Namespace) -> None:
    """The write path the funnel facts' triggers add to: `POST /deals/{id}/move` one stage forward,
    on `--moves` random open deals, against an in-run baseline of `PATCH /deals/{id}` renaming
    another open deal (one UPDATE of the deal, no stage history)."""
    from app.core.settings import get_settings
    from app.main import create_app

    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    org = uuid.UUID(organization_id)
    stages = await connection.fetch(
        "SELECT s.id FROM pipeline_stages s JOIN pipelines p ON p.organization_id = s.organization_id "
        "AND p.id = s.pipeline_id WHERE s.organization_id = $1 AND p.is_default AND s.kind = 'open' "
        "AND s.archived_at IS NULL ORDER BY s.position",
        org,
    )
    following = {row["id"]: stages[n + 1]["id"] for n, row in enumerate(stages[:-1])}
    picked = await connection.fetch(
        "SELECT id, stage_id FROM deals TABLESAMPLE SYSTEM (1) WHERE organization_id = $1 AND status = 'open' "
        "AND archived_at IS NULL AND stage_id = ANY($2::uuid[]) LIMIT $3",
        org,
        list(following),
        2 * args.moves,
    )
    await connection.close()
    moving, renaming = picked[: args.moves], picked[args.moves :]
    app = create_app(get_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            reply = await client.post(
                "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
            )
            reply.raise_for_status()
            owner = {"Authorization": f"Bearer {reply.json()['access_token']}"}

            async def timed(method: str, path: str, body: dict[str, Any]) -> float:
                started = time.perf_counter()
                answer = await client.request(method, path, headers=owner, json=body)
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text}")
                return elapsed

            common.wait_until_quiet(max_busy_cores=0.3, timeout=60)
            moves, renames = [], []
            for (deal_id, stage_id), (other_id, _) in zip(moving, renaming, strict=False):
                move = {"stage_id": str(following[stage_id])}
                moves.append(await timed("POST", f"/api/v1/deals/{deal_id}/move", move))
                renames.append(await timed("PATCH", f"/api/v1/deals/{other_id}", {"name": f"改名 {other_id}"}))
    moves_ms, renames_ms = common.summary_ms(moves[3:]), common.summary_ms(renames[3:])
    print(f"{'write':<52} {'median':>8} {'p95':>8}")
    print(f"{'deal move one stage forward':<52} {moves_ms['p50']:>6.1f}ms {moves_ms['p95']:>6.1f}ms")
    print(f"{'baseline: deal rename (PATCH name)':<52} {renames_ms['p50']:>6.1f}ms {renames_ms['p95']:>6.1f}ms")
    print(f"move / rename (median): {moves_ms['p50'] / renames_ms['p50']:.2f}")
    result = {"machine": common.machine_info(), "args": vars(args), "move_ms": moves_ms, "rename_ms": renames_ms}
    print(f"saved {common.save_result('reports_moves', result)}")


async def measure_contention(args: argparse.Namespace) -> None:
    """A `--contention`-deal batch of creates in the default pipeline's first stage, alone and while
    single moves run one after another beside it; then the moves beside an open transaction that
    changed the owner of as many of today's deals and emits no events. The moves are of deals
    created today in that stage, so each changes the cohort rows (today, {first stage}) the others
    write too. Baseline: the same moves with nothing else running. The run's deals are deleted at
    the end."""
    from app.core.settings import get_settings
    from app.main import create_app

    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    stages = await connection.fetch(
        "SELECT s.id FROM pipeline_stages s JOIN pipelines p ON p.organization_id = s.organization_id "
        "AND p.id = s.pipeline_id WHERE s.organization_id = $1 AND p.is_default AND s.kind = 'open' "
        "AND s.archived_at IS NULL ORDER BY s.position LIMIT 2",
        uuid.UUID(organization_id),
    )
    await connection.close()
    first_stage, second_stage = (str(row["id"]) for row in stages)
    app = create_app(get_settings())
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
                reply = await client.post(
                    "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
                )
                reply.raise_for_status()
                owner = {"Authorization": f"Bearer {reply.json()['access_token']}"}

                async def batch(label: str, size: int) -> float:
                    records = [{"name": f"争用 {label} {n}", "stage_id": first_stage} for n in range(size)]
                    started = time.perf_counter()
                    answer = await client.post(
                        "/api/v1/deals/batch", headers=owner, json={"mode": "create", "records": records}
                    )
                    elapsed = time.perf_counter() - started
                    failed = [r for r in answer.json().get("results", []) if r["status"] != "created"]
                    if answer.status_code != 200 or failed:
                        raise RuntimeError(f"batch: {answer.status_code} {answer.text[:500]}")
                    return elapsed

                # Deals to move, created today in the first stage (their own batch, committed first).
                await batch("moved", 3 * args.contention)
                lookup = await asyncpg.connect(common.asyncpg_dsn())
                movable = iter(
                    str(row["id"])
                    for row in await lookup.fetch(
                        "SELECT id FROM deals WHERE organization_id = $1 AND name LIKE '争用 moved %' "
                        "AND stage_id = $2",
                        uuid.UUID(organization_id),
                        uuid.UUID(first_stage),
                    )
                )
                await lookup.close()

                async def move() -> float:
                    started = time.perf_counter()
                    answer = await client.post(
                        f"/api/v1/deals/{next(movable)}/move", headers=owner, json={"stage_id": second_stage}
                    )
                    if answer.status_code != 200:
                        raise RuntimeError(f"move: {answer.status_code} {answer.text}")
                    return time.perf_counter() - started

                async def moves_until(done: asyncio.Task[float]) -> list[float]:
                    timings = []
                    while not done.done():
                        timings.append(await move())
                    return timings

                common.wait_until_quiet(max_busy_cores=0.3, timeout=60)
                alone = [await move() for _ in range(args.contention // 4)]
                batch_alone = await batch("alone", args.contention)
                common.wait_until_quiet(max_busy_cores=0.3, timeout=60)
                running = asyncio.create_task(batch("beside moves", args.contention))
                beside = await moves_until(running)
                batch_beside = await running

                # The same moves while a transaction that emits no events (so holds no event
                # stream) has handed `--contention` of today's deals to another owner and stays
                # open as long as the batch took: only the funnel facts could make them wait.
                async def open_transaction() -> float:
                    writer = await asyncpg.connect(common.asyncpg_dsn())
                    async with writer.transaction():
                        await writer.execute(
                            "UPDATE deals SET owner_id = (SELECT id FROM users WHERE organization_id = $1 "
                            "AND id IS DISTINCT FROM deals.owner_id LIMIT 1) WHERE organization_id = $1 AND id = ANY("
                            "SELECT id FROM deals WHERE organization_id = $1 AND name LIKE '争用 alone %' LIMIT $2)",
                            uuid.UUID(organization_id),
                            args.contention,
                        )
                        await asyncio.sleep(batch_alone)
                        committing = time.perf_counter()
                    await writer.close()
                    return time.perf_counter() - committing

                common.wait_until_quiet(max_busy_cores=0.3, timeout=60)
                holding = asyncio.create_task(open_transaction())
                beside_open = await moves_until(holding)
                commit_seconds = await holding
    finally:
        # The bench data must stay as loaded (the loader checks the deal count): the run's deals go,
        # with the triggers on, so the facts follow.
        cleanup = await asyncpg.connect(common.asyncpg_dsn())
        await cleanup.execute(
            "DELETE FROM deals WHERE organization_id = $1 AND name LIKE '争用 %'", uuid.UUID(organization_id)
        )
        await cleanup.close()
    alone_ms, beside_ms = common.summary_ms(alone), common.summary_ms(beside)
    print(f"{'write':<58} {'median':>9} {'p95':>9} {'max':>9}")
    print(f"{'single move, nothing else running (baseline)':<58} {alone_ms['p50']:>7.1f}ms {alone_ms['p95']:>7.1f}ms "
          f"{alone_ms['max']:>7.1f}ms")  # fmt: skip
    print(f"{f'single move beside a {args.contention}-deal batch ({len(beside)} moves)':<58} "
          f"{beside_ms['p50']:>7.1f}ms {beside_ms['p95']:>7.1f}ms {beside_ms['max']:>7.1f}ms")  # fmt: skip
    print(
        f"{args.contention}-deal batch alone {batch_alone * 1000:.0f} ms, beside the moves {batch_beside * 1000:.0f} ms"
    )
    print(f"move beside the batch / alone: median {beside_ms['p50'] / alone_ms['p50']:.2f}, "
          f"p95 {beside_ms['p95'] / alone_ms['p95']:.2f}")  # fmt: skip
    print(f"batch beside the moves / alone: {batch_beside / batch_alone:.2f}")
    open_ms = common.summary_ms(beside_open)
    print(f"{f'single move beside an open {args.contention}-deal owner change ({len(beside_open)} moves)':<58} "
          f"{open_ms['p50']:>7.1f}ms {open_ms['p95']:>7.1f}ms {open_ms['max']:>7.1f}ms")  # fmt: skip
    print(f"move beside the open transaction / alone: median {open_ms['p50'] / alone_ms['p50']:.2f}, "
          f"p95 {open_ms['p95'] / alone_ms['p95']:.2f}; its commit (facts of {args.contention} deals) "
          f"{commit_seconds * 1000:.0f} ms")  # fmt: skip
    result = {
        "machine": common.machine_info(),
        "args": vars(args),
        "move_alone_ms": alone_ms,
        "move_beside_batch_ms": beside_ms,
        "batch_alone_s": batch_alone,
        "batch_beside_moves_s": batch_beside,
        "move_beside_open_transaction_ms": open_ms,
        "open_transaction_commit_s": commit_seconds,
    }
    print(f"saved {common.save_result('reports_contention', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--reset", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--seed-only", action="store_true", help="load the data and stop")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="loader processes")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--runs", type=int, default=15, help="timed requests per report")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--skip-entered", action="store_true", help="leave out the slow basis=entered funnel")
    parser.add_argument("--moves", type=int, default=0, help="time this many deal moves (and renames) instead")
    parser.add_argument(
        "--contention", type=int, default=0, help="time a batch of this many deal creates beside single moves instead"
    )
    args = parser.parse_args()
    from bench import seed as contacts_seed

    started = time.perf_counter()
    log(f"{common.DATABASE_URL}: {args.deals:,} deals")
    contacts_seed.prepare_database(args.reset)
    asyncio.run(seed(args))
    log(f"data ready in {time.perf_counter() - started:.1f} s")
    if args.moves:
        asyncio.run(measure_moves(args))
    elif args.contention:
        asyncio.run(measure_contention(args))
    elif not args.seed_only:
        asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())

"""Sales reports: the funnel from stage history, the weighted forecast, rep performance and
pipeline velocity, with exact figures; periods, visibility, tenancy, roles and validation."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.services import reports
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

DEALS = "/api/v1/deals"
REPORTS = "/api/v1/reports"
ENDPOINTS = ("funnel", "forecast", "rep-performance", "velocity")


async def _stages(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    """The default pipeline's stages by name, and its id under "pipeline"."""
    response = await client.get("/api/v1/pipelines", headers=tenant.headers)
    assert response.status_code == 200, response.text
    pipeline = response.json()["items"][0]
    return {stage["name"]: stage["id"] for stage in pipeline["stages"]} | {"pipeline": pipeline["id"]}


async def _deal(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, DEALS, tenant.headers, **({"name": "ERP 升级"} | body))


async def _move(client: httpx.AsyncClient, tenant: Tenant, deal: dict[str, Any], *stage_ids: str) -> None:
    for stage_id in stage_ids:
        response = await client.post(f"{DEALS}/{deal['id']}/move", headers=tenant.headers, json={"stage_id": stage_id})
        assert response.status_code == 200, response.text


async def _backdate_visits(db: AsyncSession, deal: dict[str, Any], base: datetime, *days_ago: float) -> None:
    """Gives the deal's stage visits, first to last, these entry times (days before `base`);
    each visit is left when the next one is entered, the last one is still going on."""
    rows = await db.execute(
        text("SELECT id FROM deal_stage_history WHERE deal_id = :deal ORDER BY entered_at, id"),
        {"deal": uuid.UUID(deal["id"])},
    )
    ids = [row[0] for row in rows]
    assert len(ids) == len(days_ago), (ids, days_ago)
    times = [base - timedelta(days=d) for d in days_ago]
    for n, visit_id in enumerate(ids):
        exited = times[n + 1] if n + 1 < len(times) else None
        await db.execute(
            text("UPDATE deal_stage_history SET entered_at = :entered, exited_at = :exited WHERE id = :id"),
            {"entered": times[n], "exited": exited, "id": visit_id},
        )
    await db.commit()


async def _set_deal(db: AsyncSession, deal: dict[str, Any], **columns: Any) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    await db.execute(text(f"UPDATE deals SET {assignments} WHERE id = :id"), {**columns, "id": uuid.UUID(deal["id"])})
    await db.commit()


async def _report(client: httpx.AsyncClient, headers: dict[str, str], name: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{REPORTS}/{name}", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _steps(report: dict[str, Any]) -> list[tuple[str, int, float | None, float | None]]:
    return [
        (s["name"], s["reached"], s["conversion_from_previous"], s["conversion_from_first"]) for s in report["steps"]
    ]


async def _funnel_deals(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, stages: dict[str, str], base: datetime
) -> dict[str, dict[str, Any]]:
    """Five deals through the default pipeline, their histories backdated:

    A 潜在客户 -40 → 需求分析 -38 → 方案制定 -35 → 商务谈判 -30 → 成交 -20
    B 潜在客户 -50 → 需求分析 -46 → 输单 -45
    C 潜在客户 -10 (still there)
    D created in 方案制定 -25 → 商务谈判 -21 (skipped the first two stages)
    E 潜在客户 -60 → 需求分析 -59 → back to 潜在客户 -57 → 需求分析 -56
    """
    s0, s1, s2, s3 = stages["潜在客户"], stages["需求分析"], stages["方案制定"], stages["商务谈判"]
    deals = {name: await _deal(client, tenant, name=f"deal {name}") for name in "ABCE"}
    deals["D"] = await _deal(client, tenant, name="deal D", stage_id=s2)
    await _move(client, tenant, deals["A"], s1, s2, s3, stages["成交"])
    await _move(client, tenant, deals["B"], s1, stages["输单"])
    await _move(client, tenant, deals["D"], s3)
    await _move(client, tenant, deals["E"], s1, s0, s1)
    await _backdate_visits(db, deals["A"], base, 40, 38, 35, 30, 20)
    await _backdate_visits(db, deals["B"], base, 50, 46, 45)
    await _backdate_visits(db, deals["C"], base, 10)
    await _backdate_visits(db, deals["D"], base, 25, 21)
    await _backdate_visits(db, deals["E"], base, 60, 59, 57, 56)
    return deals


async def test_funnel_counts_deals_that_reached_each_stage_or_a_later_one(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    base = datetime.now(UTC).replace(microsecond=0)
    await _funnel_deals(client, tenant, db, stages, base)

    since, until = (base - timedelta(days=90)).isoformat(), base.isoformat()
    report = await _report(
        client, tenant.headers, "funnel", basis="entered", pipeline_id=stages["pipeline"], since=since, until=until
    )
    assert report["pipeline_id"] == stages["pipeline"] and report["owner_id"] is None
    assert _steps(report) == [
        ("潜在客户", 5, None, 1.0),
        ("需求分析", 4, 0.8, 0.8),  # D entered 方案制定 directly: it reached the stages before it
        ("方案制定", 2, 0.5, 0.4),
        ("商务谈判", 2, 1.0, 0.4),
        ("成交", 1, 0.5, 0.2),
    ]
    assert [s["kind"] for s in report["steps"]] == ["open", "open", "open", "open", "won"]
    assert report["steps"][-1]["stage_id"] == stages["成交"]
    # Finished stays only: 潜在客户 A 2, B 4, E 1 and 1; 需求分析 A 3, B 1, E 2; 方案制定 A 5, D 4; 商务谈判 A 10.
    durations = [(s["median_days"], s["average_days"], s["stays"]) for s in report["steps"]]
    assert durations == [(1.5, 2.0, 4), (2.0, 2.0, 3), (4.5, 4.5, 2), (10.0, 10.0, 1), (None, None, 0)]

    # The default pipeline is the one reported when none is named.
    assert _steps(await _report(client, tenant.headers, "funnel", basis="entered", since=since, until=until)) == _steps(
        report
    )


async def test_funnel_follows_the_current_stage_order(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """Steps come from the stages' order now: a reorder changes which deals reached what at once
    (nothing stored depends on positions); stays stay with their stage."""
    stages = await _stages(client, tenant)
    base = datetime.now(UTC).replace(microsecond=0)
    await _funnel_deals(client, tenant, db, stages, base)
    order = [stages[name] for name in ("潜在客户", "方案制定", "需求分析", "商务谈判", "成交", "输单")]
    url = f"/api/v1/pipelines/{stages['pipeline']}/stages/reorder"
    response = await client.post(url, headers=tenant.headers, json={"stage_ids": order})
    assert response.status_code == 200, response.text

    since, until = (base - timedelta(days=90)).isoformat(), base.isoformat()
    report = await _report(client, tenant.headers, "funnel", basis="entered", since=since, until=until)
    # Furthest steps now: A won, B and E 需求分析 (step 2), D 商务谈判, C 潜在客户.
    assert _steps(report) == [
        ("潜在客户", 5, None, 1.0),
        ("方案制定", 4, 0.8, 0.8),
        ("需求分析", 4, 1.0, 0.8),
        ("商务谈判", 2, 0.5, 0.4),
        ("成交", 1, 0.5, 0.2),
    ]
    durations = [(s["median_days"], s["average_days"], s["stays"]) for s in report["steps"]]
    assert durations == [(1.5, 2.0, 4), (4.5, 4.5, 2), (2.0, 2.0, 3), (10.0, 10.0, 1), (None, None, 0)]


async def test_funnel_after_a_stage_is_deleted_and_its_deals_moved(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """A deleted stage is no step any more; the deals it held re-enter the stage they moved to."""
    stages = await _stages(client, tenant)
    base = datetime.now(UTC).replace(microsecond=0)
    await _funnel_deals(client, tenant, db, stages, base)
    url = f"/api/v1/pipelines/{stages['pipeline']}/stages/{stages['商务谈判']}"
    response = await client.delete(url, headers=tenant.headers, params={"move_to": stages["方案制定"]})
    assert response.status_code in (200, 204), response.text

    since, until = (base - timedelta(days=90)).isoformat(), (base + timedelta(days=1)).isoformat()
    report = await _report(client, tenant.headers, "funnel", basis="entered", since=since, until=until)
    # D: 方案制定 -25 → 商务谈判 -21 → 方案制定 now (moved); A's and D's 商务谈判 visits count for nothing.
    assert _steps(report) == [
        ("潜在客户", 5, None, 1.0),
        ("需求分析", 4, 0.8, 0.8),
        ("方案制定", 2, 0.5, 0.4),
        ("成交", 1, 0.5, 0.2),
    ]
    durations = [(s["median_days"], s["average_days"], s["stays"]) for s in report["steps"]]
    assert durations == [(1.5, 2.0, 4), (2.0, 2.0, 3), (4.5, 4.5, 2), (None, None, 0)]


async def test_funnel_counts_only_stage_entries_in_the_period(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    base = datetime.now(UTC).replace(microsecond=0)
    await _funnel_deals(client, tenant, db, stages, base)
    # [-46, -30): A's first four entries (its won entry at -20 is later), B's 需求分析 at -46 (since is
    # included) and its loss at -45 (no step); -30 itself is excluded, so A's 商务谈判 is out.
    since, until = (base - timedelta(days=46)).isoformat(), (base - timedelta(days=30)).isoformat()
    report = await _report(client, tenant.headers, "funnel", basis="entered", since=since, until=until)
    assert _steps(report) == [
        ("潜在客户", 2, None, 1.0),
        ("需求分析", 2, 1.0, 1.0),
        ("方案制定", 1, 0.5, 0.5),
        ("商务谈判", 0, 0.0, 0.0),
        ("成交", 0, None, 0.0),
    ]
    # Stays of visits entered in the period: 潜在客户 A 2; 需求分析 A 3, B 1; 方案制定 A 5.
    assert [s["median_days"] for s in report["steps"]] == [2.0, 2.0, 5.0, None, None]

    empty = await _report(
        client,
        tenant.headers,
        "funnel",
        basis="entered",
        since=(base - timedelta(days=300)).isoformat(),
        until=(base - timedelta(days=200)).isoformat(),
    )
    assert [s["reached"] for s in empty["steps"]] == [0, 0, 0, 0, 0]
    assert empty["steps"][1]["conversion_from_previous"] is None and empty["steps"][0]["median_days"] is None


async def test_funnel_leaves_out_archived_deals_and_filters_by_owner(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    rep = await add_user(client, tenant, "sales")
    base = datetime.now(UTC).replace(microsecond=0)
    deals = await _funnel_deals(client, tenant, db, stages, base)
    assert (await client.delete(f"{DEALS}/{deals['A']['id']}", headers=tenant.headers)).status_code == 200
    response = await client.patch(f"{DEALS}/{deals['D']['id']}", headers=tenant.headers, json={"owner_id": rep.user_id})
    assert response.status_code == 200, response.text
    since, until = (base - timedelta(days=90)).isoformat(), base.isoformat()
    report = await _report(client, tenant.headers, "funnel", basis="entered", since=since, until=until)
    assert [s["reached"] for s in report["steps"]] == [4, 3, 1, 1, 0]
    theirs = await _report(
        client, tenant.headers, "funnel", basis="entered", since=since, until=until, owner_id=rep.user_id
    )
    assert theirs["owner_id"] == rep.user_id
    assert [s["reached"] for s in theirs["steps"]] == [1, 1, 1, 1, 0]
    assert [s["median_days"] for s in theirs["steps"]] == [None, None, 4.0, None, None]


async def test_forecast_weights_open_deals_by_expected_close_month_per_currency(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    rep = await add_user(client, tenant, "sales")
    this_month = datetime.now(UTC).date().replace(day=1)
    m1 = (this_month + timedelta(days=32)).replace(day=1)
    m2 = (m1 + timedelta(days=32)).replace(day=1)
    m3 = (m2 + timedelta(days=32)).replace(day=1)

    def day(month: date, n: int) -> str:
        return month.replace(day=n).isoformat()

    await _deal(client, tenant, amount="1000.00", expected_close_date=day(this_month, 1))  # 10 %
    await _deal(client, tenant, amount="2000.50", stage_id=stages["方案制定"], expected_close_date=day(this_month, 28))
    await _deal(client, rep, amount="500", currency="USD", stage_id=stages["商务谈判"], expected_close_date=day(m1, 1))
    await _deal(client, tenant, stage_id=stages["需求分析"], expected_close_date=day(m1, 10))  # no amount
    await _deal(client, tenant, amount="333.33", probability=33, expected_close_date=day(m2, 10))
    await _deal(client, tenant, amount="1", expected_close_date=day(m3, 1))  # after the window
    await _deal(client, tenant, amount="1")  # no expected close date
    archived = await _deal(client, tenant, amount="5", expected_close_date=day(this_month, 2))
    assert (await client.delete(f"{DEALS}/{archived['id']}", headers=tenant.headers)).status_code == 200
    won = await _deal(client, tenant, amount="700.00", expected_close_date=day(m2, 1))
    await _move(client, tenant, won, stages["成交"])  # won now, in this month
    lost = await _deal(client, tenant, amount="900.00", expected_close_date=day(this_month, 3))
    await _move(client, tenant, lost, stages["输单"])
    earlier = await _deal(client, tenant, amount="50.00")
    await _move(client, tenant, earlier, stages["成交"])
    await _set_deal(db, earlier, closed_at=datetime.combine(this_month, datetime.min.time(), UTC) - timedelta(hours=1))

    report = await _report(client, tenant.headers, "forecast", months=3, **{"from": day(this_month, 17)})
    assert report["from"] == this_month.isoformat() and report["months"] == 3 and report["group_by"] == "month"
    assert report["pipeline_id"] is None
    assert report["rows"] == [
        {
            "month": this_month.isoformat(),
            "owner_id": None,
            "open_deals": 2,
            "won_deals": 1,
            "totals": [
                {
                    "currency": "CNY",
                    "open_deals": 2,
                    "amount": "3000.50",
                    "weighted_amount": "900.20",  # 1000 × 10 % + 2000.50 × 40 %
                    "won_deals": 1,
                    "won_amount": "700.00",
                }
            ],
        },
        {
            "month": m1.isoformat(),
            "owner_id": None,
            "open_deals": 2,
            "won_deals": 0,
            "totals": [
                {
                    "currency": "CNY",
                    "open_deals": 1,
                    "amount": "0.00",
                    "weighted_amount": "0.00",
                    "won_deals": 0,
                    "won_amount": "0.00",
                },
                {
                    "currency": "USD",
                    "open_deals": 1,
                    "amount": "500.00",
                    "weighted_amount": "350.00",
                    "won_deals": 0,
                    "won_amount": "0.00",
                },
            ],
        },
        {
            "month": m2.isoformat(),
            "owner_id": None,
            "open_deals": 1,
            "won_deals": 0,
            "totals": [
                {
                    "currency": "CNY",
                    "open_deals": 1,
                    "amount": "333.33",
                    "weighted_amount": "110.00",  # 109.9989
                    "won_deals": 0,
                    "won_amount": "0.00",
                }
            ],
        },
    ]

    by_owner = await _report(
        client, tenant.headers, "forecast", months=3, group_by="owner", pipeline_id=stages["pipeline"]
    )
    assert by_owner["pipeline_id"] == stages["pipeline"]
    cells = {
        (row["owner_id"], row["month"]): [(t["currency"], t["amount"], t["won_amount"]) for t in row["totals"]]
        for row in by_owner["rows"]
    }
    assert cells == {
        (tenant.user_id, this_month.isoformat()): [("CNY", "3000.50", "700.00")],
        (tenant.user_id, m1.isoformat()): [("CNY", "0.00", "0.00")],
        (tenant.user_id, m2.isoformat()): [("CNY", "333.33", "0.00")],
        (rep.user_id, m1.isoformat()): [("USD", "500.00", "0.00")],
    }
    mine = await _report(client, tenant.headers, "forecast", months=1, owner_id=rep.user_id)
    assert [row["open_deals"] for row in mine["rows"]] == [0]


async def _closed_deals(
    client: httpx.AsyncClient, tenant: Tenant, rep: Tenant, db: AsyncSession, stages: dict[str, str]
) -> datetime:
    """The owner wins 1,000 CNY (10-day cycle) and 3,000 CNY (30 days) and loses one; the rep wins
    200 USD (4 days) and loses two; each has open deals. Returns the close time."""
    closed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    for who, amount, currency, stage, cycle in (
        (tenant, "1000.00", "CNY", "成交", 10),
        (tenant, "3000.00", "CNY", "成交", 30),
        (tenant, "10.00", "CNY", "输单", 7),
        (rep, "200.00", "USD", "成交", 4),
        (rep, "20.00", "USD", "输单", 1),
        (rep, None, "USD", "输单", 1),
    ):
        deal = await _deal(client, who, amount=amount, currency=currency)
        await _move(client, who, deal, stages[stage])
        await _set_deal(db, deal, closed_at=closed_at, created_at=closed_at - timedelta(days=cycle))
    for who, amount, currency in ((tenant, "100.00", "CNY"), (tenant, "50.50", "CNY"), (rep, "7.00", "EUR")):
        await _deal(client, who, amount=amount, currency=currency)
    await _deal(client, tenant, amount="99.00", currency="USD")
    return closed_at


async def test_rep_performance_per_owner(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    stages = await _stages(client, tenant)
    rep = await add_user(client, tenant, "sales", full_name="赵磊")
    closed_at = await _closed_deals(client, tenant, rep, db, stages)
    for who in (tenant, tenant, rep):
        task = await create(client, "/api/v1/tasks", who.headers, title="回访客户")
        response = await client.post(f"/api/v1/tasks/{task['id']}/complete", headers=who.headers)
        assert response.status_code == 200, response.text
    await create(client, "/api/v1/tasks", rep.headers, title="还没做")

    until = datetime.now(UTC) + timedelta(minutes=1)
    report = await _report(
        client,
        tenant.headers,
        "rep-performance",
        since=(closed_at - timedelta(days=1)).isoformat(),
        until=until.isoformat(),
    )
    assert [rep_row["owner_id"] for rep_row in report["reps"]] == [tenant.user_id, rep.user_id]
    owner_row, rep_row = report["reps"]
    assert owner_row == {
        "owner_id": tenant.user_id,
        "owner_name": "王芳",
        "won_deals": 2,
        "lost_deals": 1,
        "win_rate": 0.6667,
        "average_cycle_days": 20.0,
        "won": [{"currency": "CNY", "amount": "4000.00", "deals": 2}],
        "open_pipeline": [
            {"currency": "CNY", "amount": "150.50", "deals": 2},
            {"currency": "USD", "amount": "99.00", "deals": 1},
        ],
        "open_deals": 3,
        "tasks_completed": 2,
    }
    assert rep_row == {
        "owner_id": rep.user_id,
        "owner_name": "赵磊",
        "won_deals": 1,
        "lost_deals": 2,
        "win_rate": 0.3333,
        "average_cycle_days": 4.0,
        "won": [{"currency": "USD", "amount": "200.00", "deals": 1}],
        "open_pipeline": [{"currency": "EUR", "amount": "7.00", "deals": 1}],
        "open_deals": 1,
        "tasks_completed": 1,
    }

    # Closed before the period: no wins, no losses, no rate; the open pipeline is today's.
    before = await _report(
        client,
        tenant.headers,
        "rep-performance",
        since=(closed_at - timedelta(days=3)).isoformat(),
        until=(closed_at - timedelta(days=2)).isoformat(),
    )
    quiet = next(row for row in before["reps"] if row["owner_id"] == tenant.user_id)
    assert (quiet["won_deals"], quiet["lost_deals"], quiet["win_rate"], quiet["average_cycle_days"]) == (
        0,
        0,
        None,
        None,
    )
    assert quiet["won"] == [] and quiet["open_deals"] == 3 and quiet["tasks_completed"] == 0


async def test_velocity_and_its_components(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    stages = await _stages(client, tenant)
    rep = await add_user(client, tenant, "sales")
    closed_at = await _closed_deals(client, tenant, rep, db, stages)
    other = await create(client, "/api/v1/pipelines", tenant.headers, name="大客户")
    await _deal(client, tenant, amount="1.00", pipeline_id=other["id"])  # another pipeline
    since = (closed_at - timedelta(days=1)).isoformat()
    report = await _report(client, tenant.headers, "velocity", since=since)
    assert report["pipeline_id"] == stages["pipeline"]
    assert report["overall"] == {
        "currency": None,
        "open_deals": 4,
        "won_deals": 3,
        "lost_deals": 3,
        "win_rate": 0.5,
        "average_cycle_days": 14.6667,  # (10 + 30 + 4) / 3
        "average_won_amount": None,
        "velocity_per_day": None,
    }
    by_currency = {row["currency"]: row for row in report["currencies"]}
    assert list(by_currency) == ["CNY", "EUR", "USD"]
    # CNY: 2 open × 2,000 average won × 2/3 win rate / 20 days = 133.33 a day.
    assert by_currency["CNY"] == {
        "currency": "CNY",
        "open_deals": 2,
        "won_deals": 2,
        "lost_deals": 1,
        "win_rate": 0.6667,
        "average_cycle_days": 20.0,
        "average_won_amount": "2000.00",
        "velocity_per_day": "133.33",
    }
    # USD: 1 open × 200 × 1/3 / 4 days = 16.67.
    assert by_currency["USD"]["velocity_per_day"] == "16.67"
    assert by_currency["USD"]["win_rate"] == 0.3333 and by_currency["USD"]["average_won_amount"] == "200.00"
    # EUR: open deals, nothing closed: no velocity.
    assert by_currency["EUR"]["open_deals"] == 1 and by_currency["EUR"]["velocity_per_day"] is None

    theirs = await _report(client, tenant.headers, "velocity", pipeline_id=other["id"], since=since)
    assert theirs["overall"]["open_deals"] == 1 and theirs["overall"]["win_rate"] is None
    assert [row["velocity_per_day"] for row in theirs["currencies"]] == [None]


async def test_a_sales_rep_under_own_visibility_sees_only_their_deals(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    rep = await add_user(client, tenant, "sales")
    closed_at = await _closed_deals(client, tenant, rep, db, stages)
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    assert response.status_code == 200, response.text
    since = (closed_at - timedelta(days=1)).isoformat()

    performance = await _report(client, rep.headers, "rep-performance", since=since)
    assert [row["owner_id"] for row in performance["reps"]] == [rep.user_id]
    velocity = await _report(client, rep.headers, "velocity", since=since)
    assert (velocity["overall"]["open_deals"], velocity["overall"]["won_deals"]) == (1, 1)
    assert [row["currency"] for row in velocity["currencies"]] == ["EUR", "USD"]
    funnel = await _report(client, rep.headers, "funnel", basis="entered", since=since)
    # All four of the rep's deals entered 潜在客户; the won one went straight to 成交, a later step.
    assert [s["reached"] for s in funnel["steps"]] == [4, 1, 1, 1, 1]
    # Asking for someone else's deals gives nothing, not an error.
    hidden = await _report(client, rep.headers, "funnel", basis="entered", since=since, owner_id=tenant.user_id)
    assert [s["reached"] for s in hidden["steps"]] == [0, 0, 0, 0, 0]
    forecast = await _report(client, rep.headers, "forecast", group_by="owner")
    assert {row["owner_id"] for row in forecast["rows"]} <= {rep.user_id}
    # The owner still sees everything.
    everyone = await _report(client, tenant.headers, "funnel", basis="entered", since=since)
    assert [s["reached"] for s in everyone["steps"]] == [10, 3, 3, 3, 3]
    assert stages["成交"] == everyone["steps"][-1]["stage_id"]


async def test_another_organisation_sees_none_of_it(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    base = datetime.now(UTC).replace(microsecond=0)
    await _funnel_deals(client, tenant, db, stages, base)
    since = (base - timedelta(days=90)).isoformat()
    theirs = await _report(client, other_tenant.headers, "funnel", basis="entered", since=since)
    assert [s["reached"] for s in theirs["steps"]] == [0, 0, 0, 0, 0]
    assert (await _report(client, other_tenant.headers, "rep-performance", since=since))["reps"] == []
    velocity = await _report(client, other_tenant.headers, "velocity", since=since)
    assert velocity["overall"]["open_deals"] == 0 and velocity["currencies"] == []
    forecast = await _report(client, other_tenant.headers, "forecast", months=24)
    assert all(row["open_deals"] == 0 and row["totals"] == [] for row in forecast["rows"])
    for name in ("funnel", "forecast", "velocity"):
        response = await client.get(
            f"{REPORTS}/{name}", headers=other_tenant.headers, params={"pipeline_id": stages["pipeline"]}
        )
        assert_problem(response, 404)


async def test_roles_and_api_keys(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for role in ("admin", "manager", "sales", "viewer"):
        member = await add_user(client, tenant, role)
        for name in ENDPOINTS:
            assert (await client.get(f"{REPORTS}/{name}", headers=member.headers)).status_code == 200, (role, name)
    for role in ("support", "marketing"):
        member = await add_user(client, tenant, role)
        for name in ENDPOINTS:
            body = assert_problem(await client.get(f"{REPORTS}/{name}", headers=member.headers), 403)
            assert "reports:read" in body["detail"]
    key = await add_api_key(client, tenant, ["reports:read"])
    assert (await client.get(f"{REPORTS}/funnel", headers=key)).status_code == 200
    without = await add_api_key(client, tenant, ["deals:read"])
    assert_problem(await client.get(f"{REPORTS}/forecast", headers=without), 403)
    assert_problem(await client.get(f"{REPORTS}/velocity"), 401)


@pytest.mark.parametrize(
    ("name", "params", "loc"),
    [
        ("funnel", {"since": "2026-02-01", "until": "2026-01-01"}, ["query", "since"]),
        ("funnel", {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, ["query", "since"]),
        ("funnel", {"since": "yesterday"}, ["query", "since"]),
        ("funnel", {"pipeline_id": "nope"}, ["query", "pipeline_id"]),
        ("funnel", {"owner_id": "nope"}, ["query", "owner_id"]),
        ("funnel", {"basis": "first"}, ["query", "basis"]),
        # A cohort period ends at a midnight: the day after 9999-12-31 has none.
        ("funnel", {"since": "9999-12-31T10:00:00Z", "until": "9999-12-31T12:00:00Z"}, ["query", "until"]),
        ("forecast", {"months": 0}, ["query", "months"]),
        ("forecast", {"months": 25}, ["query", "months"]),
        ("forecast", {"group_by": "team"}, ["query", "group_by"]),
        ("forecast", {"from": "2026-13-01"}, ["query", "from"]),
        ("rep-performance", {"since": "2026-03-01", "until": "2026-03-01"}, ["query", "since"]),
        ("velocity", {"since": "2100-01-01"}, ["query", "since"]),  # until is now
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, name: str, params: dict[str, Any], loc: list[str]
) -> None:
    response = await client.get(f"{REPORTS}/{name}", headers=tenant.headers, params=params)
    assert_problem(response, 422)
    assert error_locs(response) == [loc]


async def test_dates_and_times_without_an_offset_are_utc(client: httpx.AsyncClient, tenant: Tenant) -> None:
    report = await _report(
        client, tenant.headers, "funnel", basis="entered", since="2026-01-01", until="2026-02-01T08:00:00"
    )
    assert (report["since"], report["until"]) == ("2026-01-01T00:00:00Z", "2026-02-01T08:00:00Z")
    shifted = await _report(client, tenant.headers, "rep-performance", since="2026-01-01T08:00:00+08:00")
    assert shifted["since"] == "2026-01-01T00:00:00Z"


# --------------------------------------------------------------------------- the cohort funnel


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


async def test_cohort_funnel_counts_each_deal_by_its_first_entry_and_every_stage_it_reached(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    stages = await _stages(client, tenant)
    base = datetime.now(UTC).replace(microsecond=0)
    await _funnel_deals(client, tenant, db, stages, base)
    # All five entered the pipeline in the last 90 days: sets A {0,1,2,3,won}, B {0,1,lost}, C {0},
    # D {2,3}, E {0,1}.
    report = await _report(client, tenant.headers, "funnel", since=(base - timedelta(days=90)).isoformat())
    assert report["basis"] == "cohort"
    assert _steps(report) == [
        ("潜在客户", 5, None, 1.0),
        ("需求分析", 4, 0.8, 0.8),
        ("方案制定", 2, 0.5, 0.4),
        ("商务谈判", 2, 1.0, 0.4),
        ("成交", 1, 0.5, 0.2),
    ]
    # Finished stays of the cohort (as for `entered`, every visit is the cohort's here): averages and
    # counts exact, medians within 5 % of 1.5, 2, 4.5 and 10 days.
    steps = report["steps"]
    assert [(s["average_days"], s["stays"]) for s in steps] == [(2.0, 4), (2.0, 3), (4.5, 2), (10.0, 1), (None, 0)]
    for step, exact in zip(steps, (1.5, 2.0, 4.5, 10.0), strict=False):
        assert abs(step["median_days"] - exact) <= 0.05 * exact, (step["name"], step["median_days"])
    assert steps[-1]["median_days"] is None

    # A cohort is fixed by the first entry: only A entered between -46 and -30 days, and everything
    # it did later counts (it was won at -20).
    narrow = await _report(
        client,
        tenant.headers,
        "funnel",
        since=(base - timedelta(days=46)).isoformat(),
        until=(base - timedelta(days=31)).isoformat(),
    )
    assert [s["reached"] for s in narrow["steps"]] == [1, 1, 1, 1, 1]


async def test_cohort_periods_are_whole_utc_days(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    report = await _report(
        client, tenant.headers, "funnel", since="2026-01-01T08:00:00+09:00", until="2026-02-01T08:00:00"
    )
    # since 2025-12-31T23:00Z rounds down to its midnight; until rounds up to the next one.
    assert (report["since"], report["until"]) == ("2025-12-31T00:00:00Z", "2026-02-02T00:00:00Z")
    exact = await _report(client, tenant.headers, "funnel", since="2026-01-01", until="2026-02-01")
    assert (exact["since"], exact["until"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")

    # A deal whose first entry is at 23:59 UTC belongs to that day, whatever hour the period names.
    deal = await _deal(client, tenant)
    await _backdate_visits(db, deal, datetime(2026, 1, 31, 23, 59, tzinfo=UTC), 0)
    noon = await _report(client, tenant.headers, "funnel", since="2026-01-31T12:00:00Z", until="2026-01-31T13:00:00Z")
    assert (noon["since"], noon["until"]) == ("2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z")
    assert noon["steps"][0]["reached"] == 1
    after = await _report(client, tenant.headers, "funnel", since="2026-02-01", until="2026-02-02")
    assert after["steps"][0]["reached"] == 0


async def _history(db: AsyncSession, organization_id: str) -> tuple[list[Any], dict[uuid.UUID, tuple[Any, bool]]]:
    """The organisation's raw stage visits, and its deals' (owner, active)."""
    org = uuid.UUID(organization_id)
    visits = (
        await db.execute(
            text(
                "SELECT deal_id, pipeline_id, stage_id, entered_at, exited_at FROM deal_stage_history "
                "WHERE organization_id = :org"
            ),
            {"org": org},
        )
    ).all()
    deals = await db.execute(
        text("SELECT id, owner_id, archived_at IS NULL FROM deals WHERE organization_id = :org"), {"org": org}
    )
    await db.commit()
    return list(visits), {row[0]: (row[1], row[2]) for row in deals}


def _brute_force_cohort(
    visits: list[Any],
    deals: dict[uuid.UUID, tuple[Any, bool]],
    pipeline: dict[str, Any],
    first_day: date,
    after_day: date,
    owners: set[Any] | None,
) -> tuple[list[int], dict[str, list[float]]]:
    """The cohort funnel computed from raw history: reached per step, and each open stage's
    finished stays (seconds) of the cohort."""
    live = sorted((s for s in pipeline["stages"]), key=lambda s: s["position"])
    opens = [uuid.UUID(s["id"]) for s in live if s["kind"] == "open"]
    numbered = {stage: step for step, stage in enumerate(opens)}
    numbered |= {uuid.UUID(s["id"]): len(opens) for s in live if s["kind"] == "won"}
    mine = [v for v in visits if v.pipeline_id == uuid.UUID(pipeline["id"])]
    by_deal: dict[uuid.UUID, list[Any]] = {}
    for visit in mine:
        by_deal.setdefault(visit.deal_id, []).append(visit)
    reached = [0] * (len(opens) + 1)
    stays: dict[str, list[float]] = {str(stage): [] for stage in opens}
    for deal_id, own in by_deal.items():
        owner, active = deals[deal_id]
        cohort = min(v.entered_at for v in own).astimezone(UTC).date()
        if not active or not first_day <= cohort < after_day or (owners is not None and owner not in owners):
            continue
        steps = [numbered[v.stage_id] for v in own if v.stage_id in numbered]
        for step in range(max(steps) + 1 if steps else 0):
            reached[step] += 1
        for visit in own:
            if visit.exited_at is not None and str(visit.stage_id) in stays:
                stays[str(visit.stage_id)].append((visit.exited_at - visit.entered_at).total_seconds())
    return reached, stays


def _assert_matches(report: dict[str, Any], reached: list[int], stays: dict[str, list[float]]) -> None:
    import statistics

    assert [s["reached"] for s in report["steps"]] == reached
    for step in report["steps"]:
        if step["kind"] != "open":
            continue
        exact = stays[step["stage_id"]]
        assert step["stays"] == len(exact), step["name"]
        if not exact:
            assert step["median_days"] is None and step["average_days"] is None
            continue
        assert step["average_days"] == round(sum(exact) / len(exact) / 86_400, 4)
        median = statistics.median(exact)
        # Within 5 % (or a second), plus the reply's rounding to 4 decimals of a day.
        assert abs(step["median_days"] * 86_400 - median) <= max(0.05 * median, 1.0) + 5, (step["name"], exact)


async def _facts(db: AsyncSession, organization_id: str) -> dict[str, list[Any]]:
    org = {"org": uuid.UUID(organization_id)}
    found = {}
    for table, columns in (
        (
            "funnel_deal_paths",
            "deal_id, pipeline_id, cohort_day, owner_id, active, stage_ids, stay_stage_ids, stay_microseconds",
        ),
        ("funnel_cohorts", "pipeline_id, all_owners, owner_id, cohort_day, stage_ids, deals"),
        ("funnel_stays", "pipeline_id, all_owners, owner_id, cohort_day, stage_id, bucket, stays, microseconds"),
    ):
        statement = text(f"SELECT {columns} FROM {table} WHERE organization_id = :org ORDER BY {columns}")
        found[table] = [tuple(row) for row in await db.execute(statement, org)]
    return found


async def _assert_facts_equal_a_rebuild(db: AsyncSession, organization_id: str) -> dict[str, list[Any]]:
    """The organisation's committed facts, checked against a rebuild from its history (rolled
    back); no transaction left queued deals behind."""
    kept = await _facts(db, organization_id)
    await db.execute(text("SELECT rapport_rebuild_funnel_facts(:org)"), {"org": uuid.UUID(organization_id)})
    rebuilt = await _facts(db, organization_id)
    await db.rollback()
    assert kept == rebuilt
    assert await db.scalar(text("SELECT count(*) FROM funnel_dirty")) == 0
    await db.rollback()
    return kept


async def test_cohort_funnel_equals_raw_history_after_random_operations(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """Creates, moves forward and back, won and lost, archive and restore, owner changes, a stage
    reorder, a stage deleted with its deals moved, deals moved to another pipeline and histories
    shifted in time: the triggers' facts give what a brute-force pass over the raw history gives,
    and equal a full rebuild."""
    import random

    rng = random.Random(20261130)
    reps = [await add_user(client, tenant, "sales"), await add_user(client, tenant, "sales")]
    owners: list[str | None] = [tenant.user_id, reps[0].user_id, reps[1].user_id, None]
    stages = await _stages(client, tenant)
    default_id = stages["pipeline"]
    extra = await client.post(
        f"/api/v1/pipelines/{default_id}/stages", headers=tenant.headers, json={"name": "复核", "probability": 50}
    )
    assert extra.status_code == 201, extra.text
    other = await create(client, "/api/v1/pipelines", tenant.headers, name="大客户")

    async def pipelines() -> dict[str, dict[str, Any]]:
        response = await client.get("/api/v1/pipelines", headers=tenant.headers)
        return {p["id"]: p for p in response.json()["items"]}

    deals: dict[str, dict[str, Any]] = {}  # id → {"pipeline", "active"}
    deleted_extra = False
    for turn in range(90):
        known = await pipelines()
        active = [d for d, state in deals.items() if state["active"]]
        roll = rng.random()
        if roll < 0.25 or len(active) < 3:
            pipeline_id = rng.choice([default_id, default_id, other["id"]])
            stage = rng.choice(known[pipeline_id]["stages"])
            body = {"name": f"deal {turn}", "stage_id": stage["id"], "owner_id": rng.choice(owners)}
            deal = await _deal(client, tenant, **body)
            deals[deal["id"]] = {"pipeline": pipeline_id, "active": True}
        elif roll < 0.60:
            deal_id = rng.choice(active)
            pipeline_id = deals[deal_id]["pipeline"]
            if rng.random() < 0.1:
                pipeline_id = default_id if pipeline_id == other["id"] else other["id"]
            stage = rng.choice(known[pipeline_id]["stages"])
            response = await client.patch(f"{DEALS}/{deal_id}", headers=tenant.headers, json={"stage_id": stage["id"]})
            assert response.status_code == 200, response.text
            deals[deal_id]["pipeline"] = pipeline_id
        elif roll < 0.68:
            deal_id = rng.choice(active)
            assert (await client.delete(f"{DEALS}/{deal_id}", headers=tenant.headers)).status_code == 200
            deals[deal_id]["active"] = False
        elif roll < 0.74 and len(active) < len(deals):
            deal_id = rng.choice([d for d in deals if not deals[d]["active"]])
            response = await client.post(f"{DEALS}/{deal_id}/restore", headers=tenant.headers)
            assert response.status_code == 200, response.text
            deals[deal_id]["active"] = True
        elif roll < 0.84:
            deal_id = rng.choice(active)
            response = await client.patch(
                f"{DEALS}/{deal_id}", headers=tenant.headers, json={"owner_id": rng.choice(owners)}
            )
            assert response.status_code == 200, response.text
        elif roll < 0.88:
            order = [stage["id"] for stage in known[default_id]["stages"]]
            rng.shuffle(order)
            url = f"/api/v1/pipelines/{default_id}/stages/reorder"
            response = await client.post(url, headers=tenant.headers, json={"stage_ids": order})
            assert response.status_code == 200, response.text
        elif roll < 0.90 and turn > 45 and not deleted_extra:
            target = next(s for s in known[default_id]["stages"] if s["name"] == "需求分析")
            url = f"/api/v1/pipelines/{default_id}/stages/{extra.json()['id']}"
            response = await client.delete(url, headers=tenant.headers, params={"move_to": target["id"]})
            assert response.status_code in (200, 204), response.text
            deleted_extra = True
        else:
            # History shifted back in time, as an import of old deals would write it.
            deal_id = rng.choice(list(deals))
            await db.execute(
                text(
                    "UPDATE deal_stage_history SET entered_at = entered_at - CAST(:shift AS interval), "
                    "exited_at = exited_at - CAST(:shift AS interval) WHERE deal_id = :deal"
                ),
                {"shift": timedelta(days=rng.randrange(1, 200), hours=rng.randrange(24)), "deal": uuid.UUID(deal_id)},
            )
            await db.commit()

    visits, deal_rows = await _history(db, tenant.organization_id)
    today = datetime.now(UTC).replace(microsecond=0)
    known = await pipelines()
    for pipeline_id in (default_id, other["id"]):
        for since, until in (
            (today - timedelta(days=400), today),
            (today - timedelta(days=120), today - timedelta(days=3)),
        ):
            first, after = since.date(), until.date() + timedelta(days=1)
            params = {"pipeline_id": pipeline_id, "since": since.isoformat(), "until": until.isoformat()}
            report = await _report(client, tenant.headers, "funnel", **params)
            assert report["steps"][0]["reached"] > 0 or pipeline_id != default_id
            _assert_matches(report, *_brute_force_cohort(visits, deal_rows, known[pipeline_id], first, after, None))
            mine = await _report(client, tenant.headers, "funnel", owner_id=reps[0].user_id, **params)
            _assert_matches(
                mine,
                *_brute_force_cohort(visits, deal_rows, known[pipeline_id], first, after, {uuid.UUID(reps[0].user_id)}),
            )

    # A sales rep under `own` visibility reads only their rows; asking for another's gives nothing.
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    assert response.status_code == 200, response.text
    since = (today - timedelta(days=400)).isoformat()
    theirs = await _report(client, reps[1].headers, "funnel", since=since)
    _assert_matches(
        theirs,
        *_brute_force_cohort(
            visits,
            deal_rows,
            known[default_id],
            (today - timedelta(days=400)).date(),
            today.date() + timedelta(days=1),
            {uuid.UUID(reps[1].user_id)},
        ),
    )
    hidden = await _report(client, reps[1].headers, "funnel", since=since, owner_id=reps[0].user_id)
    assert {s["reached"] for s in hidden["steps"]} == {0}

    kept = await _assert_facts_equal_a_rebuild(db, tenant.organization_id)
    assert kept["funnel_cohorts"] and kept["funnel_stays"]


async def _batch(
    client: httpx.AsyncClient, tenant: Tenant, records: list[dict[str, Any]], **params: Any
) -> httpx.Response:
    return await client.post(
        f"{DEALS}/batch", headers=tenant.headers, params=params, json={"mode": "upsert", "records": records}
    )


def _none_failed(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert all(result["status"] != "failed" for result in response.json()["results"]), response.text


async def test_parallel_batches_writing_the_same_cohort_in_opposite_orders_all_succeed(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """Two batches create and move deals of today's cohort, one walking the stages forward and the
    other backward, so they add to the same fact rows in opposite orders: applied at commit, in key
    order, neither waits for the other's writes, no record fails and the facts stay exact."""
    stages = await _stages(client, tenant)
    steps = [stages[name] for name in ("潜在客户", "需求分析", "方案制定", "商务谈判")]
    seeded = [{"external_id": f"{side}{n}", "name": f"并发 {side}{n}"} for side in "AB" for n in range(12)]
    _none_failed(await _batch(client, tenant, seeded))

    def records(side: str, order: list[str], round_: int) -> list[dict[str, Any]]:
        written: list[dict[str, Any]] = []
        for n in range(12):
            stage_id = order[(n + round_) % len(order)]
            written.append({"external_id": f"{side}{n}", "stage_id": stage_id})
            written.append({"external_id": f"{side}{round_}-{n}", "name": f"新 {side}{n}", "stage_id": stage_id})
        return written

    for round_ in range(3):
        forward, backward = await asyncio.gather(
            _batch(client, tenant, records("A", steps, round_)),
            _batch(client, tenant, records("B", steps[::-1], round_)),
        )
        _none_failed(forward)
        _none_failed(backward)
    await _assert_facts_equal_a_rebuild(db, tenant.organization_id)
    report = await _report(client, tenant.headers, "funnel", since=_day(datetime.now(UTC)))
    assert report["steps"][0]["reached"] == 24 + 2 * 3 * 12


async def test_a_batch_and_an_import_beside_parallel_single_writes(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, app: Any, settings: Any, tmp_path: Any
) -> None:
    """A 150-deal batch (one transaction) and a 150-row import chunk run while single creates and
    moves of the same pipeline and day run beside them: every write succeeds and the facts equal a
    rebuild. Before the facts moved to commit, every single write waited for the batch to end."""
    from app.services import imports

    settings.data_dir = tmp_path
    stages = await _stages(client, tenant)
    first, second = stages["潜在客户"], stages["需求分析"]
    singles = [await _deal(client, tenant, name=f"单 {n}") for n in range(20)]

    async def single_writes() -> None:
        for n, deal in enumerate(singles):
            await _move(client, tenant, deal, second)
            await _deal(client, tenant, name=f"旁 {n}", stage_id=first)

    async def batch() -> None:
        _none_failed(await _batch(client, tenant, [{"external_id": f"批{n}", "name": f"批 {n}"} for n in range(150)]))

    async def imported() -> None:
        rows = "".join(f"S{n},,导入 {n},潜在客户,1000,,2026-12-31\n" for n in range(150))
        created = await client.post(
            "/api/v1/imports",
            headers=tenant.headers,
            files={"file": ("机会.csv", ("机会ID,客户ID,产品名称,阶段,预计金额,负责人,截止日期\n" + rows).encode())},
            data={"entity": "deals"},
        )
        assert created.status_code == 202, created.text
        import_id = uuid.UUID(created.json()["id"])
        organization_id = uuid.UUID(tenant.organization_id)
        assert await imports.run_import(app.state.session_factory, organization_id, import_id) == "done"

    await asyncio.gather(batch(), imported(), single_writes())
    await _assert_facts_equal_a_rebuild(db, tenant.organization_id)
    report = await _report(client, tenant.headers, "funnel", since=_day(datetime.now(UTC)))
    assert [step["reached"] for step in report["steps"][:2]] == [20 + 20 + 150 + 150, 20]


async def test_a_stage_change_and_a_deal_of_its_pipeline_committing_together_do_not_deadlock(
    app: Any, client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """A stage change locks its pipeline row and writes events for the deals it touches (here a new
    probability the deals follow); a deal created in that pipeline meanwhile commits first, so it
    holds the organisation's event stream while it applies its facts. Had the facts' new rows to
    check the pipeline row (a foreign key), that commit would wait for the stage change, which waits
    for the event stream: a deadlock, and one of the two would fail."""
    from app.core.permissions import Role, Scope
    from app.core.principal import Principal
    from app.schemas.pipeline import StageUpdate
    from app.services import deals

    stages = await _stages(client, tenant)
    await _deal(client, tenant, stage_id=stages["需求分析"])  # follows its stage's probability
    owner = Principal(
        organization_id=uuid.UUID(tenant.organization_id),
        kind="user",
        id=uuid.UUID(tenant.user_id),
        scopes=frozenset(Scope),
        role=Role.owner,
    )
    async with app.state.session_factory() as admin:
        await deals.update_stage(
            admin,
            owner,
            uuid.UUID(stages["pipeline"]),
            uuid.UUID(stages["需求分析"]),
            data=StageUpdate(probability=35),
        )
        # A deal of a stage set new today, so its commit inserts fact rows.
        created = asyncio.create_task(_deal(client, tenant, stage_id=stages["方案制定"]))
        await asyncio.wait({created}, timeout=3)
        await admin.commit()
    await created
    await _assert_facts_equal_a_rebuild(db, tenant.organization_id)


async def test_rolled_back_writes_leave_the_facts_as_they_were(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """An atomic batch that fails, a savepoint rolled back inside a transaction that commits, and a
    deal moved then deleted in one transaction: the facts follow what was committed."""
    stages = await _stages(client, tenant)
    deals = [await _deal(client, tenant, name=f"回滚 {n}") for n in range(3)]
    await _move(client, tenant, deals[0], stages["需求分析"])
    before = await _assert_facts_equal_a_rebuild(db, tenant.organization_id)

    records: list[dict[str, Any]] = [
        {"external_id": "新1", "name": "新 1"},
        {"external_id": "新2", "name": "新 2", "stage_id": stages["方案制定"]},
        {"external_id": "新3", "name": "新 3", "stage_id": str(uuid.uuid4())},
    ]
    assert_problem(await _batch(client, tenant, records, atomic="true"), 422)
    assert await _assert_facts_equal_a_rebuild(db, tenant.organization_id) == before

    moved, removed = (uuid.UUID(deal["id"]) for deal in deals[1:])
    # Each deal's one visit moved back three days: its cohort day changes.
    earlier = text("UPDATE deal_stage_history SET entered_at = entered_at - interval '3 days' WHERE deal_id = :deal")
    async with db.begin_nested():
        await db.execute(earlier, {"deal": moved})
    savepoint = await db.begin_nested()
    await db.execute(earlier, {"deal": removed})
    await db.execute(text("UPDATE deals SET archived_at = now() WHERE id = :deal"), {"deal": moved})
    await savepoint.rollback()
    await db.execute(earlier, {"deal": removed})
    await db.execute(text("DELETE FROM deals WHERE id = :deal"), {"deal": removed})
    await db.commit()
    after = await _assert_facts_equal_a_rebuild(db, tenant.organization_id)
    paths = {row[0]: row for row in after["funnel_deal_paths"]}
    assert removed not in paths and paths[moved][4] is True
    assert sum(row[5] for row in after["funnel_cohorts"] if row[1]) == 2


async def test_stay_buckets_and_the_median_bound(db: AsyncSession) -> None:
    """The database's bucket of a stay holds it (`bucket_bounds`), and a median read from the
    buckets is within 5 % (or a second) of the exact one."""
    import random
    import statistics

    from app.services.funnel_cohorts import STAY_BUCKET_RATIO, bucket_bounds, histogram_median

    rng = random.Random(5)
    lengths = [0, 1, 999_999, 1_000_000, 1_050_000, 86_400_000_000] + [
        int(rng.lognormvariate(13, 4)) for _ in range(300)
    ]
    found = await db.execute(
        text("SELECT m, rapport_funnel_stay_bucket(m) FROM unnest(CAST(:lengths AS bigint[])) AS m"),
        {"lengths": lengths},
    )
    for microseconds, bucket in found:
        low, high = bucket_bounds(bucket)
        seconds = microseconds / 1e6
        assert low * (1 - 1e-12) <= seconds < high * (1 + 1e-12), (microseconds, bucket)

    for _ in range(200):
        stays = [rng.lognormvariate(rng.uniform(0, 14), rng.uniform(0.1, 3)) for _ in range(rng.randrange(1, 60))]
        counts: dict[int, int] = {}
        for seconds in stays:
            bucket = 0 if seconds < 1 else 1 + int(math.log(seconds) / math.log(STAY_BUCKET_RATIO))
            counts[bucket] = counts.get(bucket, 0) + 1
        exact = statistics.median(stays)
        estimate = histogram_median(counts)
        assert estimate is not None
        assert abs(estimate - exact) <= max((STAY_BUCKET_RATIO - 1) * exact, 1.0), (stays, estimate, exact)


async def test_large_report_settings_hold_for_the_report_on_a_read_session_and_are_reset(app: Any) -> None:
    """Reads run in autocommit, where `SET LOCAL` does nothing: the settings must hold on the
    session's connection for the report's statements, and be gone before it returns to the pool."""

    async def shown(session: AsyncSession) -> tuple[str, str]:
        work_mem = (await session.execute(text("SHOW work_mem"))).scalar_one()
        return work_mem, (await session.execute(text("SHOW jit"))).scalar_one()

    async with app.state.read_session_factory() as session:
        before = await shown(session)
        async with reports._large_report(session):
            assert await shown(session) == ("128MB", "off")
        assert await shown(session) == before

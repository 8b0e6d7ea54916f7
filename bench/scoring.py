"""Issue 5's lead scoring figure: rescore 1,000,000 contacts with 20 rules, target under 30 s.

    uv run python -m bench.seed --reset --contacts 1000000 --companies 20000   # once
    uv run python -m bench.scoring

Against the seeded bench tenant, in this process (the app's own services, as the job runs them):

- activities: about 1.4 million (e-mail opens and clicks, forms, interactions on four channels,
  spread over 180 days) are added once, in SQL;
- the tenant's scoring rules are replaced by 20 made through the API: 14 fit rules (titles,
  cities, regions, sources, tags, e-mail domains, consent) and 6 behaviour rules (4 decaying);
- timed: the rescore after the 20 rules were made (every contact starts at 0, grade D, as one
  with no rules has; most scores move), a rescore after one behaviour rule's points changed, and
  one after a fit rule that matches few contacts changed (only changed rows are written).

Baseline in the same run: a bare INSERT … SELECT of one score row per contact into an empty copy
of `lead_scores` (same indexes): the least any rescore that writes every row must do.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import common

common.use_app_environment()

import uuid  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services import scoring  # noqa: E402

ACTIVITIES = """
INSERT INTO contact_activities (organization_id, id, contact_id, signal, channel, outcome, occurred_at, created_at)
SELECT c.organization_id, gen_random_uuid(), c.id,
       (ARRAY['interaction', 'email_opened', 'email_clicked', 'form_submitted'])[1 + floor(random() * 4)::int],
       (ARRAY['wechat', 'phone', 'email', 'visit'])[1 + floor(random() * 4)::int],
       (ARRAY['interested', 'no_answer', 'follow_up'])[1 + floor(random() * 3)::int],
       now() - random() * interval '180 days', now()
FROM contacts c CROSS JOIN generate_series(1, 2)
WHERE c.organization_id = $1 AND random() < 0.7
"""

FIT_RULES: list[tuple[str, dict[str, Any], int]] = [
    ("经理", {"field": "title", "op": "contains", "value": "经理"}, 10),
    ("总监", {"field": "title", "op": "contains", "value": "总监"}, 15),
    ("工程师", {"field": "title", "op": "contains", "value": "工程师"}, 3),
    ("上海", {"field": "city", "op": "eq", "value": "上海"}, 8),
    ("北京", {"field": "city", "op": "eq", "value": "北京"}, 8),
    ("深圳 广州", {"field": "city", "op": "in", "value": ["深圳", "广州"]}, 6),
    ("华东", {"field": "region", "op": "in", "value": ["上海市", "江苏省", "浙江省"]}, 5),
    ("推荐", {"field": "source", "op": "eq", "value": "referral"}, 12),
    ("网站表单", {"field": "source", "op": "eq", "value": "web_form"}, 7),
    ("VIP", {"field": "tags", "op": "contains", "value": "vip"}, 20),
    ("同意营销", {"field": "email_opt_in", "op": "eq", "value": True}, 4),
    ("无邮箱", {"field": "email", "op": "is_null", "value": True}, -10),
    ("企业邮箱", {"not": {"field": "email", "op": "contains", "value": "@qq.com"}}, 3),
    ("中国", {"field": "country", "op": "eq", "value": "CN"}, 1),
]
BEHAVIOUR_RULES: list[dict[str, Any]] = [
    {"name": "打开邮件", "signal": "email_opened", "points": 2, "half_life_days": 30},
    {"name": "点击邮件", "signal": "email_clicked", "points": 5, "half_life_days": 30},
    {"name": "提交表单", "signal": "form_submitted", "points": 15},
    {"name": "微信互动", "signal": "interaction", "channel": "wechat", "points": 8, "half_life_days": 14},
    {"name": "拜访有意向", "signal": "interaction", "channel": "visit", "outcome": "interested", "points": 20},
    {"name": "电话未接", "signal": "interaction", "channel": "phone", "outcome": "no_answer", "points": -1,
     "half_life_days": 7},
]  # fmt: skip


async def _rescore(app: Any, organization_id: str) -> float:
    started = time.perf_counter()
    assert await scoring.rescore_organization(app.state.session_factory, uuid.UUID(organization_id))
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    org = uuid.UUID(organization_id)
    contacts = await connection.fetchval("SELECT count(*) FROM contacts WHERE organization_id = $1", org)
    activities = await connection.fetchval("SELECT count(*) FROM contact_activities WHERE organization_id = $1", org)
    if activities == 0:
        started = time.perf_counter()
        await connection.execute(ACTIVITIES, org)
        await connection.execute("ANALYZE contact_activities")
        activities = await connection.fetchval(
            "SELECT count(*) FROM contact_activities WHERE organization_id = $1", org
        )
        print(f"added {activities:,} activities in {time.perf_counter() - started:.1f} s")
    await connection.execute("DELETE FROM scoring_rules WHERE organization_id = $1", org)
    # Every contact has a score row from the moment it is written (0, D without rules); the seed
    # loads contacts with COPY, around the app, so their rows are made here.
    await connection.execute("DELETE FROM lead_scores WHERE organization_id = $1", org)
    await connection.execute(
        "INSERT INTO lead_scores SELECT organization_id, id, 0, 'D', now() FROM contacts WHERE organization_id = $1",
        org,
    )
    await connection.execute("VACUUM ANALYZE lead_scores")

    await connection.execute("DROP TABLE IF EXISTS bench.bare_scores")
    await connection.execute("CREATE TABLE bench.bare_scores (LIKE lead_scores INCLUDING ALL)")
    started = time.perf_counter()
    await connection.execute(
        "INSERT INTO bench.bare_scores SELECT organization_id, id, 0, 'D', now() FROM contacts "
        "WHERE organization_id = $1",
        org,
    )
    baseline = time.perf_counter() - started
    await connection.execute("DROP TABLE bench.bare_scores")

    app = create_app(get_settings())
    timings: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            signed_in = await client.post(
                "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            made: dict[str, str] = {}
            for name, condition, points in FIT_RULES:
                body = {"name": name, "kind": "fit", "condition": condition, "points": points}
                reply = await client.post("/api/v1/scoring-rules", json=body, headers=headers)
                reply.raise_for_status()
                made[name] = reply.json()["id"]
            for rule in BEHAVIOUR_RULES:
                reply = await client.post("/api/v1/scoring-rules", json={"kind": "behaviour", **rule}, headers=headers)
                reply.raise_for_status()
                made[rule["name"]] = reply.json()["id"]
            assert len(made) == 20
            first_before = await connection.fetchval(
                "SELECT max(scored_at) FROM lead_scores WHERE organization_id = $1", org
            )
            timings["first"] = await _rescore(app, organization_id)
            first_moved = await connection.fetchval(
                "SELECT count(*) FROM lead_scores WHERE organization_id = $1 AND scored_at > $2", org, first_before
            )

            reply = await client.patch(f"/api/v1/scoring-rules/{made['点击邮件']}", json={"points": 6}, headers=headers)
            reply.raise_for_status()
            changed_before = await connection.fetchval(
                "SELECT max(scored_at) FROM lead_scores WHERE organization_id = $1", org
            )
            timings["after_behaviour_change"] = await _rescore(app, organization_id)
            moved = await connection.fetchval(
                "SELECT count(*) FROM lead_scores WHERE organization_id = $1 AND scored_at > $2", org, changed_before
            )

            reply = await client.patch(f"/api/v1/scoring-rules/{made['VIP']}", json={"points": 21}, headers=headers)
            reply.raise_for_status()
            timings["after_narrow_change"] = await _rescore(app, organization_id)
    grades = await connection.fetch(
        "SELECT grade, count(*) FROM lead_scores WHERE organization_id = $1 GROUP BY grade ORDER BY grade", org
    )
    await connection.close()

    print(f"{contacts:,} contacts, {activities:,} activities, 20 rules (14 fit, 6 behaviour)")
    print(f"grades: {', '.join(f'{row[0]} {row[1]:,}' for row in grades)}")
    print(f"baseline: bare INSERT … SELECT of {contacts:,} score rows: {baseline:.1f} s")
    for label, key in (
        (f"20 new rules, every contact rescored ({first_moved:,} scores moved)", "first"),
        (f"after a behaviour rule changed ({moved:,} scores moved)", "after_behaviour_change"),
        ("after a narrow fit rule changed", "after_narrow_change"),
    ):
        print(f"{label}: {timings[key]:.1f} s (target < 30) = {timings[key] / baseline:.1f} × baseline")
    result = {
        "machine": common.machine_info(),
        "args": vars(args),
        "contacts": contacts,
        "activities": activities,
        "moved": {"first": first_moved, "after_behaviour_change": moved},
        "baseline_seconds": baseline,
        "seconds": timings,
    }
    print(f"saved {common.save_result('scoring', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

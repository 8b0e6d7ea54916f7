"""Issue 5's assignment figure: assignment adds under 5 ms p95 to a contact create.

    uv run python -m bench.seed --reset --contacts 1000000 --companies 20000   # once
    uv run python -m bench.assignment [--creates 300]

In this process, through the app (httpx ASGI transport) as the bench organisation's owner, against
its million contacts: `POST /api/v1/contacts` timed with no assignment rule active (the baseline)
and under each of three rules over a team of four with a condition — round-robin (each create
then also takes its turn under the rules' lock, writes the assignment's audit row and event, and a
follow-up task), least-loaded by open leads and by open deals (each reads the team's counts from
`owner_loads`, which triggers on contacts and deals keep; before migration 0018 it counted the
team's ~350,000 open leads among the million on every create). The samples are interleaved: each
step times one create without a rule and one under each rule, switching the rules on and off
between the timed requests (untimed), so that the machine's drift and noise hit every series
alike and the added p95 compares like with like. The contacts, tasks and rules made are deleted
at the end (under a temporary index on `merged_into_id`: without it the foreign-key check of each
deleted contact scans the million).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench import common

common.use_app_environment()

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402

MARK = "bench-assignment"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def _create(client: httpx.AsyncClient, headers: dict[str, str], index: int) -> float:
    body = {"first_name": f"分配{index}", "city": "上海", "tags": [MARK]}
    started = time.perf_counter()
    reply = await client.post("/api/v1/contacts", json=body, headers=headers)
    elapsed = time.perf_counter() - started
    reply.raise_for_status()
    return elapsed


async def _switch(client: httpx.AsyncClient, headers: dict[str, str], rule: dict[str, Any], *, active: bool) -> None:
    reply = await client.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"active": active}, headers=headers)
    reply.raise_for_status()
    rule.update(reply.json())


async def _clean_up(connection: asyncpg.Connection, organization_id: Any) -> None:
    """Deletes what a run made (this one, or one killed before it could)."""
    await connection.execute(
        "DELETE FROM assignment_rules WHERE organization_id = $1 AND name = $2", organization_id, MARK
    )
    teams = "SELECT id FROM teams WHERE organization_id = $1 AND name = $2"
    await connection.execute(
        f"DELETE FROM team_members WHERE organization_id = $1 AND team_id IN ({teams})", organization_id, MARK
    )
    await connection.execute(f"DELETE FROM teams WHERE organization_id = $1 AND id IN ({teams})", organization_id, MARK)
    made_ids = "SELECT id FROM contacts WHERE organization_id = $1 AND tags @> ARRAY[$2]"
    if not await connection.fetchval(f"SELECT EXISTS ({made_ids})", organization_id, MARK):
        return
    await connection.execute(
        "CREATE INDEX IF NOT EXISTS bench_assignment_merged_into ON contacts (organization_id, merged_into_id) "
        "WHERE merged_into_id IS NOT NULL"
    )
    await connection.execute(
        f"DELETE FROM tasks WHERE organization_id = $1 AND contact_id IN ({made_ids})", organization_id, MARK
    )
    await connection.execute(
        f"DELETE FROM lead_scores WHERE organization_id = $1 AND contact_id IN ({made_ids})", organization_id, MARK
    )
    await connection.execute(
        f"DELETE FROM contacts WHERE organization_id = $1 AND id IN ({made_ids})", organization_id, MARK
    )
    await connection.execute("DROP INDEX bench_assignment_merged_into")


async def run(args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    await _clean_up(connection, organization_id)
    app = create_app(get_settings())
    timings: dict[str, list[float]] = {"none": [], "round_robin": [], "least_loaded": [], "least_loaded_deals": []}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            signed_in = await client.post(
                "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            users = (await client.get("/api/v1/users", params={"limit": 100}, headers=headers)).json()["items"]
            sales = [user["id"] for user in users if user["role"] == "sales"][:4]
            team = await client.post("/api/v1/teams", json={"name": MARK, "member_ids": sales}, headers=headers)
            team.raise_for_status()
            team_id = team.json()["id"]
            condition = {"field": "city", "op": "in", "value": ["上海", "北京"]}
            rules: dict[str, dict[str, Any]] = {
                "round_robin": {"strategy": "round_robin", "team_id": team_id, "condition": condition},
                "least_loaded": {"strategy": "least_loaded", "team_id": team_id, "condition": condition},
                "least_loaded_deals": {
                    "strategy": "least_loaded",
                    "team_id": team_id,
                    "condition": condition,
                    "load_measure": "deals",
                },
            }
            made: dict[str, dict[str, Any]] = {}
            for strategy, body in rules.items():
                reply = await client.post(
                    "/api/v1/assignment-rules", json={"name": MARK, "active": False, **body}, headers=headers
                )
                reply.raise_for_status()
                made[strategy] = reply.json()
            warm_up = 20
            for index in range(warm_up + args.creates):
                samples = {"none": await _create(client, headers, index)}
                for strategy, rule in made.items():
                    await _switch(client, headers, rule, active=True)
                    samples[strategy] = await _create(client, headers, index)
                    await _switch(client, headers, rule, active=False)
                if index >= warm_up:
                    for strategy, elapsed in samples.items():
                        timings[strategy].append(elapsed)
            for rule in made.values():
                deleted = await client.delete(f"/api/v1/assignment-rules/{rule['id']}", headers=headers)
                deleted.raise_for_status()
            await client.delete(f"/api/v1/teams/{team_id}", headers=headers)
    await _clean_up(connection, organization_id)
    await connection.close()

    base_p95, base_median = p95(timings["none"]), statistics.median(timings["none"])
    print(f"POST /contacts without rules (baseline): median {base_median * 1000:.1f} ms, p95 {base_p95 * 1000:.1f} ms")
    for strategy in rules:
        values = timings[strategy]
        added = (p95(values) - base_p95) * 1000
        print(
            f"with a {strategy} rule: median {statistics.median(values) * 1000:.1f} ms, p95 {p95(values) * 1000:.1f} ms"
            f" = {p95(values) / base_p95:.2f} × baseline; adds {added:.1f} ms at p95 (target < 5)"
        )
    result = {"machine": common.machine_info(), "args": vars(args), "seconds": timings}
    print(f"saved {common.save_result('assignment', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=300, help="timed creates per variant")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

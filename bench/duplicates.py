"""Issue 4's duplicate-scan figure: every likely duplicate pair among 1,000,000 contacts, target
under 30 s.

    uv run python -m bench.seed --reset --contacts 1000000 --companies 20000   # once
    uv run python -m bench.duplicates [--rounds 3]

Runs in this process against the seeded bench tenant (see bench/seed.py: the e-mails and
phones collide as real ones do, and contacts work at 20,000 companies, so the similar-name pass
has groups to compare). Each round times `GET /api/v1/contacts/duplicates?limit=100` (the
whole scan: same e-mail, same phone, similar name at the same company, ranked) through the app
(httpx ASGI transport), as the organisation's owner. Baseline in the same run: the bare SQL
self-joins on e-mail and on phone that any such scan must make, counted in PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench import common

common.use_app_environment()

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402

BARE_JOINS = """
SELECT (SELECT count(*) FROM contacts a JOIN contacts b
          ON a.organization_id = b.organization_id AND a.email = b.email AND a.id < b.id
        WHERE a.organization_id = $1 AND a.archived_at IS NULL AND b.archived_at IS NULL),
       (SELECT count(*) FROM contacts a JOIN contacts b
          ON a.organization_id = b.organization_id AND a.phone = b.phone AND a.id < b.id
        WHERE a.organization_id = $1 AND a.archived_at IS NULL AND b.archived_at IS NULL)
"""


async def run(args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    contacts = await connection.fetchval("SELECT count(*) FROM contacts WHERE organization_id = $1", organization_id)
    app = create_app(get_settings())
    scans: list[float] = []
    floors: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            signed_in = await client.post(
                "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
            )
            token = signed_in.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(args.rounds):
                started = time.perf_counter()
                await connection.fetchrow(BARE_JOINS, organization_id)
                floors.append(time.perf_counter() - started)
                started = time.perf_counter()
                reply = await client.get("/api/v1/contacts/duplicates", params={"limit": 100}, headers=headers)
                scans.append(time.perf_counter() - started)
                reply.raise_for_status()
                page = reply.json()
    await connection.close()
    scan, floor = statistics.median(scans), statistics.median(floors)
    reasons = sorted({reason for pair in page["items"] for reason in pair["reasons"]})
    print(f"{contacts:,} contacts: duplicate scan median {scan:.1f} s (target < 30), rounds {[round(s, 1) for s in scans]}")
    print(f"bare e-mail and phone self-joins: {floor:.1f} s; the scan is {scan / floor:.1f} × that")
    print(f"top pair score {page['items'][0]['score'] if page['items'] else None}, reasons seen {reasons}")
    result = {
        "machine": common.machine_info(),
        "args": vars(args),
        "contacts": contacts,
        "scan_seconds": scans,
        "floor_seconds": floors,
    }
    print(f"saved {common.save_result('duplicates', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

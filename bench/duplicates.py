"""Issue 4's duplicate-scan figure: every likely duplicate pair among 1,000,000 contacts, target
under 30 s.

    uv run python -m bench.seed --reset --contacts 1000000 --companies 20000   # once
    uv run python -m bench.duplicates [--rounds 3]

Runs in this process against the seeded bench tenant (see bench/seed.py: the e-mails and
phones collide as real ones do, and contacts work at 20,000 companies, so the similar-name pass
has groups to compare). Each round times, through the app (httpx ASGI transport) as the
organisation's owner:

- `GET /api/v1/contacts/duplicates?limit=100` with no stored scan: the whole scan (same e-mail,
  same phone, similar name at the same company, ranked) made for the request;
- the stored scan: `POST /api/v1/contacts/duplicates/scans` and its job run here to the end
  (the pairs written to `duplicate_pairs`);
- `GET /api/v1/contacts/duplicates?limit=100` served from that scan, then the next page.

Baseline in the same run: the bare SQL self-joins on e-mail and on phone that any such scan must
make, counted in PostgreSQL. The stored scans are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench import common

common.use_app_environment()

import uuid  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services import duplicates  # noqa: E402

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
    await connection.execute("DELETE FROM duplicate_scans WHERE organization_id = $1", organization_id)
    timings: dict[str, list[float]] = {"on_demand": [], "stored_scan": [], "stored_page": [], "floor": []}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            signed_in = await client.post(
                "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            for _ in range(args.rounds):
                await connection.execute("DELETE FROM duplicate_scans WHERE organization_id = $1", organization_id)
                started = time.perf_counter()
                await connection.fetchrow(BARE_JOINS, organization_id)
                timings["floor"].append(time.perf_counter() - started)

                started = time.perf_counter()
                reply = await client.get("/api/v1/contacts/duplicates", params={"limit": 100}, headers=headers)
                timings["on_demand"].append(time.perf_counter() - started)
                reply.raise_for_status()
                on_demand = reply.json()

                started = time.perf_counter()
                requested = await client.post("/api/v1/contacts/duplicates/scans", headers=headers)
                requested.raise_for_status()
                scan_id = uuid.UUID(requested.json()["id"])
                await duplicates.run_scan(app.state.session_factory, uuid.UUID(organization_id), scan_id)
                timings["stored_scan"].append(time.perf_counter() - started)
                scan = (await client.get(f"/api/v1/contacts/duplicates/scans/{scan_id}", headers=headers)).json()

                started = time.perf_counter()
                first = (await client.get("/api/v1/contacts/duplicates", params={"limit": 100}, headers=headers)).json()
                cursor = first["next_cursor"]
                await client.get(
                    "/api/v1/contacts/duplicates", params={"limit": 100, "cursor": cursor}, headers=headers
                )
                timings["stored_page"].append((time.perf_counter() - started) / 2)
                assert first["items"] == on_demand["items"], "the stored scan ranks as the request does"
    await connection.execute("DELETE FROM duplicate_scans WHERE organization_id = $1", organization_id)
    await connection.close()
    medians = {key: statistics.median(values) for key, values in timings.items()}
    reasons = sorted({reason.split(" (")[0] for pair in first["items"] for reason in pair["reasons"]})
    print(f"{contacts:,} contacts, {scan['pairs']:,} pairs; reasons in the first page: {reasons}")
    on_demand_s, floor_s = medians["on_demand"], medians["floor"]
    print(f"duplicate scan for a request: median {on_demand_s:.1f} s (target < 30)")
    print(f"  = {on_demand_s / floor_s:.1f} × the bare e-mail and phone self-joins ({floor_s:.1f} s)")
    print(f"stored scan (job): median {medians['stored_scan']:.1f} s")
    print(f"a page from the stored scan: {medians['stored_page'] * 1000:.0f} ms")
    result = {
        "machine": common.machine_info(),
        "args": vars(args),
        "contacts": contacts,
        "pairs": scan["pairs"],
        "seconds": timings,
        "median_seconds": medians,
    }
    print(f"saved {common.save_result('duplicates', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

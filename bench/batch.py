"""Issue 4's batch figure: `POST /api/v1/contacts/batch` upserting 1,000 contacts, target < 1 s.

    uv run python -m bench.batch [--records 1000] [--rounds 5]

The app runs in this process (httpx ASGI transport: no network, so the figure is the API's own
work) on a fresh database (`rapport_bench_batch`) and Redis db 7. Each round times three batches
of the same 1,000 contacts (names, e-mails, +86 phones, tags, a company link, external ids):
all new (created), all changed (updated), and all the same again (unchanged). Baseline in the
same run: asyncpg `executemany` inserting the same 1,000 rows' columns into a copy of the
contacts table (no checks, no audit, no events): the floor a batch cannot go under.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from bench import common

DATABASE_URL = os.environ.get(
    "RAPPORT_BENCH_BATCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport_bench_batch"
)
common.use_app_environment(RAPPORT_DATABASE_URL=DATABASE_URL)

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.core.db import drop_database, ensure_database  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402


def contacts(count: int, round_: int, company_id: str, title: str) -> list[dict[str, Any]]:
    return [
        {
            "external_id": f"ERP-{round_}-{i}",
            "first_name": "伟",
            "last_name": f"张{i}",
            "email": f"zhang.wei.{round_}.{i}@example.cn",
            "phone": f"138{round_:02d}{i:06d}",
            "title": title,
            "city": "上海",
            "country": "CN",
            "company_id": company_id,
            "tags": ["vip", "华东"],
        }
        for i in range(count)
    ]


async def floor(rows: list[dict[str, Any]], organization_id: str) -> float:
    connection = await asyncpg.connect(common.asyncpg_dsn(DATABASE_URL))
    try:
        await connection.execute("CREATE TEMP TABLE floor (LIKE contacts INCLUDING DEFAULTS)")
        values = [
            (uuid.UUID(organization_id), uuid.uuid4(), r["first_name"], r["last_name"], r["email"], r["external_id"])
            for r in rows
        ]
        started = time.perf_counter()
        await connection.executemany(
            "INSERT INTO floor (organization_id, id, first_name, last_name, email, external_id, source, "
            "lifecycle_stage, tags, custom_fields, additional_emails, additional_phones, email_opt_in, "
            "created_at, updated_at, version, search_text, company_search_text, search_grams) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'api', 'lead', '{}', '{}', '[]', '[]', false, now(), now(), 1, "
            "'', '', '{}')",
            values,
        )
        return time.perf_counter() - started
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> None:
    await drop_database(DATABASE_URL)
    await ensure_database(DATABASE_URL)
    await asyncio.to_thread(upgrade, DATABASE_URL)
    app = create_app(get_settings())
    timings: dict[str, list[float]] = {"created": [], "updated": [], "unchanged": [], "floor": []}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            signup = await client.post(
                "/api/v1/auth/signup",
                json={"organization_name": "Batch bench", "email": "batch@bench.cn",
                      "password": "bench passphrase 2026", "full_name": "王芳"},
            )  # fmt: skip
            signup.raise_for_status()
            headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
            organization_id = signup.json()["organization"]["id"]
            company = await client.post("/api/v1/companies", headers=headers, json={"name": "上海天元贸易有限公司"})
            for round_ in range(args.rounds):
                for status, title in (("created", "采购"), ("updated", "采购经理"), ("unchanged", "采购经理")):
                    body = {"mode": "upsert", "records": contacts(args.records, round_, company.json()["id"], title)}
                    started = time.perf_counter()
                    reply = await client.post("/api/v1/contacts/batch", headers=headers, json=body)
                    elapsed = time.perf_counter() - started
                    reply.raise_for_status()
                    statuses = {r["status"] for r in reply.json()["results"]}
                    assert statuses == {status}, (status, statuses)
                    timings[status].append(elapsed)
                rows = contacts(args.records, 1000 + round_, company.json()["id"], "x")
                timings["floor"].append(await floor(rows, organization_id))
    medians = {key: statistics.median(values) for key, values in timings.items()}
    result = {"machine": common.machine_info(), "args": vars(args), "seconds": timings, "median_seconds": medians}
    for key in ("created", "updated", "unchanged"):
        print(
            f"{args.records} contacts {key:9}: median {medians[key] * 1000:6.0f} ms (target < 1000), "
            f"{medians[key] / medians['floor']:5.1f} × the bare executemany ({medians['floor'] * 1000:.0f} ms)"
        )
    print(f"saved {common.save_result('batch', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

"""Checks that seeded rows are what the API itself would have written.

    uv run python -m bench.verify_seed [--samples 50]

Takes random seeded contacts, creates the same contacts through the real API (in process,
`POST /api/v1/contacts`), and compares the stored columns (search_text, company_search_text,
the generated search_grams, normalised e-mail and phones, JSON columns…). The contacts it
created are deleted again, with their audit rows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench import common

common.use_app_environment()

import asyncpg  # noqa: E402
import orjson  # noqa: E402

COMPARED = [
    "first_name", "last_name", "title", "email", "phone", "additional_emails", "additional_phones", "company_id",
    "source", "lifecycle_stage", "owner_id", "tags", "custom_fields", "email_opt_in", "email_opt_in_source",
    "search_text", "company_search_text", "search_grams", "address_line1", "address_line2", "city", "region",
    "postal_code", "country", "version", "archived_at",
]  # fmt: skip
SENT = [
    "first_name", "last_name", "title", "email", "phone", "company_id", "source", "lifecycle_stage", "owner_id",
    "tags", "email_opt_in", "email_opt_in_source", "address_line1", "address_line2", "city", "region",
    "postal_code", "country",
]  # fmt: skip


async def main_async(samples: int) -> int:
    import httpx

    from app.main import create_app

    connection = await asyncpg.connect(common.asyncpg_dsn())
    organization_id, _ = await common.bench_tenant(connection)
    seeded = await connection.fetch(
        f"SELECT id, {', '.join(COMPARED)} FROM contacts TABLESAMPLE SYSTEM (1) "
        "WHERE organization_id = $1 AND archived_at IS NULL LIMIT $2",
        organization_id,
        samples,
    )
    app = create_app()
    created: list[str] = []
    failures = 0
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://verify") as client,
    ):
        token = (
            await client.post(
                "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
            )
        ).json()["access_token"]
        try:
            for row in seeded:
                body = {name: row[name] for name in SENT}
                body["additional_emails"] = orjson.loads(row["additional_emails"])
                body["additional_phones"] = orjson.loads(row["additional_phones"])
                reply = await client.post(
                    "/api/v1/contacts",
                    content=orjson.dumps(body, default=str),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                if reply.status_code != 201:
                    print(f"{row['id']}: API refused the seeded values: {reply.status_code} {reply.text}")
                    failures += 1
                    continue
                new_id = reply.json()["id"]
                created.append(new_id)
                stored = await connection.fetchrow(
                    f"SELECT {', '.join(COMPARED)} FROM contacts WHERE organization_id = $1 AND id = $2",
                    organization_id,
                    new_id,
                )
                differences = {
                    name: (row[name], stored[name])
                    for name in COMPARED
                    if (sorted(row[name]) if name == "search_grams" else row[name])
                    != (sorted(stored[name]) if name == "search_grams" else stored[name])
                }
                if differences:
                    failures += 1
                    print(f"{row['id']}: seeded ≠ API: {differences}")
        finally:
            await connection.execute(
                "DELETE FROM audit_log WHERE organization_id = $1 AND entity_type = 'contact' "
                "AND entity_id = ANY($2::uuid[])",
                organization_id,
                created,
            )
            await connection.execute(
                "DELETE FROM contacts WHERE organization_id = $1 AND id = ANY($2::uuid[])", organization_id, created
            )
            await connection.close()
    print(f"{len(seeded)} seeded contacts compared with the same contacts created through the API: {failures} differ")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50)
    return asyncio.run(main_async(parser.parse_args().samples))


if __name__ == "__main__":
    sys.exit(main())

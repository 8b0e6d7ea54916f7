"""EXPLAIN (ANALYZE, BUFFERS) of the exact statements the API runs for list and search requests.

    uv run python -m bench.explain --q 孙 --q jian --q 8080 [--cursor-depth 10000] [--generic]

Runs the app in process to capture the SQL it sends for GET /api/v1/contacts?q=<term>&limit=50
(and, with --cursor-depth, for the list page at that depth), then explains each statement with
its own parameters on a direct connection: as a custom plan (what the first executions of a
prepared statement get) and, with --generic, as the generic plan PostgreSQL switches a prepared
statement to after five executions when it estimates it no worse (asyncpg and SQLAlchemy both
prepare and cache statements per connection, so the API can be served by either plan).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.parse
from typing import Any

from bench import common

common.use_app_environment()

import asyncpg  # noqa: E402


def literal(value: Any) -> str:
    """A parameter as an SQL literal (EXECUTE of a prepared statement takes no bind parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(literal(v) for v in value) + "]" if value else "'{}'"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(pg: asyncpg.Connection, statement: str, parameters: tuple[Any, ...], generic: bool) -> str:
    mode = "force_generic_plan" if generic else "force_custom_plan"
    await pg.execute(f"SET plan_cache_mode = {mode}")
    await pg.execute(f"PREPARE bench_explain AS {statement}")
    try:
        arguments = ", ".join(literal(p) for p in parameters)
        rows = await pg.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_explain({arguments})")
    finally:
        await pg.execute("DEALLOCATE bench_explain")
        await pg.execute("RESET plan_cache_mode")
    return "\n".join(r[0] for r in rows)


async def run(args: argparse.Namespace) -> None:
    pg = await asyncpg.connect(common.asyncpg_dsn(), server_settings={"jit": "off"})
    paths = [("q=" + term, "/api/v1/contacts?" + urllib.parse.urlencode({"q": term, "limit": "50"})) for term in args.q]
    async with common.SqlCapture() as capture:
        reply = await capture.client.post(
            "/api/v1/auth/token", data={"username": common.OWNER_EMAIL, "password": common.OWNER_PASSWORD}
        )
        token = reply.json()["access_token"]
        if args.cursor_depth:
            paths.append((f"list at depth {args.cursor_depth}", await list_path(capture, token, args.cursor_depth)))
        captured = [(label, *(await capture.contacts_query(path, token))[:2]) for label, path in paths]
    for label, statement, parameters in captured:
        print(f"\n=== {label}\n{statement}\n-- parameters: {[str(p) for p in parameters]}")
        for generic in [False, True] if args.generic else [False]:
            print(f"\n--- {'generic' if generic else 'custom'} plan")
            print(await explain(pg, statement, parameters, generic))
    await pg.close()


async def list_path(capture: common.SqlCapture, token: str, depth: int) -> str:
    cursor, seen = None, 0
    while seen < depth:
        limit = min(500, depth - seen)
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        page = (
            await capture.client.get(
                "/api/v1/contacts?" + urllib.parse.urlencode(query), headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
        cursor, seen = page["next_cursor"], seen + limit
    return "/api/v1/contacts?" + urllib.parse.urlencode({"limit": "50", "cursor": cursor})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--q", action="append", default=[], help="a search term (repeatable)")
    parser.add_argument("--cursor-depth", type=int, default=0, help="also explain the list page at this depth")
    parser.add_argument("--generic", action="store_true", help="also show the generic plan")
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

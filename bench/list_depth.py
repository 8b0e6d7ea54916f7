"""Figure (b): listing 50 contacts at cursor depth 10,000 — p99 under 25 ms.

    uv run python -m bench.list_depth [--depths 10000] [--requests 1000]

Starts the real API (`rapport api`, one worker, production settings), signs in, pages to the
cursor at each depth with limit=500 (20 pages for depth 10,000, checked against an OFFSET query),
then times GET /api/v1/contacts?limit=50&cursor=<that cursor> sequentially from a keep-alive
client on this machine (the standard library's http.client: the lightest client, so the client
adds as little as possible). The in-run baseline is the very statement the API sent to PostgreSQL
for that request (captured from the app running in process, text and parameters) replayed through
asyncpg. API and SQL samples alternate in blocks of 50 so drift hits both. Prints p50/p95/p99 of
both, the ratio API/SQL, and the server-side duration the API logged for the same requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import sys
import time
import urllib.parse
from typing import Any

from bench import common

common.use_app_environment()

import asyncpg  # noqa: E402

BLOCK = 50


def cursor_at(conn: http.client.HTTPConnection, token: str, depth: int) -> tuple[str | None, str | None]:
    """(cursor after `depth` rows, id of the row at that depth), paging with limit=500."""
    cursor, last_id, seen = None, None, 0
    while seen < depth:
        limit = min(500, depth - seen)
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        status, body = get(conn, token, "/api/v1/contacts?" + urllib.parse.urlencode(query))
        if status != 200:
            raise SystemExit(f"paging failed: {status} {body[:300]!r}")
        page = json.loads(body)
        if len(page["items"]) != limit:
            raise SystemExit(f"expected {limit} items, got {len(page['items'])}")
        seen += limit
        cursor, last_id = page["next_cursor"], page["items"][-1]["id"]
    return cursor, last_id


def get(conn: http.client.HTTPConnection, token: str, path: str) -> tuple[int, bytes]:
    """One GET on a keep-alive connection (uvicorn closes idle ones after 5 s: reconnect then)."""
    for attempt in (1, 2):
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            reply = conn.getresponse()
            return reply.status, reply.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pg = await asyncpg.connect(common.asyncpg_dsn(), server_settings={"jit": "off"})
    organization_id, _ = await common.bench_tenant(pg)
    api = common.api_server(common.free_port())
    results: dict[str, Any] = {"machine": common.machine_info(), "args": vars(args), "depths": {}}
    with api:
        token = common.sign_in(api.base_url)
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
        for depth in args.depths:
            cursor, last_id = cursor_at(conn, token, depth) if depth else (None, None)
            if depth:
                expected = await pg.fetchval(
                    "SELECT id FROM contacts WHERE organization_id = $1 AND archived_at IS NULL "
                    "ORDER BY id OFFSET $2 LIMIT 1",
                    organization_id,
                    depth - 1,
                )
                if str(expected) != last_id:
                    raise SystemExit(f"the cursor is not at depth {depth}: {last_id} != {expected}")
            path = "/api/v1/contacts?" + urllib.parse.urlencode(
                {"limit": "50"} | ({"cursor": cursor} if cursor else {})
            )
            async with common.SqlCapture() as capture:
                statement, parameters, reply = await capture.contacts_query(path, token)
            api_ids = [item["id"] for item in reply.json()["items"]]
            rows = await pg.fetch(statement, *parameters)
            if [str(r["id"]) for r in rows[:50]] != api_ids or len(api_ids) != 50:
                raise SystemExit("the replayed SQL does not return the API's page")

            for _ in range(args.warmup):  # warm both paths (plans, caches, connections)
                get(conn, token, path)
                await pg.fetch(statement, *parameters)
            api_samples: list[float] = []
            sql_samples: list[float] = []
            common.wait_until_quiet()
            get(conn, token, path)  # untimed: reopens the connection if the wait let it close
            log_mark = api.log_path.stat().st_size
            busy_before, started = common.machine_busy_cpu_seconds(), time.perf_counter()
            while len(api_samples) < args.requests:
                for _ in range(BLOCK):
                    t0 = time.perf_counter()
                    status, body = get(conn, token, path)
                    api_samples.append(time.perf_counter() - t0)
                    if status != 200:
                        raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
                for _ in range(BLOCK):
                    t0 = time.perf_counter()
                    await pg.fetch(statement, *parameters)
                    sql_samples.append(time.perf_counter() - t0)
            # This client, the API and PostgreSQL take about one core; more means other work ran too.
            busy = (common.machine_busy_cpu_seconds() - busy_before) / (time.perf_counter() - started)
            server_ms = server_durations(api.log_path, log_mark)
            api_stats, sql_stats = common.summary_ms(api_samples), common.summary_ms(sql_samples)
            server_stats = common.summary_ms([ms / 1000 for ms in server_ms])
            results["depths"][depth] = {
                "api_ms": api_stats,
                "sql_ms": sql_stats,
                "api_server_side_ms": server_stats,
                "response_bytes": len(body),
                "machine_busy_cores": busy,
                "statement": statement,
            }
            report(depth, api_stats, sql_stats, server_stats, len(body))
            print(f"machine busy during the measurement: {busy:.2f} of 2 cores (this test alone uses about 1)")
        conn.close()
    await pg.close()
    return results


def server_durations(log_path: Any, offset: int) -> list[float]:
    """`duration_ms` of the list requests the API logged since `offset` (its JSON request log)."""
    durations = []
    with open(log_path, "rb") as log:
        log.seek(offset)
        for line in log:
            if b"duration_ms" not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == "request" and entry.get("route") == "/api/v1/contacts":
                    durations.append(float(entry["duration_ms"]))
    return durations


def report(depth: int, api: dict[str, float], sql: dict[str, float], server: dict[str, float], size: int) -> None:
    print(f"\nGET /api/v1/contacts?limit=50 at cursor depth {depth:,} ({api['n']} sequential requests, {size:,} B)")
    print(f"{'':<26}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}   (ms)")
    for label, s in (("API, client-measured", api), ("API, server-logged", server), ("SQL via asyncpg", sql)):
        print(f"{label:<26}{s['p50']:>8.2f}{s['p95']:>8.2f}{s['p99']:>8.2f}{s['max']:>8.2f}")
    verdict = "meets" if api["p99"] < 25 else "MISSES"
    print(f"ratio API/SQL: p50 {api['p50'] / sql['p50']:.1f}x, p99 {api['p99'] / sql['p99']:.1f}x; "
          f"API p99 {api['p99']:.2f} ms {verdict} the 25 ms target")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="10000", help="comma-separated cursor depths (0 = first page)")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per side and depth")
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    args.depths = [int(d) for d in args.depths.split(",")]
    results = asyncio.run(run(args))
    print(f"\nresults: {common.save_result('list_depth', results)}")
    missed = any(d["api_ms"]["p99"] >= 25 for d in results["depths"].values())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Figure (a): GET /api/v1/contacts/{id} throughput against a Starlette + asyncpg ceiling.

    uv run python -m bench.get_by_id [--connections 16,64] [--duration 20] [--rounds 2] [--workers 1]

Starts the real API (`rapport api --workers N`, production settings, JSON request log to a
file, per-user rate limit on in Redis but set out of reach) and the baseline
(bench/baseline_app.py, the same number of uvicorn processes) side by side, checks both answer
the same JSON for the same ids, then drives each with the same wrk command: one wrk thread
(with one server process each, the other core is left to PostgreSQL, Redis and wrk alike;
with `--workers 2`, each side may use the whole machine, as it would be deployed on it), the
same connection count, duration and warm-up, and a Lua script
picking random existing ids and sending the same `Authorization: Bearer` header to both.
Runs alternate baseline/API (ABBA order) `--rounds` times per connection count (`--floor` adds
bare FastAPI doing the baseline's work, bench/fastapi_floor_app.py, to the rotation). Each run
waits for the machine to be quiet first and is repeated (up to 3 tries) if other processes took
more than `--max-noise` cores meanwhile. Prints per run: requests/s, latency, non-2xx and socket
errors, CPU ms per request of the server process, its PostgreSQL backends, Redis and wrk, the
cores other processes used, new database sessions (pool churn) and Redis commands per 1,000
requests; then per connection count the ratio API/baseline of the medians (target: ≥ 0.50) and
the ratio of server CPU per request, which noise on this shared machine moves much less.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common

common.use_app_environment()

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402

LUA = r"""
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local prefix = "/api/v1/contacts/"
local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"), ["Accept"] = "application/json" }
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))

request = function()
  return wrk.format("GET", prefix .. ids[math.random(#ids)], headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "lat_mean_us": %.1f, "lat_p50_us": %d, ' ..
    '"lat_p90_us": %d, "lat_p99_us": %d, "lat_max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def tree_cpu_seconds(pid: int) -> float:
    """A server's CPU: the process and its children (uvicorn's worker processes)."""
    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bench_backends() -> list[int]:
    database = common.asyncpg_dsn().rsplit("/", 1)[1].encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres" and database in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _reaped_children_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU of the PostgreSQL backends serving the bench database: the live ones, plus those that
    exited (a pool that opens and closes connections), which the postmaster's reaped-children
    counters hold."""
    total, postmaster = 0.0, None
    for pid in _bench_backends():
        try:
            total += cpu_seconds(pid)
            postmaster = _parent(pid)
        except OSError:
            continue
    if postmaster is not None:
        total += _reaped_children_cpu(postmaster)
    return total


def redis_commands() -> int:
    """Commands the bench Redis server has run so far (INFO commandstats): round trips the API made."""
    import redis

    stats = redis.Redis.from_url(common.REDIS_URL).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def redis_cpu_seconds() -> float:
    """CPU of the Redis server on the bench Redis port (the API's rate limiter talks to it)."""
    port = common.REDIS_URL.rsplit(":", 1)[1].split("/")[0].encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server" and b":" + port in (
                    entry / "cmdline"
                ).read_bytes():
                    return cpu_seconds(int(entry.name))
            except OSError:
                continue
    return 0.0


def wrk(url: str, *, connections: int, duration: int, script: Path, env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def measured_run(
    server: common.Server, *, connections: int, duration: int, warmup: int, script: Path, env: dict[str, str]
) -> dict[str, Any]:
    common.wait_until_quiet()
    wrk(server.base_url, connections=connections, duration=warmup, script=script, env=env)
    sessions = asyncio.run(database_sessions())
    pid = server.pid
    assert pid is not None
    server_cpu, pg_cpu, all_cpu = tree_cpu_seconds(pid), postgres_cpu_seconds(), common.machine_busy_cpu_seconds()
    redis_cpu, redis_calls = redis_cpu_seconds(), redis_commands()
    result = wrk(server.base_url, connections=connections, duration=duration, script=script, env=env)
    result["server_cpu_s"] = tree_cpu_seconds(pid) - server_cpu
    result["postgres_cpu_s"] = postgres_cpu_seconds() - pg_cpu
    result["redis_cpu_s"] = redis_cpu_seconds() - redis_cpu
    result["redis_commands"] = redis_commands() - redis_calls
    time.sleep(1.1)  # sessions are counted when they end; let the stats flush
    result["new_db_sessions"] = asyncio.run(database_sessions()) - sessions - 1  # minus our own
    result["machine_cpu_s"] = common.machine_busy_cpu_seconds() - all_cpu
    # Whatever else ran meanwhile (other users' processes, the kernel): the noise on a shared box.
    result["other_cpu_s"] = result["machine_cpu_s"] - sum(
        result[k] for k in ("server_cpu_s", "postgres_cpu_s", "redis_cpu_s", "wrk_cpu_s")
    )
    return result


async def database_sessions() -> int:
    """Sessions ever opened on the bench database (pg_stat_database): shows connection churn."""
    connection = await asyncpg.connect(common.asyncpg_dsn())
    try:
        await connection.execute("SELECT pg_stat_force_next_flush()")
        return int(await connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ))  # fmt: skip
    finally:
        await connection.close()


async def pick_ids(count: int) -> tuple[str, list[str]]:
    connection = await asyncpg.connect(common.asyncpg_dsn())
    try:
        organization_id, _ = await common.bench_tenant(connection)
        rows = await connection.fetch(
            "SELECT id FROM contacts WHERE organization_id = $1 ORDER BY random() LIMIT $2", organization_id, count
        )
    finally:
        await connection.close()
    return organization_id, [str(r["id"]) for r in rows]


async def orm_statement(contact_id: str, token: str) -> str:
    async with common.SqlCapture() as capture:
        statement, _, _ = await capture.contacts_query(f"/api/v1/contacts/{contact_id}", token)
    return statement


def selected_columns(statement: str) -> str:
    """`a, b, c` from the API's `SELECT contacts.a, contacts.b, … FROM contacts …`."""
    selected = statement.split("FROM contacts")[0].strip().removeprefix("SELECT")
    return ", ".join(c.strip().removeprefix("contacts.") for c in selected.split(","))


def check_same_replies(api: common.Server, baseline: common.Server, token: str, ids: list[str]) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    size = 0
    with httpx.Client(timeout=10) as client:
        for contact_id in ids:
            a = client.get(f"{api.base_url}/api/v1/contacts/{contact_id}", headers=headers)
            b = client.get(f"{baseline.base_url}/api/v1/contacts/{contact_id}", headers=headers)
            if a.status_code != 200 or b.status_code != 200:
                raise SystemExit(f"{contact_id}: API {a.status_code}, baseline {b.status_code}")
            if a.json() != b.json():
                raise SystemExit(f"{contact_id}: the bodies differ:\n{a.text}\n{b.text}")
            size = len(a.content)
    return size


TABLE_HEADER = (
    f"{'conns':>5} {'round':>5} {'server':<9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'errors':>6} "
    f"| CPU ms/request: {'server':>6} {'pg':>5} {'redis':>5} {'wrk':>5} "
    f"| {'other cores':>11} {'new conns':>9} {'redis cmds/1k':>13}"
)


def table_row(run: dict[str, Any], duration: int) -> str:
    per = 1000 / run["requests"]  # CPU seconds → ms per request
    errors = run["connect"] + run["read"] + run["write"] + run["timeout"]
    return (
        f"{run['connections']:>5} {run['round']:>5} {run['server']:<9} {run['rps']:>8,.0f} "
        f"{run['lat_p50_us'] / 1000:>7.2f} {run['lat_p99_us'] / 1000:>7.2f} {run['status']:>7} {errors:>6} "
        f"| {'':>15} {run['server_cpu_s'] * per:>6.3f} {run['postgres_cpu_s'] * per:>5.3f} "
        f"{run['redis_cpu_s'] * per:>5.3f} {run['wrk_cpu_s'] * per:>5.3f} "
        f"| {run['other_cpu_s'] / duration:>11.2f} {run['new_db_sessions']:>9} {run['redis_commands'] * per:>13.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", default="16,64", help="comma-separated wrk connection counts")
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured load before each run")
    parser.add_argument("--rounds", type=int, default=2, help="baseline/API pairs per connection count")
    parser.add_argument("--max-noise", type=float, default=0.3,
                        help="repeat a run (up to 3 tries) if other processes used more cores than this")  # fmt: skip
    parser.add_argument("--floor", action="store_true",
                        help="also run bare FastAPI doing the baseline's work (fastapi_floor_app.py)")  # fmt: skip
    parser.add_argument("--gc-freeze", action="store_true",
                        help="knob experiment: the API with gc.freeze() after import")  # fmt: skip
    parser.add_argument("--ids", type=int, default=100_000, help="random existing ids to draw from")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn processes for every server alike (the machine's 2 cores: 2)")  # fmt: skip
    parser.add_argument("--api-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra RAPPORT_* settings for the API (for experiments)")  # fmt: skip
    args = parser.parse_args()
    args.connection_counts = [int(c) for c in args.connections.split(",")]

    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    organization_id, ids = asyncio.run(pick_ids(args.ids))
    ids_file = common.WORK_DIR / "contact-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    script = common.WORK_DIR / "get_by_id.lua"
    script.write_text(LUA)

    extra_env = dict(item.split("=", 1) for item in args.api_env)
    launcher = "bench.gc_freeze_launcher" if args.gc_freeze else None
    api = common.api_server(common.free_port(), launcher=launcher, workers=args.workers, **extra_env)
    with api:
        token = common.sign_in(api.base_url)
        # The baseline selects exactly the columns the API's ORM selects (read from its SQL).
        columns = selected_columns(asyncio.run(orm_statement(ids[0], token)))
        print(f"the API selects: {columns}")
        baseline = common.baseline_server(common.free_port(), organization_id, columns, workers=args.workers)
        servers = {"baseline": baseline, "api": api}
        if args.floor:
            servers["fastapi"] = common.baseline_server(
                common.free_port(), organization_id, columns, module="bench.fastapi_floor_app", workers=args.workers
            )
        with contextlib.ExitStack() as stack:
            for name, server in servers.items():
                if name != "api":
                    stack.enter_context(server)
                    body_size = check_same_replies(api, server, token, ids[:50])
                    print(f"API and {name}: same SELECT, same JSON bodies for 50 ids (~{body_size} bytes each)")
            print(
                f"{args.workers} server process(es) each; wrk -t1, {args.duration} s runs after {args.warmup} s"
                f" warm-up, {len(ids):,} random ids\n"
            )
            runs = run_all(args, servers, ids_file, script)
    print()
    summary, failed = summarise(args, runs)
    results = {"machine": common.machine_info(), "args": vars(args), "columns": columns, "runs": runs,
               "summary": summary}  # fmt: skip
    print(f"\nresults: {common.save_result('get_by_id', results)}")
    print(f"server logs: {', '.join(str(server.log_path) for server in servers.values())}")
    return 1 if failed else 0


def run_all(
    args: argparse.Namespace, servers: dict[str, common.Server], ids_file: Path, script: Path
) -> list[dict[str, Any]]:
    runs = []
    print(TABLE_HEADER)
    for connections in args.connection_counts:
        for round_no in range(args.rounds):
            order = list(servers.items())
            if round_no % 2:  # ABBA: baseline, API, API, baseline, …
                order.reverse()
            for name, server in order:
                env = {"BENCH_IDS": str(ids_file), "BENCH_TOKEN": common.sign_in(servers["api"].base_url)}
                for attempt in range(1, 4):
                    run = measured_run(server, connections=connections, duration=args.duration,
                                       warmup=args.warmup, script=script, env=env)  # fmt: skip
                    noise = run["other_cpu_s"] / args.duration
                    if noise <= args.max_noise:
                        break
                    print(f"  ({name}: other processes used {noise:.2f} cores during the run; "
                          f"{'repeating it' if attempt < 3 else 'keeping it, marked noisy'})")  # fmt: skip
                run.update(server=name, connections=connections, round=round_no + 1, noisy=noise > args.max_noise)
                runs.append(run)
                print(table_row(run, args.duration), flush=True)
    return runs


def summarise(args: argparse.Namespace, runs: list[dict[str, Any]]) -> tuple[dict[int, Any], bool]:
    summary: dict[int, Any] = {}
    failed = False
    for connections in args.connection_counts:
        mine = [r for r in runs if r["connections"] == connections]
        sides = sorted({r["server"] for r in mine})
        rps = {side: statistics.median(r["rps"] for r in mine if r["server"] == side) for side in sides}
        cpu = {
            side: statistics.median(r["server_cpu_s"] / r["requests"] * 1000 for r in mine if r["server"] == side)
            for side in sides
        }
        non_2xx = sum(r["status"] for r in mine)
        ratio = rps["api"] / rps["baseline"]
        failed |= ratio < 0.5 or non_2xx > 0
        summary[connections] = {**rps, "ratio": ratio, "non_2xx": non_2xx, "server_cpu_ms_per_request": cpu}
        print(
            f"{connections:>3} connections: baseline {rps['baseline']:,.0f} req/s, API {rps['api']:,.0f} req/s, "
            f"ratio API/baseline {ratio:.2f} ({'meets' if ratio >= 0.5 else 'MISSES'} the 0.50 target); "
            f"non-2xx {non_2xx}\n"
            f"    server process CPU per request: baseline {cpu['baseline']:.3f} ms, API {cpu['api']:.3f} ms "
            f"(ratio {cpu['baseline'] / cpu['api']:.2f}: the throughput ratio if both were CPU-bound)"
        )
        if "fastapi" in rps:
            print(
                f"    bare FastAPI (same query and body, no app): {rps['fastapi']:,.0f} req/s, "
                f"{rps['fastapi'] / rps['baseline']:.2f} of the baseline; CPU {cpu['fastapi']:.3f} ms per request"
            )
    return summary, failed


if __name__ == "__main__":
    time.tzset()
    sys.exit(main())

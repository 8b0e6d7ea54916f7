"""Where the API's time goes under load: py-spy on the API process while wrk drives it.

    python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy      # not a project dependency
    uv run python -m bench.profile_api --py-spy /tmp/pyspy/bin/py-spy [--endpoint get] [--connections 16]

Starts the API like the other scripts (one worker, production settings), loads it with wrk for
`--duration` seconds (GET by random id, or the depth-10,000 list page, or a fixed search), samples
the server process with py-spy meanwhile, and prints the share of busy samples spent in each
layer of the request path (each sample charged to the innermost layer on its stack) and the top
self-time frames. The raw collapsed stacks are kept for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from bench import common

common.use_app_environment()

from bench.get_by_id import LUA  # noqa: E402

FIXED_LUA = r"""
local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"), ["Accept"] = "application/json" }
request = function() return wrk.format("GET", os.getenv("BENCH_PATH"), headers) end
"""

# Each busy sample is charged to the innermost frame on its stack that matches one of these
# (file or function patterns), so the shares add up to 100 %. SQLAlchemy runs its work in
# greenlets, whose stacks py-spy shows without the request's outer frames; charging by the
# innermost known frame makes that irrelevant.
CATEGORIES = [
    (
        "new DB connections (asyncpg connect, SSL attempt, pool)",
        r"asyncpg/connect_utils|_connect_addr|"
        r"AsyncAdapt_dbapi_connection\.create|ssl\.py|_ConnectionRecord|pool/base\.py\)|Pool\._create|QueuePool",
    ),
    ("asyncpg: bind, execute, decode rows", r"\(asyncpg/"),
    ("SQLAlchemy ORM: rows → objects", r"sqlalchemy/orm/loading\.py"),
    ("SQLAlchemy: session, statement, result, events", r"\(sqlalchemy/"),
    ("pydantic: validate + serialise the reply", r"\(pydantic|serialize_response|_prepare_response_content"),
    ("JWT (python-jose)", r"\(jose/"),
    ("rate limiter + Redis client", r"\(redis/|RateLimiter|ratelimit\.py"),
    ("request log (structlog, logging)", r"\(structlog/|\(logging/"),
    ("Prometheus metrics", r"\(prometheus_client/"),
    ("FastAPI dependency resolution", r"\(fastapi/dependencies/"),
    ("route matching", r"matches \(|_match \(|\.matches|effective_candidates|_get_routes_version"),
    ("app code (app/…)", r"\(app/"),
    ("FastAPI/Starlette request plumbing", r"\((fastapi|starlette)/"),
    ("uvicorn + httptools", r"\((uvicorn|httptools)/"),
    ("event loop, tasks, contextvars", r"\(asyncio/|uvloop|Runner\.run|\(contextvars|greenlet"),
]


def summarise(collapsed: Path, top: int = 25) -> None:
    self_time: collections.Counter[str] = collections.Counter()
    charged: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", re.sub(r"/[^ ]*/site-packages/", "", f)) for f in stack.split(";")]
        self_time[frames[-1]] += n
        label = next(
            (label for frame in reversed(frames) for label, pattern in CATEGORIES if re.search(pattern, frame)),
            "other",
        )
        charged[label] += n
    print(f"\n{total} busy samples, each charged to the innermost layer on its stack:")
    for label, n in charged.most_common():
        print(f"  {n / total * 100:5.1f}%  {label}")
    print("\ntop self time:")
    for frame, n in self_time.most_common(top):
        print(f"  {n / total * 100:5.1f}%  {frame[:140]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--py-spy", default="py-spy", help="path to a py-spy binary")
    parser.add_argument("--endpoint", choices=["get", "list", "search"], default="get")
    parser.add_argument("--q", default="张伟", help="the search term for --endpoint search")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--api-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--summarise", type=Path, help="only summarise an existing collapsed-stack file")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.summarise)
        return 0
    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    ids_file = common.WORK_DIR / "contact-ids.txt"
    if args.endpoint == "get" and not ids_file.exists():
        sys.exit("run bench.get_by_id once first (it writes the id list)")
    api = common.api_server(common.free_port(), **dict(item.split("=", 1) for item in args.api_env))
    out = common.WORK_DIR / f"profile-{args.endpoint}-{time.strftime('%H%M%S')}.collapsed"
    with api:
        token = common.sign_in(api.base_url)
        env = {**os.environ, "BENCH_TOKEN": token, "BENCH_IDS": str(ids_file)}
        script = common.WORK_DIR / f"profile-{args.endpoint}.lua"
        if args.endpoint == "get":
            script.write_text(LUA)
        else:
            script.write_text(FIXED_LUA)
            env["BENCH_PATH"] = list_path(api, token) if args.endpoint == "list" else (
                "/api/v1/contacts?" + urllib.parse.urlencode({"q": args.q, "limit": "50"})
            )  # fmt: skip
        wrk = ["wrk", "-t1", f"-c{args.connections}", "-s", str(script), api.base_url]
        subprocess.run([*wrk[:3], "-d3s", *wrk[3:]], env=env, capture_output=True, check=True)  # warm-up
        common.wait_until_quiet()
        load = subprocess.Popen([*wrk[:3], f"-d{args.duration + 4}s", *wrk[3:]], env=env, stdout=subprocess.PIPE)
        time.sleep(2)
        subprocess.run(
            [args.py_spy, "record", "--pid", str(api.pid), "--duration", str(args.duration), "--rate", "250",
             "--format", "raw", "--output", str(out), "--nonblocking"],
            check=True, capture_output=True,
        )  # fmt: skip
        stdout, _ = load.communicate()
        rps = next((line for line in stdout.decode().splitlines() if "Requests/sec" in line), "").strip()
        print(f"{args.endpoint}, {args.connections} connections: {rps}")
    summarise(out)
    print(f"\ncollapsed stacks: {out}")
    return 0


def list_path(api: common.Server, token: str) -> str:
    import http.client

    from bench.list_depth import cursor_at

    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    cursor, _ = cursor_at(conn, token, 10_000)
    conn.close()
    return "/api/v1/contacts?" + urllib.parse.urlencode({"limit": "50", "cursor": cursor or ""})


if __name__ == "__main__":
    sys.exit(main())

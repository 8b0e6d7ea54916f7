"""A webhook receiver for the relay bench: verifies every signature, de-duplicates on
`webhook-id`, and records when each (subscription path, webhook-id) first arrived.

    uv run python -m bench.webhook_receiver --port 8765 --secrets-file /tmp/secrets.json

GET /stats   → {"requests": n, "unique": {path: n}, "duplicates": n, "bad_signatures": n}
GET /arrivals → {path: {webhook_id: unix time of first arrival}}
POST /reset  → forgets everything (secrets are re-read from the file)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import uvloop
from aiohttp import web

from app.core import signatures


class Receiver:
    def __init__(self, secrets_file: Path) -> None:
        self.secrets_file = secrets_file
        self.reset()

    def reset(self) -> None:
        self.secrets: dict[str, str] = json.loads(self.secrets_file.read_text()) if self.secrets_file.exists() else {}
        self.arrivals: dict[str, dict[str, float]] = {}
        self.requests = 0
        self.duplicates = 0
        self.bad_signatures = 0

    async def deliver(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        self.requests += 1
        message_id = request.headers["webhook-id"]
        secret = self.secrets.get(request.path)
        if secret is None or not signatures.verify(
            secret, message_id, int(request.headers["webhook-timestamp"]), body, request.headers["webhook-signature"]
        ):
            self.bad_signatures += 1
            return web.Response(status=401)
        seen = self.arrivals.setdefault(request.path, {})
        if message_id in seen:
            self.duplicates += 1
        else:
            seen[message_id] = arrived
        return web.Response(status=204)

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "unique": {path: len(ids) for path, ids in self.arrivals.items()},
                "duplicates": self.duplicates,
                "bad_signatures": self.bad_signatures,
            }
        )

    async def arrivals_view(self, _: web.Request) -> web.Response:
        return web.json_response(self.arrivals)

    async def reset_view(self, _: web.Request) -> web.Response:
        self.reset()
        return web.Response(status=204)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secrets-file", type=Path, required=True)
    args = parser.parse_args()
    receiver = Receiver(args.secrets_file)
    app = web.Application()
    app.router.add_get("/stats", receiver.stats)
    app.router.add_get("/arrivals", receiver.arrivals_view)
    app.router.add_post("/reset", receiver.reset_view)
    app.router.add_post("/{path:s[0-9]+}", receiver.deliver)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

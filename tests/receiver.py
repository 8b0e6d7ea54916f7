"""A real HTTP receiver on 127.0.0.1 for webhook tests: records what it gets, answers as told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from app.core import signatures


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    def verifies_with(self, secret: str) -> bool:
        return signatures.verify(
            secret,
            self.headers["webhook-id"],
            int(self.headers["webhook-timestamp"]),
            self.body,
            self.headers["webhook-signature"],
        )


Responder = Callable[[Received], Awaitable[web.StreamResponse]]


async def _accept(_: Received) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Receiver:
    """`responders` maps a path to how it answers (204 by default); every request is kept."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    responders: dict[str, Responder] = field(default_factory=dict)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.path, {k.lower(): v for k, v in request.headers.items()}, await request.read())
        self.received.append(received)
        async with self.arrived:
            self.arrived.notify_all()
        return await self.responders.get(request.path, _accept)(received)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 30) -> None:
        async with asyncio.timeout(within), self.arrived:
            await self.arrived.wait_for(predicate)


async def start_receiver() -> tuple[Receiver, web.AppRunner]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return receiver, runner

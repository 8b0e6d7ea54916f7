"""The transaction boundary: one request, one session, one commit (STYLE habit 4).

`TransactionalRoute` wraps every API route: it opens the session the handlers use, runs the
route (dependencies, endpoint, serialisation), and commits only when the reply is a success,
before the reply is sent, so a client never sees a 2xx for a write that did not commit. The
first reply to a POST with an `Idempotency-Key` is stored inside that same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar, cast

import orjson
from fastapi import Request, Response
from fastapi.params import Depends
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import idempotency, reads
from app.core.errors import DomainError

SESSION_STATE_KEY = "db"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENCY_CLAIM_STATE_KEY = "idempotency_claim"


class IdempotentReplay(Exception):
    """Raised during dependency solving when a stored first reply answers the request."""

    def __init__(self, reply: idempotency.StoredReply) -> None:
        super().__init__("idempotent replay")
        self.reply = reply

    def response(self) -> Response:
        headers = {**self.reply.headers, "Idempotent-Replayed": "true"}
        return Response(self.reply.body, status_code=self.reply.status_code, headers=headers)


async def request_session(request: Request) -> AsyncSession:
    unit: _UnitOfWork = getattr(request.state, SESSION_STATE_KEY)
    return cast(AsyncSession, _DeferredSession(unit))


EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def without_idempotency(endpoint: EndpointT) -> EndpointT:
    """A POST that takes no Idempotency-Key: its reply is made of credentials (tokens) that must
    not be stored, and replaying it without them would be of no use."""
    endpoint.__dict__["without_idempotency"] = True
    return endpoint


def redacted_in_replays(*fields: str) -> Callable[[EndpointT], EndpointT]:
    """The reply's top-level `fields` (secrets shown once) are stored as null for replays."""

    def mark(endpoint: EndpointT) -> EndpointT:
        endpoint.__dict__["redacted_in_replays"] = fields
        return endpoint

    return mark


def _stored_body(body: bytes, redacted: tuple[str, ...]) -> bytes:
    if not redacted:
        return body
    reply = orjson.loads(body)
    return orjson.dumps({key: (None if key in redacted else value) for key, value in reply.items()})


class TransactionalRoute(APIRoute):
    # Dependencies every POST gets (the router layer sets the idempotency guard here).
    post_dependencies: ClassVar[list[Depends]] = []

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        if "POST" in methods and self.post_dependencies and not getattr(endpoint, "without_idempotency", False):
            kwargs["dependencies"] = [
                *(kwargs.get("dependencies") or []),
                *self.post_dependencies,
            ]
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        redacted: tuple[str, ...] = getattr(self.endpoint, "redacted_in_replays", ())

        async def handle_in_transaction(request: Request) -> Response:
            state = request.app.state
            # Reads need no transaction: in autocommit they skip the BEGIN and COMMIT round trips.
            safe = request.method in SAFE_METHODS
            unit = _UnitOfWork(state.read_session_factory if safe else state.session_factory)
            setattr(request.state, SESSION_STATE_KEY, unit)
            pool_token = reads.use_pool(state.read_pool)
            try:
                response = await handle(request)
            except IdempotentReplay as replay:
                await unit.finish(commit=False)
                return replay.response()
            except DomainError as error:
                await unit.finish(commit=error.commit_transaction)
                raise
            except BaseException:
                await unit.finish(commit=False)
                raise
            finally:
                reads.release_pool(pool_token)
            if response.status_code >= 400:
                await unit.finish(commit=False)
                return response
            claim = getattr(request.state, IDEMPOTENCY_CLAIM_STATE_KEY, None)
            if claim is not None:
                await idempotency.store(
                    unit.session(),
                    claim,
                    status_code=response.status_code,
                    headers=dict(response.headers),
                    body=_stored_body(bytes(response.body), redacted),
                )
            await unit.finish(commit=True)
            return response

        return handle_in_transaction


class _DeferredSession:
    """Stands in for the request's session and opens it on first use, so a handler that never
    touches the database (its data came from caches and the read pool) pays nothing for it."""

    __slots__ = ("_unit",)

    def __init__(self, unit: _UnitOfWork) -> None:
        self._unit = unit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._unit.session(), name)


class _UnitOfWork:
    """The request's session, opened only if something asks for it (a GET served from caches
    and the read pool never does)."""

    __slots__ = ("_factory", "_session")

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None

    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._factory()
        return self._session

    async def finish(self, *, commit: bool) -> None:
        session, self._session = self._session, None
        if session is None or not session.in_transaction():
            return  # never used: nothing to commit, no connection to give back
        try:
            if commit:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()

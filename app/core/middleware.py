"""The outermost ASGI layer of the app (pure ASGI: it runs on every request)."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import request_id_var
from app.core.ids import new_id
from app.core.logging import get_logger
from app.core.metrics import observe_request
from app.core.problems import BodyTooLarge, problem_response

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
RATE_LIMIT_STATE_KEY = "rate_limit"
log = get_logger("rapport.http")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    """One layer for what every request needs: its id, the body size limit, the access log and
    metrics, the rate-limit headers, and a problem document for anything unhandled."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, upload_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths that take file uploads, with their own (larger) limit: `POST /imports`.
        self.upload_limits = upload_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_id().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                state: dict[str, Any] = scope.get("state", {})
                if (limit := state.get(RATE_LIMIT_STATE_KEY)) is not None:
                    headers += [(name.lower().encode(), value.encode()) for name, value in limit.headers().items()]
                message["headers"] = headers
            await send(message)

        received = 0
        limit = self.upload_limits.get(scope["path"], self.max_body_bytes)

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            if _declares_more_than(scope, limit):
                refused = BodyTooLarge(limit)
                await problem_response(
                    None,
                    status=refused.status_code,
                    slug="payload-too-large",
                    detail=refused.detail,
                    extensions={"instance": scope["path"], "limit": limit},
                )(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive_within_limit, send_with_headers)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if response_started:
                raise
            response = problem_response(None, status=500, slug="internal-error", detail="An unexpected error occurred")
            await response(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe_request(scope["method"], template, status, elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            request_id_var.reset(token)


def _declares_more_than(scope: Scope, limit: int) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.isdigit() and int(value) > limit
    return False

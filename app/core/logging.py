"""Structured logs: one JSON object per line, carrying the request id of the request in hand."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any, BinaryIO

import orjson
import structlog

from app.core.context import request_id_var


class LineBuffer:
    """A structlog logger that writes lines to a binary stream in batches.

    The access log adds a line per request, and a write system call per line is a measurable
    part of a fast request. Lines are written when 64 KiB have gathered, when a quarter second
    has passed since the last write (checked on each line, and by `flush_periodically` when the
    process is idle), and at once for warnings and errors.
    """

    FLUSH_BYTES = 64 * 1024
    FLUSH_SECONDS = 0.25

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lines: list[bytes] = []
        self._size = 0
        self._written_at = time.monotonic()

    def msg(self, line: bytes) -> None:
        self._lines.append(line + b"\n")
        self._size += len(line) + 1
        if self._size >= self.FLUSH_BYTES or time.monotonic() - self._written_at >= self.FLUSH_SECONDS:
            self.flush()

    def msg_now(self, line: bytes) -> None:
        self.msg(line)
        self.flush()

    debug = info = msg
    warning = warn = error = err = critical = exception = fatal = msg_now

    def flush(self) -> None:
        self._written_at = time.monotonic()
        if self._lines:
            lines, self._lines, self._size = self._lines, [], 0
            self._stream.write(b"".join(lines))
            self._stream.flush()

    async def flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_SECONDS)
            self.flush()


_buffer: LineBuffer | None = None


def log_buffer() -> LineBuffer | None:
    """The buffer JSON logs go through (None for console logs): flush it on shutdown."""
    return _buffer


def _add_request_id(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if (request_id := request_id_var.get()) is not None:
        event.setdefault("request_id", request_id)
    return event


def _dumps(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[structlog.typing.Processor] = [
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    global _buffer
    if json:
        # orjson to bytes, written in batches: the access log writes a line per request.
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(serializer=_dumps)
        _buffer = LineBuffer(sys.stderr.buffer)
        atexit.register(_buffer.flush)
        buffer = _buffer
        factory: Callable[..., Any] = lambda *args: buffer  # noqa: E731 - one shared writer

    else:
        _buffer = None
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library; render them the same way (as text lines).
    foreign_renderer = structlog.processors.JSONRenderer() if json else renderer
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, foreign_renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]

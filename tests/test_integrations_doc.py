"""docs/integrations.md: the receiver it shows runs as printed (standard library only), verifies
signatures, refuses stale timestamps and handles each webhook-id once. No database needed."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.core import signatures

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"


def receiver_source() -> str:
    found = re.search(r"^<!-- receiver -->\n```python\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.M | re.S)
    assert found, "docs/integrations.md has no ```python block after <!-- receiver -->"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Running:
    url: str
    secret: str
    process: subprocess.Popen[str]

    def deliver(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url, content=body, headers=headers, timeout=10)

    def stop(self) -> str:
        """Stops the receiver and returns what it printed."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return out


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Running]:
    script = tmp_path / "receiver.py"
    script.write_text(receiver_source(), encoding="utf-8")
    port, secret = _free_port(), signatures.new_secret()
    errors = (tmp_path / "stderr.txt").open("w")
    # -S: no site-packages, so the receiver must make do with the standard library.
    process = subprocess.Popen(
        [sys.executable, "-S", str(script)],
        env={**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    running = Running(f"http://127.0.0.1:{port}/", secret, process)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the receiver did not start listening"
                time.sleep(0.05)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
        errors.close()


def _event(event_type: str = "contact.created") -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    event = {
        "id": event_id,
        "type": event_type,
        "position": 1,
        "timestamp": "2025-06-02T08:15:30.123456Z",
        "entity_type": "contact",
        "entity_id": str(uuid.uuid4()),
        "actor_type": "user",
        "actor_id": str(uuid.uuid4()),
        "request_id": "5d3c1b0e9f2a4c6d8e7f6a5b4c3d2e1f",
        "data": {"first_name": "伟", "last_name": "张"},
        "changes": None,
    }
    return event_id, json.dumps(event, ensure_ascii=False).encode()


def test_a_signed_delivery_is_handled_once(receiver: Running) -> None:
    event_id, body = _event("contact.created")
    first = receiver.deliver(body, signatures.signed_headers([receiver.secret], event_id, body))
    assert first.status_code == 204
    # A retry: same webhook-id, signed anew.
    again = receiver.deliver(body, signatures.signed_headers([receiver.secret], event_id, body))
    assert again.status_code == 204
    other_id, other = _event("company.created")
    assert receiver.deliver(other, signatures.signed_headers([receiver.secret], other_id, other)).status_code == 204
    assert receiver.stop().splitlines() == ["contact.created", "company.created"]


def test_a_tampered_body_is_401(receiver: Running) -> None:
    event_id, body = _event()
    headers = signatures.signed_headers([receiver.secret], event_id, body)
    assert receiver.deliver(body.replace(b"contact.created", b"contact.archived"), headers).status_code == 401
    assert receiver.deliver(body, {**headers, "webhook-id": str(uuid.uuid4())}).status_code == 401
    assert receiver.deliver(body, {"content-type": "application/json"}).status_code == 401
    wrong_secret = signatures.signed_headers([signatures.new_secret()], event_id, body)
    assert receiver.deliver(body, wrong_secret).status_code == 401
    assert receiver.stop() == ""


def test_any_of_several_signatures_will_do(receiver: Running) -> None:
    """During a rotation the header carries one signature per secret; the receiver may hold either."""
    event_id, body = _event()
    headers = signatures.signed_headers([signatures.new_secret(), receiver.secret], event_id, body)
    assert len(headers["webhook-signature"].split()) == 2
    assert receiver.deliver(body, headers).status_code == 204
    assert receiver.stop().splitlines() == ["contact.created"]


@pytest.mark.parametrize("offset", [-600, 600])
def test_a_timestamp_ten_minutes_away_is_401(receiver: Running, offset: int) -> None:
    event_id, body = _event()
    timestamp = int(time.time()) + offset
    headers = {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures.signature_header([receiver.secret], event_id, timestamp, body),
    }
    assert receiver.deliver(body, headers).status_code == 401
    assert receiver.stop() == ""

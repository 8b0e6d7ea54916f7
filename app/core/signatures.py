"""Standard Webhooks signatures (https://www.standardwebhooks.com): `v1,` then the base64
HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the secret's decoded bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_in_use: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per secret: during a rotation both the new and the old
    secret sign, so a receiver holding either accepts the delivery."""
    return " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_in_use)


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    expected = signature(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())


def signed_headers(secrets_in_use: Iterable[str], message_id: str, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt: the timestamp is the attempt's, so a retry is signed anew."""
    timestamp = int(time.time())
    return {
        "content-type": "application/json",
        "user-agent": "Rapport-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_in_use, message_id, timestamp, body),
    }

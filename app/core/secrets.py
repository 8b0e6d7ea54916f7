"""Secrets the server must read back (webhook signing keys), sealed at rest with AES-GCM.

The key is derived from the server's secret key with HKDF, one key per purpose, and the
purpose is bound as associated data: a value sealed for one purpose does not open as another.
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_FORMAT = b"\x01"
_NONCE_BYTES = 12


@lru_cache(maxsize=16)
def _cipher(server_secret: str, purpose: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"rapport:{purpose}".encode()).derive(
        server_secret.encode()
    )
    return AESGCM(key)


def seal(plaintext: str, *, server_secret: str, purpose: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _cipher(server_secret, purpose).encrypt(nonce, plaintext.encode(), purpose.encode())
    return _FORMAT + nonce + sealed


def unseal(sealed: bytes, *, server_secret: str, purpose: str) -> str:
    if sealed[:1] != _FORMAT:
        raise ValueError("unknown sealed-secret format")
    nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    return _cipher(server_secret, purpose).decrypt(nonce, body, purpose.encode()).decode()


# Custom field values of type `secret`: stored as {"$sealed": "<base64>", "key": "<key id>"}.
SEALED_MARK = "$sealed"
FIELD_PURPOSE = "secret-field"


def is_sealed(value: object) -> bool:
    return isinstance(value, dict) and SEALED_MARK in value


def _field_keys(server_secret: str, configured: str | None) -> list[tuple[str, AESGCM]]:
    """The key ring, newest first: `id:base64-32-bytes` pairs from the setting, else one key
    derived from the server secret (id `derived`)."""
    if not configured:
        return [("derived", _cipher(server_secret, FIELD_PURPOSE))]
    ring = []
    for entry in configured.split(","):
        key_id, _, encoded = entry.strip().partition(":")
        ring.append((key_id, AESGCM(base64.b64decode(encoded))))
    return ring


def seal_field(plaintext: str, *, server_secret: str, configured_keys: str | None) -> dict[str, str]:
    key_id, cipher = _field_keys(server_secret, configured_keys)[0]
    nonce = os.urandom(_NONCE_BYTES)
    sealed = cipher.encrypt(nonce, plaintext.encode(), FIELD_PURPOSE.encode())
    return {SEALED_MARK: base64.b64encode(nonce + sealed).decode(), "key": key_id}


class UnreadableSecret(ValueError):
    """A sealed field value that the configured keys cannot open."""


def unseal_field(value: dict[str, str], *, server_secret: str, configured_keys: str | None) -> str:
    """Opens a value sealed under any key of the ring, so keys can rotate: put the new key first,
    and values sealed under the old one stay readable while it is listed."""
    ring = dict(_field_keys(server_secret, configured_keys))
    cipher = ring.get(value.get("key", ""))
    if cipher is None:
        raise UnreadableSecret(f"the key {value.get('key')!r} that sealed this value is not configured")
    raw = base64.b64decode(value[SEALED_MARK])
    try:
        return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], FIELD_PURPOSE.encode()).decode()
    except InvalidTag as error:
        raise UnreadableSecret(f"the key {value.get('key')!r} does not open this value") from error

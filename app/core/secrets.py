"""Secrets the server must read back (webhook signing keys), sealed at rest with AES-GCM.

The key is derived from the server's secret key with HKDF, one key per purpose, and the
purpose is bound as associated data: a value sealed for one purpose does not open as another.
"""

from __future__ import annotations

import os
from functools import lru_cache

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

"""Password hashing, access tokens (JWT) and opaque secrets (refresh tokens, API keys)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cachetools import LRUCache
from jose import JWTError, jwt

from app.core.errors import Unauthorized
from app.core.settings import get_settings


class Passwords:
    def __init__(self, *, time_cost: int, memory_cost_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib)
        # Verified against when the user does not exist, so both paths cost the same.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    organization_id: uuid.UUID


class AccessTokens:
    """HS-family JWTs with the algorithm pinned: `alg: none` and algorithm swaps are refused."""

    issuer = "rapport"

    def __init__(self, *, secret: str, algorithm: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self.ttl_seconds = ttl_seconds
        # A client sends the same token for its whole life: verify the signature once.
        self._verified: LRUCache[str, tuple[AccessClaims, float]] = LRUCache(maxsize=10_000)

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        organization_id: uuid.UUID,
        now: datetime | None = None,
    ) -> str:
        issued_at = now or datetime.now(UTC)
        claims = {
            "iss": self.issuer,
            "sub": str(user_id),
            "org": str(organization_id),
            "typ": "access",
            "iat": int(issued_at.timestamp()),
            "exp": int((issued_at + timedelta(seconds=self.ttl_seconds)).timestamp()),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=self._algorithm)

    def verify(self, token: str) -> AccessClaims:
        if (known := self._verified.get(token)) is not None and known[1] > time.time():
            return known[0]
        return self._verify(token)

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != self._algorithm:
                raise Unauthorized("Token algorithm is not accepted")
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                issuer=self.issuer,
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
        except JWTError as exc:
            raise Unauthorized(_describe(exc)) from exc
        if claims.get("typ") != "access":
            raise Unauthorized("Not an access token")
        try:
            verified = AccessClaims(user_id=uuid.UUID(claims["sub"]), organization_id=uuid.UUID(claims["org"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise Unauthorized("Malformed token claims") from exc
        self._verified[token] = (verified, float(claims["exp"]))
        return verified


def _describe(exc: JWTError) -> str:
    message = str(exc).lower()
    if "expired" in message:
        return "Token has expired"
    if "signature" in message:
        return "Token signature is invalid"
    return "Token is invalid"


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> bytes:
    """Refresh tokens and API keys are long random strings: a fast hash is the right one at rest."""
    return hashlib.sha256(secret.encode()).digest()


def digests_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


@lru_cache(maxsize=1)
def passwords() -> Passwords:
    settings = get_settings()
    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_cost_kib=settings.argon2_memory_cost_kib,
    )


@lru_cache(maxsize=1)
def access_tokens() -> AccessTokens:
    settings = get_settings()
    return AccessTokens(
        secret=settings.jwt_secret(),
        algorithm=settings.jwt_algorithm,
        ttl_seconds=settings.access_token_ttl_seconds,
    )

"""Authentication: passwords, access and refresh tokens, API keys → a Principal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from cachetools import TTLCache
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit
from app.core.errors import (
    FieldError,
    PermissionDenied,
    RefreshTokenReused,
    Unauthorized,
    ValidationFailed,
)
from app.core.ids import new_id
from app.core.permissions import ROLE_SCOPES, Scope
from app.core.principal import Principal
from app.core.security import (
    access_tokens,
    digest,
    digests_match,
    new_secret,
    passwords,
)
from app.core.settings import get_settings
from app.models.base import utcnow
from app.models.organization import ApiKey, Organization, RefreshToken, User

API_KEY_PREFIX = "rpk"
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def check_password_policy(password: str, *, loc: tuple[str, ...]) -> None:
    minimum = get_settings().password_min_length
    if len(password) < minimum:
        raise ValidationFailed(FieldError(loc, f"must be at least {minimum} characters"))


async def issue_tokens(session: AsyncSession, user: User, *, family_id: uuid.UUID | None = None) -> IssuedTokens:
    settings = get_settings()
    now = utcnow()
    refresh_token = new_secret(32)
    session.add(
        RefreshToken(
            organization_id=user.organization_id,
            user_id=user.id,
            family_id=family_id or new_id(),
            token_hash=digest(refresh_token),
            issued_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    tokens = access_tokens()
    access = tokens.issue(user_id=user.id, organization_id=user.organization_id, now=now)
    return IssuedTokens(access_token=access, refresh_token=refresh_token, expires_in=tokens.ttl_seconds)


async def login(session: AsyncSession, *, email: str, password: str) -> IssuedTokens:
    user = (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()
    hasher = passwords()
    if not hasher.verify(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("Incorrect e-mail or password")
    if not user.is_active:
        raise Unauthorized("This user is deactivated")
    if hasher.needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return await issue_tokens(session, user)


async def refresh(session: AsyncSession, *, refresh_token: str) -> IssuedTokens:
    """Rotates a refresh token. A token presented twice revokes its whole family (RFC 9700 §4.14)."""
    now = utcnow()
    token_hash = digest(refresh_token)
    claimed = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(
                RefreshToken.organization_id,
                RefreshToken.user_id,
                RefreshToken.family_id,
            )
        )
    ).first()
    if claimed is not None:
        organization_id, user_id, family_id = claimed
        user = await session.get(User, (organization_id, user_id))
        if user is None or not user.is_active:
            raise Unauthorized("This user is deactivated")
        return await issue_tokens(session, user, family_id=family_id)

    known = (
        await session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    ).scalar_one_or_none()
    if known is None or known.expires_at <= now:
        raise Unauthorized("Invalid or expired refresh token")
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.organization_id == known.organization_id,
            RefreshToken.family_id == known.family_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    raise RefreshTokenReused("This refresh token was already used; every token of its sign-in is now revoked")


async def revoke_user_tokens(session: AsyncSession, user: User) -> None:
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.organization_id == user.organization_id,
            RefreshToken.user_id == user.id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


_USER_STATE = (
    select(User.role, User.is_active, Organization.record_visibility)
    .join(Organization, Organization.id == User.organization_id)
    .where(User.organization_id == bindparam("organization_id"), User.id == bindparam("user_id"))
)


class _PrincipalCache:
    """Users resolved recently, so a request with a known token needs no query to authorise.

    A change made through this process (role, deactivation, visibility) clears the entries
    when it happens and again once it has committed; an epoch counter stops a request that
    read the old state meanwhile from putting it back. Other processes see the change within
    `principal_cache_seconds`.
    """

    def __init__(self) -> None:
        self._entries: TTLCache[tuple[uuid.UUID, uuid.UUID], Principal] | None = None
        self._epoch = 0

    def _cache(self) -> TTLCache[tuple[uuid.UUID, uuid.UUID], Principal] | None:
        ttl = get_settings().principal_cache_seconds
        if ttl <= 0:
            return None
        if self._entries is None:
            self._entries = TTLCache(maxsize=10_000, ttl=ttl)
        return self._entries

    def stamp(self) -> int:
        return self._epoch

    def get(self, key: tuple[uuid.UUID, uuid.UUID]) -> Principal | None:
        cache = self._cache()
        return cache.get(key) if cache is not None else None

    def put(self, principal: Principal, *, stamp: int) -> None:
        if stamp == self._epoch and (cache := self._cache()) is not None:
            cache[(principal.organization_id, principal.id)] = principal

    def forget(self, organization_id: uuid.UUID, user_id: uuid.UUID | None = None) -> None:
        self._epoch += 1
        if (cache := self._cache()) is None:
            return
        for key in [k for k in list(cache.keys()) if k[0] == organization_id and user_id in (None, k[1])]:
            cache.pop(key, None)

    def forget_on_commit(
        self, session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID | None = None
    ) -> None:
        self.forget(organization_id, user_id)
        after_commit(session, lambda: self.forget(organization_id, user_id))


principals = _PrincipalCache()


async def authenticate_bearer(session: AsyncSession, token: str) -> Principal:
    claims = access_tokens().verify(token)
    if (known := principals.get((claims.organization_id, claims.user_id))) is not None:
        return known
    stamp = principals.stamp()
    parameters = {"organization_id": claims.organization_id, "user_id": claims.user_id}
    row = (await session.execute(_USER_STATE, parameters)).first()
    if row is None or not row.is_active:
        raise Unauthorized("The token's user does not exist or is deactivated")
    principal = Principal(
        organization_id=claims.organization_id,
        kind="user",
        id=claims.user_id,
        role=row.role,
        scopes=ROLE_SCOPES[row.role],
        organization_visibility=row.record_visibility,
    )
    principals.put(principal, stamp=stamp)
    return principal


def new_api_key() -> tuple[str, str]:
    """(prefix, full key); the prefix is public and indexed, the rest is the secret."""
    prefix = new_secret(9).replace("-", "x").replace("_", "y")[:12]
    return prefix, f"{API_KEY_PREFIX}_{prefix}_{new_secret(32)}"


async def authenticate_api_key(session: AsyncSession, key: str) -> Principal:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise Unauthorized("Malformed API key")
    api_key = (await session.execute(select(ApiKey).where(ApiKey.prefix == parts[1]))).scalar_one_or_none()
    now = utcnow()
    if api_key is None or not digests_match(api_key.secret_hash, digest(key)):
        raise Unauthorized("Invalid API key")
    if api_key.revoked_at is not None:
        raise Unauthorized("This API key was revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("This API key has expired")
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        api_key.last_used_at = now
    return Principal(
        organization_id=api_key.organization_id,
        kind="api_key",
        id=api_key.id,
        scopes=frozenset(Scope(s) for s in api_key.scopes),
    )


async def principal_now(session: AsyncSession, organization_id: uuid.UUID, kind: str, actor_id: uuid.UUID) -> Principal:
    """The principal a user or API key is now, for work done later on its behalf (a job): a
    deactivated user or a revoked key can no longer act."""
    if kind == "user":
        row = (await session.execute(_USER_STATE, {"organization_id": organization_id, "user_id": actor_id})).first()
        if row is None or not row.is_active:
            raise PermissionDenied("The user who asked for this is deactivated")
        return Principal(
            organization_id=organization_id,
            kind="user",
            id=actor_id,
            role=row.role,
            scopes=ROLE_SCOPES[row.role],
            organization_visibility=row.record_visibility,
        )
    api_key = await session.get(ApiKey, (organization_id, actor_id))
    if api_key is None or api_key.revoked_at is not None:
        raise PermissionDenied("The API key that asked for this was revoked")
    return Principal(
        organization_id=organization_id,
        kind="api_key",
        id=api_key.id,
        scopes=frozenset(Scope(s) for s in api_key.scopes),
    )


async def change_password(session: AsyncSession, principal: Principal, *, current: str, new: str) -> None:
    if principal.kind != "user":
        raise Unauthorized("Only people have passwords")
    user = await session.get(User, (principal.organization_id, principal.id))
    assert user is not None
    if not passwords().verify(user.password_hash, current):
        raise ValidationFailed(FieldError(("body", "current_password"), "is incorrect"))
    check_password_policy(new, loc=("body", "new_password"))
    user.password_hash = passwords().hash(new)
    await revoke_user_tokens(session, user)


async def purge_expired_refresh_tokens(session: AsyncSession) -> int:
    """Expired tokens can no longer be used or reused; a day's grace keeps reuse detection honest."""
    result = await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < utcnow() - timedelta(days=1)))
    return int(getattr(result, "rowcount", 0) or 0)

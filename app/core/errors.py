"""The domain error tree. Services raise these; one handler renders them as RFC 9457 problems."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError as PydanticValidationError

PROBLEM_BASE = "urn:rapport:problem:"


@dataclass(frozen=True, slots=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg}


class DomainError(Exception):
    status_code: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # Set where the transaction must commit even though the request fails (a security record).
    commit_transaction: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def extensions(self) -> dict[str, Any]:
        return {}

    def as_problem(self) -> dict[str, Any]:
        """The problem document's body (RFC 9457), for errors reported inside a reply (batches)."""
        return {"type": self.type, "title": self.title, "status": self.status_code, "detail": self.detail} | (
            self.extensions()
        )


class NotFound(DomainError):
    status_code = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    slug = "conflict"
    title = "Conflict"


class Gone(DomainError):
    status_code = 410
    slug = "gone"
    title = "Gone"


class PreconditionFailed(DomainError):
    status_code = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class TooLarge(DomainError):
    status_code = 413
    slug = "payload-too-large"
    title = "Content too large"

    def __init__(self, detail: str, *, limit: int) -> None:
        super().__init__(detail)
        self.limit = limit

    def extensions(self) -> dict[str, Any]:
        return {"limit": self.limit}


class PermissionDenied(DomainError):
    status_code = 403
    slug = "forbidden"
    title = "Forbidden"


class Unauthorized(DomainError):
    status_code = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class RefreshTokenReused(Unauthorized):
    """A rotated refresh token came back: its whole family is revoked, and that must stick."""

    slug = "refresh-token-reused"
    commit_transaction = True


class ValidationFailed(DomainError):
    status_code = 422
    slug = "validation-error"
    title = "Validation failed"

    def __init__(self, errors: Sequence[FieldError] | FieldError, detail: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__(detail or "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.errors))

    def extensions(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}

    @classmethod
    def from_pydantic(cls, exc: PydanticValidationError, *, loc: tuple[str | int, ...]) -> ValidationFailed:
        """A schema's validation failure found in a service (a body checked against a second schema)."""
        return cls([FieldError((*loc, *error["loc"]), error["msg"]) for error in exc.errors()])


class RateLimited(DomainError):
    status_code = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"Rate limit exceeded; retry in {retry_after_seconds} s",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class ServiceUnavailable(DomainError):
    status_code = 503
    slug = "unavailable"
    title = "Service unavailable"

"""Likely duplicates among contacts and companies, each pair with a score and its reasons.

Contacts pair up on the same normalised e-mail, the same E.164 phone, or a similar name at the
same company (rapidfuzz over each company's contacts: names are compared in memory, where the
comparison does not depend on the database's locale, which decides whether pg_trgm sees Chinese
characters at all). Companies pair up on the same domain or the same normalised name. Each
reason has a weight; a pair's score combines them as independent evidence,
1 - Π(1 - weight). Only records the caller may see, and not archived ones, take part.
"""

from __future__ import annotations

import base64
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from rapidfuzz import fuzz, process
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import text_search
from app.core.errors import FieldError, ValidationFailed
from app.core.pagination import Page
from app.core.principal import Principal
from app.models.company import Company
from app.models.contact import Contact
from app.services.companies import COMPANIES
from app.services.contacts import CONTACTS
from app.services.records import RecordType

SAME_EMAIL: Final = 0.9
SAME_PHONE: Final = 0.8
SAME_DOMAIN: Final = 0.85
SAME_NAME: Final = 0.6
# A name similarity (0–100) at or above this, at the same company, is a reason.
NAME_SIMILARITY: Final = 85.0
NAME_WEIGHT: Final = 0.7


@dataclass(slots=True)
class DuplicatePair:
    first_id: uuid.UUID
    second_id: uuid.UUID
    reasons: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        missing = 1.0
        for weight in self.weights:
            missing *= 1 - weight
        return round(1 - missing, 3)

    def add(self, reason: str, weight: float) -> None:
        self.reasons.append(reason)
        self.weights.append(weight)


class _Pairs:
    def __init__(self) -> None:
        self.by_ids: dict[tuple[uuid.UUID, uuid.UUID], DuplicatePair] = {}

    def add(self, a: uuid.UUID, b: uuid.UUID, reason: str, weight: float) -> None:
        first, second = sorted((a, b))
        pair = self.by_ids.get((first, second))
        if pair is None:
            pair = self.by_ids[(first, second)] = DuplicatePair(first, second)
        pair.add(reason, weight)


async def _same_value(
    session: AsyncSession, principal: Principal, kind: RecordType[Any], column_name: str
) -> list[tuple[uuid.UUID, uuid.UUID, Any]]:
    model: Any = kind.model
    visible = (
        kind.repository(session, principal)
        .scoped()
        .where(model.archived_at.is_(None), getattr(model, column_name).is_not(None))
        .with_only_columns(model.id, getattr(model, column_name).label("value"))
        .subquery()
    )
    other = visible.alias("other")
    rows = await session.execute(
        select(visible.c.id, other.c.id, visible.c.value).join(
            other, and_(visible.c.value == other.c.value, visible.c.id < other.c.id)
        )
    )
    return [(a, b, value) for a, b, value in rows]


def _similar_names(groups: Iterable[list[tuple[uuid.UUID, str]]], pairs: _Pairs) -> None:
    """Pairs of similar names within each group. The token-sort similarity is the plain ratio of
    the names with their words sorted, so each name is sorted once and each member compared
    with the rest in one rapidfuzz call (its loop in C, cut short below the threshold)."""
    for members in groups:
        names = [" ".join(sorted(name.split())) for _, name in members]
        for i in range(len(members) - 1):
            matches = process.extract(
                names[i], names[i + 1 :], scorer=fuzz.ratio, score_cutoff=NAME_SIMILARITY, limit=None
            )
            for _, similarity, offset in matches:
                pairs.add(
                    members[i][0],
                    members[i + 1 + offset][0],
                    f"similar name ({similarity:.0f}%) at the same company",
                    NAME_WEIGHT * similarity / 100,
                )


async def contact_pairs(session: AsyncSession, principal: Principal) -> list[DuplicatePair]:
    pairs = _Pairs()
    for a, b, _ in await _same_value(session, principal, CONTACTS, "email"):
        pairs.add(a, b, "same e-mail", SAME_EMAIL)
    for a, b, _ in await _same_value(session, principal, CONTACTS, "phone"):
        pairs.add(a, b, "same phone", SAME_PHONE)
    rows = await session.execute(
        CONTACTS.repository(session, principal)
        .scoped()
        .where(Contact.archived_at.is_(None), Contact.company_id.is_not(None))
        .with_only_columns(Contact.id, Contact.company_id, Contact.first_name, Contact.last_name)
    )
    by_company: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    for contact_id, company_id, first, last in rows:
        name = text_search.normalize(" ".join(part for part in (last, first) if part))
        if name and company_id is not None:
            by_company[company_id].append((contact_id, name))
    _similar_names(by_company.values(), pairs)
    return _ranked(pairs)


async def company_pairs(session: AsyncSession, principal: Principal) -> list[DuplicatePair]:
    pairs = _Pairs()
    for a, b, _ in await _same_value(session, principal, COMPANIES, "domain"):
        pairs.add(a, b, "same domain", SAME_DOMAIN)
    rows = await session.execute(
        COMPANIES.repository(session, principal)
        .scoped()
        .where(Company.archived_at.is_(None))
        .with_only_columns(Company.id, Company.name)
    )
    by_name: dict[str, list[uuid.UUID]] = defaultdict(list)
    for company_id, name in rows:
        by_name[text_search.normalize(name)].append(company_id)
    for same in by_name.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                pairs.add(a, b, "same name", SAME_NAME)
    return _ranked(pairs)


def _ranked(pairs: _Pairs) -> list[DuplicatePair]:
    return sorted(pairs.by_ids.values(), key=lambda p: (-p.score, p.first_id, p.second_id))


def _cursor(pair: DuplicatePair) -> str:
    raw = orjson.dumps([pair.score, str(pair.first_id), str(pair.second_id)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _after(cursor: str) -> tuple[float, uuid.UUID, uuid.UUID]:
    try:
        score, first, second = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return -float(score), uuid.UUID(first), uuid.UUID(second)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(FieldError(("query", "cursor"), "not a cursor of this list")) from exc


def page_of(pairs: list[DuplicatePair], *, cursor: str | None, limit: int) -> Page[DuplicatePair]:
    """Pairs after `cursor` in (score descending, ids) order."""
    if cursor is not None:
        after = _after(cursor)
        pairs = [p for p in pairs if (-p.score, p.first_id, p.second_id) > after]
    items = pairs[:limit]
    return Page(items=items, next_cursor=_cursor(items[-1]) if len(pairs) > limit else None)

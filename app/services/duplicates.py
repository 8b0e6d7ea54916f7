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
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import orjson
from rapidfuzz import fuzz, process
from sqlalchemy import and_, delete, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import jobs, text_search
from app.core.db import copy_rows
from app.core.errors import DomainError, FieldError, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.pagination import Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.company import Company
from app.models.contact import Contact
from app.models.duplicate import DuplicateScan, ScannedPair
from app.services import organizations
from app.services.companies import COMPANIES
from app.services.contacts import CONTACTS
from app.services.records import RecordType

SAME_EMAIL: Final = 0.9
SAME_PHONE: Final = 0.8
SAME_DOMAIN: Final = 0.85
SAME_NAME: Final = 0.6
SIMILAR_COMPANY_NAME: Final = 0.5
_NOT_WORD: Final = re.compile(r"[\W_]+")
# Legal forms written after a company's name, which the same company's records may carry or leave
# out (Latin ones as words of their own: `acmeco` keeps its `co`).
_TRAILING_LEGAL_FORMS: Final = re.compile(
    r"(?:股份有限公司|有限责任公司|有限公司|集团|公司"
    r"|\s+(?:co|company|corp|corporation|inc|incorporated|llc|ltd|limited|gmbh|plc|ag|sa))+$"
)
# A name similarity (0–100) at or above this, at the same company, is a reason.
NAME_SIMILARITY: Final = 85.0
NAME_WEIGHT: Final = 0.7
_READ_PAGE: Final = 20_000


@dataclass(slots=True)
class DuplicatePair:
    first_id: uuid.UUID
    second_id: uuid.UUID
    reasons: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    stored_score: float | None = None  # a pair read back from a scan

    @property
    def score(self) -> float:
        if self.stored_score is not None:
            return self.stored_score
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
    # Read in company order, a page at a time (reads run outside a transaction, so no server-side
    # cursor), with one company's contacts in memory at a time.
    query = (
        CONTACTS.repository(session, principal)
        .scoped()
        .where(Contact.archived_at.is_(None), Contact.company_id.is_not(None))
        .with_only_columns(Contact.company_id, Contact.id, Contact.first_name, Contact.last_name)
        .order_by(Contact.company_id, Contact.id)
        .limit(_READ_PAGE)
    )
    members: list[tuple[uuid.UUID, str]] = []
    current: uuid.UUID | None = None
    after: tuple[Any, Any] | None = None
    while True:
        page = query if after is None else query.where(tuple_(Contact.company_id, Contact.id) > after)
        rows = (await session.execute(page)).all()
        for company_id, contact_id, first, last in rows:
            if company_id != current:
                _similar_names([members], pairs)
                members, current = [], company_id
            name = text_search.normalize(" ".join(part for part in (last, first) if part))
            if name:
                members.append((contact_id, name))
        if len(rows) < _READ_PAGE:
            break
        after = (rows[-1][0], rows[-1][1])
    _similar_names([members], pairs)
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
    by_key: dict[str, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    for company_id, name in rows:
        normalised = text_search.normalize(name)
        by_key[company_name_key(normalised)].append((company_id, normalised))
    for same in by_key.values():
        for i, (a, a_name) in enumerate(same):
            for b, b_name in same[i + 1 :]:
                if a_name == b_name:
                    pairs.add(a, b, "same name", SAME_NAME)
                else:
                    pairs.add(a, b, "same name but for punctuation or legal form", SIMILAR_COMPANY_NAME)
    return _ranked(pairs)


def company_name_key(normalised: str) -> str:
    """A normalised company name without its punctuation, spaces and trailing legal form:
    `Acme Co., Ltd.`, `ACME Ltd` and `acme` share `acme`, `天元贸易有限公司` and `天元贸易` share
    `天元贸易`. A name that is nothing but a legal form keeps it."""
    words = _NOT_WORD.sub(" ", normalised).strip()
    return "".join((_TRAILING_LEGAL_FORMS.sub("", words) or words).split())


def _rank_key(pair: DuplicatePair) -> tuple[float, uuid.UUID, uuid.UUID]:
    return pair.score, pair.first_id, pair.second_id


def _ranked(pairs: _Pairs) -> list[DuplicatePair]:
    """Most likely first; ties in descending id order, the order a stored scan's index is read
    backwards in."""
    return sorted(pairs.by_ids.values(), key=_rank_key, reverse=True)


def _cursor(pair: DuplicatePair) -> str:
    raw = orjson.dumps([pair.score, str(pair.first_id), str(pair.second_id)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _after(cursor: str) -> tuple[float, uuid.UUID, uuid.UUID]:
    try:
        score, first, second = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(score), uuid.UUID(first), uuid.UUID(second)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(FieldError(("query", "cursor"), "not a cursor of this list")) from exc


def page_of(pairs: list[DuplicatePair], *, cursor: str | None, limit: int) -> Page[DuplicatePair]:
    """Pairs after `cursor` in ranking order."""
    if cursor is not None:
        after = _after(cursor)
        pairs = [p for p in pairs if _rank_key(p) < after]
    items = pairs[:limit]
    return Page(items=items, next_cursor=_cursor(items[-1]) if len(pairs) > limit else None)


# ---------------------------------------------------------------------------- stored scans

RUN_SCAN: Final = "run_duplicate_scan"
# A running scan not finished after this is taken to have lost its worker, and runs again.
_SCAN_STALE_AFTER: Final = timedelta(hours=1)
PairFinder = Callable[[AsyncSession, Principal], Awaitable[list[DuplicatePair]]]
_PAIR_FINDERS: Final[dict[str, tuple[RecordType[Any], PairFinder]]] = {
    "contacts": (CONTACTS, contact_pairs),
    "companies": (COMPANIES, company_pairs),
}


async def request_scan(session: AsyncSession, principal: Principal, entity: str) -> DuplicateScan:
    """Queues an organisation-wide scan; its pairs replace the last scan's when it is done."""
    scan = DuplicateScan(
        organization_id=principal.organization_id,
        entity=entity,
        requested_by_type=principal.kind,
        requested_by_id=principal.id,
    )
    session.add(scan)
    await session.flush()
    jobs.enqueue_after_commit(session, RUN_SCAN, str(scan.organization_id), str(scan.id))
    return scan


async def get_scan(session: AsyncSession, principal: Principal, entity: str, scan_id: uuid.UUID) -> DuplicateScan:
    scan = await TenantRepository(DuplicateScan, session, principal, label="duplicate scan").get(scan_id)
    if scan.entity != entity:
        raise NotFound(f"No duplicate scan {scan_id} of {entity}")
    return scan


async def run_scan(sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, scan_id: uuid.UUID) -> str:
    """Finds every pair as the organisation's owner sees them (readers see the pairs of records
    visible to them) and stores them with the scan, in one transaction; the older scans of the
    same records go. Idempotent: a scan already claimed or finished is left alone."""
    scan = await jobs.claim(sessions, DuplicateScan, organization_id, scan_id)
    if scan is None:
        return "not pending"
    _, find_pairs = _PAIR_FINDERS[scan.entity]
    async with sessions() as session, session.begin():
        try:
            principal = await organizations.operator_principal(session, organization_id)
        except DomainError as error:
            await session.execute(
                update(DuplicateScan)
                .where(DuplicateScan.organization_id == organization_id, DuplicateScan.id == scan_id)
                .values(status="failed", error=error.detail[:500], finished_at=utcnow())
            )
            return "failed"
        pairs = await find_pairs(session, principal)
        await copy_rows(
            session,
            ScannedPair,
            [
                {
                    "organization_id": organization_id,
                    "id": new_id(),
                    "scan_id": scan_id,
                    "first_id": pair.first_id,
                    "second_id": pair.second_id,
                    "score": pair.score,
                    "reasons": pair.reasons,
                }
                for pair in pairs
            ],
        )
        await session.execute(
            delete(DuplicateScan).where(
                DuplicateScan.organization_id == organization_id,
                DuplicateScan.entity == scan.entity,
                DuplicateScan.status == "done",
                DuplicateScan.id != scan_id,
            )
        )
        await session.execute(
            update(DuplicateScan)
            .where(DuplicateScan.organization_id == organization_id, DuplicateScan.id == scan_id)
            .values(status="done", pairs=len(pairs), finished_at=utcnow())
        )
    return "done"


async def latest_scan(session: AsyncSession, principal: Principal, entity: str) -> DuplicateScan | None:
    return (
        await session.execute(
            select(DuplicateScan)
            .where(
                DuplicateScan.organization_id == principal.organization_id,
                DuplicateScan.entity == entity,
                DuplicateScan.status == "done",
            )
            .order_by(DuplicateScan.finished_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def scanned_page(
    session: AsyncSession, principal: Principal, scan: DuplicateScan, *, cursor: str | None, limit: int
) -> Page[DuplicatePair]:
    """A page of a stored scan's pairs, most likely first, without the pairs whose records have
    since been archived or merged, or that the caller may not see."""
    kind, _ = _PAIR_FINDERS[scan.entity]
    model: Any = kind.model

    def live(pair_column: Any) -> Any:
        return (
            kind.repository(session, principal)
            .scoped()
            .where(model.archived_at.is_(None), model.id == pair_column)
            .with_only_columns(literal(1))
            .exists()
        )

    # Read backwards along the scan's index, each pair's two records looked up by key, until the
    # page is full: a page costs the same at any depth and for any number of pairs.
    statement = (
        select(ScannedPair)
        .where(
            ScannedPair.organization_id == principal.organization_id,
            ScannedPair.scan_id == scan.id,
            live(ScannedPair.first_id),
            live(ScannedPair.second_id),
        )
        .order_by(ScannedPair.score.desc(), ScannedPair.first_id.desc(), ScannedPair.second_id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        statement = statement.where(
            tuple_(ScannedPair.score, ScannedPair.first_id, ScannedPair.second_id) < _after(cursor)
        )
    rows = (await session.execute(statement)).scalars().all()
    items = [
        DuplicatePair(row.first_id, row.second_id, list(row.reasons), stored_score=row.score) for row in rows[:limit]
    ]
    return Page(items=items, next_cursor=_cursor(items[-1]) if len(rows) > limit else None)


async def sweep_scans(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Scans whose job was lost (never enqueued, or its worker died), pending again to run."""
    async with sessions() as session, session.begin():
        return await jobs.lost(session, DuplicateScan, stale_after=_SCAN_STALE_AFTER)


async def duplicate_page(
    session: AsyncSession, principal: Principal, entity: str, *, cursor: str | None, limit: int
) -> tuple[Page[DuplicatePair], DuplicateScan | None]:
    """From the latest stored scan when there is one (large organisations scan with a job),
    else found now (fine for tens of thousands of records)."""
    scan = await latest_scan(session, principal, entity)
    if scan is not None:
        return await scanned_page(session, principal, scan, cursor=cursor, limit=limit), scan
    _, find_pairs = _PAIR_FINDERS[entity]
    return page_of(await find_pairs(session, principal), cursor=cursor, limit=limit), None

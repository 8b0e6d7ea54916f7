"""Substring search that works on CJK text and on e-mail and phone fragments.

Each searchable record keeps a normalised `search_text`; its `search_grams` (every run of one,
two and three characters of each word) are indexed with GIN. A trigger fills them in with the
`rapport_search_grams` SQL function whenever a writer leaves them out; bulk writers (imports)
compute them here instead (`document_grams`, the same grams), because the SQL function costs
about 170 µs a contact and this a quarter of that, on a core the database does not need. A term of up to three
characters is itself a gram, so the index answers it exactly; a longer term needs all its
trigrams, and a LIKE on the text confirms it. Unlike pg_trgm, this looks up the one- and
two-character terms that Chinese names and words so often are, and it does not depend on the
database locale; trigrams keep digit and Latin fragments selective (bigrams of digits are in
almost every phone number).
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SEPARATOR = "\x1f"
MAX_TERMS = 8
MAX_TERM_LENGTH = 100

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_PHONE_LIKE = re.compile(r"^[\d\s()+\-.]+$")


def normalize(value: str) -> str:
    """NFKC folds full-width forms (ＡＢＣ１２３ → abc123); casefold makes it case-blind."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return _WHITESPACE.sub(" ", _CONTROL.sub(" ", folded)).strip()


def document(parts: Iterable[str | None]) -> str:
    seen: list[str] = []
    for part in parts:
        if part:
            text = normalize(part)
            if text and text not in seen:
                seen.append(text)
    return SEPARATOR.join(seen)


def query_terms(q: str) -> list[str]:
    """Split a query into terms that must all occur; a phone-looking query becomes its digits."""
    text = normalize(q)
    if not text:
        return []
    digits = re.sub(r"\D", "", text)
    if _PHONE_LIKE.match(text) and len(digits) >= 3:
        return [digits[:MAX_TERM_LENGTH]]
    terms: list[str] = []
    for term in text.split(" "):
        term = term[:MAX_TERM_LENGTH]
        if term and term not in terms:
            terms.append(term)
    return terms[:MAX_TERMS]


GRAM_SIZE = 3
_WORD_SEPARATORS = re.compile(r"[ \x1f]+")


def document_grams(document: str) -> list[str]:
    """The grams `rapport_search_grams` makes of a document built by `document` (words split on
    spaces and the field separator, the only separators `normalize` leaves)."""
    found: set[str] = set()
    for word in _WORD_SEPARATORS.split(document):
        for start in range(len(word)):
            found.update((word[start], word[start : start + 2], word[start : start + 3]))
    return sorted(found)


def grams(term: str) -> list[str]:
    """The grams the index must hold for `term` (the SQL function makes the same ones)."""
    if len(term) <= GRAM_SIZE:
        return [term]
    return sorted({term[i : i + GRAM_SIZE] for i in range(len(term) - GRAM_SIZE + 1)})


def grams_decide(term: str) -> bool:
    """Whether holding the term's grams already means holding the term: true up to three
    characters (the term is its own gram, and grams never span a word boundary)."""
    return len(term) <= GRAM_SIZE


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# A one-gram term at least this common is left to PostgreSQL's estimate, which is then right and
# makes it walk the id index and stop at the page's end (see `search_plan_hint`).
COMMON_GRAM_FREQUENCY = 0.005
STATISTICS_SECONDS = 600.0


class GramStatistics:
    """How common each gram is, read from PostgreSQL's own column statistics (`pg_stats`) and
    kept for ten minutes per table."""

    def __init__(self) -> None:
        self._tables: dict[str, tuple[float, dict[str, float]]] = {}

    async def frequencies(self, session: AsyncSession, table: str) -> Mapping[str, float]:
        known = self._tables.get(table)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        row = (
            await session.execute(
                text(
                    "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
                    " WHERE schemaname = current_schema() AND tablename = :table AND attname = 'search_grams'"
                ),
                {"table": table},
            )
        ).first()
        frequencies = dict(zip(row[0], row[1], strict=False)) if row is not None and row[0] else {}
        self._tables[table] = (time.monotonic() + STATISTICS_SECONDS, frequencies)
        return frequencies


gram_statistics = GramStatistics()


def needs_recheck(term: str, frequencies: Mapping[str, float]) -> bool:
    """Whether a query adds `LIKE '%term%'` to the gram condition.

    Longer terms need it for correctness. For terms of up to three characters the gram already
    decides, and the LIKE only steers the plan: PostgreSQL multiplies the two selectivities, so
    with it the estimate is low and it reads the few candidates through the GIN index (right for
    rare terms, which are most); without it the estimate is true, and for a common term such as
    a surname it walks the id index in order and stops once the page is full, instead of
    fetching and sorting thousands of rows. Without the statistics, every term counts as rare.
    """
    return not grams_decide(term) or frequencies.get(term, 0.0) < COMMON_GRAM_FREQUENCY

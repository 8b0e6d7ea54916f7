"""Substring search that works on CJK text and on e-mail and phone fragments.

Each searchable record keeps a normalised `search_text`; the database derives `search_grams`
from it (every character and every pair of adjacent characters, see the `rapport_search_grams`
SQL function) and indexes them with GIN. A query term matches when the record holds all the
term's grams (index) and the text contains the term (recheck). Bigrams rather than pg_trgm's
trigrams, because Chinese names and words are often two characters long, which a trigram
index cannot look up, and because pg_trgm's handling of CJK depends on the database locale.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

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


def grams(term: str) -> list[str]:
    """The grams the index must hold for `term` (the SQL function makes the same ones)."""
    if len(term) == 1:
        return [term]
    return sorted({term[i : i + 2] for i in range(len(term) - 1)})


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"

"""Substring search that works on CJK text and on e-mail and phone fragments.

Each searchable record keeps a normalised `search_text`; the database derives `search_grams`
from it (every run of one, two and three characters of each word, see the
`rapport_search_grams` SQL function) and indexes them with GIN. A term of up to three
characters is itself a gram, so the index answers it exactly; a longer term needs all its
trigrams, and a LIKE on the text confirms it. Unlike pg_trgm, this looks up the one- and
two-character terms that Chinese names and words so often are, and it does not depend on the
database locale; trigrams keep digit and Latin fragments selective (bigrams of digits are in
almost every phone number).
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


GRAM_SIZE = 3


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

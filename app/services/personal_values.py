"""A person's identifying values (names, e-mails, phones) as they may appear in free text, and
their replacement there by `(erased)`.

An erasure clears the contact's own fields; its name, e-mail or phone may also have been copied
into text written about it (a follow-up task titled `跟进：张 伟`, a reminder e-mail's subject and
body, a user's note). Each value is matched longest first, so a full name is replaced whole rather
than name by name, and without regard to case. A name without a letter (`.` or `-`, as typed
where the name was unknown) names nobody and is not looked for: it would take the dots and dashes
out of every amount and date. A Latin-script value is matched as a whole word
(`Li` is not erased from `follow-up call`); a Chinese, Japanese or Korean one is not, since those
scripts do not separate words. A phone is matched by its digits, international or national, with
or without spaces, dashes, dots or brackets between them (`+86 138-0013-8000`, `138 0013 8000`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, Protocol

import phonenumbers

from app.schemas.contact import full_name

ERASED: Final = "(erased)"
# A letter or digit of a script that separates words: where one touches a value, the value is only
# part of a longer word. CJK characters are word characters to `re`, so they are taken out.
_WORD_CHAR: Final = r"[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
_DIGIT_SEPARATORS: Final = r"[\s\-.()/]*"
_LETTER: Final = re.compile(r"[^\W\d_]")


class Identity(Protocol):
    """What names a person: a contact, or one of its earlier states."""

    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def additional_emails(self) -> list[dict[str, Any]]: ...
    @property
    def additional_phones(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class PastIdentity:
    """A contact's identifying fields at one point of its history, as its audit rows show them."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    additional_emails: list[dict[str, Any]] = field(default_factory=list)
    additional_phones: list[dict[str, Any]] = field(default_factory=list)


_IDENTIFYING: Final = frozenset(f.name for f in fields(PastIdentity))


def past_identities(trail: Iterable[tuple[Any, Mapping[str, Any] | None]]) -> list[PastIdentity]:
    """Every state of the identifying fields that a trail of (contact id, audit changes), oldest
    first, shows: a person renamed, or given a new e-mail or phone, is still named by the old ones
    in what was written about them before."""
    current: dict[Any, PastIdentity] = {}
    states: list[PastIdentity] = []
    for contact_id, changes in trail:
        moved = {
            name: change
            for name, change in (changes or {}).items()
            if name in _IDENTIFYING and isinstance(change, dict)
        }
        if not moved:
            continue
        state = current.get(contact_id, PastIdentity())
        before = replace(state, **{name: _shown(name, c.get("before")) for name, c in moved.items() if "before" in c})
        current[contact_id] = replace(state, **{name: _shown(name, c.get("after")) for name, c in moved.items()})
        states += [before, current[contact_id]]
    return states


def _shown(name: str, value: Any) -> Any:
    """An audited value as the field holds it (a list field's entries that are not objects, such
    as an erased `(erased)`, are left out)."""
    if name.startswith("additional_"):
        return [entry for entry in value or [] if isinstance(entry, dict)]
    return value if isinstance(value, str) else None


def _name_parts(contact: Identity) -> set[str]:
    return {name for name in (contact.first_name, contact.last_name) if name and _LETTER.search(name)}


def _full_names(contact: Identity) -> set[str]:
    first, last = contact.first_name, contact.last_name
    if not (first and last and _LETTER.search(first) and _LETTER.search(last)):
        return set()
    # As schemas.contact.full_name reads them in either order, and spaced (the assignment's
    # follow-up task writes `<last> <first>`).
    return {full_name(first, last) or "", full_name(last, first) or "", f"{first} {last}", f"{last} {first}"}


def _emails(contact: Identity) -> set[str]:
    return {email for email in (contact.email, *(entry["email"] for entry in contact.additional_emails)) if email}


def _phone_digits(contact: Identity) -> set[str]:
    """Each phone's digits as written internationally and nationally (with and without a trunk
    prefix)."""
    digits: set[str] = set()
    for phone in (contact.phone, *(entry["phone"] for entry in contact.additional_phones)):
        if not phone:
            continue
        digits.add(re.sub(r"\D", "", phone))
        try:
            number = phonenumbers.parse(phone, None)
        except phonenumbers.NumberParseException:
            continue
        digits.add(phonenumbers.national_significant_number(number))
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        digits.add(re.sub(r"\D", "", national))
    return {d for d in digits if d}


def _literal(value: str) -> str:
    pattern = re.escape(value)
    if re.match(_WORD_CHAR, value[0]):
        pattern = f"(?<!{_WORD_CHAR})" + pattern
    if re.match(_WORD_CHAR, value[-1]):
        pattern += f"(?!{_WORD_CHAR})"
    return pattern


def _digits(value: str) -> str:
    return r"(?<!\d)\+?" + _DIGIT_SEPARATORS.join(value) + r"(?!\d)"


def _alternation(literals: set[str], digits: set[str]) -> re.Pattern[str] | None:
    # Longest first within each kind; a regex alternation takes the first branch that matches.
    patterns = [_literal(v) for v in sorted(literals, key=len, reverse=True)]
    patterns += [_digits(v) for v in sorted(digits, key=len, reverse=True)]
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


class PersonalValues:
    """The values of one person (a contact and the duplicates merged into it, as they are and as
    they were), read before they are cleared, and a scrubber of free text and JSON documents built from them."""

    def __init__(self, contacts: Sequence[Identity]) -> None:
        full_names = set().union(*(_full_names(c) for c in contacts))
        parts = set().union(*(_name_parts(c) for c in contacts))
        emails = set().union(*(_emails(c) for c in contacts))
        digits = set().union(*(_phone_digits(c) for c in contacts))
        self._pattern = _alternation(full_names | parts | emails, digits)
        # What names this person rather than someone else: a name part alone (`伟`) may be part
        # of another person's name (`李伟`).
        self._identifying = _alternation(full_names | emails, digits)

    def names_the_person(self, value: Any) -> bool:
        """Whether a text, or a string in a JSON document, holds a full name, e-mail or phone of the person."""
        if isinstance(value, str):
            return self._identifying is not None and self._identifying.search(value) is not None
        if isinstance(value, dict):
            return any(self.names_the_person(inner) for inner in value.values())
        if isinstance(value, list):
            return any(self.names_the_person(inner) for inner in value)
        return False

    def scrub(self, text: str, *, limit: int | None = None) -> str:
        """The text with the person's values replaced, cut at `limit` characters (its column's
        length): `(erased)` is longer than a short name, and the erasure must still go through."""
        scrubbed = self._pattern.sub(ERASED, text) if self._pattern is not None else text
        return scrubbed[:limit]

    def scrub_optional(self, text: str | None, *, limit: int | None = None) -> str | None:
        return None if text is None else self.scrub(text, limit=limit)

    def scrub_json(self, value: Any) -> Any:
        """Every string in a JSON document scrubbed; keys (field names) are left as they are."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {key: self.scrub_json(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(inner) for inner in value]
        return value

"""Cleaning of contact data at the door: e-mails, phones (E.164), domains, countries, tags.

Every function raises ValueError with a message fit for a client; pydantic turns it into a 422
with the field's location.

E-mail and phone normalisation are pure and cost tens of microseconds each (a parse against
libphonenumber's metadata, an RFC-grade e-mail check), and a write meets the same value more
than once: an upsert's body is checked as a patch and again as a new record, with values already
normalised, and a contact's search text needs each phone's national form. So results are
remembered, each under its input and under itself (normalising a normalised value gives it
back), in bounded per-process tables. The same value is met again within one request or one
import chunk, so the tables hold 10,000 entries each: 50,000 made about 40 MB of an import's
checking process without finding more.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import iso4217
import phonenumbers
from email_validator import EmailNotValidError, validate_email

MAX_TAGS = 100
MAX_TAG_LENGTH = 50
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)
_CURRENCIES = frozenset(iso4217.Currency.__members__)
_REMEMBERED = 10_000

_emails: dict[str, str] = {}
_phones: dict[tuple[str, str], str] = {}
_search_forms: dict[str, list[str]] = {}
# The phones normalised inside `noting_phone_forms`, with their search forms.
_noted_forms: dict[str, list[str]] | None = None


def _remember(table: dict[Any, Any], key: Any, value: Any) -> None:
    if len(table) >= _REMEMBERED:
        table.clear()
    table[key] = value


def clean_text(value: str) -> str:
    """Unicode NFC and trimmed; blank becomes empty."""
    return unicodedata.normalize("NFC", value).strip()


def normalize_email(value: str) -> str:
    known = _emails.get(value)
    if known is not None:
        return known
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from exc
    normalized = result.normalized.lower()
    _remember(_emails, value, normalized)
    _remember(_emails, normalized, normalized)
    return normalized


def normalize_phone(value: str, default_region: str) -> str:
    """E.164 (`+8613800138000`); numbers without a country code take the default region."""
    known = _phones.get((value, default_region))
    if known is not None:
        if _noted_forms is not None:
            _noted_forms[known] = phone_search_forms(known)
        return known
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its country")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    _remember(_phones, (value, default_region), e164)
    _remember(_phones, (e164, default_region), e164)
    forms = _forms(e164, number)
    _remember(_search_forms, e164, forms)
    if _noted_forms is not None:
        _noted_forms[e164] = forms
    return e164


@contextmanager
def noting_phone_forms() -> Iterator[dict[str, list[str]]]:
    """Collects the search forms of the phones normalised in the block: work that checks values
    in one process hands them to the process that builds the records (`remember_phone_forms`),
    which would otherwise parse each number again."""
    global _noted_forms
    noted: dict[str, list[str]] = {}
    _noted_forms = noted
    try:
        yield noted
    finally:
        _noted_forms = None


def remember_phone_forms(forms: Mapping[str, list[str]]) -> None:
    for e164, known in forms.items():
        _remember(_search_forms, e164, known)


def phone_search_forms(e164: str) -> list[str]:
    """Digit strings a person might type to find this number: international and national (the
    national one only where it is not already inside the international one, as it is for mobile
    numbers without a trunk prefix)."""
    known = _search_forms.get(e164)
    if known is None:
        known = _forms(e164, phonenumbers.parse(e164, None))
        _remember(_search_forms, e164, known)
    return list(known)


def _forms(e164: str, number: phonenumbers.PhoneNumber) -> list[str]:
    international = re.sub(r"\D", "", e164)
    national = re.sub(r"\D", "", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    return [international] if national in international else [international, national]


def normalize_domain(value: str) -> str:
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    text = text.removeprefix("www.")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("not a valid domain") from exc
    if not _DOMAIN.match(text):
        raise ValueError("not a valid domain")
    return text


def normalize_country(value: str) -> str:
    code = value.strip().upper()
    if code not in _COUNTRIES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, such as CN or DE")
    return code


def normalize_currency(value: str) -> str:
    code = value.strip().upper()
    if code not in _CURRENCIES:
        raise ValueError("must be an ISO 4217 currency code, such as CNY or EUR")
    return code


def normalize_tags(values: list[str]) -> list[str]:
    tags: list[str] = []
    for raw in values:
        tag = clean_text(raw)
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"a tag is at most {MAX_TAG_LENGTH} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags

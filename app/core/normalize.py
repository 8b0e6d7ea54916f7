"""Cleaning of contact data at the door: e-mails, phones (E.164), domains, countries, tags.

Every function raises ValueError with a message fit for a client; pydantic turns it into a 422
with the field's location.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

MAX_TAGS = 100
MAX_TAG_LENGTH = 50
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)


def clean_text(value: str) -> str:
    """Unicode NFC and trimmed; blank becomes empty."""
    return unicodedata.normalize("NFC", value).strip()


def normalize_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from exc
    return result.normalized.lower()


def normalize_phone(value: str, default_region: str) -> str:
    """E.164 (`+8613800138000`); numbers without a country code take the default region."""
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_search_forms(e164: str) -> list[str]:
    """Digit strings a person might type to find this number: international and national (the
    national one only where it is not already inside the international one, as it is for mobile
    numbers without a trunk prefix)."""
    number = phonenumbers.parse(e164, None)
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

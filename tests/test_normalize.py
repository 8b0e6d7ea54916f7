"""E-mail and phone normalisation: remembered results are the ones computed afresh, and
normalising a normalised value gives it back (the remembered tables rely on it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import normalize

PHONES = ["13800138000", "138 0013 8000", "+86 10 6552 9988", "010-65529988", "+49 30 901820", "+1 650 253 0000"]


def _forget() -> None:
    for table in (normalize._emails, normalize._phones, normalize._search_forms):
        table.clear()


@settings(max_examples=300, deadline=None)
@given(st.emails())
def test_emails_normalise_the_same_remembered_or_not_and_twice_is_once(email: str) -> None:
    _forget()
    try:
        fresh = normalize.normalize_email(email)
    except ValueError:
        return
    assert normalize.normalize_email(email) == fresh  # remembered
    _forget()
    assert normalize.normalize_email(fresh) == fresh  # computed afresh from its own result


@pytest.mark.parametrize("phone", PHONES)
@pytest.mark.parametrize("region", ["CN", "DE", "US"])
def test_phones_normalise_the_same_remembered_or_not_and_twice_is_once(phone: str, region: str) -> None:
    _forget()
    try:
        fresh = normalize.normalize_phone(phone, region)
    except ValueError:
        return
    forms = normalize.phone_search_forms(fresh)
    assert normalize.normalize_phone(phone, region) == fresh
    _forget()
    assert normalize.normalize_phone(fresh, region) == fresh
    _forget()
    assert normalize.phone_search_forms(fresh) == forms


def test_the_remembered_tables_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalize, "_REMEMBERED", 10)
    _forget()
    for i in range(50):
        normalize.normalize_email(f"person{i}@example.com")
    assert len(normalize._emails) <= 10
    assert normalize.phone_search_forms("+8613800138000") == ["8613800138000"]
    assert normalize.phone_search_forms("+861065529988") == ["861065529988", "01065529988"]


def test_phones_normalised_in_a_noting_block_hand_over_their_search_forms_remembered_or_not() -> None:
    _forget()
    normalize.normalize_phone("010-65529988", "CN")  # remembered before the block
    with normalize.noting_phone_forms() as noted:
        normalize.normalize_phone("010-65529988", "CN")
        normalize.normalize_phone("138 0013 8000", "CN")
    normalize.normalize_phone("+49 30 901820", "CN")  # after the block: not noted
    assert noted == {"+861065529988": ["861065529988", "01065529988"], "+8613800138000": ["8613800138000"]}
    _forget()
    normalize.remember_phone_forms(noted)
    assert normalize._search_forms == noted
    assert normalize.phone_search_forms("+861065529988") == ["861065529988", "01065529988"]

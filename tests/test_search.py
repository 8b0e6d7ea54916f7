"""Substring search: the SQL gram function and the query side agree, and matches are exact."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import text_search
from tests.helpers import Tenant, create

ALPHABET = "ab1.张伟天元 "


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.text(alphabet=ALPHABET, max_size=12), min_size=1, max_size=3),
    term=st.text(ALPHABET.strip(), min_size=1, max_size=5),
)
async def test_the_index_holds_a_terms_grams_exactly_when_the_text_holds_the_term(
    parts: list[str], term: str, db: AsyncSession
) -> None:
    document = text_search.document(parts)
    stored = set(await db.scalar(text("SELECT rapport_search_grams(:d)"), {"d": document}) or [])
    words = [w for w in document.replace(text_search.SEPARATOR, " ").split(" ") if w]
    occurs = any(term in word for word in words)
    indexed = set(text_search.grams(term)) <= stored
    if occurs:
        assert indexed, (document, term)
    if text_search.grams_decide(term):
        assert indexed == occurs, (document, term)


async def test_longer_terms_need_the_whole_run_not_just_its_trigrams(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await create(client, "/api/v1/contacts", tenant.headers, first_name="abc", last_name="bcd")
    await create(client, "/api/v1/contacts", tenant.headers, first_name="xabcdx")

    async def found(q: str) -> list[Any]:
        return [
            c["first_name"]
            for c in (await client.get("/api/v1/contacts", params={"q": q}, headers=tenant.headers)).json()["items"]
        ]

    assert await found("abcd") == ["xabcdx"]  # "abc" and "bcd" are both in the first, apart
    assert await found("bcd") == ["abc", "xabcdx"]
    assert await found("bc") == ["abc", "xabcdx"]

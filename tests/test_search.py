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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.text(max_size=20), min_size=0, max_size=4))
async def test_grams_computed_in_python_are_the_sql_functions(parts: list[str], db: AsyncSession) -> None:
    document = text_search.document(parts)
    in_sql = await db.scalar(text("SELECT rapport_search_grams(:d)"), {"d": document})
    assert set(text_search.document_grams(document)) == set(in_sql or []), document


async def test_the_trigger_fills_in_grams_a_writer_leaves_out(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")

    async def grams() -> set[str]:
        stored = await db.scalar(text("SELECT search_grams FROM contacts WHERE id = :id"), {"id": contact["id"]})
        await db.commit()
        return set(stored)

    assert {"张伟", "伟", "张"} <= await grams()
    await client.patch(f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"first_name": "芳"})
    assert "张芳" in await grams() and "张伟" not in await grams()
    # A writer that gives the grams (a bulk import) keeps them.
    await db.execute(
        text("UPDATE contacts SET search_text = 'x', search_grams = ARRAY['given'] WHERE id = :id"),
        {"id": contact["id"]},
    )
    await db.commit()
    assert await grams() == {"given"}

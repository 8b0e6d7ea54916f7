"""`Accept: text/csv` on lists and searches: every match, formula-safe cells, Excel-readable."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from app.core.csv_export import render, safe_cell
from app.core.settings import Settings
from tests.helpers import PROBLEM, Tenant, add_user

CSV = {"Accept": "text/csv"}


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+8613800138000", "'+8613800138000"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("张伟", "张伟"),
        (None, ""),
        (True, "true"),
        (["vip", "华东"], "vip; 华东"),
    ],
)
def test_cells_are_safe_for_spreadsheets(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_header_cells_are_escaped_too() -> None:
    assert render([{"=x": "1"}], ["=x"]).decode("utf-8-sig").splitlines() == ["'=x", "1"]


async def test_a_list_answers_every_match_as_csv(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "level", "label": "Level", "type": "text"},
    )
    for i in range(3):
        await client.post(
            "/api/v1/contacts",
            headers=tenant.headers,
            json={"first_name": "伟", "last_name": f"张{i}", "title": "=1+1", "phone": "138 0013 800" + str(i),
                  "tags": ["vip"], "custom_fields": {"level": "@gold"}, "city": "上海"},
        )  # fmt: skip
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "外", "city": "北京"})
    rows = _rows(
        await client.get("/api/v1/contacts", headers={**tenant.headers, **CSV}, params={"city": "上海", "limit": 1})
    )
    assert len(rows) == 3  # every match, not one page
    assert rows[0]["title"] == "'=1+1"
    assert rows[0]["phone"].startswith("'+86138")
    assert rows[0]["tags"] == "vip"
    assert rows[0]["custom_fields.level"] == "'@gold"
    assert rows[0]["full_name"].startswith("张")
    chosen = await client.get(
        "/api/v1/contacts", headers={**tenant.headers, **CSV}, params={"columns": "last_name,email", "q": "张"}
    )
    assert chosen.content.decode("utf-8-sig").splitlines()[0] == "last_name,email"
    searched = _rows(
        await client.post(
            "/api/v1/contacts/search",
            headers={**tenant.headers, **CSV},
            json={"filter": {"field": "city", "op": "eq", "value": "北京"}},
        )
    )
    assert [r["first_name"] for r in searched] == ["外"]
    json_wins = await client.get("/api/v1/contacts", headers={**tenant.headers, "Accept": "application/json, text/csv"})
    assert json_wins.headers["content-type"] == "application/json"


async def test_unknown_columns_are_a_422_naming_them(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "level", "label": "Level", "type": "text"},
    )
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "伟", "title": "经理"})
    for reply in (
        await client.get("/api/v1/contacts", headers={**tenant.headers, **CSV}, params={"columns": "title,=x, nope"}),
        await client.post(
            "/api/v1/contacts/search", headers={**tenant.headers, **CSV}, params={"columns": "title,=x,nope"}, json={}
        ),
    ):
        assert reply.status_code == 422 and reply.headers["content-type"] == PROBLEM
        [error] = reply.json()["errors"]
        assert error["loc"] == ["query", "columns"] and error["msg"] == "unknown columns: '=x', 'nope'"
    companies = await client.get(
        "/api/v1/companies", headers={**tenant.headers, **CSV}, params={"columns": "name,title"}
    )
    assert companies.status_code == 422 and "'title'" in companies.json()["errors"][0]["msg"]
    # A custom field no contact has a value for yet is a column all the same.
    chosen = await client.get(
        "/api/v1/contacts", headers={**tenant.headers, **CSV}, params={"columns": "title,custom_fields.level"}
    )
    assert _rows(chosen) == [{"title": "经理", "custom_fields.level": ""}]


async def test_companies_too_and_an_empty_set_has_its_header(client: httpx.AsyncClient, tenant: Tenant) -> None:
    empty = await client.get("/api/v1/companies", headers={**tenant.headers, **CSV})
    assert empty.content.decode("utf-8-sig").splitlines()[0].startswith("id,name,")
    await client.post("/api/v1/companies", headers=tenant.headers, json={"name": "上海天元贸易有限公司"})
    assert [r["name"] for r in _rows(await client.get("/api/v1/companies", headers={**tenant.headers, **CSV}))] == [
        "上海天元贸易有限公司"
    ]


async def test_too_many_matches_is_a_422(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "csv_max_rows", 2)
    for i in range(3):
        await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": f"人{i}"})
    response = await client.get("/api/v1/contacts", headers={**tenant.headers, **CSV})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert "more than 2" in response.json()["errors"][0]["msg"]


async def test_csv_follows_visibility(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    sales = await add_user(client, tenant, "sales")
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "老板的"})
    await client.post("/api/v1/contacts", headers=sales.headers, json={"first_name": "我的"})
    rows = _rows(await client.get("/api/v1/contacts", headers={**sales.headers, **CSV}))
    assert [r["first_name"] for r in rows] == ["我的"]

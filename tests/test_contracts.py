"""Contracts: gapless numbering under concurrency, dates and validation, the transition table,
renewal reminders and expiry claimed exactly once, templates rendered in a bounded sandbox, owners
and record visibility, the owners' backfill, concurrency control, roles, idempotency and tenancy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import ContractStatus
from app.core.permissions import Role, Scope
from app.core.principal import Principal
from app.jobs.contracts import expire_contracts, remind_contract_renewals
from app.schemas.contract import ContractCreate
from app.services import contracts
from app.services.contract_templates import TemplateFailed, render_now
from app.services.contracts import TRANSITIONS
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs, migration

CONTRACTS = "/api/v1/contracts"
DEALS = "/api/v1/deals"
TEMPLATES = "/api/v1/contract-templates"
# The moves that take a new draft to each status (expiry needs an end date in the past).
PATHS = {
    ContractStatus.draft: [],
    ContractStatus.sent: ["sent"],
    ContractStatus.signed: ["sent", "signed"],
    ContractStatus.active: ["sent", "signed", "active"],
    ContractStatus.expired: ["sent", "signed", "active", "expired"],
    ContractStatus.terminated: ["terminated"],
}
YEAR = datetime.now(UTC).year
TODAY = datetime.now(UTC).date()


async def _company(client: httpx.AsyncClient, tenant: Tenant, name: str = "天元贸易") -> dict[str, Any]:
    return await create(client, "/api/v1/companies", tenant.headers, name=name)


def _body(company_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": "ERP 年度服务合同",
        "company_id": company_id,
        "value": "150000",
        "start_date": "2027-01-01",
        "end_date": "2027-12-31",
    } | extra


async def _contract(client: httpx.AsyncClient, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    company_id = extra.pop("company_id", None) or (await _company(client, tenant))["id"]
    return await create(client, CONTRACTS, tenant.headers, **_body(company_id, **extra))


async def _transition(client: httpx.AsyncClient, tenant: Tenant, contract_id: str, to: str, **headers: str) -> Any:
    return await client.post(f"{CONTRACTS}/{contract_id}/transition", headers=tenant.headers | headers, json={"to": to})


async def _walk(client: httpx.AsyncClient, tenant: Tenant, contract_id: str, steps: list[str]) -> None:
    for step in steps:
        response = await _transition(client, tenant, contract_id, step)
        assert response.status_code == 200, response.text


async def _events(client: httpx.AsyncClient, tenant: Tenant, entity_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contract.*", "limit": 500})
    assert response.status_code == 200, response.text
    return [event for event in response.json()["items"] if event["entity_id"] == entity_id]


async def _event_types(client: httpx.AsyncClient, tenant: Tenant, entity_id: str) -> list[str]:
    return [event["type"] for event in await _events(client, tenant, entity_id)]


def _owner(tenant: Tenant) -> Principal:
    return Principal(
        organization_id=uuid.UUID(tenant.organization_id),
        kind="user",
        id=uuid.UUID(tenant.user_id),
        scopes=frozenset(Scope),
        role=Role.owner,
    )


async def test_create_numbers_the_contract_and_fills_in_defaults(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    response = await client.post(CONTRACTS, headers=tenant.headers, json=_body(company["id"]))
    assert response.status_code == 201, response.text
    contract = response.json()
    assert response.headers["location"] == f"{CONTRACTS}/{contract['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert contract["number"] == f"HT-{YEAR}-0001"
    assert contract["status"] == "draft" and contract["currency"] == "CNY" and contract["value"] == "150000.00"
    assert contract["renewal_notice_days"] == 30 and contract["document_rendered_at"] is None
    assert (await _contract(client, tenant, company_id=company["id"]))["number"] == f"HT-{YEAR}-0002"
    assert (await client.get(f"{CONTRACTS}/{contract['id']}", headers=tenant.headers)).json() == contract
    assert await _event_types(client, tenant, contract["id"]) == ["contract.created"]


async def test_numbers_are_gapless_under_parallel_creates(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    company = await _company(client, tenant)
    theirs = await _company(client, other_tenant)
    good = [client.post(CONTRACTS, headers=tenant.headers, json=_body(company["id"])) for _ in range(20)]
    # Failing creates in the same burst take no number.
    bad = [client.post(CONTRACTS, headers=tenant.headers, json=_body(theirs["id"])) for _ in range(4)]
    replies = await asyncio.gather(*good, *bad)
    assert [reply.status_code for reply in replies] == [201] * 20 + [422] * 4
    numbers = sorted(reply.json()["number"] for reply in replies[:20])
    assert numbers == [f"HT-{YEAR}-{n:04d}" for n in range(1, 21)]
    # Another organisation counts on its own.
    assert (await _contract(client, other_tenant, company_id=theirs["id"]))["number"] == f"HT-{YEAR}-0001"


async def test_a_rolled_back_create_gives_its_number_back(app: Any, client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    data = ContractCreate.model_validate(_body(company["id"]))
    async with app.state.session_factory() as session:
        taken = await contracts.create_contract(session, _owner(tenant), data=data)
        assert taken.number == f"HT-{YEAR}-0001"
        await session.rollback()
    assert (await _contract(client, tenant, company_id=company["id"]))["number"] == f"HT-{YEAR}-0001"


async def test_create_refuses_bad_input(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    mine = (await _company(client, tenant))["id"]
    theirs = await _company(client, other_tenant)
    their_deal = await create(client, "/api/v1/deals", other_tenant.headers, name="别家")
    their_template = await create(client, TEMPLATES, other_tenant.headers, name="别家", body="<p>x</p>")
    for body, loc in (
        (_body(mine, end_date="2026-12-31"), ["body", "end_date"]),
        (_body(mine, value="-1"), ["body", "value"]),
        (_body(mine, value="1.001"), ["body", "value"]),
        (_body(mine, currency="XYZ"), ["body", "currency"]),
        (_body(mine, renewal_notice_days=400), ["body", "renewal_notice_days"]),
        (_body(theirs["id"]), ["body", "company_id"]),
        (_body(mine, deal_id=their_deal["id"]), ["body", "deal_id"]),
        (_body(mine, template_id=their_template["id"]), ["body", "template_id"]),
        (_body(mine, number="HT-2020-0001"), ["body", "number"]),
        ({key: value for key, value in _body(mine).items() if key != "company_id"}, ["body", "company_id"]),
    ):
        response = await client.post(CONTRACTS, headers=tenant.headers, json=body)
        assert_problem(response, 422)
        assert error_locs(response) == [loc], body
    assert (await client.get(CONTRACTS, headers=tenant.headers)).json()["items"] == []
    one_day = await _contract(client, tenant, company_id=mine, end_date="2027-01-01", currency="usd")
    assert one_day["currency"] == "USD" and one_day["number"] == f"HT-{YEAR}-0001"


async def test_terms_change_only_in_draft(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contract = await _contract(client, tenant)
    url = f"{CONTRACTS}/{contract['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"start_date": "2028-01-01"})
    assert error_locs(response) == [["body", "start_date"]]
    response = await client.patch(url, headers=tenant.headers, json={"value": "160000", "end_date": "2028-06-30"})
    assert response.status_code == 200, response.text
    assert response.json()["value"] == "160000.00" and response.json()["version"] == 2
    await _transition(client, tenant, contract["id"], "sent")
    assert_problem(await client.patch(url, headers=tenant.headers, json={"value": "1"}), 409)
    response = await client.patch(url, headers=tenant.headers, json={"renewal_notice_days": 60})
    assert response.status_code == 200 and response.json()["renewal_notice_days"] == 60
    assert await _event_types(client, tenant, contract["id"]) == [
        "contract.created",
        "contract.updated",
        "contract.status_changed",
        "contract.sent",
        "contract.updated",
    ]


async def test_the_transition_path_is_audited_and_announced(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contract = await _contract(client, tenant, start_date="2025-01-01", end_date="2025-12-31")
    await _walk(client, tenant, contract["id"], ["sent", "signed", "active", "expired"])
    current = (await client.get(f"{CONTRACTS}/{contract['id']}", headers=tenant.headers)).json()
    assert current["status"] == "expired" and current["signed_at"] and current["ended_at"]
    assert await _event_types(client, tenant, contract["id"]) == [
        "contract.created",
        *[
            event
            for name in ("sent", "signed", "activated", "expired")
            for event in ("contract.status_changed", f"contract.{name}")
        ],
    ]
    audit = (
        await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": contract["id"]})
    ).json()["items"]
    assert [entry["changes"]["status"]["after"] for entry in audit if entry["action"] == "update"] == [
        "expired",
        "active",
        "signed",
        "sent",
    ]


@pytest.mark.parametrize("status", list(ContractStatus))
async def test_every_transition_outside_the_table_is_409(
    client: httpx.AsyncClient, tenant: Tenant, status: ContractStatus
) -> None:
    contract = await _contract(client, tenant, start_date="2025-01-01", end_date="2025-12-31")
    await _walk(client, tenant, contract["id"], PATHS[status])
    for target in ContractStatus:
        if target not in TRANSITIONS[status]:
            assert_problem(await _transition(client, tenant, contract["id"], target.value), 409)
    current = (await client.get(f"{CONTRACTS}/{contract['id']}", headers=tenant.headers)).json()
    assert current["status"] == status.value and current["version"] == 1 + len(PATHS[status])


async def test_a_running_contract_is_terminated_not_expired(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contract = await _contract(client, tenant)
    await _walk(client, tenant, contract["id"], ["sent", "signed", "active"])
    body = assert_problem(await _transition(client, tenant, contract["id"], "expired"), 409)
    assert "terminate" in body["detail"]
    await _walk(client, tenant, contract["id"], ["terminated"])


async def _active(client: httpx.AsyncClient, tenant: Tenant, *, ends: date, notice: int = 30) -> dict[str, Any]:
    contract = await _contract(
        client,
        tenant,
        start_date=(ends - timedelta(days=365)).isoformat(),
        end_date=ends.isoformat(),
        renewal_notice_days=notice,
    )
    await _walk(client, tenant, contract["id"], ["sent", "signed", "active"])
    return contract


async def test_the_renewal_reminder_goes_out_once(app: Any, client: httpx.AsyncClient, tenant: Tenant) -> None:
    due = await _active(client, tenant, ends=TODAY + timedelta(days=20))
    early = await _active(client, tenant, ends=TODAY + timedelta(days=40))
    short_notice = await _active(client, tenant, ends=TODAY + timedelta(days=20), notice=7)

    async def run_once() -> list[uuid.UUID]:
        async with app.state.session_factory() as session, session.begin():
            return [c.id for c in await contracts.claim_renewals_due(session, today=TODAY)]

    first, second = await asyncio.gather(run_once(), run_once())
    assert uuid.UUID(due["id"]) in first + second
    assert set(first).isdisjoint(second)
    await remind_contract_renewals({"sessions": app.state.session_factory})
    reminders = [e for e in await _events(client, tenant, due["id"]) if e["type"] == "contract.renewal_due"]
    assert len(reminders) == 1
    assert reminders[0]["actor_type"] == "system" and reminders[0]["data"]["end_date"] == due["end_date"]
    assert reminders[0]["data"]["owner_id"] == tenant.user_id
    for quiet in (early, short_notice):
        assert "contract.renewal_due" not in await _event_types(client, tenant, quiet["id"])
    current = (await client.get(f"{CONTRACTS}/{due['id']}", headers=tenant.headers)).json()
    assert current["renewal_notified_at"] is not None


async def test_ended_contracts_expire_once(app: Any, client: httpx.AsyncClient, tenant: Tenant) -> None:
    ended = await _active(client, tenant, ends=TODAY - timedelta(days=1))
    running = await _active(client, tenant, ends=TODAY)

    async def run_once() -> None:
        async with app.state.session_factory() as session, session.begin():
            await contracts.expire_ended(session, today=TODAY)

    await asyncio.gather(run_once(), run_once())
    await expire_contracts({"sessions": app.state.session_factory})
    current = (await client.get(f"{CONTRACTS}/{ended['id']}", headers=tenant.headers)).json()
    assert current["status"] == "expired" and current["ended_at"] is not None and current["version"] == 5
    types = await _event_types(client, tenant, ended["id"])
    assert types.count("contract.expired") == 1 and types[-2:] == ["contract.status_changed", "contract.expired"]
    audit = (await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": ended["id"]})).json()[
        "items"
    ]
    assert audit[0]["actor_type"] == "system" and audit[0]["changes"]["status"]["after"] == "expired"
    assert (await client.get(f"{CONTRACTS}/{running['id']}", headers=tenant.headers)).json()["status"] == "active"


async def test_documents_render_from_templates_with_escaping(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant, name="<script>alert(1)</script> 天元")
    deal = await create(
        client,
        "/api/v1/deals",
        tenant.headers,
        name="ERP",
        line_items=[{"name": "许可 <b>", "quantity": 3, "unit_price": "100.00"}],
    )
    template = await create(
        client,
        TEMPLATES,
        tenant.headers,
        name="标准合同",
        body="<h1>{{ contract.number }}</h1><p>{{ company.name }}</p>"
        "{% for item in line_items %}<li>{{ item.name }} × {{ item.quantity }} = {{ item.amount }}</li>{% endfor %}",
    )
    contract = await _contract(client, tenant, company_id=company["id"], deal_id=deal["id"])
    url = f"{CONTRACTS}/{contract['id']}"
    assert_problem(await client.get(f"{url}/document", headers=tenant.headers), 404)

    response = await client.post(f"{url}/render", headers=tenant.headers, json={"template_id": template["id"]})
    assert response.status_code == 200, response.text
    rendered = response.json()
    assert rendered["template_id"] == template["id"] and rendered["document_rendered_at"] is not None
    assert rendered["version"] == 2
    document = await client.get(f"{url}/document", headers=tenant.headers)
    assert document.status_code == 200 and document.headers["content-type"].startswith("text/html")
    assert "sandbox" in document.headers["content-security-policy"]
    assert document.text == (
        f"<h1>{contract['number']}</h1><p>&lt;script&gt;alert(1)&lt;/script&gt; 天元</p>"
        "<li>许可 &lt;b&gt; × 3 = 300.00</li>"
    )
    assert "contract.document_rendered" in await _event_types(client, tenant, contract["id"])

    plain = await _contract(client, tenant, company_id=company["id"])
    response = await client.post(f"{CONTRACTS}/{plain['id']}/render", headers=tenant.headers)
    assert response.status_code == 200, response.text
    html = (await client.get(f"{CONTRACTS}/{plain['id']}/document", headers=tenant.headers)).text
    assert plain["number"] in html and "150000.00" in html and "<script>" not in html

    await _transition(client, tenant, contract["id"], "sent")
    assert_problem(await client.post(f"{url}/render", headers=tenant.headers), 409)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ company.name.__class__.__subclasses__() }}", "not allowed"),
        ("{% if %}", "line 1"),
        ("<p>{{ 'x' * 100000000 }}</p>", "too large"),
        ("{{ 9 ** 99999999 }}", "too large"),
        ("{% for i in range(100000) %}{{ company.name * 100 }}{% endfor %}", "characters"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "took longer"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
async def test_unsafe_or_broken_templates_are_422(
    client: httpx.AsyncClient, tenant: Tenant, body: str, reason: str
) -> None:
    response = await client.post(TEMPLATES, headers=tenant.headers, json={"name": "坏模板", "body": body})
    problem = assert_problem(response, 422)
    assert error_locs(response) == [["body", "body"]]
    assert reason in problem["errors"][0]["msg"], problem


async def test_a_template_that_fails_only_on_real_data_is_a_422_at_render(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The sample data a template is tried on cannot cover every branch; rendering checks again."""
    sneaky = await create(
        client,
        TEMPLATES,
        tenant.headers,
        name="暗藏",
        body="{% if company.name != '天元贸易' %}{{ ''.__class__.__mro__ }}{% endif %}ok",
    )
    contract = await _contract(client, tenant, company_id=(await _company(client, tenant, name="别名"))["id"])
    url = f"{CONTRACTS}/{contract['id']}"
    response = await client.post(f"{url}/render", headers=tenant.headers, json={"template_id": sneaky["id"]})
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "template_id"]]
    current = (await client.get(url, headers=tenant.headers)).json()
    assert current["template_id"] is None and current["version"] == 1
    response = await client.patch(f"{TEMPLATES}/{sneaky['id']}", headers=tenant.headers, json={"body": "{% endif %}"})
    assert error_locs(response) == [["body", "body"]]


async def test_templates_are_listed_updated_and_named_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    second = await create(client, TEMPLATES, tenant.headers, name="乙", body="<p>{{ contract.title }}</p>")
    first = await create(client, TEMPLATES, tenant.headers, name="甲", body="<p>{{ contract.number }}</p>")
    assert_problem(await client.post(TEMPLATES, headers=tenant.headers, json={"name": "甲", "body": "x"}), 409)
    listed = (await client.get(TEMPLATES, headers=tenant.headers)).json()["items"]
    assert sorted(t["id"] for t in listed) == sorted([first["id"], second["id"]])
    url = f"{TEMPLATES}/{first['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"body": "<p>{{ organization.name }}</p>"})
    assert response.status_code == 200 and response.json()["version"] == 2
    assert_problem(await client.patch(url, headers=tenant.headers | {"If-Match": 'W/"1"'}, json={"name": "丙"}), 412)


def test_a_render_is_bounded_in_time() -> None:
    loop = "{% for c in 'x' * 10000 %}{% for d in 'x' * 10000 %}{% endfor %}{% endfor %}"
    started = datetime.now(UTC)
    with pytest.raises(TemplateFailed, match=r"longer than 0\.2 s"):
        render_now(loop, {}, max_chars=100_000, timeout_seconds=0.2)
    assert datetime.now(UTC) - started < timedelta(seconds=2)


async def test_the_owner_is_the_deals_else_the_creator(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    company = await _company(client, tenant)
    assert (await _contract(client, tenant, company_id=company["id"]))["owner_id"] == tenant.user_id
    by_rep = await create(client, CONTRACTS, rep.headers, **_body(company["id"]))
    assert by_rep["owner_id"] == rep.user_id
    reps_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=rep.user_id)
    from_deal = await _contract(client, tenant, company_id=company["id"], deal_id=reps_deal["id"])
    assert from_deal["owner_id"] == rep.user_id
    unowned_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=None)
    from_unowned = await _contract(client, tenant, company_id=company["id"], deal_id=unowned_deal["id"])
    assert from_unowned["owner_id"] == tenant.user_id
    key = await add_api_key(client, tenant, ["contracts:write"])
    assert (await create(client, CONTRACTS, key, **_body(company["id"])))["owner_id"] is None
    by_key = await create(client, CONTRACTS, key, **_body(company["id"], deal_id=reps_deal["id"]))
    assert by_key["owner_id"] == rep.user_id


async def test_an_owner_sent_must_be_an_active_user_of_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    leaver = await add_user(client, tenant, "sales")
    company = await _company(client, tenant)
    chosen = await _contract(client, tenant, company_id=company["id"], owner_id=leaver.user_id)
    assert chosen["owner_id"] == leaver.user_id
    unowned = await _contract(client, tenant, company_id=company["id"], owner_id=None)
    assert unowned["owner_id"] is None
    response = await client.post(f"/api/v1/users/{leaver.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200, response.text
    for owner_id in (leaver.user_id, other_tenant.user_id, str(uuid.uuid4())):
        response = await client.post(CONTRACTS, headers=tenant.headers, json=_body(company["id"], owner_id=owner_id))
        assert_problem(response, 422)
        assert error_locs(response) == [["body", "owner_id"]]
        url = f"{CONTRACTS}/{unowned['id']}"
        response = await client.patch(url, headers=tenant.headers, json={"owner_id": owner_id})
        assert error_locs(response) == [["body", "owner_id"]]
    # A deactivated owner stays until someone else is named.
    response = await client.patch(
        f"{CONTRACTS}/{chosen['id']}", headers=tenant.headers, json={"owner_id": leaver.user_id, "title": "交接中"}
    )
    assert response.status_code == 200 and response.json()["owner_id"] == leaver.user_id


async def test_the_owner_changes_in_any_status_audited_and_announced(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    contract = await _contract(client, tenant, start_date="2025-01-01", end_date="2025-12-31")
    await _walk(client, tenant, contract["id"], PATHS[ContractStatus.expired])
    url = f"{CONTRACTS}/{contract['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"owner_id": rep.user_id})
    assert response.status_code == 200, response.text
    assert response.json()["owner_id"] == rep.user_id and response.json()["version"] == 6
    change = {"owner_id": {"before": tenant.user_id, "after": rep.user_id}}
    audit = (await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": contract["id"]})).json()
    assert audit["items"][0]["action"] == "update" and audit["items"][0]["changes"] == change
    updated = [event for event in await _events(client, tenant, contract["id"]) if event["type"] == "contract.updated"]
    assert [event["changes"] for event in updated] == [change] and updated[0]["data"]["owner_id"] == rep.user_id
    response = await client.patch(url, headers=tenant.headers, json={"owner_id": None})
    assert response.status_code == 200 and response.json()["owner_id"] is None
    assert (await client.get(CONTRACTS, headers=tenant.headers, params={"owner_id": rep.user_id})).json()["items"] == []


@pytest.mark.parametrize("setting", ["own", "team"])
async def test_record_visibility_for_restricted_roles(client: httpx.AsyncClient, tenant: Tenant, setting: str) -> None:
    sales = await add_user(client, tenant, "sales")
    teammate = await add_user(client, tenant, "sales")
    stranger = await add_user(client, tenant, "sales")
    manager = await add_user(client, tenant, "manager")
    await create(client, "/api/v1/teams", tenant.headers, name="华东", member_ids=[sales.user_id, teammate.user_id])
    company = await _company(client, tenant)
    owners = {"mine": sales.user_id, "mates": teammate.user_id, "theirs": stranger.user_id, "unowned": None}
    contracts_by_title = {
        title: await _contract(client, tenant, company_id=company["id"], owner_id=owner_id, title=title)
        for title, owner_id in owners.items()
    }
    for contract in contracts_by_title.values():
        rendered = await client.post(f"{CONTRACTS}/{contract['id']}/render", headers=tenant.headers)
        assert rendered.status_code == 200, rendered.text
    patched = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": setting})
    assert patched.status_code == 200

    async def visible(user: Tenant, **params: str) -> set[str]:
        page = (await client.get(CONTRACTS, headers=user.headers, params=params)).json()
        return {contract["title"] for contract in page["items"]}

    expected = {"mine"} if setting == "own" else {"mine", "mates"}
    assert await visible(sales) == expected
    assert await visible(sales, owner_id=sales.user_id) == {"mine"}
    assert await visible(sales, owner_id=stranger.user_id) == set()
    assert await visible(manager) == set(owners)
    assert await visible(manager, owner_id=stranger.user_id) == {"theirs"}
    mine = f"{CONTRACTS}/{contracts_by_title['mine']['id']}"
    assert (await client.get(mine, headers=sales.headers)).status_code == 200
    assert (await client.get(f"{mine}/document", headers=sales.headers)).status_code == 200
    assert (await client.post(f"{mine}/render", headers=sales.headers)).status_code == 200
    assert (await _transition(client, sales, contracts_by_title["mine"]["id"], "sent")).status_code == 200
    hidden = ["theirs", "unowned"] + (["mates"] if setting == "own" else [])
    for title in hidden:
        contract_id = contracts_by_title[title]["id"]
        url = f"{CONTRACTS}/{contract_id}"
        for response in (
            await client.get(url, headers=sales.headers),
            await client.get(f"{url}/document", headers=sales.headers),
            await client.patch(url, headers=sales.headers, json={"title": "x"}),
            await _transition(client, sales, contract_id, "sent"),
            await client.post(f"{url}/render", headers=sales.headers),
        ):
            assert_problem(response, 404)
    # Handing a contract over hides it from the rep who gave it away.
    handed = await client.patch(mine, headers=sales.headers, json={"owner_id": stranger.user_id})
    assert handed.status_code == 200, handed.text
    assert_problem(await client.get(mine, headers=sales.headers), 404)
    strangers = (await client.get(CONTRACTS, headers=tenant.headers, params={"owner_id": stranger.user_id})).json()
    assert {contract["title"]: contract["version"] for contract in strangers["items"]} == {"mine": 5, "theirs": 2}


async def test_the_migrations_backfill_gives_the_owner_a_create_gives(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    rep = await add_user(client, tenant, "sales")
    company_id = (await _company(client, tenant))["id"]
    reps_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=rep.user_id)
    unowned_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=None)
    key = await add_api_key(client, tenant, ["contracts:write"])
    made = {
        "rep's, no deal": await create(client, CONTRACTS, rep.headers, **_body(company_id)),
        "owner's, rep's deal": await _contract(client, tenant, company_id=company_id, deal_id=reps_deal["id"]),
        "owner's, unowned deal": await _contract(client, tenant, company_id=company_id, deal_id=unowned_deal["id"]),
        "key's, no deal": await create(client, CONTRACTS, key, **_body(company_id)),
        "key's, rep's deal": await create(client, CONTRACTS, key, **_body(company_id, deal_id=reps_deal["id"])),
    }
    module = migration("2026_11_30_0022_order_contract_owners.py")
    backfill = module._BACKFILL.format(table="contracts", entity="contract")
    organization = {"organization_id": tenant.organization_id}
    await db.execute(
        text("UPDATE contracts SET owner_id = NULL WHERE organization_id = :organization_id"), organization
    )
    await db.execute(text(backfill))
    rows = await db.execute(
        text("SELECT id, owner_id FROM contracts WHERE organization_id = :organization_id"), organization
    )
    backfilled = {str(row.id): str(row.owner_id) if row.owner_id else None for row in rows}
    await db.rollback()
    assert {name: backfilled[contract["id"]] for name, contract in made.items()} == {
        "rep's, no deal": rep.user_id,
        "owner's, rep's deal": rep.user_id,
        "owner's, unowned deal": tenant.user_id,
        "key's, no deal": None,
        "key's, rep's deal": rep.user_id,
    }
    assert all(backfilled[contract["id"]] == contract["owner_id"] for contract in made.values())


async def test_stale_if_match_is_412_and_writes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contract = await _contract(client, tenant)
    url = f"{CONTRACTS}/{contract['id']}"
    await client.patch(url, headers=tenant.headers, json={"title": "新标题"})
    stale = {"If-Match": 'W/"1"'}
    assert_problem(await client.patch(url, headers=tenant.headers | stale, json={"title": "x"}), 412)
    assert_problem(await _transition(client, tenant, contract["id"], "sent", **stale), 412)
    assert_problem(await client.post(f"{url}/render", headers=tenant.headers | stale), 412)
    current = (await client.get(url, headers=tenant.headers)).json()
    assert current["title"] == "新标题" and current["status"] == "draft" and current["version"] == 2


async def test_idempotent_create_takes_one_number(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    headers = tenant.headers | {"Idempotency-Key": "contract-1"}
    first = await client.post(CONTRACTS, headers=headers, json=_body(company["id"]))
    again = await client.post(CONTRACTS, headers=headers, json=_body(company["id"]))
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and first.json() == again.json()
    assert (await _contract(client, tenant, company_id=company["id"]))["number"] == f"HT-{YEAR}-0002"
    assert_problem(await client.post(CONTRACTS, headers=headers, json=_body(company["id"], title="另一份")), 422)


async def test_roles_and_api_keys(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contract = await _contract(client, tenant)
    viewer = await add_user(client, tenant, "viewer")
    url = f"{CONTRACTS}/{contract['id']}"
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    assert (await client.get(TEMPLATES, headers=viewer.headers)).status_code == 200
    for response in (
        await client.post(CONTRACTS, headers=viewer.headers, json=_body(contract["company_id"])),
        await client.patch(url, headers=viewer.headers, json={"title": "x"}),
        await _transition(client, viewer, contract["id"], "sent"),
        await client.post(f"{url}/render", headers=viewer.headers),
        await client.post(TEMPLATES, headers=viewer.headers, json={"name": "x", "body": "x"}),
    ):
        assert_problem(response, 403)
    manager = await add_user(client, tenant, "manager")
    assert (await _transition(client, manager, contract["id"], "sent")).status_code == 200
    key = await add_api_key(client, tenant, ["contracts:read", "contracts:write"])
    response = await client.post(CONTRACTS, headers=key, json=_body(contract["company_id"]))
    assert response.status_code == 201 and response.json()["number"] == f"HT-{YEAR}-0002"
    reader = await add_api_key(client, tenant, ["contracts:read"])
    assert_problem(await client.post(CONTRACTS, headers=reader, json=_body(contract["company_id"])), 403)


async def test_another_organisations_contract_is_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _contract(client, other_tenant)
    template = await create(client, TEMPLATES, other_tenant.headers, name="别家", body="<p>x</p>")
    url = f"{CONTRACTS}/{theirs['id']}"
    await client.post(f"{url}/render", headers=other_tenant.headers)
    for response in (
        await client.get(url, headers=tenant.headers),
        await client.patch(url, headers=tenant.headers, json={"title": "x"}),
        await _transition(client, tenant, theirs["id"], "sent"),
        await client.post(f"{url}/render", headers=tenant.headers),
        await client.get(f"{url}/document", headers=tenant.headers),
        await client.get(f"{TEMPLATES}/{template['id']}", headers=tenant.headers),
        await client.patch(f"{TEMPLATES}/{template['id']}", headers=tenant.headers, json={"name": "x"}),
    ):
        assert_problem(response, 404)
    mine = await _contract(client, tenant)
    response = await client.post(
        f"{CONTRACTS}/{mine['id']}/render", headers=tenant.headers, json={"template_id": template["id"]}
    )
    assert error_locs(response) == [["body", "template_id"]]
    assert (await client.get(CONTRACTS, headers=tenant.headers)).json()["items"] == [mine]
    assert (await client.get(url, headers=other_tenant.headers)).json()["version"] == 2

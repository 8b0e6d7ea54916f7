"""`core.db`'s bulk helpers: `new_record` and `insert_values` (how batches and imports build new
rows cheaply), `update_changed` (how they write matched records' changes) and `PlannerStatistics`
(the planner's count of what an import writes)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import String, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates
from sqlalchemy.orm.exc import StaleDataError

from app.core.db import PlannerStatistics, insert_values, new_record, update_changed
from app.models.base import Base
from app.models.contact import Contact
from tests.helpers import Tenant


async def test_a_new_record_added_to_a_session_is_inserted_with_its_values(app: Any, tenant: Tenant) -> None:
    """It is built without attribute events, so the ORM must take its values from its dict."""
    organization_id = uuid.UUID(tenant.organization_id)
    contact = new_record(
        Contact,
        organization_id=organization_id,
        first_name="伟",
        last_name="张",
        email="zhang.wei@example.cn",
        source="api",
    )
    async with app.state.session_factory() as session, session.begin():
        session.add(contact)
    async with app.state.session_factory() as session:
        stored = (
            await session.execute(
                select(Contact.first_name, Contact.last_name, Contact.email, Contact.lifecycle_stage).where(
                    Contact.organization_id == organization_id, Contact.id == contact.id
                )
            )
        ).one()
    assert tuple(stored) == ("伟", "张", "zhang.wei@example.cn", "lead")


def test_a_new_record_refuses_an_attribute_its_model_does_not_have() -> None:
    with pytest.raises(TypeError, match="no attribute frist_name"):
        new_record(Contact, frist_name="伟")


def test_a_model_with_validators_is_refused_since_they_would_be_skipped() -> None:
    class Scratch(DeclarativeBase):
        pass

    class Checked(Scratch):
        __tablename__ = "checked"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(10))

        @validates("name")
        def _name(self, _key: str, value: str) -> str:
            return value.strip()

    with pytest.raises(TypeError, match="validators"):
        new_record(Checked, name=" x ")


def test_insert_values_fills_the_defaults_in_and_sets_every_column_on_the_record() -> None:
    contact = new_record(Contact, organization_id=uuid.uuid4(), first_name="娜")
    values = insert_values(contact)
    assert values["id"] is not None and values["lifecycle_stage"] == "lead" and values["company_id"] is None
    assert {name: contact.__dict__[name] for name in values} == values


def test_every_attribute_is_named_as_its_column() -> None:
    """`insert_values` reads a record's dict by column name."""
    assert [
        (table.name, column.key, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.key != column.name
    ] == []


async def _add_contacts(client: httpx.AsyncClient, tenant: Tenant, count: int) -> None:
    records = [
        {"first_name": f"客户{index}", "email": f"c{index}.{uuid.uuid4().hex[:8]}@example.cn"} for index in range(count)
    ]
    batch = await client.post(
        "/api/v1/contacts/batch", headers=tenant.headers, json={"mode": "create", "records": records}
    )
    assert batch.status_code == 200, batch.text


async def _last_analysed(sessions: Any) -> Any:
    async with sessions() as session:
        return await session.scalar(text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'contacts'"))


async def test_the_planner_statistics_are_refreshed_each_time_the_rows_written_outnumber_its_count(
    app: Any, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sessions = app.state.session_factory
    async with sessions() as session, session.begin():
        await session.execute(text("ANALYZE contacts"))  # the new organisation counted at (about) nothing
    statistics = PlannerStatistics("contacts", uuid.UUID(tenant.organization_id), ("id", "email"))

    await _add_contacts(client, tenant, 300)
    await statistics.written(sessions, 300)
    assert statistics.analyses == 1
    assert statistics.counted is not None and statistics.counted >= 150
    await _add_contacts(client, tenant, 100)
    await statistics.written(sessions, 100)
    assert statistics.analyses == 1  # 100 rows more than the 300 counted is not yet a doubling
    await _add_contacts(client, tenant, 300)
    await statistics.written(sessions, 300)
    assert statistics.analyses == 2
    assert statistics.counted >= 350

    before = await _last_analysed(sessions)
    await statistics.finished(sessions)  # the whole table, once, since the load outgrew the count
    assert await _last_analysed(sessions) > before


async def test_a_load_that_never_outgrew_the_count_leaves_the_statistics_alone(app: Any, tenant: Tenant) -> None:
    sessions = app.state.session_factory
    async with sessions() as session, session.begin():
        await session.execute(text("ANALYZE contacts"))
    statistics = PlannerStatistics("contacts", uuid.UUID(tenant.organization_id), ())
    before = await _last_analysed(sessions)
    await statistics.written(sessions, 0)
    await statistics.finished(sessions)
    assert (statistics.analyses, await _last_analysed(sessions)) == (0, before)


async def _contacts(app: Any, tenant: Tenant, count: int) -> list[uuid.UUID]:
    organization_id = uuid.UUID(tenant.organization_id)
    contacts = [
        new_record(Contact, organization_id=organization_id, first_name=f"人{i}", source="api") for i in range(count)
    ]
    async with app.state.session_factory() as session, session.begin():
        session.add_all(contacts)
    return [contact.id for contact in contacts]


async def test_update_changed_writes_each_set_of_changed_columns_at_once_and_leaves_the_records_clean(
    app: Any, tenant: Tenant
) -> None:
    ids = await _contacts(app, tenant, 3)
    statements: list[str] = []
    async with app.state.session_factory() as session, session.begin():
        loaded = (await session.execute(select(Contact).where(Contact.id.in_(ids)).order_by(Contact.id))).scalars()
        first, second, untouched = loaded
        for contact in (first, second):
            contact.title = "采购经理"
            contact.tags = ["vip", "华东"]
            contact.custom_fields = {"level": 3, "notes": {"a": [1, "二"]}}
        second.email_opt_in = True
        second.additional_emails = [{"email": "b@example.cn", "label": "work"}]
        first.first_name = first.first_name  # set to what it was: no change

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        sync_engine = session.get_bind()
        event.listen(sync_engine, "before_cursor_execute", count)
        try:
            written = await update_changed(session, [first, second, untouched, second])
            assert statements and all("jsonb_to_recordset" in s for s in statements) and len(statements) == 2
            assert not any(session.is_modified(c) for c in (first, second, untouched))
            await session.flush()
            assert len(statements) == 2  # nothing left for the ORM to write
        finally:
            event.remove(sync_engine, "before_cursor_execute", count)
        assert written == [first, second]
        assert (first.version, second.version, untouched.version) == (2, 2, 1)
    async with app.state.session_factory() as session:
        stored = {c.id: c for c in (await session.execute(select(Contact).where(Contact.id.in_(ids)))).scalars()}
    for contact_id in ids[:2]:
        assert stored[contact_id].title == "采购经理" and stored[contact_id].tags == ["vip", "华东"]
        assert stored[contact_id].custom_fields == {"level": 3, "notes": {"a": [1, "二"]}}
        assert stored[contact_id].version == 2 and stored[contact_id].updated_at > stored[ids[2]].updated_at
    assert stored[ids[1]].email_opt_in is True
    assert stored[ids[1]].additional_emails == [{"email": "b@example.cn", "label": "work"}]
    assert stored[ids[2]].title is None and stored[ids[2]].version == 1


async def test_update_changed_refuses_rows_changed_since_they_were_read(app: Any, tenant: Tenant) -> None:
    [contact_id] = await _contacts(app, tenant, 1)
    async with app.state.session_factory() as session:
        contact = await session.get(Contact, (uuid.UUID(tenant.organization_id), contact_id))
        assert contact is not None
        async with app.state.session_factory() as other, other.begin():
            await other.execute(text("UPDATE contacts SET version = version + 1 WHERE id = :id"), {"id": contact_id})
        contact.title = "经理"
        with pytest.raises(StaleDataError, match="1 of 1 rows changed since they were read"):
            await update_changed(session, [contact])
        await session.rollback()

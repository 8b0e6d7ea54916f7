"""`core.db.transaction_cache`: answers kept for one transaction, across its savepoints."""

from __future__ import annotations

from typing import Any

from app.core.db import transaction_cache


async def test_a_released_savepoint_keeps_the_answers_a_rolled_back_one_drops_them(app: Any) -> None:
    """A batch writes each record in a savepoint: what the first record looked up (an owner, the
    organisation's settings) serves the next ones; a savepoint rolled back may have undone what
    an answer reflects (a rule's turn), so the answers go; the transaction's end drops them all."""
    async with app.state.session_factory() as session:
        async with session.begin():
            transaction_cache(session, "test")["answer"] = 42
            async with session.begin_nested():
                pass
            assert transaction_cache(session, "test") == {"answer": 42}
            failed_record = await session.begin_nested()
            await failed_record.rollback()
            assert transaction_cache(session, "test") == {}
            transaction_cache(session, "test")["answer"] = 43
        assert transaction_cache(session, "test") == {}

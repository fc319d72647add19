"""The audit trail: every emitted event recorded with who and from where, hash-chained, append-only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from jiesu import audit
from schemas.events import Envelope, TicketClosed


async def _emit(store, n: int, actor: str = "dispatcher1") -> None:
    token = audit.current_actor.set(actor)
    try:
        for _ in range(n):
            async with store.transaction() as tx:
                await tx.emit("tickets.lifecycle", Envelope.wrap(TicketClosed(outcome="satisfied"),
                                                                 ticket_id=uuid.uuid4(), producer="router"))
    finally:
        audit.current_actor.reset(token)


async def test_every_emitted_event_is_recorded_with_its_actor_and_the_chain_verifies(store):
    await _emit(store, 5)
    assert await audit.seal(store.db, store.tables.audit, settle=timedelta(0)) == 5
    result = await audit.verify(store.db, store.tables.audit)
    assert result.ok and result.checked == 5 and result.unsealed == 0
    async with store.db.session() as s:
        actors = (await s.execute(text("SELECT DISTINCT actor, action FROM router_audit"))).all()
    assert actors == [("dispatcher1", "TicketClosed")]


async def test_a_sealed_row_cannot_be_changed_or_deleted(store):
    await _emit(store, 2)
    await audit.seal(store.db, store.tables.audit, settle=timedelta(0))
    for statement in ("UPDATE router_audit SET actor = 'someone-else'", "DELETE FROM router_audit"):
        with pytest.raises(DBAPIError):
            async with store.db.session() as s:
                await s.execute(text(statement))


async def test_tampering_behind_the_triggers_back_is_found(store):
    await _emit(store, 4)
    await audit.seal(store.db, store.tables.audit, settle=timedelta(0))
    dialect = store.db.dialect
    async with store.db.session() as s:  # an attacker with the database owner's rights
        for statement in audit.drop_protection_sql("router_audit", dialect):
            await s.execute(text(statement))
        third = (await s.execute(text("SELECT id FROM router_audit ORDER BY id LIMIT 1 OFFSET 2"))).scalar()
        await s.execute(text(f"UPDATE router_audit SET actor = 'nobody' WHERE id = {third}"))
    result = await audit.verify(store.db, store.tables.audit)
    assert not result.ok and result.broken_at == third and result.checked == 2

"""The audit trail: every emitted event recorded with who and from where, hash-chained, append-only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from jiesu import audit
from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.migrate import alembic_config
from schemas.events import Envelope, TicketClosed, utcnow
from services.router.store import messaging


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


async def _rows(store) -> list:
    async with store.db.session() as s:
        return (await s.execute(text("SELECT id, hash FROM router_audit ORDER BY id"))).all()


async def _seals(store) -> list:
    async with store.db.session() as s:
        return (await s.execute(text("SELECT first_id, last_id, rows FROM router_audit_seals ORDER BY id"))).all()


async def test_sealing_appends_seals_and_never_touches_a_row(store):
    await _emit(store, 5)
    assert await audit.seal(store.db, store.tables.audit, batch=2, settle=timedelta(0)) == 2
    assert await audit.seal(store.db, store.tables.audit, batch=2, settle=timedelta(0)) == 2
    assert await audit.seal(store.db, store.tables.audit, batch=2, settle=timedelta(0)) == 1
    assert await audit.seal(store.db, store.tables.audit, settle=timedelta(0)) == 0  # nothing new
    ids = [r.id for r in await _rows(store)]
    assert all(r.hash is None for r in await _rows(store))
    assert await _seals(store) == [(ids[0], ids[1], 2), (ids[2], ids[3], 2), (ids[4], ids[4], 1)]
    result = await audit.verify(store.db, store.tables.audit)
    assert result.ok and result.checked == 5 and result.unsealed == 0
    await _emit(store, 1)  # written after the last seal: counted, not yet checked
    result = await audit.verify(store.db, store.tables.audit)
    assert result.ok and result.checked == 5 and result.unsealed == 1


async def test_seal_all_goes_on_until_a_pass_finds_less_than_a_batch(store, monkeypatch):
    monkeypatch.setattr(audit, "SEAL_BATCH", 2)
    async with store.db.session() as s:  # old enough to seal
        await s.execute(store.tables.audit.insert(),
                        [{**audit.entry("TicketClosed"), "at": utcnow() - timedelta(seconds=30)} for _ in range(5)])
    assert await audit.seal_all(store.db, store.tables.audit) == 5
    assert [rows for _, _, rows in await _seals(store)] == [2, 2, 1]


async def test_rows_and_seals_refuse_every_change_even_before_sealing(store):
    await _emit(store, 1)
    for statement in ("UPDATE router_audit SET hash = 'x'", "UPDATE router_audit SET actor = 'someone-else'"):
        with pytest.raises(DBAPIError):
            async with store.db.session() as s:
                await s.execute(text(statement))
    await audit.seal(store.db, store.tables.audit, settle=timedelta(0))
    for statement in ("UPDATE router_audit_seals SET hash = 'x'", "DELETE FROM router_audit_seals"):
        with pytest.raises(DBAPIError):
            async with store.db.session() as s:
                await s.execute(text(statement))
    assert len(await _seals(store)) == 1


async def test_a_seal_stops_before_the_first_row_too_recent_to_seal(store):
    now = utcnow()
    ages = [timedelta(seconds=30), timedelta(0), timedelta(seconds=30)]  # the middle one may have company
    async with store.db.session() as s:
        await s.execute(store.tables.audit.insert(), [{**audit.entry("TicketClosed"), "at": now - age} for age in ages])
    assert await audit.seal(store.db, store.tables.audit) == 1
    first = (await _rows(store))[0].id
    assert await _seals(store) == [(first, first, 1)]
    result = await audit.verify(store.db, store.tables.audit)
    assert result.ok and result.checked == 1 and result.unsealed == 2


async def _tamper(store, *statements: str) -> None:
    async with store.db.session() as s:  # an attacker with the database owner's rights
        for table in ("router_audit", "router_audit_seals"):
            for statement in audit.drop_protection_sql(table, store.db.dialect):
                await s.execute(text(statement))
        for statement in statements:
            await s.execute(text(statement))


ROW = "INSERT INTO router_audit (id, at, actor, address, action, details) VALUES ({}, '2026-11-23 08:00:00+00', 'x', '', 'TicketClosed', '{{}}')"


@pytest.mark.parametrize("statements, broken_at", [
    (["DELETE FROM router_audit WHERE id = 20"], 30),  # a row removed from the middle of a run
    (["DELETE FROM router_audit WHERE id = 30"], 40),  # a run's last row removed
    ([ROW.format(25)], 25),  # a row slipped in between two of a run
    (["UPDATE router_audit SET actor = 'nobody' WHERE id = 50"], 50),
    ([f"UPDATE router_audit_seals SET hash = '{'f' * 64}' WHERE last_id = 30"], 30),
    (["UPDATE router_audit_seals SET last_id = 35 WHERE last_id = 30"], 30),
    (["DELETE FROM router_audit_seals WHERE last_id = 30"], 10),  # its rows are in no seal
    ([f"UPDATE router_audit_seals SET prev_hash = '{'f' * 64}' WHERE last_id = 60"], 40),  # a broken link
    (["DELETE FROM router_audit WHERE id = 60"], 60),  # the last run's end, with nothing after it
], ids=["middle row", "run's last row", "row added", "row altered", "seal altered", "seal's end altered", "seal removed", "link altered", "last row"])
async def test_rows_removed_added_or_altered_and_seals_altered_are_found(store, statements, broken_at):
    async with store.db.session() as s:
        for i in range(10, 70, 10):
            await s.execute(text(ROW.format(i)))
    for _ in range(2):  # two runs: 10-30 and 40-60
        await audit.seal(store.db, store.tables.audit, batch=3, settle=timedelta(0))
    assert await _seals(store) == [(10, 30, 3), (40, 60, 3)]
    assert (await audit.verify(store.db, store.tables.audit)).ok
    await _tamper(store, *statements)
    result = await audit.verify(store.db, store.tables.audit)
    assert not result.ok and result.broken_at == broken_at


async def _link_row_by_row(store, count: int) -> str:
    """Write each of the first rows' links into the row, as versions before seals did; the last link."""
    prev = audit.GENESIS
    async with store.db.session() as s:
        for row in (await s.execute(select(store.tables.audit).order_by(store.tables.audit.c.id))).all()[:count]:
            digest = audit._digest(prev, row)
            await s.execute(text("UPDATE router_audit SET prev_hash = :p, hash = :h WHERE id = :i"),
                            {"p": prev, "h": digest, "i": row.id})
            prev = digest
    return prev


async def test_rows_sealed_one_by_one_by_earlier_versions_begin_the_chain(store):
    await _emit(store, 3)
    await _tamper(store)  # the current triggers refuse what the earlier sealer did
    prev = await _link_row_by_row(store, 2)
    assert await audit.seal(store.db, store.tables.audit, settle=timedelta(0)) == 1  # the third goes on from them
    async with store.db.session() as s:
        assert await s.scalar(text("SELECT prev_hash FROM router_audit_seals")) == prev
    result = await audit.verify(store.db, store.tables.audit)
    assert result.ok and result.checked == 3
    first = (await _rows(store))[0].id
    await _tamper(store, f"UPDATE router_audit SET actor = 'nobody' WHERE id = {first}")
    result = await audit.verify(store.db, store.tables.audit)
    assert not result.ok and result.broken_at == first and result.checked == 0


async def test_a_trail_sealed_row_by_row_upgrades_to_seals_and_back(url):
    """Rows the earlier sealer chained keep their links; the first seal goes on from them; a downgrade
    restores the earlier triggers, under which an unsealed row could still take its link."""
    config = alembic_config("router", url)
    await asyncio.to_thread(command.upgrade, config, "router_0006")  # before seals
    store = ServiceStore("router", Database(url), messaging)
    try:
        await _emit(store, 3)
        prev = await _link_row_by_row(store, 2)  # the earlier sealer: the first two rows get their links
        await asyncio.to_thread(command.upgrade, config, "head")
        with pytest.raises(DBAPIError):  # the third row, unsealed, can no longer take a link
            async with store.db.session() as s:
                await s.execute(text("UPDATE router_audit SET hash = 'x' WHERE hash IS NULL"))
        assert await audit.seal(store.db, store.tables.audit, settle=timedelta(0)) == 1
        result = await audit.verify(store.db, store.tables.audit)
        assert result.ok and result.checked == 3
        await store.db.dispose()  # SQLite keeps prepared statements on a table about to be dropped
        await asyncio.to_thread(command.downgrade, config, "router_0006")
        async with store.db.session() as s:
            await s.execute(text("UPDATE router_audit SET hash = 'x' WHERE hash IS NULL"))  # allowed again
            with pytest.raises(DBAPIError):
                async with s.begin_nested():
                    await s.execute(text("UPDATE router_audit SET actor = 'y' WHERE hash = :h"), {"h": prev})
    finally:
        await store.db.dispose()


@pytest.mark.postgres
def test_the_sealing_benchmark_runs_and_finds_its_trail_intact(pg_url, capsys):
    from bench import audit_seal

    assert audit_seal.main(["--postgres", pg_url, "--rows", "20", "--passes", "2", "--sqlite"]) == 0
    out = capsys.readouterr().out
    assert out.count("over 40 rows (intact)") == 2 and "µs in PostgreSQL" in out

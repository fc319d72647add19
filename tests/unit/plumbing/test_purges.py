"""Housekeeping: sent outbox rows and inbox entries go once nothing needs them, a chunk per transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import event, select

from jiesu.config import Settings
from jiesu.runtime import _purge, _repeat
from schemas.events import utcnow

WEEK = timedelta(days=7)


def _deletes(store) -> list[str]:
    """The DELETE statements the store's database runs from now on (one per transaction here)."""
    seen: list[str] = []
    event.listen(store.db.engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: seen.append(statement) if statement.startswith("DELETE") else None)
    return seen


async def _owe(store, *sent_days_ago: float | None) -> None:
    """Outbox rows, sent that many days ago (None: not sent yet)."""
    async with store.db.session() as s:
        await s.execute(store.tables.outbox.insert(), [
            {"event_id": uuid.uuid4(), "topic": "t", "key": "k", "event_type": "x", "value": b"{}",
             "created_at": utcnow(), "sent_at": None if d is None else utcnow() - timedelta(days=d), "attempts": 1}
            for d in sent_days_ago])


async def _applied(store, *days_ago: float) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in days_ago]
    async with store.db.session() as s:
        await s.execute(store.tables.inbox.insert(), [
            {"event_id": e, "topic": "t", "processed_at": utcnow() - timedelta(days=d)} for e, d in zip(ids, days_ago)])
    return ids


async def test_sent_rows_past_retention_are_purged_a_chunk_per_transaction_and_unsent_ones_stay(store):
    await _owe(store, 8, 8, 8, 8, 8, 1, 1, None, None)
    deletes = _deletes(store)

    assert await store.purge_outbox(WEEK, chunk=2) == 5

    assert len(deletes) == 3  # 2 + 2 + 1: no transaction holds more than a chunk
    async with store.db.session() as s:
        left = (await s.execute(select(store.tables.outbox.c.sent_at))).scalars().all()
    assert sorted(sent is None for sent in left) == [False, False, True, True]


async def test_applied_events_past_retention_are_forgotten_a_chunk_per_transaction_and_recent_ones_still_skipped(
        store):
    old = await _applied(store, 31, 31, 31, 31, 31)
    recent = await _applied(store, 0, 0)
    deletes = _deletes(store)

    assert await store.purge_inbox(timedelta(days=30), chunk=2) == 5

    assert len(deletes) == 3  # 2 + 2 + 1
    async with store.transaction() as tx:
        # the forgotten ones could be claimed again; a redelivery of the recent ones is still skipped
        assert await tx.claim([(e, "t") for e in old + recent]) == set(old)


async def test_the_hourly_purge_clears_both_the_outbox_and_the_inbox_by_their_own_retention(store):
    await _applied(store, 8, 29, 31)
    await _owe(store, 6, 8)

    await _purge(store, Settings(outbox_retention_days=7, inbox_retention_days=30, _env_file=None))

    async with store.db.session() as s:
        assert len((await s.execute(store.tables.inbox.select())).all()) == 2  # 8 and 29 days: kept
        assert len((await s.execute(store.tables.outbox.select())).all()) == 1  # 6 days: kept


async def test_a_housekeeping_run_that_fails_is_retried_at_the_next_and_the_first_comes_when_asked(store):
    runs = []

    async def job():
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 1:
            raise ConnectionError("database away")

    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(_repeat(store, "test job", 0.05, job, first=0.0))
    try:
        async with asyncio.timeout(5):  # three runs: the failed first did not end the loop
            while len(runs) < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert runs[0] - started < 0.05  # first=0: at once, not after `every`


def test_an_inbox_kept_no_longer_than_the_outbox_is_refused():
    with pytest.raises(ValidationError, match="inbox_retention_days must be longer"):
        Settings(outbox_retention_days=14, inbox_retention_days=14, _env_file=None)
    assert Settings(outbox_retention_days=14, inbox_retention_days=15, _env_file=None).inbox_retention_days == 15


async def test_a_started_runtime_runs_each_services_own_purge_after_its_outbox_and_inbox(sqlite_settings, monkeypatch):
    """Intake's (rate-limit windows, receipts) and the tracker's (deliveries) housekeeping go with the hourly purge."""
    from faststream.kafka import KafkaBroker, TestKafkaBroker

    from jiesu import runtime
    from jiesu.config import SERVICES
    from jiesu.migrate import upgrade_all
    from jiesu.outbox import BrokerSender

    await asyncio.to_thread(upgrade_all, sqlite_settings)
    ran: list[str] = []
    for name in ("intake", "tracker"):
        spec = runtime.load_spec(name)
        assert spec.purge is not None, name

        async def own(rt, name=name):
            assert rt.stores[name] is not None
            ran.append(name)

        monkeypatch.setattr(spec, "purge", own)
    monkeypatch.setattr(runtime, "PURGE_FIRST_SECONDS", 0.05)
    rt = runtime.Runtime.create(sqlite_settings, list(SERVICES), bootstrap="test:9092")
    shared = KafkaBroker("test:9092")
    rt.build_brokers(factory=lambda: shared)
    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        try:
            for _ in range(100):
                if set(ran) == {"intake", "tracker"}:
                    break
                await asyncio.sleep(0.05)
        finally:
            await rt.stop()
    assert sorted(ran) == ["intake", "tracker"]  # once each (the next is an hour away); the router has none

"""Housekeeping: inbox entries are forgotten once nothing can bring their event back, and not before."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import event

from jiesu.config import Settings
from jiesu.outbox import OutboxRelay
from jiesu.runtime import _purge, _repeat
from schemas.events import utcnow


async def test_applied_events_past_retention_are_forgotten_a_chunk_per_transaction_and_recent_ones_still_skipped(
        store):
    old, recent = [uuid.uuid4() for _ in range(5)], [uuid.uuid4() for _ in range(2)]
    async with store.db.session() as s:
        await s.execute(store.tables.inbox.insert(), [
            {"event_id": e, "topic": "tickets.lifecycle", "processed_at": utcnow() - timedelta(days=31)} for e in old])
    async with store.transaction() as tx:
        for e in recent:
            await tx.mark_processed(e, "tickets.lifecycle")
    deletes = []
    event.listen(store.db.engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: deletes.append(statement) if statement.startswith("DELETE") else None)

    assert await store.purge_inbox(timedelta(days=30), chunk=2) == 5

    assert len(deletes) == 3  # 2 + 2 + 1
    async with store.transaction() as tx:
        assert await tx.processed_among(old + recent) == set(recent)  # a redelivery of these is still skipped


async def test_the_hourly_purge_clears_both_the_outbox_and_the_inbox_by_their_own_retention(store):
    relay = OutboxRelay(store, sender=None, retention_days=7)
    async with store.db.session() as s:
        await s.execute(store.tables.inbox.insert(), [
            {"event_id": uuid.uuid4(), "topic": "t", "processed_at": utcnow() - timedelta(days=d)} for d in (8, 29, 31)])
        await s.execute(store.tables.outbox.insert(), [
            {"event_id": uuid.uuid4(), "topic": "t", "key": "k", "event_type": "x", "value": b"{}",
             "created_at": utcnow() - timedelta(days=d), "sent_at": utcnow() - timedelta(days=d), "attempts": 1}
            for d in (6, 8)])

    await _purge(store, relay, inbox_retention_days=30)

    async with store.db.session() as s:
        assert len((await s.execute(store.tables.inbox.select())).all()) == 2  # 8 and 29 days: kept
        assert len((await s.execute(store.tables.outbox.select())).all()) == 1  # 6 days: kept


def test_an_inbox_kept_no_longer_than_the_outbox_is_refused():
    with pytest.raises(ValidationError, match="inbox_retention_days must be longer"):
        Settings(outbox_retention_days=14, inbox_retention_days=14)
    assert Settings(outbox_retention_days=14, inbox_retention_days=15).inbox_retention_days == 15


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

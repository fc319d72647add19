"""The inbox: a consumer claims its batch's event ids in one statement; an id already claimed is a redelivery."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, func, select

from bench import tickets
from bench.records import records_of
from jiesu.consumer import Batched, EventConsumer


async def _inbox_size(store) -> int:
    async with store.db.session() as s:
        return await s.scalar(select(func.count()).select_from(store.tables.inbox))


async def test_a_claim_returns_the_ids_no_transaction_claimed_before_and_the_same_id_twice_once(store):
    a, b, c = (uuid.uuid4() for _ in range(3))
    async with store.transaction() as tx:
        assert await tx.claim([(a, "t"), (b, "t"), (a, "t")]) == {a, b}
        assert await tx.claim([(b, "t"), (c, "t")]) == {c}  # earlier in the same transaction counts
    async with store.transaction() as tx:
        assert await tx.claim([(a, "t"), (b, "t"), (c, "t")]) == set()
        assert await tx.claim([]) == set()
    assert await _inbox_size(store) == 3


async def test_a_batch_far_larger_than_the_default_is_claimed_whole(store):
    """JIESU_CONSUMER_BATCH has no upper bound; SQLite takes at most 32,766 parameters a statement
    as built by default (this machine's build allows 250,000: the test sets the default's limit)."""
    if store.db.dialect == "sqlite":
        await store.db.engine.dispose()

        @event.listens_for(store.db.engine.sync_engine, "connect")
        def _default_limit(dbapi_connection, _record):
            dbapi_connection.driver_connection._connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)

    ids = [uuid.uuid4() for _ in range(12_000)]
    async with store.transaction() as tx:
        assert await tx.claim([(i, "t") for i in ids]) == set(ids)
        assert await tx.claim([(i, "t") for i in ids[-10:]] + [(ids[0], "t")]) == set()
    assert await _inbox_size(store) == 12_000


async def test_a_claim_rolls_back_with_its_transaction(store):
    a = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            assert await tx.claim([(a, "t")]) == {a}
            raise RuntimeError("the handler failed")
    assert await _inbox_size(store) == 0
    async with store.transaction() as tx:
        assert await tx.claim([(a, "t")]) == {a}  # the retry may apply it


async def test_a_batch_applies_each_event_once_whether_it_came_before_or_twice_in_the_batch(store):
    applied: list[uuid.UUID] = []

    async def many(tx, items):
        applied.extend(envelope.event_id for envelope, _ in items)

    consumer = EventConsumer(store, {"TicketReceived": Batched(many)})
    old, new = tickets.received(2, prefix="claim")
    await consumer.process(records_of([old], "tickets.received"))
    before = REGISTRY.get_sample_value("jiesu_events_duplicate_total", {"service": store.name}) or 0

    await consumer.process(records_of([new, old, new], "tickets.received"))

    assert applied == [old.event_id, new.event_id]
    assert REGISTRY.get_sample_value("jiesu_events_duplicate_total", {"service": store.name}) - before == 2
    assert await _inbox_size(store) == 2

"""SQLite statements run on the event loop's thread on the hot paths and on the connection's
thread elsewhere, and a file locked by another process is waited for without stopping the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.exc import OperationalError

from jiesu import db as jdb
from jiesu.consumer import EventConsumer
from jiesu.db import SQLITE_ON_LOOP, Database, sqlite_on_loop
from jiesu.messaging import ServiceStore, messaging_tables
from schemas.events import Envelope, TicketClosed
from bench.records import Record


@pytest.fixture
async def database(tmp_path):
    path = tmp_path / "t.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    async with database.session() as s:
        await s.execute(text("CREATE TABLE t (n INTEGER)"))
    yield database, path
    await database.dispose()


async def _thread_of_statements(database: Database) -> int:
    """The thread SQLite runs a statement on, as the statement itself sees it."""
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection._conn.create_function("thread_id", 0, threading.get_ident)
        return (await conn.execute(text("SELECT thread_id()"))).scalar_one()


async def test_statements_run_off_the_loop_unless_a_hot_path_asks(database):
    db, _ = database
    assert await _thread_of_statements(db) != threading.get_ident()
    with sqlite_on_loop():
        assert await _thread_of_statements(db) == threading.get_ident()
    assert SQLITE_ON_LOOP.get() is False


async def test_a_consumer_applies_its_batch_on_the_loop(tmp_path):
    metadata = MetaData()
    store = ServiceStore("t", Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}"), messaging_tables(metadata, "t"))
    async with store.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    seen: list[bool] = []

    async def closed(tx, envelope, payload):
        seen.append(SQLITE_ON_LOOP.get())

    event = Envelope.wrap(TicketClosed(outcome="satisfied"), ticket_id=uuid.uuid4(), producer="tracker")
    try:
        await EventConsumer(store, {"TicketClosed": closed}).process([Record(event.to_bytes())])
    finally:
        await store.db.dispose()
    assert seen == [True]
    assert SQLITE_ON_LOOP.get() is False


async def test_a_write_waits_for_another_process_lock_while_the_loop_goes_on(database):
    db, path = database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def write() -> None:
        async with db.session() as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))

    with sqlite_on_loop():
        writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)  # returns only if the loop is not stuck in SQLite's busy handler
    assert not writing.done()
    other.execute("COMMIT")
    other.close()
    await writing
    async with db.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1


async def test_a_lock_held_past_the_busy_limit_fails_the_write_and_writes_nothing(database, monkeypatch):
    db, path = database
    monkeypatch.setattr(jdb, "SQLITE_BUSY_SECONDS", 0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(tick())
    try:
        with sqlite_on_loop(), pytest.raises(OperationalError, match="database is locked"):
            async with db.session() as s:
                await s.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        ticking.cancel()
        other.execute("ROLLBACK")
        other.close()
    assert ticks > 0  # it waited, and the loop went on meanwhile
    async with db.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0

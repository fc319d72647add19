"""SQLite statements run on the event loop's thread, pages' on the connection's thread, and a
file locked by another process is waited for without stopping the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from jiesu import db as jdb
from jiesu.db import SQLITE_OFF_LOOP, Database
from jiesu.web import ReadsOffLoop


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


async def test_statements_run_on_the_loop_thread_and_off_it_where_a_page_asks(database):
    db, _ = database
    assert await _thread_of_statements(db) == threading.get_ident()
    token = SQLITE_OFF_LOOP.set(True)
    try:
        assert await _thread_of_statements(db) != threading.get_ident()
    finally:
        SQLITE_OFF_LOOP.reset(token)


async def test_a_write_waits_for_another_process_lock_while_the_loop_goes_on(database):
    db, path = database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def write() -> None:
        async with db.session() as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))

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
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            async with db.session() as s:
                await s.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with db.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_reads_are_sent_off_the_loop_and_writes_are_not():
    app = FastAPI()

    @app.api_route("/where", methods=["GET", "POST"])
    async def where() -> dict:
        return {"off_loop": SQLITE_OFF_LOOP.get()}

    app.add_middleware(ReadsOffLoop)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/where")).json() == {"off_loop": True}
        assert (await client.post("/where")).json() == {"off_loop": False}
    assert SQLITE_OFF_LOOP.get() is False

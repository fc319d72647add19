"""Long reads of a SQLite file (supervision pages, reports, roll-ups) go through `Database.reading()`:
a connection of their own, so the service's writes go on meanwhile."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from jiesu.db import Database, sqlite_on_loop


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    async with database.session() as s:
        await s.execute(text("CREATE TABLE t (n INTEGER)"))
        await s.execute(text("INSERT INTO t VALUES (1)"))
    yield database
    await database.dispose()


async def test_a_write_commits_while_a_long_read_is_still_running_and_the_read_keeps_its_snapshot(db):
    release = threading.Event()  # the "long" read lasts until the test lets it go
    read_started = asyncio.Event()

    async def long_read() -> tuple[int, int]:
        async with db.reading() as s:
            raw = await (await s.connection()).get_raw_connection()
            raw.driver_connection._conn.create_function("held", 0, lambda: release.wait(30))
            before = (await s.execute(text("SELECT count(*) FROM t"))).scalar_one()
            read_started.set()
            await s.execute(text("SELECT held()"))
            after = (await s.execute(text("SELECT count(*) FROM t"))).scalar_one()
            return before, after

    with sqlite_on_loop():  # as if a hot path read: the held read must still run off the loop
        reader = asyncio.create_task(long_read())
    try:
        await read_started.wait()
        async with asyncio.timeout(10):  # with one connection for both, the write would wait for the read
            async with db.session() as s:
                await s.execute(text("INSERT INTO t VALUES (2)"))
        assert not reader.done()
    finally:
        release.set()
    assert await reader == (1, 1)  # one snapshot from start to end
    async with db.reading() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2


async def test_a_reading_session_cannot_write(db):
    with pytest.raises(OperationalError, match="readonly"):
        async with db.reading() as s:
            await s.execute(text("INSERT INTO t VALUES (3)"))
    async with db.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1



async def _wal_pages(db) -> int:
    async with db.reading() as s:  # a checkpoint of nothing: reports how many pages the WAL holds
        return (await s.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))).one()[1]


async def test_once_the_runtime_checkpoints_the_writers_commits_no_longer_do_and_nothing_is_lost(db):
    await db.checkpoint()  # the first call takes checkpoints over from the writer
    async with db.session() as s:
        await s.execute(text("CREATE TABLE big (b BLOB)"))
    for _ in range(30):  # 1,500 pages of 4 KB: past SQLite's own threshold of 1,000
        with sqlite_on_loop():
            async with db.session() as s:
                await s.execute(text("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 50) "
                                     "INSERT INTO big SELECT randomblob(4000) FROM r"))
    assert await _wal_pages(db) > 1000  # no commit copied them back

    assert await db.checkpoint() > 1000
    async with db.reading() as s:
        assert (await s.execute(text("SELECT count(*) FROM big"))).scalar_one() == 1500

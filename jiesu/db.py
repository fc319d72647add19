"""The one database session factory: async SQLAlchemy 2 on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC
from functools import partial
from pathlib import Path

import aiosqlite
from sqlalchemy import Column, Table, bindparam, delete, event, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import CHAR, DateTime, TypeDecorator


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime that comes back aware (UTC) on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class UUIDStr(TypeDecorator):
    """UUIDs stored as 36-character text: portable and readable in psql and sqlite3 alike."""

    impl = CHAR(36)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(value)

    def process_result_value(self, value, dialect):
        return None if value is None else uuid.UUID(value)


class Base(DeclarativeBase):
    """Not shared metadata: each service declares its own `Base` subclass with its own MetaData."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One connection per process and file: sessions queue for it in asyncio instead of
        # sleeping in SQLite's busy handler (which costs tens of milliseconds per conflict).
        # pysqlite's own implicit BEGIN breaks SAVEPOINT and starts read transactions that later
        # fail to upgrade to write ("database is locked"); BEGIN IMMEDIATE serialises writers
        # cleanly. WAL lets readers in other processes (a service per process) proceed.
        return _sqlite_engine(url, pool_size=1, begin="BEGIN IMMEDIATE",
                              pragmas=("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"))
    # Multi-row inserts go through asyncpg's executemany: one prepared statement, whatever the
    # row count. SQLAlchemy's default for asyncpg writes VALUES (…), (…) with a new statement
    # text for every row count, which PostgreSQL has to parse and plan each time.
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, use_insertmanyvalues=False)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only if it has been idle a while.

    SQLAlchemy's pool_pre_ping pings at every checkout, and for asyncpg a ping is BEGIN, a
    query and ROLLBACK: three round trips for every transaction, a fifth of what a busy
    consumer sends. A connection that was in use a moment ago is as alive as a ping could
    show. A failed ping drops every older connection of the pool too (the server went away),
    as pool_pre_ping does. A connection used within the last seconds that has died anyway
    (the server restarted under load) fails its first statement: that also invalidates the
    older connections; consumers retry their batch, and the HTTP request in flight gets an
    error its client retries.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(_dbapi_connection, record):
        record.info["returned"] = time.monotonic()  # a new connection is alive: no ping

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("returned", 0.0) > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:  # noqa: BLE001 - whatever the driver raised, the connection is gone
                raise InvalidatePoolError(str(exc)) from exc  # the pool reconnects and checks out again

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(_dbapi_connection, record):
        record.info["returned"] = time.monotonic()


SQLITE_ON_LOOP: ContextVar[bool] = ContextVar("sqlite_on_loop", default=False)

SQLITE_BUSY_SECONDS = 30.0  # how long to wait for another process's write lock on the file


@contextmanager
def sqlite_on_loop() -> Iterator[None]:
    """Run the SQLite statements of this block on the event loop's thread (see `_SQLiteOnLoop`).

    For the hot paths whose transactions are short and bounded: consumers applying a batch,
    outbox relay passes, intake's group commit. Tasks started inside the block inherit it.
    """
    token = SQLITE_ON_LOOP.set(True)
    try:
        yield
    finally:
        SQLITE_ON_LOOP.reset(token)


class _SQLiteOnLoop(aiosqlite.Connection):
    """An aiosqlite connection that can run statements on the event loop's own thread.

    aiosqlite hands every statement to a thread and back. On a local file a statement takes
    microseconds and the hand-off (a queue, a thread switch, a wake-up of the loop through
    its pipe, two contests for the GIL) costs more than the statement: in the embedded system
    it was 40 % of the process's CPU. Inside `sqlite_on_loop()` statements run directly;
    elsewhere (pages, roll-ups, purges, reconciliation: queries that may take seconds over a
    large ledger and must not stall everything else the process does) on the thread as before.

    SQLite's own busy handler would sleep in the loop's thread, so it is off (timeout 0). A
    statement that found the file locked by another process before any transaction began
    (our BEGIN IMMEDIATE, a lone read) did nothing, and is tried again after an asyncio sleep.
    """

    def __init__(self, connector) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as SQLAlchemy does for its own aiosqlite connections
        self._sent = 0  # statements handed to the thread (counted on the loop) …
        self._done = 0  # … and finished there (counted on the thread): one writer each

    async def _execute(self, fn, *args, **kwargs):
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        pause = 0.001
        while True:
            began_in_transaction = self._connection is not None and self._connection.in_transaction
            try:
                # Never overtake a statement still on the thread (one whose waiter was cancelled).
                if not SQLITE_ON_LOOP.get() or self._sent != self._done:
                    return await self._in_thread(fn, *args, **kwargs)
                if not self._running or self._connection is None:
                    raise ValueError("Connection closed")
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not self._may_retry(exc, fn, began_in_transaction) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _in_thread(self, fn, *args, **kwargs):
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")

        def counted():
            try:
                return fn(*args, **kwargs)
            finally:
                self._done += 1

        self._sent += 1
        return await super()._execute(counted)

    def _may_retry(self, exc: sqlite3.OperationalError, fn, began_in_transaction: bool) -> bool:
        """Only a single statement that was refused the lock outside any transaction had no effect
        (an executemany in autocommit may have written some rows before it was refused)."""
        busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
        return (busy and not began_in_transaction and not self._conn.in_transaction
                and getattr(fn, "__name__", "") not in ("executemany", "executescript"))


async def _connect_sqlite(database: str) -> aiosqlite.Connection:
    return await _SQLiteOnLoop(partial(sqlite3.connect, database, timeout=0, check_same_thread=False))


def _sqlite_engine(url: str, *, pool_size: int, begin: str, pragmas: tuple[str, ...]) -> AsyncEngine:
    """A pool of connections to a SQLite file whose transactions SQLAlchemy owns (`begin` starts each)."""
    database = make_url(url).database or ":memory:"
    engine = create_async_engine(url, async_creator=partial(_connect_sqlite, database),
                                 pool_size=pool_size, max_overflow=0, pool_timeout=120)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        for pragma in pragmas:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql(begin)

    return engine


PURGE_CHUNK = 5000  # rows a purge deletes in one transaction


async def delete_in_chunks(db: Database, table: Table, condition, *, oldest_first, chunk: int = PURGE_CHUNK) -> int:
    """Delete the rows matching `condition`, `chunk` at a time, each in a transaction of its own.

    Purges of a busy service's outbox or inbox meet millions of rows; one DELETE of them all
    would hold the service's writes (on SQLite, its one write lock) for as long as it takes.
    """
    (key,) = table.primary_key.columns
    batch = select(key).where(condition).order_by(oldest_first).limit(chunk).scalar_subquery()
    deleted = 0
    while True:
        async with db.session() as session:
            n = (await session.execute(delete(table).where(key.in_(batch)))).rowcount or 0
        deleted += n
        if n < chunk:
            return deleted
        await asyncio.sleep(0)  # the writes waiting meanwhile go first


SQLITE_READERS = 2  # connections per SQLite file for `Database.reading()`


def _sqlite_reading_engine(url: str) -> AsyncEngine:
    """Connections of their own for long reads of a SQLite file: a deferred BEGIN is a read
    transaction, one snapshot of the WAL, no write lock. Without WAL a reader would block the
    writer's commit: make sure, as the writer does. A WAL reader is rarely kept waiting (a
    checkpoint restarting the log); it waits on its own thread, never on the loop, so SQLite's
    busy handler is the right tool here."""
    return _sqlite_engine(url, pool_size=SQLITE_READERS, begin="BEGIN",
                          pragmas=("journal_mode=WAL", "query_only=1", "busy_timeout=30000"))


class Database:
    """One service's database: its engines and session factories."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self.reading_engine = _sqlite_reading_engine(url) if is_sqlite(url) else None
        self._readers = (async_sessionmaker(self.reading_engine, expire_on_commit=False, autoflush=False)
                         if self.reading_engine is not None else self.sessions)
        self._checkpoints_taken_over = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads that may take long: the supervision pages, reports, roll-ups.

        A SQLite file has one writing connection per process, and every `session()` takes the
        write lock up front; a ledger or a year's report read there at a million tickets holds
        every write of the service (consumers, timers, actions) for seconds. This session reads
        on a connection of its own (on its thread, so the event loop runs on), in one snapshot
        of the WAL, while writes go on. It cannot write ("attempt to write a readonly
        database"). On PostgreSQL reads never hold up writes: it is an ordinary session.
        """
        off_loop = SQLITE_ON_LOOP.set(False)  # even when called from a hot path: these may be long
        try:
            async with self._readers() as session, session.begin():
                yield session
        finally:
            SQLITE_ON_LOOP.reset(off_loop)

    async def dispose(self) -> None:
        if self.reading_engine is not None:
            await self.reading_engine.dispose()
        await self.engine.dispose()

    async def checkpoint(self) -> int:
        """Copy the SQLite file's WAL into it, on a reading connection: on its thread, taking no write lock.

        SQLite checkpoints by itself inside the commit that takes the WAL past 1,000 pages; on the
        hot paths that commit runs on the event loop, which then stands still (5-17 ms) while the
        pages are copied and synced. A service's runtime calls this every second instead; the first
        call turns the writer's own checkpoints off. Returns the pages copied (0 on PostgreSQL).
        """
        if self.reading_engine is None:
            return 0
        if not self._checkpoints_taken_over:
            async with self.session() as s:
                await s.execute(text("PRAGMA wal_autocheckpoint=0"))
            self._checkpoints_taken_over = True
        async with self.reading() as s:
            _busy, _in_log, copied = (await s.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))).one()
        return copied

    async def autovacuum_off(self) -> bool:
        """PostgreSQL without autovacuum never learns its tables' sizes: plans made while they were
        small stay, and look-ups turn into scans as they grow (operations must ANALYZE instead)."""
        if self.dialect != "postgresql":
            return False
        async with self.session() as s:
            return (await s.scalar(text("SHOW autovacuum"))) != "on"


def insert_ignoring_conflicts(table, dialect: str, values: dict, *conflict_columns: str):
    """INSERT … ON CONFLICT DO NOTHING for PostgreSQL and SQLite alike."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict_columns) or None)


def one_of(column, values, dialect: str):
    """`column IN (values)`, written on PostgreSQL as `= ANY(:array)`: one statement text, prepared
    once, whatever the number of values (IN (…) has a text, and a plan, per count)."""
    if dialect == "postgresql":
        from sqlalchemy import any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


async def insert_rows(session: AsyncSession, table: Table, rows: list[dict]) -> None:
    """Insert many rows (all with the keys of the first) in one statement: what `execute(table.insert(), rows)` does.

    On PostgreSQL the rows travel as one array per column and are spread by `unnest`: one
    statement for the server to plan and run instead of one per row, and no per-row
    parameter handling in SQLAlchemy. For 1,000 small rows this halves the server's CPU
    and takes a quarter off the client's. Elsewhere it is the ordinary executemany.
    """
    if not rows:
        return
    dialect = session.bind.dialect
    plan = _unnest_insert(table, tuple(rows[0]), dialect) if dialect.name == "postgresql" else None
    if plan is None:
        await session.execute(table.insert(), rows)
        return
    statement, given, defaulted = plan
    values = _arrays(given, rows)
    for j, make in enumerate(defaulted, start=len(given)):
        values[f"c{j}"] = [make() for _ in rows]
    await session.execute(statement, values)


async def update_rows(session: AsyncSession, table: Table, rows: list[dict], *, by: str) -> None:
    """Update many rows, each found by its value of the column `by`, to the other values given with it.

    All rows carry the keys of the first. On PostgreSQL it is one UPDATE … FROM unnest(…)
    (as `insert_rows`), unless a row is named twice: one statement would apply only one of
    the two, where an executemany applies both in order, as it does elsewhere.
    """
    if not rows:
        return
    dialect = session.bind.dialect
    keys = tuple(rows[0])
    if dialect.name == "postgresql" and len({row[by] for row in rows}) == len(rows):
        statement, given = _unnest_update(table, keys, by, dialect)
        await session.execute(statement, _arrays(given, rows))
        return
    await session.execute(_update_by(table, by), [{("b_" + k if k == by else k): v for k, v in row.items()}
                                                  for row in rows])


def _arrays(given: list[tuple[str, Callable | None]], rows: list[dict]) -> dict[str, list]:
    """One array of bind values per column: the rows' values, each processed as SQLAlchemy would."""
    values = {}
    for i, (key, process) in enumerate(given):
        column = [row[key] for row in rows]
        values[f"c{i}"] = [process(v) for v in column] if process else column  # None too, as SQLAlchemy does
    return values


def _unnested(columns: list, dialect) -> tuple[str, list[str]]:
    """`unnest(…) WITH ORDINALITY AS u(c0, c1, …, n)` for arrays of these columns' values (`u.n` numbers
    the rows from 1), and each value as the column's type.

    JSON travels as text (serialised as SQLAlchemy serialises it) and is cast row by row.
    """
    arrays, values = [], []
    for i, column in enumerate(columns):
        sql_type = column.type.compile(dialect=dialect)
        json = isinstance(column.type, sqltypes.JSON)
        arrays.append(f"CAST(:c{i} AS {'TEXT' if json else sql_type}[])")
        values.append(f"CAST(u.c{i} AS {sql_type})" if json else f"u.c{i}")
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    return f"unnest({', '.join(arrays)}) WITH ORDINALITY AS u({names}, n)", values


def _processor(column: Column, dialect) -> Callable | None:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


@functools.cache
def _unnest_insert(table: Table, keys: tuple[str, ...], dialect):
    """The INSERT … SELECT FROM unnest(…) for these columns of a table, or None where it cannot serve.

    Columns the rows leave out get their Python-side default per row (as SQLAlchemy's insert
    gives them), or are left to the server's. Rows go in their given order, so serial ids follow
    it as an executemany's do: the outbox relay publishes a ticket's events in id order.
    """
    defaulted = []
    for column in table.columns:
        if column.key in keys or column.default is None:
            continue
        if not (column.default.is_scalar or column.default.is_callable):
            return None  # a SQL expression or sequence default: SQLAlchemy's own insert knows how
        defaulted.append(column)
    columns = [table.c[k] for k in keys] + defaulted
    source, values = _unnested(columns, dialect)
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in columns)
    statement = text(f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "
                     f"SELECT {', '.join(values)} FROM {source} ORDER BY u.n")  # ids in the rows' order
    defaults = []
    for column in defaulted:
        default, process = column.default, _processor(column, dialect)
        produce = (lambda d=default: d.arg) if default.is_scalar else (lambda d=default: d.arg(None))
        defaults.append(produce if process is None else (lambda p=produce, f=process: f(p())))
    return statement, [(k, _processor(table.c[k], dialect)) for k in keys], defaults


@functools.cache
def _unnest_update(table: Table, keys: tuple[str, ...], by: str, dialect):
    """UPDATE … SET … FROM unnest(…) WHERE the table's `by` equals each row's."""
    columns = [table.c[k] for k in keys]
    source, values = _unnested(columns, dialect)
    quote = dialect.identifier_preparer.quote
    target = dialect.identifier_preparer.format_table(table)
    sets = ", ".join(f"{quote(c.name)} = {v}" for c, v in zip(columns, values, strict=True) if c.key != by)
    statement = text(f"UPDATE {target} SET {sets} FROM {source} "
                     f"WHERE {target}.{quote(table.c[by].name)} = {values[keys.index(by)]}")
    return statement, [(k, _processor(table.c[k], dialect)) for k in keys]


@functools.cache
def _update_by(table: Table, by: str):
    """The executemany form: SET columns are the parameters', the row found by `b_<by>`."""
    return update(table).where(table.c[by] == bindparam("b_" + by))

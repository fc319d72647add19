"""`insert_rows` and `update_rows` write what SQLAlchemy's executemany writes, in one statement on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, Float, Integer, LargeBinary, MetaData, String, Table,
                        Text, event, func, select, text)
from sqlalchemy.exc import StatementError

from jiesu.db import Database, UTCDateTime, UUIDStr, insert_rows, update_rows


def _table(metadata: MetaData, name: str) -> Table:
    """Every kind of column jiesu's tables have, defaults of each sort, and names SQL reserves."""
    return Table(
        name, metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("ticket_id", UUIDStr, nullable=True),
        Column("at", UTCDateTime, nullable=True),
        Column("doc", JSON, nullable=True),
        Column("tags", JSON, nullable=False, default=list),
        Column("flag", Boolean, nullable=False, default=False),
        Column("count", Integer, nullable=False, default=0),
        Column("later", Integer, nullable=False, server_default=text("7")),
        Column("value", LargeBinary, nullable=True),
        Column("offset", String(16), nullable=True),
        Column("note", Text, nullable=True),
        Column("score", Float, nullable=True),
        Column("day", Date, nullable=True),
    )


def _rows() -> list[dict]:
    at = datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
    return [
        {"ticket_id": uuid.uuid4(), "at": at + timedelta(hours=i), "doc": {"why": "规则", "n": [i, None]},
         "value": bytes([i, 0, 255]), "offset": "o", "note": "中文\n'引号'", "score": 0.25 * i, "day": date(2026, 10, i + 1)}
        for i in range(3)
    ] + [{"ticket_id": None, "at": None, "doc": None, "value": None, "offset": None, "note": None, "score": None,
          "day": None}]


@pytest.fixture
async def db(url):  # SQLite and PostgreSQL (conftest)
    database = Database(url)
    yield database
    await database.dispose()


def _statements(db: Database) -> list[tuple[str, bool]]:
    """The statements sent from now on, each with whether it was an executemany."""
    sent = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, _parameters, _context, executemany):
        sent.append((statement, executemany))

    return sent


async def _created(db: Database, *names: str) -> list[Table]:
    metadata = MetaData()
    tables = [_table(metadata, name) for name in names]
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return tables


async def _written(db: Database, table: Table) -> list:
    async with db.session() as s:
        result = await s.execute(select(table).order_by(table.c.id))
        null_docs = await s.scalar(select(func.count()).where(table.c.doc.is_(None)))  # SQL NULL, not JSON null
        return [*result.all(), null_docs]


async def test_insert_rows_writes_what_an_executemany_insert_writes(db):
    ours, theirs = await _created(db, "router_rows_ours", "router_rows_theirs")
    rows = _rows()
    statements = _statements(db)
    async with db.session() as s:
        await insert_rows(s, ours, rows)
    if db.dialect == "postgresql":
        assert len(statements) == 1 and not statements[0][1]  # one statement, not an executemany
    async with db.session() as s:
        await s.execute(theirs.insert(), rows)
    assert await _written(db, ours) == await _written(db, theirs)
    assert (await _written(db, ours))[0][1:6] == (rows[0]["ticket_id"], rows[0]["at"], rows[0]["doc"], [], False)


async def test_update_rows_sets_each_named_row_to_its_values_and_leaves_the_others(db):
    ours, theirs = await _created(db, "router_rows_ours", "router_rows_theirs")
    rows = _rows()
    for table in (ours, theirs):
        async with db.session() as s:
            await insert_rows(s, table, rows)
    later = datetime(2026, 11, 2, 9, tzinfo=UTC)
    changes = [{"at": later, "doc": doc, "tags": ["甲"], "flag": True, "note": None, "ticket_id": rows[i]["ticket_id"]}
               for i, doc in ((2, None), (0, {"k": "新"}))]
    statements = _statements(db)
    async with db.session() as s:
        await update_rows(s, ours, changes, by="ticket_id")
    if db.dialect == "postgresql":
        assert len(statements) == 1 and not statements[0][1]
    async with db.session() as s:
        for change in changes:
            await s.execute(theirs.update().where(theirs.c.ticket_id == change["ticket_id"]).values(change))
    ours_now, theirs_now = await _written(db, ours), await _written(db, theirs)
    assert ours_now == theirs_now
    assert [r.note for r in ours_now[:4]] == [None, "中文\n'引号'", None, None]
    assert (ours_now[0].doc, ours_now[0].tags, ours_now[2].flag, ours_now[2].at) == ({"k": "新"}, ["甲"], True, later)


async def test_update_rows_applies_a_row_named_twice_in_order(db):
    (table,) = await _created(db, "router_rows_ours")
    rows = _rows()
    async with db.session() as s:
        await insert_rows(s, table, rows)
    statements = _statements(db)
    async with db.session() as s:
        await update_rows(s, table, [{"ticket_id": rows[1]["ticket_id"], "note": "先"},
                                     {"ticket_id": rows[1]["ticket_id"], "note": "后"}], by="ticket_id")
    assert [r.note for r in (await _written(db, table))[:2]] == ["中文\n'引号'", "后"]
    # One UPDATE … FROM would apply one of the two, which one PostgreSQL does not promise.
    assert [executemany for sql, executemany in statements if sql.startswith("UPDATE")] == [True]


async def test_insert_rows_wants_every_row_to_have_the_keys_of_the_first(db):
    (table,) = await _created(db, "router_rows_short")
    with pytest.raises((KeyError, StatementError)):
        async with db.session() as s:
            await insert_rows(s, table, [{"note": "a", "score": 1.0}, {"note": "b"}])
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(table)) == 0

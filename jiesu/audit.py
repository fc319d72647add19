"""The append-only audit trail: who changed what, and who saw whose personal data, hash-chained.

Each service keeps `<service>_audit`. Rows are written in the same transaction as the change
they record (every event a service emits is a state change and is recorded by the unit of
work; views of personal data are recorded by the pages and APIs that show them: `view_contact`
for one ticket, `export_contact` for a list of tickets handed out with contacts, naming the
export, its filter and the tickets, `search_by_phone` with the number masked). A sealer
then links the rows in id order into a SHA-256 chain — off the hot path, so concurrent
transactions never wait on each other — and `jiesu audit verify` recomputes the chain.

The sealer never touches a row: each pass appends one seal to `<service>_audit_seals` naming
the run of rows it chained (first and last id, how many), the chain's value before and after
them, and a short digest of each row, by which `verify` names the first altered row. Rows
sealed one by one by earlier versions (`prev_hash`, `hash` set on the row) begin the chain,
and the first seal goes on from the last of them. The database refuses to change or delete a
row of either table (triggers created by the migrations).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import timedelta
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from jiesu.db import Database, UTCDateTime, UUIDStr
from schemas.events import utcnow

# Who is acting, and from where: set by the web layer after authentication, by consumers for events.
current_actor: contextvars.ContextVar[str] = contextvars.ContextVar("audit_actor", default="system")
current_address: contextvars.ContextVar[str] = contextvars.ContextVar("audit_address", default="")

GENESIS = "0" * 64
ROW_DIGEST = 16  # hex digits of each row's chain value kept in its seal: enough to name the altered row
SEAL_BATCH = 1000  # rows a seal covers at most
SEAL_AFTER = timedelta(seconds=2)  # rows younger than this may still have an earlier id uncommitted


def audit_table(metadata: MetaData, prefix: str) -> Table:
    """`<prefix>_audit` and, beside it in the metadata, its seals (`seals_of`)."""
    table = Table(
        f"{prefix}_audit",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("at", UTCDateTime, nullable=False),
        Column("actor", String(64), nullable=False),
        Column("address", String(64), nullable=False),
        Column("action", String(64), nullable=False, index=True),
        Column("ticket_id", UUIDStr, nullable=True, index=True),
        Column("event_id", UUIDStr, nullable=True),
        Column("details", JSON, nullable=False),
        # Set on rows sealed one by one before seals existed; NULL on every row since.
        Column("prev_hash", String(64), nullable=True),
        Column("hash", String(64), nullable=True),
    )
    Table(
        f"{prefix}_audit_seals",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("first_id", BigInteger, nullable=False, unique=True),
        Column("last_id", BigInteger, nullable=False),
        Column("rows", Integer, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Column("digests", Text, nullable=False),  # ROW_DIGEST hex digits of each row's chain value, in order
        Column("sealed_at", UTCDateTime, nullable=False),
    )
    return table


def seals_of(table: Table) -> Table:
    return table.metadata.tables[f"{table.name}_seals"]


def protection_sql(table: str, dialect: str, *, until_sealed: bool = False) -> list[str]:
    """Triggers that make the table append-only: no row is ever changed or deleted.

    `until_sealed`: the triggers of the versions that wrote each row's link into the row, which
    let an unsealed row take it (the migrations that created the trails, and the way back from
    seals, use them).
    """
    if dialect == "postgresql":
        refuse = "RAISE EXCEPTION 'audit trail is append-only';"
        if until_sealed:
            refuse = f"""IF TG_OP = 'DELETE' OR OLD.hash IS NOT NULL OR NEW.id <> OLD.id OR NEW.at <> OLD.at OR NEW.actor <> OLD.actor
     OR NEW.action <> OLD.action OR NEW.details::text <> OLD.details::text THEN
    {refuse}
  END IF;
  RETURN NEW;"""
        return [
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
BEGIN
  {refuse}
END $$ LANGUAGE plpgsql""",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
        ]
    when = ("WHEN OLD.hash IS NOT NULL OR NEW.action IS NOT OLD.action OR NEW.actor IS NOT OLD.actor "
            "OR NEW.details IS NOT OLD.details " if until_sealed else "")
    return [
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE ON {table} {when}"
        f"BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END",
    ]


def drop_protection_sql(table: str, dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
                f"DROP FUNCTION IF EXISTS {table}_append_only()"]
    return [f"DROP TRIGGER IF EXISTS {table}_no_delete", f"DROP TRIGGER IF EXISTS {table}_no_change"]


def upgrade_to_seals(op, prefix: str) -> None:
    """The Alembic steps from rows sealed one by one to seals, for a service's `<prefix>_audit`."""
    import sqlalchemy as sa

    audit, seals, dialect = f"{prefix}_audit", f"{prefix}_audit_seals", op.get_bind().dialect.name
    op.create_table(
        seals,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("digests", sa.Text(), nullable=False),
        sa.Column("sealed_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("first_id"),
    )
    op.drop_index(f"ix_{audit}_unsealed", table_name=audit)  # every new row stays unhashed: it would hold them all
    for statement in drop_protection_sql(audit, dialect) + protection_sql(audit, dialect) + protection_sql(seals, dialect):
        op.execute(statement)


def downgrade_from_seals(op, prefix: str) -> None:
    """Back to rows sealed one by one; rows sealed by seals since look unsealed to that version."""
    import sqlalchemy as sa

    audit, seals, dialect = f"{prefix}_audit", f"{prefix}_audit_seals", op.get_bind().dialect.name
    for statement in drop_protection_sql(seals, dialect) + drop_protection_sql(audit, dialect) \
            + protection_sql(audit, dialect, until_sealed=True):
        op.execute(statement)
    op.create_index(f"ix_{audit}_unsealed", audit, ["id"], unique=False,
                    postgresql_where=sa.text("hash IS NULL"), sqlite_where=sa.text("hash IS NULL"))
    op.drop_table(seals)


def entry(action: str, *, ticket_id: UUID | None = None, event_id: UUID | None = None,
          details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the trail: the action, by whom and from where (the context's actor), now."""
    return {"at": utcnow(), "actor": current_actor.get()[:64], "address": current_address.get()[:64],
            "action": action[:64], "ticket_id": ticket_id, "event_id": event_id, "details": details or {}}


async def record(session: AsyncSession, table: Table, action: str, *, ticket_id: UUID | None = None,
                 event_id: UUID | None = None, details: dict[str, Any] | None = None) -> None:
    await session.execute(table.insert().values(**entry(action, ticket_id=ticket_id, event_id=event_id,
                                                        details=details)))


def _digest(prev: str, row) -> str:
    body = json.dumps([row.id, row.at.isoformat(), row.actor, row.address, row.action,
                       str(row.ticket_id) if row.ticket_id else None, str(row.event_id) if row.event_id else None,
                       row.details], ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + body).encode()).hexdigest()


async def _chain_end(session: AsyncSession, table: Table) -> tuple[int, str]:
    """The last row id the chain covers and the chain's value there."""
    seals = seals_of(table)
    last = (await session.execute(select(seals.c.last_id, seals.c.hash).order_by(seals.c.id.desc()).limit(1))).first()
    if last is None:  # nothing sealed since seals exist: go on from the rows sealed one by one, if any
        last = (await session.execute(select(table.c.id, table.c.hash).where(table.c.hash.is_not(None))
                                      .order_by(table.c.id.desc()).limit(1))).first()
    return (last[0], last[1]) if last else (0, GENESIS)


async def seal(db: Database, table: Table, *, batch: int = SEAL_BATCH, settle: timedelta = SEAL_AFTER) -> int:
    """Chain the rows after the last seal (older than a moment) with one new seal; returns how many."""
    async with db.session() as s:
        if db.dialect == "postgresql":
            key = zlib.crc32(f"jiesu-audit-{table.name}".encode())
            if not await s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}):
                return 0
        after, prev = await _chain_end(s, table)
        # A seal covers an unbroken run of ids: it ends before the first row too recent to seal, since
        # an earlier id may belong to a transaction that has not committed yet. Those recent rows stay
        # in the database until a later pass (under load a second's worth, each read once, not per pass).
        young = (select(func.min(table.c.id)).where(table.c.id > after, table.c.at > utcnow() - settle)
                 .scalar_subquery())
        rows = (await s.execute(select(table).where(table.c.id > after, table.c.id < func.coalesce(young, 2 ** 62))
                                .order_by(table.c.id).limit(batch))).all()
        if not rows:
            return 0
        start, digests = prev, []
        for row in rows:
            prev = _digest(prev, row)
            digests.append(prev[:ROW_DIGEST])
        await s.execute(seals_of(table).insert().values(
            first_id=rows[0].id, last_id=rows[-1].id, rows=len(rows), prev_hash=start, hash=prev,
            digests="".join(digests), sealed_at=utcnow()))
        return len(rows)


async def seal_all(db: Database, table: Table) -> int:
    """Seal every row old enough, in passes of `seal`'s batch; how many."""
    total = 0
    while True:
        sealed = await seal(db, table, batch=SEAL_BATCH)
        total += sealed
        if sealed < SEAL_BATCH:
            return total


@dataclass(frozen=True)
class Verification:
    checked: int
    unsealed: int
    broken_at: int | None  # the first row whose hash does not follow from the chain

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def _seals_through(db: Database, seals: Table, last_id: int) -> AsyncIterator[Any]:
    """The seals in order, up to the one ending at `last_id`, a page at a time."""
    after = 0
    while True:
        async with db.reading() as s:
            page = (await s.execute(select(seals).where(seals.c.id > after, seals.c.last_id <= last_id)
                                    .order_by(seals.c.id).limit(1000))).all()
        for seal_row in page:
            yield seal_row
        if len(page) < 1000:
            return
        after = page[-1].id


async def verify(db: Database, table: Table) -> Verification:
    """Recompute the chain over every row in id order, against the rows' own hashes and the seals.

    Reads in snapshots of their own (on SQLite beside the writer), so writes go on meanwhile.
    """
    seals = seals_of(table)
    prev, checked, unsealed = GENESIS, 0, 0
    async with db.reading() as s:
        # Every row a seal covers committed before the seal did, so the rows' snapshot, taken after
        # this, holds them all; rows after the last seal are not sealed yet.
        covered = await s.scalar(select(seals.c.last_id).order_by(seals.c.id.desc()).limit(1))
        pending = aiter(_seals_through(db, seals, covered or 0))
        current, position = await anext(pending, None), 0
        async for row in await s.stream(select(table).order_by(table.c.id)):
            if row.hash is not None:  # sealed one by one, before seals existed
                if current is not None and current.first_id <= row.id or row.prev_hash != prev \
                        or _digest(prev, row) != row.hash:
                    return Verification(checked, unsealed, row.id)
                prev = row.hash
                checked += 1
                continue
            if covered is None or row.id > covered:
                unsealed += 1
                continue
            if current is None or (position == 0 and current.prev_hash != prev):
                return Verification(checked, unsealed, row.id)  # a broken link between seals
            prev = _digest(prev, row)
            # Each row's place in its seal: a row altered, added or removed is the first that fails here.
            if prev[:ROW_DIGEST] != current.digests[position * ROW_DIGEST:(position + 1) * ROW_DIGEST]:
                return Verification(checked, unsealed, row.id)
            position += 1
            if position == current.rows:
                if row.id != current.last_id or prev != current.hash:
                    return Verification(checked, unsealed, row.id)  # the seal itself altered
                current, position = await anext(pending, None), 0
            checked += 1
        if current is not None:  # a seal's last rows are gone
            return Verification(checked, unsealed, current.last_id)
    return Verification(checked, unsealed, None)

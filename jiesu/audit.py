"""The append-only audit trail: who changed what, and who saw whose personal data, hash-chained.

Each service keeps `<service>_audit`. Rows are written in the same transaction as the change
they record (every event a service emits is a state change and is recorded by the unit of
work; views of personal data are recorded by the pages and APIs that show them: `view_contact`
for one ticket, `export_contact` for a list of tickets handed out with contacts, naming the
export, its filter and the tickets, `search_by_phone` with the number masked). A sealer
then links the rows in id order into a SHA-256 chain — off the hot path, so concurrent
transactions never wait on each other — and `jiesu audit verify` recomputes the chain. The
database refuses to delete rows or to change a sealed one (triggers created by the migrations).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from jiesu.db import Database, UTCDateTime, UUIDStr
from schemas.events import utcnow

# Who is acting, and from where: set by the web layer after authentication, by consumers for events.
current_actor: contextvars.ContextVar[str] = contextvars.ContextVar("audit_actor", default="system")
current_address: contextvars.ContextVar[str] = contextvars.ContextVar("audit_address", default="")

GENESIS = "0" * 64
SEAL_AFTER = timedelta(seconds=2)  # rows younger than this may still have an earlier id uncommitted


def audit_table(metadata: MetaData, prefix: str) -> Table:
    return Table(
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
        Column("prev_hash", String(64), nullable=True),
        Column("hash", String(64), nullable=True),  # set once by the sealer, never changed
        # The sealer's work list: without it each pass would scan the whole, ever-growing trail.
        Index(f"ix_{prefix}_audit_unsealed", "id", postgresql_where=text("hash IS NULL"),
              sqlite_where=text("hash IS NULL")),
    )


def protection_sql(table: str, dialect: str) -> list[str]:
    """Triggers that make the table append-only: no delete, and a sealed row never changes."""
    if dialect == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' OR OLD.hash IS NOT NULL OR NEW.id <> OLD.id OR NEW.at <> OLD.at OR NEW.actor <> OLD.actor
     OR NEW.action <> OLD.action OR NEW.details::text <> OLD.details::text THEN
    RAISE EXCEPTION 'audit trail is append-only';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql""",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
        ]
    return [
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE ON {table} WHEN OLD.hash IS NOT NULL "
        f"OR NEW.action IS NOT OLD.action OR NEW.actor IS NOT OLD.actor OR NEW.details IS NOT OLD.details "
        f"BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END",
    ]


def drop_protection_sql(table: str, dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
                f"DROP FUNCTION IF EXISTS {table}_append_only()"]
    return [f"DROP TRIGGER IF EXISTS {table}_no_delete", f"DROP TRIGGER IF EXISTS {table}_no_change"]


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


async def seal(db: Database, table: Table, *, batch: int = 1000, settle: timedelta = SEAL_AFTER) -> int:
    """Chain the unsealed rows (older than a moment) onto the last sealed one; returns how many."""
    async with db.session() as s:
        if db.dialect == "postgresql":
            key = zlib.crc32(f"jiesu-audit-{table.name}".encode())
            if not await s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}):
                return 0
        last = (await s.execute(select(table.c.id, table.c.hash).where(table.c.hash.is_not(None))
                                .order_by(table.c.id.desc()).limit(1))).first()
        prev = last.hash if last else GENESIS
        rows = (await s.execute(select(table).where(table.c.hash.is_(None), table.c.at <= utcnow() - settle)
                                .order_by(table.c.id).limit(batch))).all()
        links = []
        for row in rows:
            digest = _digest(prev, row)
            links.append({"row_id": row.id, "row_prev": prev, "row_hash": digest})
            prev = digest
        if links:  # one executemany, not a statement per row
            await s.execute(update(table).where(table.c.id == bindparam("row_id"))
                            .values(prev_hash=bindparam("row_prev"), hash=bindparam("row_hash")), links)
        return len(rows)


@dataclass(frozen=True)
class Verification:
    checked: int
    unsealed: int
    broken_at: int | None  # the first row whose hash does not follow from the chain

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def verify(db: Database, table: Table) -> Verification:
    prev = GENESIS
    checked = 0
    async with db.session() as s:
        unsealed = await s.scalar(select(func.count()).select_from(table).where(table.c.hash.is_(None)))
        result = await s.stream(select(table).where(table.c.hash.is_not(None)).order_by(table.c.id))
        async for row in result:
            if row.prev_hash != prev or _digest(prev, row) != row.hash:
                return Verification(checked, unsealed, row.id)
            prev = row.hash
            checked += 1
    return Verification(checked, unsealed, None)

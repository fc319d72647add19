"""Per-service messaging tables and the unit of work that writes the outbox.

Every service owns three tables, prefixed with its name so that services can share one
database when an operator wants to (and the test database) without clashing:

- `<svc>_outbox`: events owed to Kafka, written in the same transaction as the state
  change that caused them; the relay publishes and marks them sent.
- `<svc>_inbox`: ids of events already applied; claimed at the start of the transaction
  that applies them (`Transaction.claim`), so a redelivered event is recognised and
  skipped, and an event whose transaction rolls back is not marked.
- `<svc>_dead_letters`: poison messages after bounded retries, with the error, until
  replayed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from jiesu import audit
from jiesu.audit import audit_table
from jiesu.db import PURGE_CHUNK, Database, UTCDateTime, UUIDStr, delete_in_chunks, insert_rows
from schemas.events import Envelope, utcnow


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table
    dead_letters: Table
    audit: Table | None = None  # <svc>_audit (jiesu.audit): every emitted event is recorded there


def messaging_tables(metadata: MetaData, prefix: str, *, audit: bool = False) -> MessagingTables:
    outbox = Table(
        f"{prefix}_outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", UUIDStr, nullable=False, unique=True),
        Column("topic", String(120), nullable=False),
        Column("key", String(64), nullable=False),
        Column("event_type", String(64), nullable=False),
        Column("ticket_id", UUIDStr, nullable=True, index=True),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
    )
    Index(
        f"ix_{prefix}_outbox_unsent",
        outbox.c.id,
        postgresql_where=outbox.c.sent_at.is_(None),
        sqlite_where=outbox.c.sent_at.is_(None),
    )
    Index(f"ix_{prefix}_outbox_sent_at", outbox.c.sent_at)
    inbox = Table(
        f"{prefix}_inbox",
        metadata,
        Column("event_id", UUIDStr, primary_key=True),
        Column("topic", String(120), nullable=False),
        Column("processed_at", UTCDateTime, nullable=False, index=True),  # the purge goes by it
    )
    dead_letters = Table(
        f"{prefix}_dead_letters",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", String(120), nullable=False, index=True),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=False),
        Column("digest", String(64), nullable=False),
        Column("event_id", String(64), nullable=True),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("replayed_at", UTCDateTime, nullable=True),
        UniqueConstraint("topic", "partition", "offset", "digest", name=f"uq_{prefix}_dead_letters_position"),
    )
    return MessagingTables(outbox, inbox, dead_letters, audit_table(metadata, prefix) if audit else None)


SQLITE_CLAIM_ROWS = 5000


@functools.cache
def _postgresql_claim(inbox: Table):
    """A consumer's claim on PostgreSQL, built once per inbox: one statement text, whatever the batch's size."""
    given = func.unnest(bindparam("ids", type_=postgresql.ARRAY(String)),
                        bindparam("topics", type_=postgresql.ARRAY(String))
                        ).table_valued("event_id", "topic").render_derived()
    return (postgresql.insert(inbox)
            .from_select(["event_id", "topic", "processed_at"],
                         select(given.c.event_id, given.c.topic, bindparam("at", type_=UTCDateTime)))
            .on_conflict_do_nothing(index_elements=[inbox.c.event_id]).returning(inbox.c.event_id))


class Transaction:
    """One database transaction of a service, and the events it owes (the unit of work).

    `emit` owes an event in the same transaction as the state change, so either both
    happen or neither does. What the unit of work owes (outbox rows, audit rows, appended
    log rows) is collected and written at the end with one multi-row insert per table: a
    consumer applying a batch of 200 events then pays a round trip per table for them, not
    one per event.
    """

    def __init__(self, session: AsyncSession, tables: MessagingTables) -> None:
        self.session = session
        self.tables = tables
        self.emitted: list[Envelope] = []
        self._outbox: list[dict] = []
        self._audit: list[dict] = []
        self._appended: dict[Table, list[dict]] = {}
        self._committed: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (never if it rolls back): for what a process
        remembers about the database, which must not outlive a rollback."""
        self._committed.append(callback)

    @property
    def wrote_outbox(self) -> bool:
        return bool(self._outbox)

    async def emit(self, topic: str, envelope: Envelope, *, audit_details: dict | None = None) -> None:
        """Owe `envelope` on `topic`, and its row on the audit trail (with `audit_details`, if the event's own
        payload does not say enough: the trail keeps no payloads)."""
        if self.tables.audit is not None:  # every event a service emits records a change of state
            self._audit.append(audit.entry(envelope.event_type, ticket_id=envelope.ticket_id,
                                           event_id=envelope.event_id, details=audit_details))
        await self.emit_raw(
            topic,
            key=str(envelope.ticket_id),
            value=envelope.to_bytes(),
            event_type=envelope.event_type,
            event_id=envelope.event_id,
            ticket_id=envelope.ticket_id,
        )
        self.emitted.append(envelope)

    async def emit_raw(self, topic: str, *, key: str, value: bytes, event_type: str, event_id: UUID,
                       ticket_id: UUID | None) -> None:
        """Owe a message whose bytes are given as they are (dead letters and their replays)."""
        self._outbox.append({"event_id": event_id, "topic": topic, "key": key, "event_type": event_type,
                             "ticket_id": ticket_id, "value": value, "created_at": utcnow(), "attempts": 0})

    async def reemit(self, ticket_id: UUID, event_types: tuple[str, ...] | None = None) -> int:
        """Mark this ticket's already-sent events for sending again (same event ids).

        Reconciliation uses it when the broker may have lost them; consumers skip the
        ones they already applied.
        """
        stmt = update(self.tables.outbox).where(
            self.tables.outbox.c.ticket_id == ticket_id, self.tables.outbox.c.sent_at.is_not(None)
        )
        if event_types:
            stmt = stmt.where(self.tables.outbox.c.event_type.in_(event_types))
        result = await self.session.execute(stmt.values(sent_at=None))
        return result.rowcount or 0

    async def claim(self, events: list[tuple[UUID, str]]) -> set[UUID]:
        """Mark these events (id, topic) applied by this transaction; return those no transaction had claimed.

        One statement inserts the inbox rows and skips the ids already there, so the primary
        key decides: no query plan can turn the check into a scan of the inbox (a generic plan
        made while the table was small did, at 7 ms a batch), and a redelivery that races the
        transaction applying it waits for that one and is then skipped. Claims roll back with
        the transaction, so an event that failed is not marked.
        """
        topic_of = dict(events)  # an id twice in one batch is claimed once
        if not topic_of:
            return set()
        inbox, at = self.tables.inbox, utcnow()
        if self.session.bind.dialect.name == "postgresql":
            result = await self.session.execute(_postgresql_claim(inbox), {
                "ids": [str(i) for i in topic_of], "topics": list(topic_of.values()), "at": at})
            return set(result.scalars())
        # SQLite: rows of three parameters, within its default 32,766 a statement whatever the batch setting
        rows = [{"event_id": i, "topic": topic, "processed_at": at} for i, topic in topic_of.items()]
        claimed: set[UUID] = set()
        for start in range(0, len(rows), SQLITE_CLAIM_ROWS):
            result = await self.session.execute(
                sqlite.insert(inbox).values(rows[start:start + SQLITE_CLAIM_ROWS])
                .on_conflict_do_nothing(index_elements=[inbox.c.event_id]).returning(inbox.c.event_id))
            claimed.update(result.scalars())
        return claimed

    def append(self, table: Table, row: dict) -> None:
        """Add a row to an append-only log (a timeline …) at the end of the transaction, with others like it.

        For tables nothing in the same transaction reads back.
        """
        self._appended.setdefault(table, []).append(row)

    async def flush(self) -> None:
        """Write what the unit of work owes; called once, just before the commit."""
        owed = [(self.tables.audit, self._audit), (self.tables.outbox, self._outbox), *self._appended.items()]
        for table, rows in owed:
            if rows and table is not None:
                await insert_rows(self.session, table, rows)


@dataclass
class ServiceStore:
    """A service's database plus its messaging tables, and a signal for its outbox relay."""

    name: str
    db: Database
    tables: MessagingTables
    outbox_signal: asyncio.Event = field(default_factory=asyncio.Event)
    local: dict[str, Any] = field(default_factory=dict)  # what a service keeps per process beside it (a queue …)

    async def purge_outbox(self, retention: timedelta, *, chunk: int = PURGE_CHUNK) -> int:
        """Drop events sent longer ago than the retention (kept meanwhile for re-emission)."""
        outbox = self.tables.outbox
        return await delete_in_chunks(self.db, outbox, outbox.c.sent_at < utcnow() - retention,
                                      oldest_first=outbox.c.sent_at, chunk=chunk)

    async def purge_inbox(self, retention: timedelta, *, chunk: int = PURGE_CHUNK) -> int:
        """Forget events applied longer ago than the retention (nothing can bring them back by then)."""
        inbox = self.tables.inbox
        return await delete_in_chunks(self.db, inbox, inbox.c.processed_at < utcnow() - retention,
                                      oldest_first=inbox.c.processed_at, chunk=chunk)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.db.session() as session:
            tx = Transaction(session, self.tables)
            yield tx
            await tx.flush()
        for callback in tx._committed:
            callback()
        if tx.wrote_outbox:
            self.outbox_signal.set()

"""The outbox relay: publishes what services wrote to their outbox, then marks it sent.

At least once: a crash after publishing and before marking publishes again, and the
idempotent consumers downstream skip the repeat. Rows go in id order and one key's rows
are enqueued to the producer in that order, so a ticket's events stay in order.
Several instances of one service may run: on PostgreSQL one relay at a time leads, holding
a session advisory lock on a connection of its own for as long as it lives (the others
try again each pass), which keeps per-ticket order across instances. A pass is then two
statements in autocommit, claim and mark, instead of a transaction of five round trips:
in a busy service each round trip waits its turn in the event loop, and the relay's pass
is what every event waits for between its commit and the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from jiesu.db import one_of, sqlite_on_loop
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore
from schemas.events import utcnow

log = get_logger(__name__)

PASS_TIMEOUT_SECONDS = 60.0  # longer than the producer's own request timeout (40 s)

PUBLISHED = Counter("jiesu_outbox_published_total", "Events published from the outbox", ["service", "topic"])
BACKLOG = Gauge("jiesu_outbox_backlog", "Unsent outbox rows at the last relay pass", ["service"])


@dataclass(frozen=True)
class OutboundRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Sender(Protocol):
    async def send(self, records: list[OutboundRecord]) -> None:
        """Publish all records (acks=all); raise if any was not acknowledged."""


class AioKafkaSender:
    """Publishes through an aiokafka producer: enqueue in order, then await all acks."""

    def __init__(self, producer) -> None:
        self.producer = producer

    async def send(self, records: list[OutboundRecord]) -> None:
        futures = [
            await self.producer.send(r.topic, value=r.value, key=r.key, headers=r.headers) for r in records
        ]
        await asyncio.gather(*futures)


class BrokerSender:
    """Publishes through a FastStream broker (used with TestKafkaBroker in unit tests)."""

    def __init__(self, broker) -> None:
        self.broker = broker

    async def send(self, records: list[OutboundRecord]) -> None:
        for r in records:
            await self.broker.publish(r.value, r.topic, key=r.key, headers={k: v.decode() for k, v in r.headers})


class OutboxRelay:
    def __init__(self, store: ServiceStore, sender: Sender, *, batch: int = 500, poll_seconds: float = 0.5,
                 lost_after_seconds: float | None = None) -> None:
        self.store = store
        self.sender = sender
        self.batch = batch
        self.poll_seconds = poll_seconds
        # A relay runs a statement at least every poll. A leader silent for longer than this is gone
        # (its host crashed, the network dropped it): PostgreSQL ends its session and frees the lead,
        # where TCP alone would notice only after its keepalive, two hours by default.
        self.lost_after = lost_after_seconds or max(10.0, 4 * poll_seconds)
        self._lock_key = zlib.crc32(f"jiesu-outbox-{store.name}".encode())
        self._own: AsyncConnection | None = None  # PostgreSQL: this relay's connection, in autocommit
        self._leading = False  # … holding the service's relay lock

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were sent (0 when idle or not the leader)."""
        if self.store.db.dialect == "postgresql":
            try:
                async with asyncio.timeout(PASS_TIMEOUT_SECONDS):  # a silently dead socket would hang for minutes
                    conn = await self._lead()
                    if conn is None:
                        return 0
                    rows = await self._claim(conn)
                    if rows:
                        await self.sender.send(self._records(rows))
                        await self._mark(conn, rows)
            except BaseException:
                # The connection may be broken, or a statement cut off: start again on a new one. A
                # connection that held the lock is closed, never pooled, so the lock goes with it.
                await self.release()
                raise
        else:
            # SQLite's write lock would stall the whole service while we wait for the broker,
            # so read, publish, then mark in a second short transaction (one process per file).
            with sqlite_on_loop():
                async with self.store.db.session() as session:
                    rows = await self._claim(session)
                if rows:
                    await self.sender.send(self._records(rows))
                    async with self.store.db.session() as session:
                        await self._mark(session, rows)
        if not rows:
            BACKLOG.labels(self.store.name).set(0)
            return 0
        for r in rows:
            PUBLISHED.labels(self.store.name, r.topic).inc()
        if len(rows) == self.batch:
            self.store.outbox_signal.set()  # more waiting: go again without sleeping
        return len(rows)

    async def _lead(self) -> AsyncConnection | None:
        """This relay's connection if it leads (taking the lock if it is free), else None."""
        if self._own is None:
            conn = await self.store.db.engine.connect()
            self._own = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await self._own.execute(  # PostgreSQL 14 and later; older servers keep TCP's word for it
                text("SELECT set_config('idle_session_timeout', :ms, false) "
                     "WHERE current_setting('server_version_num')::int >= 140000"),
                {"ms": f"{int(self.lost_after * 1000)}ms"})
        if not self._leading:
            self._leading = bool(await self._own.scalar(text("SELECT pg_try_advisory_lock(:k)"),
                                                        {"k": self._lock_key}))
        return self._own if self._leading else None

    async def release(self) -> None:
        """Give up the connection, and with it the lead (closed, not returned to the pool holding the lock)."""
        conn, self._own, self._leading = self._own, None, False
        if conn is not None:
            with contextlib.suppress(Exception):  # a connection thrown away may fail to close; it is gone anyway
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _claim(self, session):
        outbox = self.store.tables.outbox
        return (
            await session.execute(
                select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.event_id,
                       outbox.c.event_type)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch)
            )
        ).all()

    @staticmethod
    def _records(rows) -> list[OutboundRecord]:
        return [
            OutboundRecord(
                topic=r.topic,
                key=r.key.encode(),
                value=r.value,
                headers=[("event_type", r.event_type.encode()), ("event_id", str(r.event_id).encode())],
            )
            for r in rows
        ]

    async def _mark(self, session, rows) -> None:
        outbox = self.store.tables.outbox
        await session.execute(update(outbox).where(one_of(outbox.c.id, [r.id for r in rows], self.store.db.dialect))
                              .values(sent_at=utcnow()))

    async def backlog(self) -> int:
        outbox = self.store.tables.outbox
        async with self.store.db.session() as session:
            return await session.scalar(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))

    async def run(self) -> None:
        """Relay until cancelled: wake on a local commit or every poll interval."""
        signal = self.store.outbox_signal
        failures = 0
        while True:
            try:
                await asyncio.wait_for(signal.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass
            signal.clear()
            try:
                await self.relay_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: back off and retry, lose nothing
                failures += 1
                log.warning("outbox relay failed; will retry", service=self.store.name, error=repr(exc),
                            failures=failures)
                await asyncio.sleep(min(5.0, 0.2 * 2**min(failures, 5)))

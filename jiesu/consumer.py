"""The idempotent consumer: apply each event once, commit the offset after the database.

A batch of records is applied in one transaction (fast path). If anything in it fails,
the batch is rolled back and each record is applied in its own transaction with bounded
retries; a record that still fails is a poison message: it goes to `<topic>.dlq` (via the
outbox) and into the dead-letter table, and the partition moves on. Infrastructure
failures (database or broker unreachable) are not poison: the batch is not acknowledged
and Kafka redelivers it after a back-off.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError

from jiesu import audit
from jiesu.db import sqlite_on_loop
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore, Transaction
from schemas import topics
from schemas.events import PAYLOADS, Envelope, EventPayload, new_event_id, utcnow

log = get_logger(__name__)
EVENT_TYPES = frozenset(event_type for event_type, _ in PAYLOADS)

Handler = Callable[[Transaction, Envelope, EventPayload], Awaitable[None]]
Many = Callable[[Transaction, list[tuple[Envelope, EventPayload]]], Awaitable[None]]


class Batched:
    """A handler that applies several events of its type in one go: one statement for all of them.

    The consumer hands it runs of events of that type for distinct tickets (`runs_of`): each
    ticket's events reach their handlers in the order they arrived, so what they mean is
    unchanged; events of other tickets may be applied before or after them, as they might
    have come from another partition. What one ticket in a run does to another (a repeat of
    the same caller …) is the handler's to see. Called with a single event it is an ordinary
    handler (retrying a poison message one by one).
    """

    def __init__(self, many: Many) -> None:
        self.many = many
        self.__name__ = getattr(many, "__name__", "batched")

    async def __call__(self, tx: Transaction, envelope: Envelope, payload: EventPayload) -> None:
        await self.many(tx, [(envelope, payload)])

CONSUMED = Counter("jiesu_events_consumed_total", "Events applied", ["service", "event_type"])
DUPLICATES = Counter("jiesu_events_duplicate_total", "Redelivered events skipped by the inbox", ["service"])
DEAD = Counter("jiesu_events_dead_lettered_total", "Poison messages sent to the DLQ", ["service", "topic"])
# A batch that failed as a whole and was applied again one record at a time: a poison message
# does this, and so does a handler bug that every record trips. Either way the service keeps
# working, at a fraction of its speed, so the count is what shows it.
SPLIT = Counter("jiesu_consumer_batches_split_total",
                "Batches that failed as a whole and were applied one record at a time", ["service"])
# How many events each handler call applied: what batching saves, per service and event type.
RUNS = Histogram("jiesu_consumer_run_events", "Events applied by one handler call",
                 ["service", "event_type"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))


class InfrastructureError(Exception):
    """The database or broker is unreachable: retry the whole batch later."""


def is_infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, ConnectionError, OSError,
                            TimeoutError, InfrastructureError))


class EventConsumer:
    def __init__(self, store: ServiceStore, handlers: dict[str, Handler], *, retries: int = 3,
                 lanes: int = 1) -> None:
        self.store = store
        self.handlers = handlers
        self.retries = retries
        self.lanes = lanes
        self.service = store.name

    async def process(self, records: Sequence[Any]) -> None:
        """Apply a batch in `lanes` transactions, run concurrently; by default one transaction for all.

        A lane takes whole partitions (partition number modulo lanes). One ticket's events share
        a key, hence a partition number on every topic (all topics have the same partition
        count), so they stay in one lane and in order. Several lanes overlap their database round
        trips, which pays where the database is far away; where CPU is what runs out (services
        and PostgreSQL on a few cores), one transaction a batch costs the least per event and
        keeps a batch's latency lowest. The batch is acknowledged only when every lane committed.
        """
        audit.current_actor.set(f"service:{self.service}")  # what a consumer changes, the service changed
        audit.current_address.set("")
        lanes: dict[int, list[Any]] = {}
        for record in records:
            lanes.setdefault(record.partition % self.lanes, []).append(record)
        with sqlite_on_loop():  # a batch's statements are short and bounded (consumer_batch events)
            outcomes = await asyncio.gather(*(self._process_lane(lane) for lane in lanes.values()),
                                            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _process_lane(self, records: list[Any]) -> None:
        try:
            async with self.store.transaction() as tx:
                await self._apply(tx, *records)
            return
        except Exception as exc:
            if is_infrastructure(exc):
                await asyncio.sleep(1.0)  # back off before Kafka redelivers the batch
                raise
            if len(records) > 1:
                SPLIT.labels(self.service).inc()
                log.warning("batch failed; applying records one by one", service=self.service,
                            records=len(records), error=repr(exc))
            first_error = exc
        for record in records:
            await self._process_one(record, first_error if len(records) == 1 else None)

    async def _process_one(self, record: Any, known_error: BaseException | None) -> None:
        error = known_error
        attempts = 1 if known_error is not None else 0
        while attempts <= self.retries:
            if attempts:
                await asyncio.sleep(0.05 * attempts)
            attempts += 1
            try:
                async with self.store.transaction() as tx:
                    await self._apply(tx, record)
                return
            except Exception as exc:
                if is_infrastructure(exc):
                    await asyncio.sleep(1.0)
                    raise
                error = exc
        await self._dead_letter(record, error, attempts)

    async def _apply(self, tx: Transaction, *records: Any) -> None:
        """Apply records, each ticket's in order, skipping those the inbox has seen (one claim for all)."""
        mine = []
        for record in records:
            # The relay names each event in a header: another service's are skipped unread. A replayed
            # dead letter is named "replay" and read like any record whose header says nothing.
            named = _header(record, "event_type")
            if named in EVENT_TYPES and named not in self.handlers:
                continue
            envelope = Envelope.from_bytes(record.value)
            if envelope.event_type in self.handlers:  # others are not for this service
                mine.append((record, envelope))
        claimed = await tx.claim([(e.event_id, record.topic) for record, e in mine])
        fresh = []
        for record, envelope in mine:
            if envelope.event_id not in claimed:  # applied before, or earlier in this batch
                DUPLICATES.labels(self.service).inc()
                continue
            claimed.discard(envelope.event_id)
            fresh.append((record, envelope))
        for run in runs_of(fresh, lambda event_type: isinstance(self.handlers[event_type], Batched)):
            await self._apply_run(tx, run)

    async def _apply_run(self, tx: Transaction, run: list[tuple[Any, Envelope]]) -> None:
        first = run[0][1]
        handler = self.handlers[first.event_type]
        if len(run) == 1:
            with structlog.contextvars.bound_contextvars(
                service=self.service, ticket_id=str(first.ticket_id), event_id=str(first.event_id),
                event_type=first.event_type, trace_id=first.trace_id,
            ):
                await handler(tx, first, first.parsed())
        else:
            with structlog.contextvars.bound_contextvars(service=self.service, event_type=first.event_type,
                                                         events=len(run)):
                await handler.many(tx, [(envelope, envelope.parsed()) for _, envelope in run])
        CONSUMED.labels(self.service, first.event_type).inc(len(run))
        RUNS.labels(self.service, first.event_type).observe(len(run))

    async def _dead_letter(self, record: Any, error: BaseException | None, attempts: int) -> None:
        dead = self.store.tables.dead_letters
        digest = hashlib.sha256(record.value or b"").hexdigest()
        event_id = _header(record, "event_id")
        async with self.store.transaction() as tx:
            exists = await tx.session.scalar(
                select(dead.c.id).where(dead.c.topic == record.topic, dead.c.partition == record.partition,
                                        dead.c.offset == record.offset, dead.c.digest == digest)
            )
            if exists:
                return
            text = f"{type(error).__name__}: {error}"[:4000]
            await tx.session.execute(dead.insert().values(
                topic=record.topic, partition=record.partition, offset=record.offset, key=record.key,
                value=record.value or b"", digest=digest, event_id=event_id, error=text, attempts=attempts,
                created_at=utcnow(),
            ))
            await tx.emit_raw(
                topics.dlq(record.topic), key=(record.key or b"").decode(errors="replace"),
                value=record.value or b"", event_type=f"dead:{text[:50]}", event_id=new_event_id(), ticket_id=None,
            )
        DEAD.labels(self.service, record.topic).inc()
        log.error("poison message dead-lettered", service=self.service, topic=record.topic,
                  partition=record.partition, offset=record.offset, error=text, attempts=attempts)

    def subscribe(self, router: KafkaRouter, *topic_names: str, group_id: str, batch: int = 200) -> None:
        """Register this consumer on a FastStream router: manual commit after the handler."""

        @router.subscriber(
            *topic_names,
            group_id=group_id,
            batch=True,
            max_records=batch,
            batch_timeout_ms=100,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_undecoded,
            title=f"{group_id}:{'+'.join(topic_names)}",
        )
        async def consume(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            await self.process(raw if isinstance(raw, (list, tuple)) else [raw])


def runs_of(events: list[tuple[Any, Envelope]], batched: Callable[[str], bool]) -> list[list[tuple[Any, Envelope]]]:
    """The handler calls that apply `events` ((record, envelope) pairs), in the order to make them.

    Only a ticket's own events must keep their order. An event waits behind the pending run that
    holds its ticket's previous event (that run is applied first) and otherwise joins the run of
    its type, if its handler is Batched, or is applied alone. So one ticket in ten going another
    way (DispatchNeeded among TicketAssigned) does not cut a batch into runs of ten. Events of
    different tickets are ordered only within a partition, which orders nothing between tickets
    on different partitions, so no handler may rely on it anyway.
    """
    out: list[list[tuple[Any, Envelope]]] = []
    pending: dict[str, list[tuple[Any, Envelope]]] = {}  # event type -> its run, not yet applied
    holder: dict[Any, str] = {}  # ticket id -> event type of the pending run holding its latest event

    def flush(event_type: str) -> None:
        run = pending.pop(event_type)
        for _, envelope in run:
            del holder[envelope.ticket_id]
        out.append(run)

    for item in events:
        envelope = item[1]
        waiting = holder.get(envelope.ticket_id)
        if waiting is not None:
            flush(waiting)
        if batched(envelope.event_type):
            pending.setdefault(envelope.event_type, []).append(item)
            holder[envelope.ticket_id] = envelope.event_type
        else:
            out.append([item])
    for event_type in list(pending):
        flush(event_type)
    return out


async def _undecoded(msg: Any) -> None:
    """The consumer reads the records' bytes itself (Envelope.from_bytes): FastStream's JSON decoding
    of every message in the batch first would be wasted work."""
    return None


def _header(record: Any, name: str) -> str | None:
    for key, value in getattr(record, "headers", None) or ():
        if key == name:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None

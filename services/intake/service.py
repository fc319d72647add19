"""Intake's use cases: accept a submission once, and keep the rest of the system honest about it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from jiesu.db import insert_ignoring_conflicts
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore, Transaction
from schemas import topics
from schemas.enums import Channel, TicketState
from schemas.events import Envelope, ReconcileRequested, new_event_id, utcnow
from services.intake.domain.submission import Receipt, TicketSubmission, format_number, to_event
from services.intake.store import ticket_counters, tickets

log = get_logger(__name__)
PRODUCER = "intake"


async def next_number(store: ServiceStore, now: datetime, tz: ZoneInfo) -> str:
    """Take the day's next sequence number in a transaction of its own.

    The counter row is a lock every concurrent request needs; holding it only for this
    short transaction (not for the whole ticket insert) keeps intake fast under load.
    A request that fails after this leaves a gap in the day's numbers, never a repeat.
    """
    day = now.astimezone(tz).date()
    async with store.db.session() as session:
        dialect = session.bind.dialect.name
        value = await session.scalar(
            update(ticket_counters).where(ticket_counters.c.day == day)
            .values(value=ticket_counters.c.value + 1).returning(ticket_counters.c.value)
        )
        if value is None:  # first ticket of the day (or a concurrent first: the conflict is ignored)
            await session.execute(insert_ignoring_conflicts(ticket_counters, dialect, {"day": day, "value": 0},
                                                            "day"))
            value = await session.scalar(
                update(ticket_counters).where(ticket_counters.c.day == day)
                .values(value=ticket_counters.c.value + 1).returning(ticket_counters.c.value)
            )
    return format_number(day, value)


async def find_by_source(store: ServiceStore, channel: Channel, source_ref: str):
    async with store.db.session() as s:
        return (await s.execute(select(tickets).where(tickets.c.channel == channel.value,
                                                        tickets.c.source_ref == source_ref))).first()


async def accept(store: ServiceStore, sub: TicketSubmission, *, channel: Channel, operator: str | None,
                 idempotency_key: str | None, tz: ZoneInfo, trace_id: str | None = None) -> Receipt:
    """Record a request and owe TicketReceived, once per (channel, reference)."""
    source_ref = (f"idem:{idempotency_key}" if idempotency_key else sub.source_ref) or f"new:{uuid.uuid4()}"
    existing = await find_by_source(store, channel, source_ref)
    if existing:
        return Receipt(ticket_id=existing.ticket_id, number=existing.number, received_at=existing.received_at,
                       duplicate_request=True)
    received_at = utcnow()
    ticket_id = new_event_id()  # UUIDv7: tickets sort by creation time
    number = await next_number(store, received_at, tz)
    try:
        async with store.transaction() as tx:
            payload = to_event(sub, number=number, channel=channel, received_at=received_at, operator=operator,
                               source_ref=source_ref)
            envelope = Envelope.wrap(payload, ticket_id=ticket_id, producer=PRODUCER, trace_id=trace_id,
                                     occurred_at=received_at)
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number=number, channel=channel.value, source_ref=source_ref,
                kind=sub.kind.value, urgency=sub.urgency.value, subject=sub.subject, description=sub.description,
                citizen_name=sub.citizen.name, citizen_phone=sub.citizen.phone, citizen_email=sub.citizen.email,
                confidential=sub.citizen.confidential, location=sub.location.model_dump(mode="json"),
                category=sub.category, operator=operator, received_at=received_at, event_id=envelope.event_id,
                state=TicketState.RECEIVED.value, reconcile_attempts=0,
            ))
            await tx.emit(topics.RECEIVED, envelope)
    except IntegrityError:
        # A concurrent retry with the same reference won the race: answer with its ticket.
        existing = await find_by_source(store, channel, source_ref)
        if existing is None:
            raise
        return Receipt(ticket_id=existing.ticket_id, number=existing.number, received_at=existing.received_at,
                       duplicate_request=True)
    log.info("ticket received", ticket_id=str(ticket_id), number=number, channel=channel.value)
    return Receipt(ticket_id=ticket_id, number=number, received_at=received_at, duplicate_request=False)


async def reconcile_stuck(store: ServiceStore, *, older_than: timedelta, max_attempts: int = 20,
                          limit: int = 500) -> int:
    """Tickets accepted here but not yet tracked after a while: the broker may have lost them.

    Re-emit TicketReceived (same event id) and ask the router and tracker to re-emit
    what they owe for it. Returns how many tickets were nudged.
    """
    now = utcnow()
    cutoff = now - older_than
    async with store.transaction() as tx:
        rows = (await tx.session.execute(
            select(tickets.c.ticket_id, tickets.c.number, tickets.c.received_at)
            .where(tickets.c.tracked_at.is_(None), tickets.c.received_at < cutoff,
                   tickets.c.reconcile_attempts < max_attempts,
                   or_(tickets.c.last_reconcile_at.is_(None), tickets.c.last_reconcile_at < cutoff))
            .order_by(tickets.c.received_at).limit(limit)
        )).all()
        for row in rows:
            await tx.reemit(row.ticket_id, ("TicketReceived",))
            await tx.emit(topics.RECONCILE, Envelope.wrap(
                ReconcileRequested(number=row.number, stuck_since=row.received_at, requested_by=PRODUCER),
                ticket_id=row.ticket_id, producer=PRODUCER))
            await tx.session.execute(update(tickets).where(tickets.c.ticket_id == row.ticket_id).values(
                reconcile_attempts=tickets.c.reconcile_attempts + 1, last_reconcile_at=now))
    if rows:
        log.warning("reconciliation nudged stuck tickets", count=len(rows))
    return len(rows)


async def on_tracked(tx: Transaction, envelope: Envelope, payload) -> None:
    """TicketTracked: the end-to-end acknowledgement; also keeps a status for look-ups."""
    await tx.session.execute(update(tickets).where(
        tickets.c.ticket_id == envelope.ticket_id,
        and_(or_(tickets.c.tracked_at.is_(None), tickets.c.tracked_at <= envelope.occurred_at)),
    ).values(tracked_at=envelope.occurred_at, state=payload.state.value,
             department=payload.lead.name if payload.lead else None))


async def on_reconcile(tx: Transaction, envelope: Envelope, payload) -> None:
    """Another service asks for re-emission: send TicketReceived again (same event id)."""
    if payload.requested_by != PRODUCER:
        await tx.reemit(envelope.ticket_id, ("TicketReceived",))

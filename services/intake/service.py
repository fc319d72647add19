"""Intake's use cases: accept a submission once, and keep the rest of the system honest about it."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from jiesu.db import insert_ignoring_conflicts
from jiesu.errors import ApiError
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore, Transaction
from schemas import topics
from schemas.enums import Channel, TicketState
from schemas.events import Attachment, Envelope, ReconcileRequested, new_event_id, utcnow
from services.intake.domain.similarity import CLOSED_STATES, REPEAT_WINDOW, Earlier, Repeat, find_repeats
from services.intake.domain.submission import Receipt, TicketSubmission, format_number, to_event
from services.intake.store import rate_limits, ticket_counters, tickets

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


async def _open_ticket(store: ServiceStore, number: str):
    """The ticket a repeat is attached to: it must exist and still be open."""
    async with store.db.session() as s:
        row = (await s.execute(select(tickets.c.ticket_id, tickets.c.state)
                               .where(tickets.c.number == number))).first()
    if row is None or row.state in CLOSED_STATES:
        zh, en = ((f"没有编号为 {number} 的工单", f"there is no ticket numbered {number}") if row is None else
                  (f"工单 {number} 已办结，不能再并入", f"ticket {number} is closed; open a new one instead"))
        raise ApiError(422, "invalid_input", f"提交的内容有误：duplicate_of_number：{zh}",
                       f"Invalid input: duplicate_of_number: {en}",
                       fields=[{"field": "duplicate_of_number", "type": "value_error", "zh": zh, "en": en}])
    return row.ticket_id


def reference(idempotency_key: str | None, source_ref: str | None) -> str:
    """The key a retry is recognised by: the Idempotency-Key header, else the channel's own reference.

    Long keys are hashed so that any key a client may send fits the column.
    """
    if idempotency_key:
        ref = f"idem:{idempotency_key}"
        return ref if len(ref) <= 200 else "idem:sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
    return source_ref or f"new:{uuid.uuid4()}"


async def accept(store: ServiceStore, sub: TicketSubmission, *, channel: Channel, operator: str | None,
                 idempotency_key: str | None, tz: ZoneInfo, trace_id: str | None = None,
                 attachments: list[Attachment] | None = None) -> Receipt:
    """Record a request and owe TicketReceived, once per (channel, reference).

    Every channel comes through here: one validation, one numbering, one idempotency rule.
    """
    source_ref = reference(idempotency_key, sub.source_ref)
    existing = await find_by_source(store, channel, source_ref)
    if existing:
        return Receipt(ticket_id=existing.ticket_id, number=existing.number, received_at=existing.received_at,
                       duplicate_request=True)
    duplicate_of = await _open_ticket(store, sub.duplicate_of_number) if sub.duplicate_of_number else None
    received_at = utcnow()
    ticket_id = new_event_id()  # UUIDv7: tickets sort by creation time
    number = await next_number(store, received_at, tz)
    try:
        async with store.transaction() as tx:
            payload = to_event(sub, number=number, channel=channel, received_at=received_at, operator=operator,
                               source_ref=source_ref, attachments=attachments, duplicate_of=duplicate_of)
            envelope = Envelope.wrap(payload, ticket_id=ticket_id, producer=PRODUCER, trace_id=trace_id,
                                     occurred_at=received_at)
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number=number, channel=channel.value, source_ref=source_ref,
                kind=sub.kind.value, urgency=sub.urgency.value, subject=sub.subject, description=sub.description,
                citizen_name=sub.citizen.name, citizen_phone=sub.citizen.phone, citizen_email=sub.citizen.email,
                confidential=sub.citizen.confidential, location=sub.location.model_dump(mode="json"),
                category=sub.category, operator=operator, received_at=received_at, event_id=envelope.event_id,
                state=TicketState.RECEIVED.value, reconcile_attempts=0, may_publish=sub.may_publish,
                answer=sub.answer, duplicate_of=duplicate_of,
                attachments=[a.model_dump(mode="json") for a in payload.attachments] or None,
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


def _newer(envelope: Envelope):
    """Apply a status only if no later one was applied (re-emitted events arrive late)."""
    return and_(tickets.c.ticket_id == envelope.ticket_id,
                or_(tickets.c.status_at.is_(None), tickets.c.status_at <= envelope.occurred_at))


async def on_tracked(tx: Transaction, envelope: Envelope, payload) -> None:
    """TicketTracked: the end-to-end acknowledgement; also keeps a status for look-ups."""
    await tx.session.execute(update(tickets).where(
        tickets.c.ticket_id == envelope.ticket_id,
        or_(tickets.c.tracked_at.is_(None), tickets.c.tracked_at <= envelope.occurred_at),
    ).values(tracked_at=envelope.occurred_at))
    values = {"state": payload.state.value, "status_at": envelope.occurred_at}
    if payload.lead:
        values["department"] = payload.lead.name
    if payload.reply_due:
        values["reply_due"] = payload.reply_due
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(**values))


async def on_accepted(tx: Transaction, envelope: Envelope, payload) -> None:
    """签收: the department signed for it."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.SIGNED_FOR.value, department=payload.unit.name, status_at=envelope.occurred_at))


async def on_replied(tx: Transaction, envelope: Envelope, payload) -> None:
    """答复: the department's reply, which the citizen may read on look-up."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.REPLIED.value, department=payload.unit.name, reply=payload.reply,
        status_at=envelope.occurred_at))


async def on_reopened(tx: Transaction, envelope: Envelope, payload) -> None:
    """重办: back to the department; the earlier reply no longer stands."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.REOPENED.value, department=payload.unit.name, reply=None, reply_due=payload.reply_due,
        closed_at=None, status_at=envelope.occurred_at))


async def on_extension_decided(tx: Transaction, envelope: Envelope, payload) -> None:
    """延期 approved: the citizen's look-up shows the new deadline."""
    if payload.approved and payload.new_due:
        await tx.session.execute(update(tickets).where(tickets.c.ticket_id == envelope.ticket_id)
                                 .values(reply_due=payload.new_due))


_CLOSED_STATE = {"answered_directly": TicketState.ANSWERED_DIRECTLY, "merged": TicketState.MERGED}


async def on_closed(tx: Transaction, envelope: Envelope, payload) -> None:
    state = _CLOSED_STATE.get(payload.outcome, TicketState.CLOSED)
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=state.value, closed_at=envelope.occurred_at, status_at=envelope.occurred_at))


async def on_reconcile(tx: Transaction, envelope: Envelope, payload) -> None:
    """Another service asks for re-emission: send TicketReceived again (same event id)."""
    if payload.requested_by != PRODUCER:
        await tx.reemit(envelope.ticket_id, ("TicketReceived",))


# --- look-ups the channels need -------------------------------------------------------


async def repeats_of(store: ServiceStore, phone: str, subject: str, description: str) -> list[Repeat]:
    """重复件 candidates: the caller's open tickets of the last 30 days that read alike."""
    now = utcnow()
    async with store.db.session() as s:
        rows = (await s.execute(
            select(tickets.c.ticket_id, tickets.c.number, tickets.c.subject, tickets.c.description, tickets.c.state,
                   tickets.c.received_at)
            .where(tickets.c.citizen_phone == phone, tickets.c.received_at >= now - REPEAT_WINDOW)
            .order_by(tickets.c.received_at.desc()).limit(100))).all()
    earlier = [Earlier(r.ticket_id, r.number, r.subject, r.description, r.state, r.received_at) for r in rows]
    return find_repeats(subject, description, earlier, now=now)


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


async def progress(store: ServiceStore, number: str, last4: str):
    """The ticket, if the number exists and the caller's phone ends with these four digits; else None.

    Callers must answer "not found" the same way in both cases.
    """
    if len(last4) != 4 or not last4.isdigit():
        return None
    async with store.db.session() as s:
        row = (await s.execute(select(tickets).where(tickets.c.number == number))).first()
    if row is None or len(_digits(row.citizen_phone)) < 4 or _digits(row.citizen_phone)[-4:] != last4:
        return None
    return row


async def allow(store: ServiceStore, bucket: str, *, limit: int, window: timedelta) -> bool:
    """Count one hit in the current fixed window of `bucket`; False once over `limit`."""
    now = utcnow()
    seconds = window.total_seconds()
    index = int(now.timestamp() // seconds)
    key = f"{bucket}@{index}"[:200]
    async with store.db.session() as s:
        dialect = s.bind.dialect.name
        await s.execute(insert_ignoring_conflicts(rate_limits, dialect, {
            "bucket": key, "window_start": datetime.fromtimestamp(index * seconds, tz=now.tzinfo), "hits": 0},
            "bucket"))
        hits = await s.scalar(update(rate_limits).where(rate_limits.c.bucket == key)
                              .values(hits=rate_limits.c.hits + 1).returning(rate_limits.c.hits))
    return hits <= limit


async def first_use(store: ServiceStore, token: str) -> bool:
    """True the first time a single-use token (a challenge nonce) is presented."""
    async with store.db.session() as s:
        dialect = s.bind.dialect.name
        result = await s.execute(insert_ignoring_conflicts(
            rate_limits, dialect, {"bucket": f"once:{token}"[:200], "window_start": utcnow(), "hits": 1}, "bucket"))
    return (result.rowcount or 0) == 1


async def purge_rate_limits(store: ServiceStore, older_than: timedelta = timedelta(days=1)) -> None:
    async with store.db.session() as s:
        await s.execute(rate_limits.delete().where(rate_limits.c.window_start < utcnow() - older_than))

"""Intake's use cases: accept a submission once, and keep the rest of the system honest about it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import Boolean, and_, bindparam, case, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from jiesu import audit
from jiesu.consumer import Batched, is_infrastructure
from jiesu.db import insert_ignoring_conflicts, insert_rows, one_of, sqlite_on_loop
from jiesu.errors import ApiError
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore, Transaction
from jiesu.text import plain_phone
from schemas import topics
from schemas.enums import ONLINE_CHANNELS, Channel, TicketState
from schemas.events import (RATED_BY_CITIZEN, Attachment, DirectoryPublished, Envelope, ReconcileRequested,
                            ReturnVisitDue, ReturnVisitRecorded, new_event_id, utcnow)
from services.intake.domain.places import Places
from services.intake.domain.similarity import CLOSED_STATES, REPEAT_WINDOW, Earlier, Repeat, find_repeats
from services.intake.domain.submission import (Receipt, TicketSubmission, format_number, new_query_code, plain,
                                               read_query_code, to_event)
from services.intake.store import acknowledgements, directory, rate_limits, rating_invitations, ticket_counters, tickets

log = get_logger(__name__)
PRODUCER = "intake"
ACKNOWLEDGE = "acknowledge_by_mail"  # store.local: True when outgoing mail is configured (bootstrap.setup)
PLACES = "places"  # store.local: the directory's public part in use (domain.places.Places; bootstrap keeps it)


async def next_numbers(session: AsyncSession, day: date, count: int) -> list[str]:
    """Take the day's next `count` sequence numbers, in the caller's short transaction.

    The counter row is a lock every intake process needs; holding it only for that
    short transaction (not for the tickets' insert) keeps intake fast under load.
    A write that fails after this leaves a gap in the day's numbers, never a repeat.
    """
    dialect = session.bind.dialect.name
    take = (update(ticket_counters).where(ticket_counters.c.day == day)
            .values(value=ticket_counters.c.value + count).returning(ticket_counters.c.value))
    last = await session.scalar(take)
    if last is None:  # first ticket of the day (or a concurrent first: the conflict is ignored)
        await session.execute(insert_ignoring_conflicts(ticket_counters, dialect, {"day": day, "value": 0}, "day"))
        last = await session.scalar(take)
    return [format_number(day, n) for n in range(last - count + 1, last + 1)]


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


def _check_places(store: ServiceStore, sub: TicketSubmission) -> None:
    """Codes must be the directory's, and a street must lie in the district given with it: the router could
    place the ticket in neither. Codes are judged by the router's copy only (Places.unknown_codes says why)."""
    places: Places | None = store.local.get(PLACES)
    if places is None:
        return
    where = sub.location
    wrong = places.unknown_codes(where.district, where.street, sub.category)
    outside = places.street_outside_district(where.district, where.street)
    if outside:
        wrong.append(("location.street", *outside))
    if wrong:
        raise ApiError(422, "invalid_input", "提交的内容有误：" + "；".join(f"{f}：{zh}" for f, zh, _ in wrong),
                       "Invalid input: " + "; ".join(f"{f}: {en}" for f, _, en in wrong),
                       fields=[{"field": f, "type": "value_error", "zh": zh, "en": en} for f, zh, en in wrong])


def reference(idempotency_key: str | None, source_ref: str | None) -> str:
    """The key a retry is recognised by: the Idempotency-Key header, else the channel's own reference.

    Long keys are hashed so that any key a client may send fits the column.
    """
    if idempotency_key:
        ref = f"idem:{idempotency_key}"
        return ref if len(ref) <= 200 else "idem:sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
    return source_ref or f"new:{uuid.uuid4()}"


@dataclass
class _Request:
    """One submission waiting for the group commit."""

    sub: TicketSubmission
    channel: Channel
    operator: str | None
    source_ref: str
    trace_id: str | None
    attachments: list[Attachment] | None
    duplicate_of: UUID | None
    received_at: datetime
    day: date  # the local day that numbers it
    receipt: asyncio.Future[Receipt]
    actor: str = field(default_factory=audit.current_actor.get)  # who submitted it, for the audit trail
    address: str = field(default_factory=audit.current_address.get)


class GroupCommit:
    """Submissions that arrive together are written in one transaction.

    Under load a request no longer pays for a transaction of its own: while one batch
    commits, the next requests queue, and the next transaction takes them all. A lone
    request waits for nobody. One per intake process (kept with the store).
    """

    MAX_BATCH = 200

    def __init__(self, store: ServiceStore) -> None:
        self.store = store
        self.queue: list[_Request] = []
        self.worker: asyncio.Task | None = None

    async def submit(self, request: _Request) -> Receipt:
        self.queue.append(request)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._drain(), name="intake-group-commit")
        return await asyncio.shield(request.receipt)  # a client that hangs up does not cancel the others' write

    async def _drain(self) -> None:
        with sqlite_on_loop():  # short transactions of at most MAX_BATCH tickets
            while self.queue:
                batch, self.queue = self.queue[:self.MAX_BATCH], self.queue[self.MAX_BATCH:]
                try:
                    receipts = await _write(self.store, batch)
                except asyncio.CancelledError:  # shutting down: the waiting requests end too, none hangs
                    for r in [*batch, *self.queue]:
                        r.receipt.cancel()
                    self.queue.clear()
                    raise
                except Exception as exc:  # noqa: BLE001 - handed to the requests that wait for it
                    if len(batch) == 1 or is_infrastructure(exc):
                        for r in batch:
                            _settle(r, exc)
                        continue
                    for r in batch:  # one bad submission must not fail the others: write them one by one
                        try:
                            _settle(r, (await _write(self.store, [r]))[0])
                        except Exception as one:  # noqa: BLE001
                            _settle(r, one)
                    continue
                for r, receipt in zip(batch, receipts, strict=True):
                    _settle(r, receipt)


def _settle(request: _Request, outcome: Receipt | BaseException) -> None:
    if request.receipt.done():
        return
    if isinstance(outcome, BaseException):
        request.receipt.set_exception(outcome)
    else:
        request.receipt.set_result(outcome)


async def _write(store: ServiceStore, batch: list[_Request]) -> list[Receipt]:
    """Record the batch's new tickets and owe their TicketReceived; retries get the earlier ticket."""
    dialect = store.db.dialect
    fresh: dict[tuple[str, str], _Request] = {}
    numbers: dict[tuple[str, str], str] = {}
    async with store.db.session() as s:  # one short transaction: which are retries, and numbers for the rest
        # Both columns of the unique (channel, source_ref) index: by source_ref alone, it is read whole.
        known = select(tickets.c.ticket_id, tickets.c.number, tickets.c.query_code, tickets.c.received_at,
                       tickets.c.channel, tickets.c.source_ref).where(
            one_of(tickets.c.channel, {r.channel.value for r in batch}, dialect),
            one_of(tickets.c.source_ref, {r.source_ref for r in batch}, dialect))
        earlier = {(row.channel, row.source_ref): row for row in await s.execute(known)}
        for r in batch:
            key = (r.channel.value, r.source_ref)
            if key not in earlier:
                fresh.setdefault(key, r)  # the same reference twice in one batch: the second is a retry of the first
        for day in sorted({r.day for r in fresh.values()}):
            keys = [k for k, r in fresh.items() if r.day == day]
            numbers.update(zip(keys, await next_numbers(s, day, len(keys)), strict=True))
    created: dict[tuple[str, str], Receipt] = {}
    if fresh:
        try:
            async with store.transaction() as tx:
                rows = []
                for key, r in fresh.items():
                    ticket_id = new_event_id()  # UUIDv7: tickets sort by creation time
                    payload = to_event(r.sub, number=numbers[key], channel=r.channel, received_at=r.received_at,
                                       operator=r.operator, source_ref=r.source_ref, attachments=r.attachments,
                                       duplicate_of=r.duplicate_of)
                    envelope = Envelope.wrap(payload, ticket_id=ticket_id, producer=PRODUCER, trace_id=r.trace_id,
                                             occurred_at=r.received_at)
                    code = new_query_code()
                    rows.append(_ticket_row(r, ticket_id, numbers[key], code, envelope.event_id, payload.attachments))
                    if store.local.get(ACKNOWLEDGE) and "@" in r.sub.citizen.email:
                        # 受理回执: owed with the ticket, sent by intake.mail
                        tx.append(acknowledgements, dict(ticket_id=ticket_id, next_attempt_at=r.received_at))
                    audit.current_actor.set(r.actor)  # this task writes for many requests: each under its own name
                    audit.current_address.set(r.address)
                    await tx.emit(topics.RECEIVED, envelope)
                    created[key] = Receipt(ticket_id=ticket_id, number=numbers[key], query_code=code,
                                           received_at=r.received_at, duplicate_request=False)
                await insert_rows(tx.session, tickets, rows)
        except IntegrityError:
            if len(batch) > 1:
                raise  # the group commit writes them one by one
            # A concurrent retry with the same reference won the race: answer with its ticket.
            existing = await find_by_source(store, batch[0].channel, batch[0].source_ref)
            if existing is None:
                raise
            return [Receipt(ticket_id=existing.ticket_id, number=existing.number, query_code=existing.query_code,
                            received_at=existing.received_at, duplicate_request=True)]
        for key, receipt in created.items():
            log.info("ticket received", ticket_id=str(receipt.ticket_id), number=receipt.number, channel=key[0])
    receipts = []
    for r in batch:
        key = (r.channel.value, r.source_ref)
        if key in earlier:
            row = earlier[key]
            receipts.append(Receipt(ticket_id=row.ticket_id, number=row.number, query_code=row.query_code,
                                    received_at=row.received_at, duplicate_request=True))
        elif fresh[key] is r:
            receipts.append(created[key])
        else:
            receipts.append(created[key].model_copy(update={"duplicate_request": True}))
    return receipts


def _ticket_row(r: _Request, ticket_id: UUID, number: str, query_code: str, event_id: UUID,
                attachments: list[Attachment]) -> dict:
    sub = r.sub
    return dict(
        ticket_id=ticket_id, number=number, query_code=query_code, channel=r.channel.value, source_ref=r.source_ref,
        kind=sub.kind.value, urgency=sub.urgency.value, subject=sub.subject, description=sub.description,
        citizen_name=sub.citizen.name, citizen_phone=sub.citizen.phone, citizen_email=sub.citizen.email,
        confidential=sub.citizen.confidential, location=sub.location.model_dump(mode="json"),
        category=sub.category, operator=r.operator, received_at=r.received_at, event_id=event_id,
        state=TicketState.RECEIVED.value, reconcile_attempts=0, may_publish=sub.may_publish, answer=sub.answer,
        duplicate_of=r.duplicate_of, attachments=[a.model_dump(mode="json") for a in attachments] or None,
        # Columns set later by other events: listed so that every row of the multi-row insert has them.
        department=None, tracked_at=None, last_reconcile_at=None, reply=None, reply_due=None, status_at=None,
        closed_at=None, resume_to=None, rating_link=None, rating_link_expires_at=None, rated_at=None,
    )


async def accept(store: ServiceStore, sub: TicketSubmission, *, channel: Channel, operator: str | None,
                 idempotency_key: str | None, tz: ZoneInfo, trace_id: str | None = None,
                 attachments: list[Attachment] | None = None) -> Receipt:
    """Record a request and owe TicketReceived, once per (channel, reference).

    Every channel comes through here: one validation, one numbering, one idempotency rule.
    A new ticket whose citizen gave an e-mail address also owes them a receipt by mail
    (when outgoing mail is configured).
    """
    _check_places(store, sub)
    duplicate_of = await _open_ticket(store, sub.duplicate_of_number) if sub.duplicate_of_number else None
    received_at = utcnow()
    group = store.local.get("group_commit")
    if group is None:
        group = store.local["group_commit"] = GroupCommit(store)
    return await group.submit(_Request(
        sub=sub, channel=channel, operator=operator, source_ref=reference(idempotency_key, sub.source_ref),
        trace_id=trace_id, attachments=attachments, duplicate_of=duplicate_of, received_at=received_at,
        day=received_at.astimezone(tz).date(), receipt=asyncio.get_running_loop().create_future()))


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


# No unit holds a ticket in these states, and no reply clock runs: just received, waiting for a dispatcher (待派单),
# or returned (退单) until it is dispatched again. The look-up shows neither a unit nor a deadline (—) for them.
UNHELD_STATES = frozenset({TicketState.RECEIVED, TicketState.DISPATCHING, TicketState.RETURNED})


def _tracked_statement():
    """TicketTracked for many tickets as one executemany: the acknowledgement always counts, the
    status only if no later one was applied (re-emitted events arrive late); department and
    reply_due when the event names them, cleared when it says no unit holds the ticket (UNHELD_STATES:
    the unit that returned it no longer does, nor does its deadline stand)."""
    at = bindparam("b_at", type_=tickets.c.status_at.type)
    newer = or_(tickets.c.status_at.is_(None), tickets.c.status_at <= at)
    unheld = and_(newer, bindparam("b_unheld", type_=Boolean()))

    def named(column, *, cleared=None):
        value = bindparam(f"b_{column}", type_=tickets.c[column].type)
        whens = [(and_(newer, value.is_not(None)), value)]
        if cleared is not None:
            whens.append((cleared, null()))
        return case(*whens, else_=tickets.c[column])

    return update(tickets).where(tickets.c.ticket_id == bindparam("b_ticket_id")).values(
        tracked_at=case((or_(tickets.c.tracked_at.is_(None), tickets.c.tracked_at <= at), at),
                        else_=tickets.c.tracked_at),
        state=case((newer, bindparam("b_state", type_=tickets.c.state.type)), else_=tickets.c.state),
        status_at=case((newer, at), else_=tickets.c.status_at),
        department=named("department", cleared=unheld),
        reply_due=named("reply_due", cleared=unheld),
        duplicate_of=named("duplicate_of"),  # merged into it (重复件): the citizen's look-up follows it there
    )


_TRACKED = _tracked_statement()


async def tracked_many(tx: Transaction, items: list) -> None:
    """TicketTracked: the end-to-end acknowledgement; also keeps a status for look-ups."""
    await tx.session.execute(_TRACKED, [
        {"b_ticket_id": envelope.ticket_id, "b_at": envelope.occurred_at, "b_state": payload.state.value,
         "b_department": payload.lead.name if payload.lead else None, "b_reply_due": payload.reply_due,
         "b_duplicate_of": payload.merged_into, "b_unheld": payload.state in UNHELD_STATES}
        for envelope, payload in items])


on_tracked = Batched(tracked_many)


async def on_accepted(tx: Transaction, envelope: Envelope, payload) -> None:
    """签收: the department signed for it."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.SIGNED_FOR.value, department=payload.unit.name, status_at=envelope.occurred_at))


async def on_contacted(tx: Transaction, envelope: Envelope, payload) -> None:
    """联系市民: the unit recorded its call to the citizen; the look-up says 已联系, and a ticket set aside later goes
    back to it, as the tracker's does. A call made while an extension request waits for the office leaves the look-up
    at 延期审批中, as the tracker leaves the ticket: the decision then brings it back to 已联系 (resume_to)."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=case((_EXTENSION_PENDING, tickets.c.state), else_=TicketState.CONTACTED.value),
        resume_to=case((_EXTENSION_PENDING, TicketState.CONTACTED.value), else_=tickets.c.resume_to),
        department=payload.unit.name, status_at=envelope.occurred_at))


async def on_returned(tx: Transaction, envelope: Envelope, payload) -> None:
    """退单: the unit sent the ticket back, and until the router's next decision reaches intake (TicketTracked) no unit
    holds it and no deadline stands (UNHELD_STATES). It comes on its own topic, in no order with the lifecycle's: a
    return the next decision overtook changes nothing."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.RETURNED.value, department=None, reply_due=None, status_at=envelope.occurred_at))


async def on_replied(tx: Transaction, envelope: Envelope, payload) -> None:
    """答复: the department's reply, which the citizen may read on look-up."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.REPLIED.value, department=payload.unit.name, reply=payload.reply,
        status_at=envelope.occurred_at))


async def on_return_visit_due(tx: Transaction, envelope: Envelope, payload: ReturnVisitDue, *,
                              local: dict | None = None) -> None:
    """待回访: a reply to a ticket from an online channel comes with a one-time link where the citizen rates it
    (评价). The look-up offers it while the reply waits for its rating; a citizen who left an e-mail address is
    also sent it (intake.mail), when outgoing mail is configured (`local`: the store's). Citizens who gave only
    a phone are called back (method phone) and get no link. A late one (a later status is shown, or the citizen
    rated since) changes nothing."""
    if payload.method != "link" or not payload.link:
        return
    unrated = or_(tickets.c.rated_at.is_(None), tickets.c.rated_at < envelope.occurred_at)
    offered = await tx.session.execute(update(tickets).where(_newer(envelope), unrated).values(
        rating_link=payload.link, rating_link_expires_at=payload.link_expires_at)
                                       .returning(tickets.c.citizen_email))
    email = offered.scalar()
    if email and "@" in email and (local or {}).get(ACKNOWLEDGE):
        await tx.session.execute(insert_ignoring_conflicts(rating_invitations, tx.session.bind.dialect.name, dict(
            event_id=envelope.event_id, ticket_id=envelope.ticket_id, link=payload.link, attempts=0,
            next_attempt_at=utcnow()), "event_id"))


async def on_visit_recorded(tx: Transaction, envelope: Envelope, payload: ReturnVisitRecorded) -> None:
    """回访 recorded: once the citizen has rated through the link, it is used up and no longer offered, and the
    look-up says the rating arrived (a dissatisfied rating waits for a visitor's call before the ticket is closed or
    reopened). The rating's own time, so that it is kept the same however often the event comes."""
    if payload.by == RATED_BY_CITIZEN:
        await tx.session.execute(update(tickets).where(_newer(envelope)).values(
            rating_link=None, rated_at=envelope.occurred_at))


async def on_reopened(tx: Transaction, envelope: Envelope, payload) -> None:
    """重办: back to the department; the earlier reply no longer stands."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.REOPENED.value, department=payload.unit.name, reply=None, reply_due=payload.reply_due,
        closed_at=None, rating_link=None, rated_at=None, status_at=envelope.occurred_at))


# ClockPaused's reason, as the state the tracker puts the ticket in: 待补充材料 or 挂账.
_PAUSED_STATE = {"waiting_citizen": TicketState.WAITING_CITIZEN, "deferred": TicketState.DEFERRED}
_PAUSED = tickets.c.state.in_(sorted(state.value for state in _PAUSED_STATE.values()))
_EXTENSION_PENDING = tickets.c.state == TicketState.EXTENSION_REQUESTED.value
# Set aside (paused, or waiting for the decision on an extension): the state to go back to is kept in resume_to.
_SET_ASIDE = or_(_PAUSED, _EXTENSION_PENDING)


def _kept_resume_to():
    """The state to go back to once the ticket is taken up again: the one shown now, unless it is set aside
    already (a redelivered event), whose own state to go back to stays."""
    return case((_SET_ASIDE, tickets.c.resume_to), else_=tickets.c.state)


def _taken_up_again(set_aside):
    """The state of a ticket taken up again from `set_aside`: the one kept in resume_to or, where intake never
    heard it set aside (the event lost, its state learnt from a later TicketTracked), 已签收, as the tracker's own
    fall-back for tickets set aside before it kept the state (lifecycle.set_aside_from)."""
    return case((and_(set_aside, tickets.c.resume_to.is_not(None)), tickets.c.resume_to),
                (set_aside, TicketState.SIGNED_FOR.value), else_=tickets.c.state)


async def on_extension_requested(tx: Transaction, envelope: Envelope, payload) -> None:
    """延期申请: the look-up says 延期审批中 until the office decides (ExtensionDecided); the state shown before is
    kept, as the tracker keeps the state the ticket goes back to."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=TicketState.EXTENSION_REQUESTED.value, resume_to=_kept_resume_to(), status_at=envelope.occurred_at))


async def on_extension_decided(tx: Transaction, envelope: Envelope, payload) -> None:
    """延期审批: the state shown before the request again and, when approved, the new deadline. A late one (a later
    status is shown) changes nothing, as a late ClockResumed."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=_taken_up_again(_EXTENSION_PENDING), resume_to=None, status_at=envelope.occurred_at,
        **({"reply_due": payload.new_due} if payload.approved and payload.new_due else {})))


async def on_clock_paused(tx: Transaction, envelope: Envelope, payload) -> None:
    """待补充材料 / 挂账: the citizen's look-up says the ticket waits and its clock stands still; the state shown
    before is kept for ClockResumed (the tracker goes back to the state it was set aside from, too)."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=_PAUSED_STATE[payload.reason].value, resume_to=_kept_resume_to(), status_at=envelope.occurred_at))


async def on_clock_resumed(tx: Transaction, envelope: Envelope, payload) -> None:
    """恢复办理: the state shown before the pause again, and the new reply deadline (moved by the time paused).
    A late one (a later status is shown) changes nothing: its deadline is no longer the ticket's either."""
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=_taken_up_again(_PAUSED), resume_to=None, reply_due=payload.reply_due, status_at=envelope.occurred_at))


_CLOSED_STATE = {"answered_directly": TicketState.ANSWERED_DIRECTLY, "merged": TicketState.MERGED}


async def on_closed(tx: Transaction, envelope: Envelope, payload) -> None:
    state = _CLOSED_STATE.get(payload.outcome, TicketState.CLOSED)
    await tx.session.execute(update(tickets).where(_newer(envelope)).values(
        state=state.value, closed_at=envelope.occurred_at, rating_link=None, rated_at=None,
        status_at=envelope.occurred_at))


async def on_reconcile(tx: Transaction, envelope: Envelope, payload) -> None:
    """Another service asks for re-emission: send TicketReceived again (same event id)."""
    if payload.requested_by != PRODUCER:
        await tx.reemit(envelope.ticket_id, ("TicketReceived",))


# --- the directory's public part (the router's, as it publishes it) ---------------------


def file_places(path: str | Path) -> Places:
    """The public part of the directory file the router starts from: what intake uses until the router publishes."""
    return Places.from_file_data(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})


async def stored_places(store: ServiceStore) -> Places | None:
    """The public part the router last published, if it has published one."""
    async with store.db.session() as s:
        content = await s.scalar(select(directory.c.content).where(directory.c.id == 1))
    return Places.from_event(DirectoryPublished.model_validate(content)) if content is not None else None


async def stored_places_activated_at(store: ServiceStore) -> datetime | None:
    async with store.db.session() as s:
        return await s.scalar(select(directory.c.activated_at).where(directory.c.id == 1))


async def on_directory_published(tx: Transaction, envelope: Envelope, payload: DirectoryPublished, *,
                                 local: dict | None = None) -> None:
    """Another directory version is in force: keep its public part, unless one activated later is kept
    (a re-sent or late event changes nothing). `local`: the store's, whose copy in use is replaced on commit;
    other intake processes read it from the table (bootstrap's follower)."""
    values = dict(version=payload.version, version_id=payload.version_id, activated_at=payload.activated_at,
                  content=payload.model_dump(mode="json"), received_at=utcnow())
    result = await tx.session.execute(insert_ignoring_conflicts(directory, tx.session.bind.dialect.name,
                                                                {"id": 1, **values}, "id"))
    if not result.rowcount:
        result = await tx.session.execute(update(directory).where(
            directory.c.id == 1, directory.c.activated_at < payload.activated_at).values(**values))
    if not result.rowcount:
        return
    log.info("directory taken from the router", version=payload.version, version_id=payload.version_id)
    if local is not None:
        places = Places.from_event(payload)
        tx.after_commit(lambda: local.__setitem__(PLACES, places))


# --- look-ups the channels need -------------------------------------------------------


async def repeats_of(store: ServiceStore, phone: str, subject: str, description: str) -> list[Repeat]:
    """重复件 candidates: the caller's open tickets of the last 30 days about the same matter, likeliest first.
    `phone` as typed: it is read as tickets store it (plain_phone)."""
    phone = plain_phone(phone)
    if not phone:  # tickets without a number are no one caller's
        return []
    now = utcnow()
    async with store.db.session() as s:
        rows = (await s.execute(
            select(tickets.c.ticket_id, tickets.c.number, tickets.c.subject, tickets.c.description, tickets.c.state,
                   tickets.c.received_at)
            .where(tickets.c.citizen_phone == phone, tickets.c.received_at >= now - REPEAT_WINDOW,
                   tickets.c.state.notin_(sorted(CLOSED_STATES)))
            .order_by(tickets.c.received_at.desc()).limit(100))).all()
    earlier = [Earlier(r.ticket_id, r.number, r.subject, r.description, r.state, r.received_at) for r in rows]
    return find_repeats(subject, description, earlier, now=now)


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


async def progress(store: ServiceStore, number: str, proof: str):
    """(the ticket, whether its query code proved it), if the number exists and `proof` is the last four digits
    of the caller's phone or the ticket's query code (查询码); else None.

    Callers must answer "not found" the same way in every case. Only the query code proves the citizen: the
    handling unit sees the last four digits of the phone (masked as 138****8000) and the number too.
    """
    proof = plain(proof)
    by_phone = len(proof) == 4 and proof.isascii() and proof.isdigit()
    code = None if by_phone else read_query_code(proof)
    if not by_phone and code is None:
        return None
    async with store.db.session() as s:
        row = (await s.execute(select(tickets).where(tickets.c.number == number))).first()
    if row is None:
        return None
    if by_phone:
        digits = _digits(row.citizen_phone)
        return (row, False) if len(digits) >= 4 and hmac.compare_digest(digits[-4:], proof) else None
    return (row, True) if row.query_code and hmac.compare_digest(row.query_code, code) else None


def rating(row) -> tuple[str | None, str | None]:
    """Where the citizen's rating (评价) of the reply the ticket `row` waits on stands, and the link to offer:
    ("offered", link) while the one-time link works, ("expired", None) once it expired unused (a visitor calls
    instead), ("received", None) once the citizen rated through it (a dissatisfied rating, which a visitor's call
    checks before the ticket is closed or reopened); (None, None) otherwise."""
    if row.state != TicketState.REPLIED:
        return None, None
    if row.rating_link:
        if row.rating_link_expires_at is not None and row.rating_link_expires_at <= utcnow():
            return "expired", None
        return "offered", row.rating_link
    return ("received", None) if row.rated_at is not None else (None, None)


def called_back(row) -> bool:
    """Whether 12345 calls the citizen of `row` about the reply it waits on: 回访 by phone, as the tracker chooses for
    every channel that is not online (ONLINE_CHANNELS), to a citizen who left a number. Online channels are offered
    the rating link instead (`rating`)."""
    return (row.state == TicketState.REPLIED and row.channel not in ONLINE_CHANNELS
            and bool(_digits(row.citizen_phone)))


def same_citizen(a, b) -> bool:
    """Whether two tickets came from the same phone number or e-mail address."""
    phone = _digits(a.citizen_phone)
    if phone and phone == _digits(b.citizen_phone):
        return True
    return bool(a.citizen_email) and a.citizen_email.casefold() == (b.citizen_email or "").casefold()


async def merged_into(store: ServiceStore, row):
    """The ticket `row` was merged into as a repeat (重复件), once the tracker said so; else None."""
    if row.state != TicketState.MERGED.value or row.duplicate_of is None:
        return None
    async with store.db.session() as s:
        return (await s.execute(select(tickets).where(tickets.c.ticket_id == row.duplicate_of))).first()


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

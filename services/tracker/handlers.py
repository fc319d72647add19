"""The tracker's event handlers: build the read model of each ticket from the events it consumes.

TicketReceived and TicketAssigned travel on different topics, so either may arrive
first; each handler fills in what it knows and never moves a ticket backwards.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from uuid import UUID

from sqlalchemy import delete, select, update

from jiesu import audit
from jiesu.config import Settings
from jiesu.consumer import Batched
from jiesu.db import insert_rows, one_of, update_rows
from jiesu.logging import get_logger
from jiesu.messaging import Transaction
from jiesu.text import plain_phone
from schemas import topics
from schemas.enums import KIND_LABELS, ROUTING_METHOD_LABELS, TicketState
from schemas.events import (
    DispatchNeeded,
    Envelope,
    TicketMerged,
    TicketAssigned,
    TicketReceived,
    TicketTracked,
    UnitRef,
    utcnow,
)
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.lifecycle import Action, TransitionRefused, next_state
from services.tracker.domain.sla import SlaPolicy, compute_deadlines
from services.tracker import timers
from services.tracker.notify import notify_many
from services.tracker.queries import tickets_by_id
from services.tracker.store import code_names, supervision_orders, ticket_units, tickets, timeline, unit_log

log = get_logger(__name__)
PRODUCER = "tracker"


@dataclass
class Clocks:
    calendar: WorkingCalendar
    policy: SlaPolicy
    settings: Settings | None = None  # for notifications (mail, webhook); None in pure tests


async def _row(tx: Transaction, envelope: Envelope, *, for_update: bool = False):
    stmt = select(tickets).where(tickets.c.ticket_id == envelope.ticket_id)
    if for_update and tx.session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=tickets)
    return (await tx.session.execute(stmt)).first()


async def _timeline(tx: Transaction, envelope: Envelope, actor: str, summary: str, data: dict,
                    suffix: str = "") -> None:
    event_id = _derived_id(envelope.event_id, suffix) if suffix else envelope.event_id
    tx.append(timeline, dict(ticket_id=envelope.ticket_id, event_id=event_id, event_type=envelope.event_type,
                             at=envelope.occurred_at, actor=actor, summary=summary, data=data))


def _derived_id(event_id, purpose: str):
    """A stable id for a second timeline entry caused by one event (unique, and the same on redelivery)."""
    import uuid

    return uuid.uuid5(event_id, purpose)


def _received_values(p: TicketReceived) -> dict:
    return dict(
        number=p.number, channel=p.channel.value, kind=p.kind.value, urgency=p.urgency.value, subject=p.subject,
        description=p.description, citizen_name=p.citizen.name, citizen_phone=plain_phone(p.citizen.phone),
        confidential=p.citizen.confidential, district=p.location.district, street=p.location.street,
        address=p.location.address, received_at=p.received_at,
        attachments=[a.model_dump() for a in p.attachments],
    )


def _received_data(p: TicketReceived) -> dict:
    """The receipt line's data; a call the operator marked a repeat (重复件) says so and by whom, since the
    TicketMerged that follows comes from the router either way (queries.merge_lines names who decided)."""
    data = {"channel": p.channel.value}
    if p.duplicate_of is not None:
        data["duplicate_of"] = str(p.duplicate_of)
        if p.operator:
            data["by"] = p.operator
    return data


async def _write(tx: Transaction, inserts: list[dict], updates: list[dict]) -> None:
    """A run of events writes its tickets with one statement for the new and one for the known."""
    await insert_rows(tx.session, tickets, inserts)
    await update_rows(tx.session, tickets, updates, by="ticket_id")


async def _received_many(tx: Transaction, items: list[tuple[Envelope, TicketReceived]]) -> None:
    rows = await tickets_by_id(tx.session, [e.ticket_id for e, _ in items])
    inserts, updates = [], []
    for envelope, p in items:
        values = _received_values(p)
        answered = p.answer is not None
        if envelope.ticket_id not in rows:
            extra = dict(tracked_event_id=None, tracked_at=None, reply=None, replied_at=None)
            if answered:  # 直接办结: closed at once, counted, never dispatched
                tracked = await _acknowledge(tx, envelope, p.number, TicketState.ANSWERED_DIRECTLY)
                extra = dict(tracked_event_id=tracked, tracked_at=utcnow(), reply=p.answer,
                             replied_at=p.received_at)
            inserts.append(dict(
                ticket_id=envelope.ticket_id,
                state=(TicketState.ANSWERED_DIRECTLY if answered else TicketState.RECEIVED).value,
                category=p.category, co_handlers=[], updated_at=utcnow(), **values, **extra))
        else:  # the decision overtook it: fill in the details, keep the later state
            row = rows[envelope.ticket_id]
            values["district"] = values["district"] or row.district  # as routing placed a street-only ticket
            tracked_event_id = row.tracked_event_id
            if tracked_event_id is None and row.state != TicketState.RECEIVED.value:  # held back until now
                tracked_event_id = await _acknowledge(tx, envelope, p.number, TicketState(row.state),
                                                      unit_ref(row.lead_code, row.lead_name), row.reply_due,
                                                      row.merged_into)
            updates.append(dict(ticket_id=envelope.ticket_id, updated_at=utcnow(), tracked_event_id=tracked_event_id,
                                **values))
        await _timeline(tx, envelope, p.operator or p.channel.value,
                        f"受理（{KIND_LABELS[p.kind]}）：{p.subject}", _received_data(p))
        if answered:
            await _timeline(tx, envelope, p.operator or "hotline", f"直接办结：{p.answer[:200]}", {},
                            suffix="answer")
    await _write(tx, inserts, updates)


on_received = Batched(_received_many)


async def _acknowledge(tx: Transaction, envelope: Envelope, number: str, state: TicketState,
                       lead: UnitRef | None = None, reply_due=None, merged_into: UUID | None = None) -> UUID:
    """TicketTracked: tell intake (and anyone) that the tracker holds the ticket now; its event id."""
    tracked = Envelope.wrap(TicketTracked(number=number, state=state, lead=lead, reply_due=reply_due,
                                          merged_into=merged_into),
                            ticket_id=envelope.ticket_id, producer=PRODUCER, trace_id=envelope.trace_id)
    await tx.emit(topics.LIFECYCLE, tracked)
    return tracked.event_id


async def _acknowledge_if_received(tx: Transaction, row, envelope: Envelope, number: str, state: TicketState,
                                   lead: UnitRef | None = None, reply_due=None,
                                   merged_into: UUID | None = None) -> UUID | None:
    """A decision about the ticket is acknowledged only once its TicketReceived was applied here
    (`row` as it was before the decision). Until then intake keeps reconciling the ticket, so a
    TicketReceived the broker lost is sent again; applying it acknowledges (_received_many)."""
    if row is None or row.received_at is None:
        return None
    return await _acknowledge(tx, envelope, number, state, lead, reply_due, merged_into)


async def on_merged(tx: Transaction, envelope: Envelope, p: TicketMerged, clocks: Clocks | None = None) -> None:
    """重复件: this ticket follows an earlier one; both timelines say so, and the unit leading the earlier one is told
    (`_tell_lead_of_repeat`). The ticket is locked (as an order given meanwhile locks it) before `supervised` says
    whether it has orders to release."""
    row = await _row(tx, envelope, for_update=True)
    state = _transition(row.state if row else None, Action.MERGE)
    if state is None:
        return
    values = dict(number=p.number, state=state.value, merged_into=p.into_ticket_id, updated_at=utcnow(),
                  tracked_event_id=await _acknowledge_if_received(tx, row, envelope, p.number, state,
                                                                  merged_into=p.into_ticket_id))
    if row is not None and row.supervised:  # finished: its orders no longer bind their unit
        await release_orders(tx, envelope.ticket_id)
    if row is None:
        await tx.session.execute(tickets.insert().values(ticket_id=envelope.ticket_id, confidential=False,
                                                         co_handlers=[], tracked_at=utcnow(), **values))
    else:
        values.setdefault("tracked_at", row.tracked_at or utcnow())
        await tx.session.execute(update(tickets).where(tickets.c.ticket_id == envelope.ticket_id).values(**values))
    await _timeline(tx, envelope, "router", f"作为重复件合并至 {p.into_number}", {"into": str(p.into_ticket_id)})
    tx.append(timeline, dict(
        ticket_id=p.into_ticket_id, event_id=_derived_id(envelope.event_id, "merged-into"),
        event_type="TicketMerged", at=envelope.occurred_at, actor="router",
        summary=f"重复件 {p.number} 已并入本工单", data={"from": str(envelope.ticket_id)}))
    await _tell_lead_of_repeat(tx, envelope, p, row, clocks)


async def _tell_lead_of_repeat(tx: Transaction, envelope: Envelope, p: TicketMerged, row,
                               clocks: Clocks | None) -> None:
    """The caller rang again about a ticket a unit leads: that unit reads the repeat (queries.readable), and is told
    so, or what the caller added would reach nobody. The notice links the repeat; it carries the earlier ticket's
    reply deadline, the one the unit works to. One more read, on merges only (rare); none while the earlier ticket
    waits for a dispatcher: its next lead finds the repeat in its timeline."""
    into = (await tx.session.execute(select(tickets.c.lead_code, tickets.c.subject, tickets.c.reply_due)
                                     .where(tickets.c.ticket_id == p.into_ticket_id))).first()
    if into is None or not into.lead_code:
        return
    repeat = SimpleNamespace(ticket_id=envelope.ticket_id, number=p.number,
                             subject=(row.subject if row is not None else None) or into.subject,
                             citizen_phone=row.citizen_phone if row is not None else None, reply_due=into.reply_due)
    await notify_many(tx, clocks.settings if clocks else None, [(
        repeat, into.lead_code, "repeat",
        f"重复件：市民就工单 {p.into_number} 再次来电（{p.number}，已并入该工单），请查看补充的情况。")])


def _transition(current: str | None, action: Action) -> TicketState | None:
    """The next state, or None when this event is stale for the ticket's current state."""
    try:
        return next_state(TicketState(current or TicketState.RECEIVED), action)
    except TransitionRefused:
        return None


async def on_assigned(tx: Transaction, envelope: Envelope, p: TicketAssigned, clocks: Clocks) -> None:
    await assigned_many(tx, [(envelope, p)], clocks)


async def assigned_many(tx: Transaction, items: list[tuple[Envelope, TicketAssigned]], clocks: Clocks) -> None:
    """派单: the unit's clocks start; its inbox, timers and notification follow (one statement each for a run).

    The tickets are locked (as an order given meanwhile locks its ticket) before `supervised` says whether a
    re-assignment has orders to close or to bind again."""
    rows = await tickets_by_id(tx.session, [e.ticket_id for e, _ in items], for_update=True)
    inserts, updates, units, again, again_supervised, due, notices, moved = [], [], [], [], [], [], [], []
    for envelope, p in items:
        row = rows.get(envelope.ticket_id)
        state = _transition(row.state if row else None, Action.ASSIGN)
        if state is None:
            log.warning("assignment ignored in this state", state=row.state, ticket_id=str(envelope.ticket_id),
                        event_id=str(envelope.event_id))
            await _timeline(tx, envelope, "router", f"派单未生效（工单状态：{row.state}）", {})
            continue
        assigned_at = envelope.occurred_at
        if (row is not None and row.state == TicketState.ASSIGNED.value and row.lead_code
                and row.lead_code != p.lead.code):
            # 改派 before sign-for: the unit's holding ends, kept with its clocks as a return keeps them, so that a
            # deadline it let pass stays on its scorecard (stats.late_return_conditions).
            moved.append(dict(ticket_id=envelope.ticket_id, unit_code=row.lead_code, kind="moved", at=assigned_at,
                              assigned_at=row.assigned_at, sign_for_due=row.sign_for_due,
                              signed_for_at=row.signed_for_at, reply_due=row.reply_due))
        deadlines = compute_deadlines(clocks.policy, clocks.calendar, assigned_at, p.kind.value, p.urgency.value)
        tracked = await _acknowledge_if_received(tx, row, envelope, p.number, state, p.lead, deadlines.reply_due)
        values = dict(
            state=state.value, number=p.number, kind=p.kind.value, urgency=p.urgency.value,
            category=p.category, lead_code=p.lead.code, lead_name=p.lead.name,
            co_handlers=[c.model_dump() for c in p.co_handlers], routing=p.reason.model_dump(mode="json"),
            assigned_at=assigned_at, sign_for_due=deadlines.sign_for_due, contact_due=deadlines.contact_due,
            reply_due=deadlines.reply_due, warn_at=deadlines.warn_at,
            calendar_unconfirmed=deadlines.calendar_unconfirmed, tracked_event_id=tracked,
            updated_at=utcnow(), tracked_at=(row.tracked_at if row else None) or utcnow(),
            # A new assignment starts the clocks afresh: earlier pauses, extensions, sign-for and call to the citizen
            # were another unit's (or this unit's before it returned the ticket), and the state to go back to with them.
            clock_started_at=assigned_at, reopened=False, extensions=[], pauses=[], paused_at=None,
            signed_for_at=None, contacted_at=None, resume_to=None,
            # A citizen who named only a street is counted in its district; a district the citizen gave stays.
            district=(row.district if row else None) or p.district,
        )
        if row is None:
            inserts.append(dict(ticket_id=envelope.ticket_id, confidential=False, **values))
        else:
            updates.append(dict(ticket_id=envelope.ticket_id, **values))
        # A first assignment has no units or timers to replace yet; only a re-assignment pays for the clean-up.
        first = row is None or row.assigned_at is None
        if not first:
            again.append((envelope, p.lead))
            if row.supervised:  # only a ticket ever supervised has orders for the move to close or bind again
                again_supervised.append((envelope, p.lead))
        units.append({"ticket_id": envelope.ticket_id, "unit_code": p.lead.code, "role": "lead"})
        units.extend({"ticket_id": envelope.ticket_id, "unit_code": c.code, "role": "co"} for c in p.co_handlers
                     if c.code != p.lead.code)
        tx.append(unit_log, dict(ticket_id=envelope.ticket_id, unit_code=p.lead.code, kind="assigned",
                                 at=assigned_at))  # for the return rate
        due.append((envelope.ticket_id, state.value, deadlines, first))
        before = dict(row._mapping) if row else {"subject": None, "citizen_phone": None}
        current = SimpleNamespace(**{**before, **values, "ticket_id": envelope.ticket_id})  # the row as now written
        notices.append((current, p.lead.code, "arrived",
                        f"新工单：{p.number}（{p.kind and KIND_LABELS.get(p.kind, p.kind)}），请在签收时限内签收。"))
        why = f"规则 {p.reason.rule_id}" if p.reason.rule_id else (
            f"模型 {p.reason.model_version}（{(p.reason.score or 0):.0%}）" if p.reason.model_version
            else ROUTING_METHOD_LABELS.get(p.reason.method, p.reason.method))
        co = "、".join(c.name for c in p.co_handlers)
        await _timeline(tx, envelope, "router",
                        f"派单至 {p.lead.name}" + (f"，协办 {co}" if co else "") + f"（依据：{why}）",
                        {"lead": p.lead.code, "reason": p.reason.model_dump(mode="json")})
    await _write(tx, inserts, updates)
    if moved:
        await insert_rows(tx.session, unit_log, moved)
    await _remember_names(tx, {code: name for _, p in items for code, name in _names_of(p).items()})
    if again:
        await tx.session.execute(delete(ticket_units).where(
            one_of(ticket_units.c.ticket_id, [e.ticket_id for e, _ in again], tx.session.bind.dialect.name)))
        if again_supervised:
            await _close_orders_of_former_units(tx, again_supervised)
    if units:
        await insert_rows(tx.session, ticket_units, units)
    await timers.schedule_many(tx, due, clocks.calendar)
    await notify_many(tx, clocks.settings, notices)


def _names_of(p: TicketAssigned) -> dict[str, str]:
    """The names an assignment brings: its units' (so that a unit that holds no ticket any more is still named on
    the scorecard and in the bulletin), and its places' and category's, which win where a code is both."""
    units = {u.code: u.name for u in (p.lead, *p.co_handlers) if u.name and u.name != u.code}
    return {**units, **p.names}


# Per database: the code names this process has written, so that a run writes only what is new or renamed.
_NAMES_WRITTEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _remember_names(tx: Transaction, names: dict[str, str]) -> None:
    """Keep the directory's names of the codes the run's tickets carry (TicketAssigned.names) for the pages.

    One upsert of what this process has not written yet (a few rows while a process is new, then none), in
    code order, so that two tracker instances writing the same codes lock them in one order. What was written
    is remembered only once the run commits: a run that rolls back writes the names again when retried.
    """
    engine = tx.session.bind
    written = _NAMES_WRITTEN.setdefault(engine, {})
    new = {code: name[:200] for code, name in names.items() if written.get(code) != name[:200]}
    if not new:
        return
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(code_names).values([{"code": code, "name": new[code]} for code in sorted(new)])
    await tx.session.execute(stmt.on_conflict_do_update(index_elements=["code"], set_={"name": stmt.excluded.name},
                                                        where=code_names.c.name != stmt.excluded.name))
    tx.after_commit(partial(written.update, new))


async def release_orders(tx: Transaction, ticket_id) -> None:
    """The ticket's orders still waiting for an answer no longer bind their unit: marked (`released_at`) in the
    transaction that finishes the ticket (办结, 合并) or takes it from the unit (退单), they leave the partial index
    that escalation looks in at every poll, and wait in the office's list for an answer or a closure as before.
    `released_at` is the one record of it that escalation, the orders page and the office's closing read (see
    `escalation`). Callers skip it for a ticket never supervised (`tickets.supervised`)."""
    o = supervision_orders.c
    await tx.session.execute(update(supervision_orders).where(
        o.ticket_id == ticket_id, o.responded_at.is_(None), o.closed_at.is_(None), o.released_at.is_(None))
        .values(released_at=utcnow()))


async def _close_orders_of_former_units(tx: Transaction, moved: list[tuple[Envelope, UnitRef]]) -> None:
    """改派: a ticket given to another unit (after a 退单, or re-dispatched) takes its deadlines afresh there, so a
    supervision order still waiting for the former unit's answer is closed (销号) by the system, with the reason,
    in the timeline and the audit trail: that unit no longer handles, or even sees, the ticket, and escalating the
    order would push it about a matter it has handed on. An order it has answered stays for the office to close.

    A ticket its unit returned and that is dispatched back to that unit: the unit holds it again, so its order binds
    it again and goes back where escalation looks (`released_at` cleared), in this same transaction. Only tickets
    ever supervised (`tickets.supervised`) come here, and never on a first assignment."""
    leads = {e.ticket_id: (e, lead) for e, lead in moved}
    o = supervision_orders.c
    waiting = (await tx.session.execute(select(o.order_no, o.ticket_id, o.unit_code, o.level, o.released_at).where(
        one_of(o.ticket_id, list(leads), tx.session.bind.dialect.name), o.closed_at.is_(None),
        o.responded_at.is_(None)))).all()
    bound_again = [order.order_no for order in waiting
                   if order.unit_code == leads[order.ticket_id][1].code and order.released_at is not None]
    if bound_again:
        await tx.session.execute(update(supervision_orders).where(o.order_no.in_(bound_again), o.closed_at.is_(None))
                                 .values(released_at=None))
    for order in waiting:
        envelope, lead = leads[order.ticket_id]
        if order.unit_code == lead.code:
            continue
        now = utcnow()
        note = f"工单已改派至 {lead.name}，本督办单随之销号"
        await tx.session.execute(update(supervision_orders).where(o.order_no == order.order_no, o.closed_at.is_(None))
                                 .values(closed_at=now, closed_by="system", closing_note=note))
        tx.append(timeline, dict(ticket_id=order.ticket_id, event_id=_derived_id(envelope.event_id, order.order_no),
                                 event_type="SupervisionClosed", at=now, actor="system",
                                 summary=f"督办单 {order.order_no} 办结销号：{note}",
                                 data={"by": "system", "order_no": order.order_no}))
        tx.append(tx.tables.audit, audit.entry("SupervisionClosed", ticket_id=order.ticket_id, details={
            "order_no": order.order_no, "by": "system", "unit_code": order.unit_code, "level": order.level,
            "reason": "reassigned", "to_unit": lead.code}))


async def _dispatch_needed_many(tx: Transaction, items: list[tuple[Envelope, DispatchNeeded]]) -> None:
    """转人工派单: the router could not decide and a dispatcher will (one statement each for a run).

    About one ticket in ten goes this way; applied one at a time, they cost the tracker two
    thirds of its statements (bench.hop: 850 of 1,293 for 4,000 tickets).
    """
    rows = await tickets_by_id(tx.session, [e.ticket_id for e, _ in items])
    inserts, updates = [], []
    for envelope, p in items:
        row = rows.get(envelope.ticket_id)
        state = _transition(row.state if row else None, Action.NEED_DISPATCH)
        if state is None:
            continue
        values = dict(number=p.number, state=state.value, updated_at=utcnow(),
                      tracked_at=(row.tracked_at if row else None) or utcnow(),
                      tracked_event_id=await _acknowledge_if_received(tx, row, envelope, p.number, state))
        if row is None:
            inserts.append(dict(ticket_id=envelope.ticket_id, confidential=False, co_handlers=[], **values))
        else:
            updates.append(dict(ticket_id=envelope.ticket_id, **values))
        await _timeline(tx, envelope, "router", f"转人工派单：{p.why}", {})
    await _write(tx, inserts, updates)
    await _remember_names(tx, {code: name for _, p in items for code, name in p.names.items()})


on_dispatch_needed = Batched(_dispatch_needed_many)


async def on_reconcile(tx: Transaction, envelope: Envelope, p) -> None:
    """Re-emit our acknowledgement (same event id) if we hold the ticket."""
    row = await _row(tx, envelope)
    if row is not None and row.tracked_event_id is not None:
        await tx.reemit(envelope.ticket_id, ("TicketTracked",))


def unit_ref(code: str | None, name: str | None) -> UnitRef | None:
    return UnitRef(code=code, name=name or code) if code else None

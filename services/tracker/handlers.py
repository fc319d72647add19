"""The tracker's event handlers: build the read model of each ticket from the events it consumes.

TicketReceived and TicketAssigned travel on different topics, so either may arrive
first; each handler fills in what it knows and never moves a ticket backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from jiesu.logging import get_logger
from jiesu.messaging import Transaction
from schemas import topics
from schemas.enums import KIND_LABELS, TicketState
from schemas.events import (
    DispatchNeeded,
    Envelope,
    TicketAssigned,
    TicketReceived,
    TicketTracked,
    UnitRef,
    new_event_id,
    utcnow,
)
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.lifecycle import Action, TransitionRefused, next_state
from services.tracker.domain.sla import SlaPolicy, compute_deadlines
from services.tracker.store import ticket_units, tickets, timeline
from sqlalchemy import delete

log = get_logger(__name__)
PRODUCER = "tracker"


@dataclass
class Clocks:
    calendar: WorkingCalendar
    policy: SlaPolicy


async def _row(tx: Transaction, envelope: Envelope):
    return (await tx.session.execute(select(tickets).where(tickets.c.ticket_id == envelope.ticket_id))).first()


async def _timeline(tx: Transaction, envelope: Envelope, actor: str, summary: str, data: dict) -> None:
    await tx.session.execute(timeline.insert().values(
        ticket_id=envelope.ticket_id, event_id=envelope.event_id, event_type=envelope.event_type,
        at=envelope.occurred_at, actor=actor, summary=summary, data=data))


def _received_values(p: TicketReceived) -> dict:
    return dict(
        number=p.number, channel=p.channel.value, kind=p.kind.value, urgency=p.urgency.value, subject=p.subject,
        description=p.description, citizen_name=p.citizen.name, citizen_phone=p.citizen.phone,
        confidential=p.citizen.confidential, district=p.location.district, street=p.location.street,
        address=p.location.address, received_at=p.received_at,
    )


async def on_received(tx: Transaction, envelope: Envelope, p: TicketReceived) -> None:
    row = await _row(tx, envelope)
    values = _received_values(p)
    if row is None:
        await tx.session.execute(tickets.insert().values(
            ticket_id=envelope.ticket_id, state=TicketState.RECEIVED.value, category=p.category, co_handlers=[],
            updated_at=utcnow(), **values))
    else:  # the assignment overtook it: fill in the details, keep the later state
        await tx.session.execute(update(tickets).where(tickets.c.ticket_id == envelope.ticket_id).values(
            updated_at=utcnow(), **values))
    await _timeline(tx, envelope, p.operator or p.channel.value,
                    f"受理（{KIND_LABELS[p.kind]}）：{p.subject}", {"channel": p.channel.value})


def _transition(current: str | None, action: Action) -> TicketState | None:
    """The next state, or None when this event is stale for the ticket's current state."""
    try:
        return next_state(TicketState(current or TicketState.RECEIVED), action)
    except TransitionRefused:
        return None


async def on_assigned(tx: Transaction, envelope: Envelope, p: TicketAssigned, clocks: Clocks) -> None:
    row = await _row(tx, envelope)
    state = _transition(row.state if row else None, Action.ASSIGN)
    if state is None:
        log.warning("assignment ignored in this state", state=row.state)
        await _timeline(tx, envelope, "router", f"派单未生效（工单状态：{row.state}）", {})
        return
    assigned_at = envelope.occurred_at
    deadlines = compute_deadlines(clocks.policy, clocks.calendar, assigned_at, p.kind.value, p.urgency.value)
    tracked = Envelope.wrap(
        TicketTracked(number=p.number, state=state, lead=p.lead, reply_due=deadlines.reply_due),
        ticket_id=envelope.ticket_id, producer=PRODUCER, trace_id=envelope.trace_id, event_id=new_event_id(),
    )
    values = dict(
        state=state.value, number=p.number, kind=p.kind.value, urgency=p.urgency.value,
        category=p.category, lead_code=p.lead.code, lead_name=p.lead.name,
        co_handlers=[c.model_dump() for c in p.co_handlers], routing=p.reason.model_dump(mode="json"),
        assigned_at=assigned_at, sign_for_due=deadlines.sign_for_due, contact_due=deadlines.contact_due,
        reply_due=deadlines.reply_due, warn_at=deadlines.warn_at,
        calendar_unconfirmed=deadlines.calendar_unconfirmed, tracked_event_id=tracked.event_id, updated_at=utcnow(),
    )
    if row is None:
        await tx.session.execute(tickets.insert().values(ticket_id=envelope.ticket_id, confidential=False,
                                                         tracked_at=utcnow(), **values))
    else:
        if row.tracked_at is None:
            values["tracked_at"] = utcnow()
        await tx.session.execute(update(tickets).where(tickets.c.ticket_id == envelope.ticket_id).values(**values))
    await tx.session.execute(delete(ticket_units).where(ticket_units.c.ticket_id == envelope.ticket_id))
    await tx.session.execute(ticket_units.insert(), [
        {"ticket_id": envelope.ticket_id, "unit_code": p.lead.code, "role": "lead"},
        *({"ticket_id": envelope.ticket_id, "unit_code": c.code, "role": "co"} for c in p.co_handlers
          if c.code != p.lead.code),
    ])
    why = f"规则 {p.reason.rule_id}" if p.reason.rule_id else (
        f"模型 {p.reason.model_version}（{(p.reason.score or 0):.0%}）" if p.reason.model_version else p.reason.method)
    co = "、".join(c.name for c in p.co_handlers)
    await _timeline(tx, envelope, "router", f"派单至 {p.lead.name}" + (f"，协办 {co}" if co else "") + f"（依据：{why}）",
                    {"lead": p.lead.code, "reason": p.reason.model_dump(mode="json")})
    await tx.emit(topics.LIFECYCLE, tracked)


async def on_dispatch_needed(tx: Transaction, envelope: Envelope, p: DispatchNeeded) -> None:
    row = await _row(tx, envelope)
    state = _transition(row.state if row else None, Action.NEED_DISPATCH)
    if state is None:
        return
    tracked = Envelope.wrap(TicketTracked(number=p.number, state=state), ticket_id=envelope.ticket_id,
                            producer=PRODUCER, trace_id=envelope.trace_id)
    values = dict(number=p.number, state=state.value, tracked_event_id=tracked.event_id, updated_at=utcnow())
    if row is None:
        await tx.session.execute(tickets.insert().values(ticket_id=envelope.ticket_id, confidential=False,
                                                         co_handlers=[], tracked_at=utcnow(), **values))
    else:
        if row.tracked_at is None:
            values["tracked_at"] = utcnow()
        await tx.session.execute(update(tickets).where(tickets.c.ticket_id == envelope.ticket_id).values(**values))
    await _timeline(tx, envelope, "router", f"转人工派单：{p.why}", {})
    await tx.emit(topics.LIFECYCLE, tracked)


async def on_reconcile(tx: Transaction, envelope: Envelope, p) -> None:
    """Re-emit our acknowledgement (same event id) if we hold the ticket."""
    row = await _row(tx, envelope)
    if row is not None and row.tracked_event_id is not None:
        await tx.reemit(envelope.ticket_id, ("TicketTracked",))


def unit_ref(code: str | None, name: str | None) -> UnitRef | None:
    return UnitRef(code=code, name=name or code) if code else None

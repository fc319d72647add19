"""The router's event handlers: decide where each received ticket goes, and say why."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from jiesu.logging import get_logger
from jiesu.messaging import Transaction
from schemas import topics
from schemas.events import DispatchNeeded, Envelope, TicketAssigned, TicketMerged, TicketReceived, utcnow
from services.router.domain.decide import Classifier, Decision, decide, ref
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts
from services.router.store import decisions

log = get_logger(__name__)
PRODUCER = "router"


@dataclass
class RouterState:
    directory: Directory
    classifier: Classifier | None = None
    threshold: float = 0.6


def facts_of(p: TicketReceived) -> TicketFacts:
    return TicketFacts(subject=p.subject, description=p.description, category=p.category,
                       district=p.location.district, street=p.location.street, channel=p.channel.value,
                       kind=p.kind.value)


def decision_event(d: Decision, *, number: str, kind, urgency, attempt: int):
    if d.outcome == "assign":
        return topics.ASSIGNED, TicketAssigned(
            number=number, kind=kind, urgency=urgency, lead=ref(d.lead),
            co_handlers=[ref(u) for u in d.co_handlers], category=d.category, reason=d.reason, attempt=attempt)
    return topics.ASSIGNED, DispatchNeeded(number=number, suggestions=list(d.suggestions), why=d.why[:500],
                                           attempt=attempt)


async def on_received(tx: Transaction, envelope: Envelope, p: TicketReceived, state: RouterState) -> None:
    existing = await tx.session.scalar(select(decisions.c.ticket_id).where(decisions.c.ticket_id == envelope.ticket_id))
    if existing is not None:
        return  # decided already (a re-emitted TicketReceived with a new id would land here)
    if p.answer is not None:
        return  # 直接办结: answered on the call, never dispatched
    if p.duplicate_of is not None:
        await _merge(tx, envelope, p)
        return
    d = decide(state.directory, facts_of(p), classifier=state.classifier, threshold=state.threshold,
               operator_unit=p.suggested_unit)
    topic, payload = decision_event(d, number=p.number, kind=p.kind, urgency=p.urgency, attempt=1)
    await tx.session.execute(decisions.insert().values(
        ticket_id=envelope.ticket_id, number=p.number, status="assigned" if d.outcome == "assign" else "dispatch",
        channel=p.channel.value, kind=p.kind.value, urgency=p.urgency.value, subject=p.subject,
        description=p.description, district=p.location.district, street=p.location.street,
        category=d.category, lead_code=d.lead.code if d.lead else None,
        co_handlers=[u.code for u in d.co_handlers], reason=d.reason.model_dump(mode="json"),
        suggestions=[s.model_dump(mode="json") for s in d.suggestions], why=d.why[:500], attempt=1, excluded=[],
        received_at=p.received_at, decided_at=utcnow(),
    ))
    await tx.emit(topic, Envelope.wrap(payload, ticket_id=envelope.ticket_id, producer=PRODUCER,
                                       trace_id=envelope.trace_id))
    log.info("routed", outcome=d.outcome, lead=d.lead.code if d.lead else None, why=d.why)


async def _merge(tx: Transaction, envelope: Envelope, p: TicketReceived) -> None:
    """重复件: the operator attached this call to an open ticket; it follows that one."""
    await tx.session.execute(decisions.insert().values(
        ticket_id=envelope.ticket_id, number=p.number, status="merged", channel=p.channel.value, kind=p.kind.value,
        urgency=p.urgency.value, subject=p.subject, description=p.description, district=p.location.district,
        street=p.location.street, category=p.category, lead_code=None, co_handlers=[],
        reason={"method": "operator", "note": f"合并至 {p.duplicate_of_number or p.duplicate_of}"}, suggestions=[],
        why="话务员认定为重复件", attempt=1, excluded=[], received_at=p.received_at, decided_at=utcnow(),
    ))
    await tx.emit(topics.ASSIGNED, Envelope.wrap(
        TicketMerged(number=p.number, into_ticket_id=p.duplicate_of, into_number=p.duplicate_of_number or "",
                     similarity=1.0),
        ticket_id=envelope.ticket_id, producer=PRODUCER, trace_id=envelope.trace_id))


async def on_reconcile(tx: Transaction, envelope: Envelope, p) -> None:
    """Re-emit our decisions for this ticket (same event ids); consumers skip what they applied."""
    await tx.reemit(envelope.ticket_id, ("TicketAssigned", "DispatchNeeded", "TicketMerged"))

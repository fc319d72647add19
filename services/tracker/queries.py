"""Reading tickets for people, with the access rules applied in one place.

Department staff see only tickets their unit leads or co-handles, ever; contact details
are masked for roles that do not need them and on confidential tickets.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, exists, func, or_, select

from jiesu.identity import User
from schemas.enums import Role
from services.tracker.store import ticket_units, tickets, timeline

CONTACT_ROLES = {Role.OPERATOR, Role.VISITOR, Role.SUPERVISOR, Role.ADMIN}


def scoped(stmt: Select, user: User) -> Select:
    if user.role == Role.DEPARTMENT:
        return stmt.where(exists().where(ticket_units.c.ticket_id == tickets.c.ticket_id,
                                         ticket_units.c.unit_code == user.department))
    return stmt


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    return phone[:3] + "*" * max(len(phone) - 7, 4) + phone[-4:] if len(phone) >= 7 else "*" * len(phone)


def mask_name(name: str | None) -> str:
    return (name[0] + "*" * (len(name) - 1)) if name else ""


def can_see_contact(user: User, confidential: bool) -> bool:
    if user.role in (Role.SUPERVISOR, Role.ADMIN):
        return True
    if confidential:
        return False
    return user.role in CONTACT_ROLES or user.role == Role.DEPARTMENT


def ticket_view(row, user: User, now: datetime) -> dict:
    show = can_see_contact(user, bool(row.confidential))
    due = row.reply_due
    return {
        "ticket_id": str(row.ticket_id),
        "number": row.number,
        "state": row.state,
        "channel": row.channel,
        "kind": row.kind,
        "urgency": row.urgency,
        "subject": row.subject,
        "description": row.description,
        "citizen": {
            "name": row.citizen_name if show else mask_name(row.citizen_name),
            "phone": row.citizen_phone if show else mask_phone(row.citizen_phone),
            "confidential": bool(row.confidential),
            "masked": not show,
        },
        "location": {"district": row.district, "street": row.street, "address": row.address},
        "category": row.category,
        "lead": {"code": row.lead_code, "name": row.lead_name} if row.lead_code else None,
        "co_handlers": row.co_handlers or [],
        "routing": row.routing,
        "received_at": _iso(row.received_at),
        "assigned_at": _iso(row.assigned_at),
        "sign_for_due": _iso(row.sign_for_due),
        "contact_due": _iso(row.contact_due),
        "reply_due": _iso(due),
        "warn_at": _iso(row.warn_at),
        "calendar_unconfirmed": bool(row.calendar_unconfirmed),
        "overdue": bool(due and due < now and row.state not in ("replied", "closed", "merged", "answered_directly")),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def find_stmt(ref: str) -> Select:
    try:
        return select(tickets).where(tickets.c.ticket_id == uuid.UUID(ref))
    except ValueError:
        return select(tickets).where(tickets.c.number == ref)


async def list_tickets(session, user: User, *, state: str | None = None, phone: str | None = None,
                       unit: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list, int]:
    stmt = scoped(select(tickets), user)
    if state:
        stmt = stmt.where(tickets.c.state == state)
    if phone:
        stmt = stmt.where(tickets.c.citizen_phone == phone)
    if unit:
        stmt = stmt.where(or_(tickets.c.lead_code == unit, exists().where(
            ticket_units.c.ticket_id == tickets.c.ticket_id, ticket_units.c.unit_code == unit)))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (await session.execute(stmt.order_by(tickets.c.received_at.desc().nulls_last(),
                                                tickets.c.ticket_id.desc()).limit(limit).offset(offset))).all()
    return rows, total


async def timeline_of(session, ticket_id) -> list[dict]:
    rows = (await session.execute(select(timeline).where(timeline.c.ticket_id == ticket_id)
                                  .order_by(timeline.c.at, timeline.c.id))).all()
    return [{"at": r.at.isoformat(), "event_type": r.event_type, "actor": r.actor, "summary": r.summary}
            for r in rows]

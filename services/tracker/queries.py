"""Reading tickets for people, with the access rules applied in one place.

Department staff see only tickets their unit leads or co-handles, and, to read, the repeat calls (重复件) merged
into a ticket their unit leads; of the tickets their unit returned (已退单), only what became of them. Contact
details are masked for roles that do not need them and on confidential tickets.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select

from jiesu import attachment_grants, audit
from jiesu.db import one_of
from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.privacy import mask_contact_in, mask_name, mask_phone
from jiesu.text import plain_phone
from schemas.enums import RETURN_REASONS, Role, TicketState
from services.tracker import stats
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import SlaPolicy
from services.tracker.store import code_names as code_names_table
from services.tracker.store import messaging, supervision_orders, ticket_units, tickets, timeline, unit_log

if TYPE_CHECKING:
    from services.tracker.handlers import Clocks


async def code_names(session) -> dict[str, str]:
    """code → name for the category, district and street codes tickets carry (the directory's names, as the
    router sent them with assignments): a few hundred rows. A code without one shows as itself."""
    return dict((await session.execute(select(code_names_table.c.code, code_names_table.c.name))).all())


async def tickets_by_id(session, ticket_ids, *, for_update: bool = False) -> dict:
    """Tickets by id, in one query (a consumer's run, a timer round); `for_update` locks them (on PostgreSQL, in id
    order, so that two runs locking some of the same tickets never wait on each other in a circle)."""
    if not ticket_ids:
        return {}
    stmt = select(tickets).where(one_of(tickets.c.ticket_id, ticket_ids, session.bind.dialect.name))
    if for_update and session.bind.dialect.name == "postgresql":
        stmt = stmt.order_by(tickets.c.ticket_id).with_for_update(of=tickets)
    return {row.ticket_id: row for row in await session.execute(stmt)}


CONTACT_ROLES = {Role.OPERATOR, Role.VISITOR, Role.SUPERVISOR, Role.ADMIN}


def scoped(stmt: Select, user: User) -> Select:
    """The tickets `user` works on: for department staff, those their unit leads or co-handles."""
    if user.role == Role.DEPARTMENT:
        return stmt.where(exists().where(ticket_units.c.ticket_id == tickets.c.ticket_id,
                                         ticket_units.c.unit_code == user.department))
    return stmt


def readable(stmt: Select, user: User) -> Select:
    """The tickets `user` may read one at a time (`visible_ticket`): those `scoped` to them and, for department
    staff, the repeat calls (重复件) merged into a ticket their unit leads now, which carry what the caller added.
    Lists and actions stay `scoped`: a repeat is finished, and read only."""
    if user.role != Role.DEPARTMENT:
        return stmt
    into = tickets.alias("merged_into_ticket")
    return stmt.where(or_(
        exists().where(ticket_units.c.ticket_id == tickets.c.ticket_id, ticket_units.c.unit_code == user.department),
        and_(tickets.c.merged_into.is_not(None),
             exists().where(into.c.ticket_id == tickets.c.merged_into, into.c.lead_code == user.department))))


def can_see_contact(user: User, confidential: bool) -> bool:
    if user.role in (Role.SUPERVISOR, Role.ADMIN):
        return True
    if confidential:
        return False
    return user.role in CONTACT_ROLES or user.role == Role.DEPARTMENT


def shows_contact(row, user: User) -> bool:
    """Whether this user reading this ticket sees a citizen's name or number unmasked (a view to audit)."""
    return bool(row.citizen_phone or row.citizen_name) and can_see_contact(user, bool(row.confidential))


def attachment_links(secret: str, user: User, row) -> list[dict]:
    """The citizen's files, each with a download link that intake opens for this user alone, for a few minutes.

    Intake keeps the files but cannot know whose department a ticket is in; whoever calls this
    has just found that the user may see the ticket, and vouches for that in a signed grant.
    Tickets received before the tracker kept the list (tracker_0009) have none.
    """
    if not row.number:
        return []
    out = []
    for a in row.attachments or []:
        grant = attachment_grants.sign(secret,
                                       attachment_grants.AttachmentGrant.for_user(user, row.number, a["sha256"]))
        url = f"/api/v1/intake/tickets/{quote(row.number)}/attachments/{a['sha256']}?grant={quote(grant)}"
        out.append({**a, "url": url})
    return out


def ticket_view(row, user: User, now: datetime, clocks: Clocks | None = None) -> dict:
    """The ticket as pages and the API show it to `user` at `now`. With the tracker's `clocks`, the time left is
    counted as its reply deadline is, in working time or on the clock, and says what it counts to (`time_left`,
    `time_left_note`); without them, on the clock."""
    show = can_see_contact(user, bool(row.confidential))
    owed = contact_owed(row)

    def text(value: str | None) -> str | None:  # free text can name the citizen or quote a number too
        return value if show else mask_contact_in(value, row.citizen_name, row.citizen_phone)

    due = row.reply_due
    return {
        "ticket_id": str(row.ticket_id),
        "number": row.number,
        "state": row.state,
        "channel": row.channel,
        "kind": row.kind,
        "urgency": row.urgency,
        "subject": text(row.subject),
        "description": text(row.description),
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
        "contact_owed": owed,  # the page's and the lists' 联系市民期限 are red past it only while the call is owed
        "contact_overdue": owed and row.contact_due < now,
        "reply_due": _iso(due),
        "warn_at": _iso(row.warn_at),
        "calendar_unconfirmed": bool(row.calendar_unconfirmed),
        "overdue": bool(due and due < now and row.state in stats.RUNNING),
        "signed_for_at": _iso(getattr(row, "signed_for_at", None)),
        "contacted_at": _iso(getattr(row, "contacted_at", None)),
        "paused_since": _iso(getattr(row, "paused_at", None)),
        "extensions": list(getattr(row, "extensions", None) or []),
        "reopened": bool(getattr(row, "reopened", False)),
        "redo": shows_redo(row),
        "returns": getattr(row, "returns_count", 0) or 0,
        "reply": text(row.reply),
        "replied_at": _iso(row.replied_at),
        "visit_due": _iso(getattr(row, "visit_due", None)),
        "visit_method": getattr(row, "visit_method", None),
        "visit_attempts": getattr(row, "visit_attempts", 0) or 0,
        "citizen_rating": getattr(row, "citizen_rating", None),
        "outcome": getattr(row, "outcome", None),
        "supervised": bool(getattr(row, "supervised", False)),
        "urgency_class": urgency_class(row, now),
        "time_left": time_left(row, now, clocks),
        "time_left_note": time_left_note(row, clocks),
    }


def contact_owed(row) -> bool:
    """Whether an urgent ticket still owes its call to the citizen (联系市民), as its contact timer chases it
    (`timers.awaiting_contact`): also while an extension request asked before the call waits for the office."""
    from services.tracker.timers import awaiting_contact  # timers reads tickets through this module

    return bool(row.contact_due) and awaiting_contact(TicketState(row.state), row)


def shows_redo(row) -> bool:
    """Whether pages tag the ticket 重办 beside its state: it was reopened once and has moved on since (while it is
    reopened, its state already says 重办)."""
    return bool(getattr(row, "reopened", False)) and row.state != "reopened"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def find_stmt(ref: str) -> Select:
    try:
        return select(tickets).where(tickets.c.ticket_id == uuid.UUID(ref))
    except ValueError:
        return select(tickets).where(tickets.c.number == ref)


async def list_tickets(session, user: User, *, state: str | None = None, phone: str | None = None,
                       unit: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list, int]:
    """A page of the tickets `user` may see, newest first, and how many there are. `phone` is read as a caller's
    number however it was typed (jiesu.text.plain_phone), as the tracker keeps numbers."""
    stmt = scoped(select(tickets), user)
    if state:
        stmt = stmt.where(tickets.c.state == state)
    if phone:
        plain = plain_phone(phone)  # nothing but dashes and spaces is no caller's number: it finds nothing
        stmt = stmt.where(tickets.c.citizen_phone == plain if plain else false())
    if unit:
        stmt = stmt.where(or_(tickets.c.lead_code == unit, exists().where(
            ticket_units.c.ticket_id == tickets.c.ticket_id, ticket_units.c.unit_code == unit)))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (await session.execute(stmt.order_by(tickets.c.received_at.desc().nulls_last(),
                                                tickets.c.ticket_id.desc()).limit(limit).offset(offset))).all()
    return rows, total


async def timeline_of(session, row, user: User, *, routing: bool = False) -> list[dict]:
    """The ticket's history; notes and replies in it are masked like the ticket for a reader who may not see
    the citizen's contact.

    With `routing` (the ticket page), a dispatch line also carries its routing method and dispatcher (`method`,
    `by`: `dispatch_reason`); the rest of its data stays out, and the API's lines keep their four fields."""
    show = can_see_contact(user, bool(row.confidential))
    events = (await session.execute(select(timeline).where(timeline.c.ticket_id == row.ticket_id)
                                    .order_by(timeline.c.at, timeline.c.id))).all()
    lines = []
    for e in events:
        line = {"at": e.at.isoformat(), "event_type": e.event_type, "actor": e.actor,
                "summary": e.summary if show else mask_contact_in(e.summary, row.citizen_name, row.citizen_phone)}
        if routing and e.event_type == "TicketAssigned":
            line.update(dispatch_reason(e.data))
        lines.append(line)
    if routing:
        await merge_lines(session, row, events, lines)
    return lines


async def merge_lines(session, row, events, lines: list[dict]) -> None:
    """重复件 lines (TicketMerged) on the ticket page: `link`, the other ticket's number as the line says it, for
    the page to link (its own page decides who may see it); and who decided the merge (`method` "operator",
    `by`) when the operator marked the repeated call at intake (handlers._received_data), else the router did.
    At most two queries, only on a ticket with such lines."""
    merges = []  # (line, the other ticket's id, the repeat's id)
    for line, e in zip(lines, events):
        data = e.data or {}
        if e.event_type == "TicketMerged" and (data.get("into") or data.get("from")):
            # The repeat's own line says "into" the earlier ticket; the earlier ticket's, "from" the repeat.
            merges.append((line, data.get("into") or data["from"], str(row.ticket_id) if data.get("into")
                           else data["from"]))
    if not merges:
        return
    numbers = {str(i): n for i, n in (await session.execute(
        select(tickets.c.ticket_id, tickets.c.number)
        .where(tickets.c.ticket_id.in_(sorted({other for _, other, _ in merges}))))).all()}
    # The repeat's own receipt line is among `events` when this page is the repeat's; others are read.
    received = {str(row.ticket_id): e.data or {} for e in events if e.event_type == "TicketReceived"}
    others = sorted({repeat for _, _, repeat in merges} - received.keys())
    if others:
        received |= {str(i): d or {} for i, d in (await session.execute(
            select(timeline.c.ticket_id, timeline.c.data)
            .where(timeline.c.ticket_id.in_(others), timeline.c.event_type == "TicketReceived"))).all()}
    for line, other, repeat in merges:
        if numbers.get(other) and numbers[other] in line["summary"]:
            line["link"] = numbers[other]
        marked = received.get(repeat, {})
        if marked.get("duplicate_of"):
            line["method"] = "operator"
            if marked.get("by"):
                line["by"] = marked["by"]


def dispatch_reason(data) -> dict:
    """A TicketAssigned line's routing method and, for a hand dispatch, who decided it (RoutingReason.method,
    .by), as far as its data holds them: lines written before the data kept the reason hold neither."""
    reason = (data or {}).get("reason")
    if not isinstance(reason, dict):
        return {}
    return {key: reason[key] for key in ("method", "by") if reason.get(key)}


# --- the department workbench, return visits and the supervision office ----------------

# The state groups are defined once, in stats.py; the workbench's 在办 is the part of stats.IN_PROGRESS a unit holds.
INBOX_TABS = {
    "open": "在办",
    "new": "待签收",
    "soon": "即将到期",
    "overdue": "已超期",
    "paused": "暂停计时",
    "replied": "已答复",
    "done": "已办结",
}
# A unit's clocks run on the tickets it leads: these tabs (and the badge's 已超期) count those alone, since a
# co-handler (协办) neither signs for a ticket nor answers to its deadline. It finds the tickets it helps on under
# 协办 (CO_TAB), which only department staff have.
LEAD_ONLY_TABS = frozenset({"new", "soon", "overdue"})
CO_TAB = {"co": "协办"}


def inbox_tabs(user: User) -> dict[str, str]:
    """The workbench's tabs for `user`, in order: a unit's have 协办 after 已超期."""
    if user.role != Role.DEPARTMENT:
        return INBOX_TABS
    tabs = list(INBOX_TABS.items())
    at = list(INBOX_TABS).index("overdue") + 1
    return dict(tabs[:at] + list(CO_TAB.items()) + tabs[at:])


def inbox_filter(stmt: Select, tab: str, now: datetime, unit: str | None = None) -> Select:
    """The tickets of the tab `tab` among `stmt`'s; with `unit` (a department's workbench), the LEAD_ONLY_TABS keep
    the tickets it leads, and 协办 those it co-handles that are still open."""
    if unit and tab in LEAD_ONLY_TABS:
        stmt = stmt.where(tickets.c.lead_code == unit)
    if tab == "co":
        return stmt.where(tickets.c.state.in_(stats.OPEN), exists().where(
            ticket_units.c.ticket_id == tickets.c.ticket_id, ticket_units.c.unit_code == unit,
            ticket_units.c.role == "co"))
    if tab == "open":
        return stmt.where(tickets.c.state.in_(stats.OPEN))
    if tab == "new":  # just arrived, newest first
        return stmt.where(tickets.c.state == "assigned")
    if tab == "soon":
        return stmt.where(tickets.c.state.in_(stats.RUNNING), tickets.c.reply_due >= now,
                          or_(tickets.c.warn_at <= now, tickets.c.reply_due <= now + timedelta(hours=24)))
    if tab == "overdue":
        return stmt.where(tickets.c.state.in_(stats.RUNNING), tickets.c.reply_due < now)
    if tab == "paused":
        return stmt.where(tickets.c.state.in_(stats.PAUSED))
    if tab == "replied":
        return stmt.where(tickets.c.state == "replied")
    return stmt.where(tickets.c.state.in_(("closed",)))


def inbox_base(user: User, *, kind: str | None = None, q: str | None = None) -> tuple[Select, str | None]:
    """The tickets the workbench of `user` lists, before its tabs (`inbox_filter`) split them, and the unit whose
    workbench it is (None for the office's, which lists every unit's): with a kind, or a search of number, subject
    and address."""
    base = scoped(select(tickets), user)
    unit = user.department if user.role == Role.DEPARTMENT else None
    if user.role != Role.DEPARTMENT:
        base = base.where(tickets.c.lead_code.is_not(None))
    return searched(base, kind=kind, q=q), unit


def searched(stmt: Select, *, kind: str | None = None, q: str | None = None) -> Select:
    """`stmt`'s tickets of the kind `kind` and matching the workbench's search `q` (number, subject or address)."""
    if kind:
        stmt = stmt.where(tickets.c.kind == kind)
    if q:
        like = f"%{q.strip()}%"
        stmt = stmt.where(or_(tickets.c.number.like(like), tickets.c.subject.like(like), tickets.c.address.like(like)))
    return stmt


async def inbox_count(session, user: User, tab: str, now: datetime) -> int:
    """How many tickets the workbench's tab `tab` holds for `user`, as its count on the inbox says: one query (the
    badge's 超期)."""
    base, unit = inbox_base(user)
    return await _tab_count(session, base, tab, now, unit)


async def _tab_count(session, base: Select, tab: str, now: datetime, unit: str | None) -> int:
    return await session.scalar(select(func.count()).select_from(inbox_filter(base, tab, now, unit).subquery()))


async def inbox(session, user: User, *, tab: str, now: datetime, kind: str | None = None, q: str | None = None,
                limit: int = 50, offset: int = 0) -> tuple[list, int, dict[str, int]]:
    """One page of the workbench's tab `tab` (`inbox_tabs`), its total, and every tab's count."""
    counts = await inbox_counts(session, user, now, kind=kind, q=q)
    base, unit = inbox_base(user, kind=kind, q=q)
    stmt = inbox_filter(base, tab, now, unit)
    if tab == "new":
        order = (tickets.c.assigned_at.desc().nulls_last(), tickets.c.ticket_id)
    elif tab in ("replied", "done"):
        order = (tickets.c.replied_at.desc().nulls_last(), tickets.c.ticket_id)
    else:
        order = (tickets.c.reply_due.asc().nulls_last(), tickets.c.ticket_id)
    rows = (await session.execute(stmt.order_by(*order).limit(limit).offset(offset))).all()
    return rows, counts[tab], counts


async def inbox_counts(session, user: User, now: datetime, *, kind: str | None = None,
                       q: str | None = None) -> dict[str, int]:
    """How many tickets each of the workbench's ticket tabs (`inbox_tabs`) holds for `user`: one query a tab."""
    base, unit = inbox_base(user, kind=kind, q=q)
    return {name: await _tab_count(session, base, name, now, unit) for name in inbox_tabs(user)}


# 已退单: a unit's workbench also lists the tickets it sent back (退单) lately, newest return first, and where each
# stands now, for the unit to answer whoever asks what became of them. They are returns, not tickets it holds: the
# unit log (tracker_unit_log) says which unit returned what and when, the return's timeline line why (its data's
# reason_code and reason). A row carries no contact, and a link only to a ticket the unit may open now (`readable`).
RETURNED = "returned"
RETURNED_TAB = {RETURNED: "已退单"}
RETURNED_DAYS = 90
# Only for return lines written before their data kept the reason: their summary, as actions.Tracker.return_ticket
# writes it, is all that says why.
RETURN_SUMMARY = re.compile(r"退单（(?P<label>[^）]*)）：(?P<words>.*)", re.S)


def workbench_tabs(user: User) -> dict[str, str]:
    """The workbench's tabs for `user`, in order: the ticket tabs (`inbox_tabs`) and, for a unit, 已退单 after 协办."""
    tabs = inbox_tabs(user)
    if user.role != Role.DEPARTMENT:
        return tabs
    items = list(tabs.items())
    at = list(tabs).index("co") + 1
    return dict(items[:at] + list(RETURNED_TAB.items()) + items[at:])


async def workbench(session, user: User, *, tab: str, now: datetime, kind: str | None = None, q: str | None = None,
                    limit: int = 50, offset: int = 0) -> tuple[list, list[dict], int, dict[str, int]]:
    """One page of the workbench's tab `tab` (`workbench_tabs`): the tickets of a ticket tab (`inbox`), or the
    returns of 已退单 (`returned_by_unit`); its total; and every tab's count."""
    if tab == RETURNED:
        returns, total = await returned_by_unit(session, user, now=now, kind=kind, q=q, limit=limit, offset=offset)
        return [], returns, total, await inbox_counts(session, user, now, kind=kind, q=q) | {RETURNED: total}
    rows, total, counts = await inbox(session, user, tab=tab, now=now, kind=kind, q=q, limit=limit, offset=offset)
    if RETURNED in workbench_tabs(user):
        counts[RETURNED] = await session.scalar(select(func.count()).select_from(
            _returns_stmt(user, now, kind=kind, q=q).subquery()))
    return rows, [], total, counts


def _returns_stmt(user: User, now: datetime, *, kind: str | None = None, q: str | None = None) -> Select:
    """The returns by the unit of `user` in the last RETURNED_DAYS, each with its ticket as it is now."""
    u = unit_log.c
    return searched(select(u.id, u.at, tickets.c.ticket_id, tickets.c.number, tickets.c.subject, tickets.c.state,
                           tickets.c.lead_code, tickets.c.citizen_name, tickets.c.citizen_phone)
                    .join(tickets, tickets.c.ticket_id == u.ticket_id)
                    .where(u.unit_code == user.department, u.kind == "returned",
                           u.at >= now - timedelta(days=RETURNED_DAYS)), kind=kind, q=q)


async def returned_by_unit(session, user: User, *, now: datetime, kind: str | None = None, q: str | None = None,
                           limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """A page of 已退单 for the unit of `user`, newest return first, and how many there are: each return (a ticket
    returned twice is there twice) with its ticket's number and subject, when and why the unit returned it, and
    where the ticket stands now (its state, the unit leading it or none). The unit's words and the subject are
    masked like a reader's who may not see the citizen's contact: the ticket may be no longer the unit's."""
    stmt = _returns_stmt(user, now, kind=kind, q=q)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (await session.execute(stmt.order_by(unit_log.c.at.desc(), unit_log.c.id.desc())
                                  .limit(limit).offset(offset))).all()
    if not rows:
        return [], total
    ids = sorted({r.ticket_id for r in rows})
    lines: dict = {}
    for line in (await session.execute(
            select(timeline.c.ticket_id, timeline.c.at, timeline.c.summary, timeline.c.data)
            .where(timeline.c.ticket_id.in_(ids), timeline.c.event_type == "TicketReturned"))).all():
        lines.setdefault(line.ticket_id, []).append(line)
    openable = set((await session.execute(readable(select(tickets.c.ticket_id).where(
        tickets.c.ticket_id.in_(ids)), user))).scalars())
    names = await stats.unit_names(session, [r.lead_code for r in rows if r.lead_code])
    out = []
    for r in rows:
        # The return's own line: written with the log row, in the same transaction, an instant after it.
        line = min(lines.get(r.ticket_id, []), key=lambda candidate: abs(candidate.at - r.at), default=None)
        label, words = return_reason(line)
        out.append({
            "ticket_id": str(r.ticket_id),
            "number": r.number,
            "subject": mask_contact_in(r.subject, r.citizen_name, r.citizen_phone) or "",
            "returned_at": _iso(r.at),
            "reason_label": label,
            "reason": mask_contact_in(words, r.citizen_name, r.citizen_phone) or "",
            "state": r.state,
            "lead": {"code": r.lead_code, "name": names.get(r.lead_code, r.lead_code)} if r.lead_code else None,
            "openable": r.ticket_id in openable,
        })
    return out, total


def return_reason(line) -> tuple[str, str]:
    """Why a unit returned a ticket, from the return's timeline line (`line`, or None): the reason's label and the
    unit's words, as its data keeps them. A line written before the data kept them is read from its summary
    (RETURN_SUMMARY), or the summary is the words."""
    if line is None:
        return "", ""
    data = line.data or {}
    if "reason_code" in data:
        return RETURN_REASONS.get(data["reason_code"], data["reason_code"]), data.get("reason") or ""
    said = RETURN_SUMMARY.match(line.summary or "")
    return (said["label"], said["words"]) if said else ("", line.summary or "")


def urgency_class(row, now: datetime) -> str:
    """How a row is coloured: overdue, soon (warning passed or under a day), paused, or ok."""
    if row.state in stats.PAUSED:
        return "paused"
    if row.state not in stats.RUNNING or not row.reply_due:
        return "ok"
    if row.reply_due < now:
        return "overdue"
    if (row.warn_at and row.warn_at <= now) or row.reply_due - now <= timedelta(hours=24):
        return "soon"
    return "ok"


def time_left(row, now: datetime, clocks: Clocks | None = None) -> str:
    """How long the unit has left to reply, or how late it is: in working time (剩余 2 个工作日 3 小时, 剩余 5 小时
    20 分, 超期 1 个工作日) where the reply deadline is counted in working days or hours, so that a weekend or a
    holiday ahead does not look like time to work; on the clock (剩余 3 天 2 小时) where the rules count it so, as
    for urgent matters, or without `clocks`."""
    if row.state not in stats.RUNNING or not row.reply_due:
        return ""
    if clocks is not None and counts_working_time(row, clocks.policy):
        return working_time_left(clocks.calendar, row.reply_due, now)
    seconds = (row.reply_due - now).total_seconds()
    hours = abs(seconds) / 3600
    text = f"{int(hours // 24)} 天 {int(hours % 24)} 小时" if hours >= 24 else f"{int(hours)} 小时 {int(abs(seconds) % 3600 // 60)} 分"
    return ("超期 " if seconds < 0 else "剩余 ") + text


def counts_working_time(row, policy: SlaPolicy) -> bool:
    """Whether the ticket's reply deadline runs on the working calendar: its rule's (the reopen time for 重办), as
    the deadline was computed (actions.Tracker._deadlines); extensions are working days, and only such rules take
    them."""
    if getattr(row, "reopened", False):
        return policy.reopen.uses_calendar
    return policy.rule_for(row.kind or "complaint", row.urgency or "normal").reply.uses_calendar


def working_day_seconds(calendar: WorkingCalendar) -> int:
    """The working time of one working day: its periods together (9:00–12:00 and 13:30–17:30, 7 hours)."""
    day = date(2000, 1, 3)
    return sum(int((datetime.combine(day, end) - datetime.combine(day, start)).total_seconds())
               for start, end in calendar.working_periods)


def working_time_left(calendar: WorkingCalendar, due: datetime, now: datetime) -> str:
    """The working time from `now` to `due` as a unit reads it: whole working days and hours, or hours and minutes
    under one working day; late as 超期 the same way (the supervision order's 超期 N 个工作日 counts these days)."""
    seconds = calendar.working_seconds_between(now, due)
    late = due < now
    days, rest = divmod(int(abs(seconds)), working_day_seconds(calendar))
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        text = f"{days} 个工作日" + (f" {hours} 小时" if hours else "")
    elif hours:
        text = f"{hours} 小时" + (f" {minutes} 分" if minutes else "")
    elif minutes:
        text = f"{minutes} 分"
    else:  # past the deadline outside working hours, or less than a minute to it
        return "已超期" if late else "剩余不到 1 分"
    return ("超期 " if late else "剩余 ") + text


WEEKDAYS = "一二三四五六日"


def time_left_note(row, clocks: Clocks | None = None) -> str:
    """What `time_left` counts to, for a tooltip: the deadline's local date, weekday and time, and whether the time
    is working time (weekends and holidays left out) or the clock's. Nothing without `clocks` (the zone is theirs)."""
    if clocks is None or row.state not in stats.RUNNING or not row.reply_due:
        return ""
    local = row.reply_due.astimezone(clocks.calendar.timezone)
    due = f"答复期限 {local:%Y-%m-%d %H:%M}（周{WEEKDAYS[local.weekday()]}）"
    if not counts_working_time(row, clocks.policy):
        return f"{due}，按自然时间计"
    hours = "、".join(f"{start:%H:%M}–{end:%H:%M}" for start, end in clocks.calendar.working_periods)
    return f"{due}，按工作时间计（工作日 {hours}，周末和节假日不计）"


async def visit_queue(session, *, limit: int = 100) -> list:
    stmt = (select(tickets).where(tickets.c.state == "replied")
            .order_by(tickets.c.visit_due.asc().nulls_last(), tickets.c.replied_at).limit(limit))
    return (await session.execute(stmt)).all()


async def unread_count(session, unit_code: str | None) -> int:
    from services.tracker.store import notifications

    if not unit_code:
        return 0
    return await session.scalar(select(func.count()).select_from(notifications).where(
        notifications.c.unit_code == unit_code, notifications.c.read_at.is_(None))) or 0


async def recent_notifications(session, unit_code: str | None, limit: int = 20) -> list:
    from services.tracker.store import notifications

    if not unit_code:
        return []
    return (await session.execute(select(notifications).where(notifications.c.unit_code == unit_code)
                                  .order_by(notifications.c.id.desc()).limit(limit))).all()


async def visible_ticket(session, user: User, ref: str):
    """The ticket by id or number if this user may see it, else 404 (the same answer as for no ticket).

    Showing a citizen's name and phone number is a view of personal data: it is written to the
    audit trail in the same transaction.
    """
    row = (await session.execute(readable(find_stmt(ref), user))).first()
    if row is None:
        raise ApiError(404, "ticket_not_found", f"未找到工单 {ref}", f"No ticket {ref} that you may see")
    await record_contact_view(session, user, row)
    return row


async def record_contact_view(session, user: User, row) -> None:
    """One ticket shown with its citizen's name and number: a row in the audit trail, if they were unmasked."""
    if shows_contact(row, user):
        await audit.record(session, messaging.audit, "view_contact", ticket_id=row.ticket_id,
                           details={"role": user.role.value})


async def record_contact_export(session, user: User, export: str, rows, **filters) -> None:
    """A list or file of tickets handed out with citizens' contact details: one audit row saying which export,
    with which filter, and which tickets showed a contact unmasked (their numbers, never the contact itself).
    Nothing is recorded when every contact in it was masked."""
    shown = [r.number or str(r.ticket_id) for r in rows if shows_contact(r, user)]
    if not shown:
        return
    used = {k: (mask_phone(v) if k == "phone" else v) for k, v in filters.items() if v not in (None, "")}
    await audit.record(session, messaging.audit, "export_contact", details={
        "role": user.role.value, "export": export, "filter": used, "tickets": len(shown), "numbers": shown})


async def record_phone_search(session, user: User, phone: str, found: int) -> None:
    """Looking tickets up by a caller's number is a view of personal data too."""
    await audit.record(session, messaging.audit, "search_by_phone",
                       details={"role": user.role.value, "phone": mask_phone(phone), "found": found})


# --- supervision orders -----------------------------------------------------------------

def awaiting_answer() -> list[ColumnElement[bool]]:
    """An order its unit has not answered (督办回复) and the office has not closed (销号): the orders page's 待回复."""
    o = supervision_orders.c
    return [o.responded_at.is_(None), o.closed_at.is_(None)]


async def levels_awaiting_answer(session, ticket_ids) -> dict[uuid.UUID, set[str]]:
    """The tickets among `ticket_ids` with orders awaiting their answer (`awaiting_answer`), each with those orders'
    levels (一般督办 normal, 重点督办 key)."""
    o = supervision_orders.c
    waiting: dict[uuid.UUID, set[str]] = {}
    for ticket_id, level in (await session.execute(select(o.ticket_id, o.level).where(
            o.ticket_id.in_(list(ticket_ids)), *awaiting_answer()))).all():
        waiting.setdefault(ticket_id, set()).add(level)
    return waiting

"""The tracker's HTTP API (JSON): reading tickets and every department, visit and supervision action."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import delete, update

from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.web import RuntimeDep, require
from schemas.enums import RETURN_REASONS, Role, TicketState
from schemas.events import utcnow
from services.tracker import queries
from services.tracker.actions import callable_first, last_unanswered_calls, visit_message
from services.tracker.store import notifications, unit_contacts

if TYPE_CHECKING:
    from services.tracker.actions import Tracker

api = APIRouter(prefix="/api/v1/tracker", tags=["tracker"])

Reader = Annotated[User, Depends(require(Role.OPERATOR, Role.DISPATCHER, Role.DEPARTMENT, Role.VISITOR,
                                         Role.SUPERVISOR))]


async def _get(rt, user: User, ref: str):
    async with rt.store("tracker").db.session() as s:
        row = await queries.visible_ticket(s, user, ref)
        return row, await queries.timeline_of(s, row, user)


@api.get("/tickets")
async def list_tickets(
    rt: RuntimeDep, user: Reader,
    state: Annotated[TicketState | None, Query()] = None,
    phone: Annotated[str | None, Query(max_length=32, description="caller's number (caller history)")] = None,
    unit: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict:
    """Tickets the caller may see, newest first. Department staff see only their unit's.

    A page that shows citizens' contact details is recorded in the audit trail (`export_contact`)."""
    if phone and user.role not in (Role.OPERATOR, Role.VISITOR, Role.SUPERVISOR, Role.ADMIN):
        raise ApiError(403, "forbidden", "您的角色不能按电话号码查询", "Your role may not search by phone number")
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows, total = await queries.list_tickets(s, user, state=state.value if state else None, phone=phone,
                                                 unit=unit, limit=limit, offset=offset)
        if phone:
            await queries.record_phone_search(s, user, phone, total)
        await queries.record_contact_export(s, user, "api.tickets", rows, state=state.value if state else None,
                                            phone=phone, unit=unit, limit=limit, offset=offset)
    return {"total": total, "items": [queries.ticket_view(r, user, now, tracker(rt).clocks) for r in rows]}


@api.get("/tickets/{ref}")
async def get_ticket(ref: str, rt: RuntimeDep, user: Reader) -> dict:
    """One ticket by id or number, with its timeline and the citizen's files.

    Each file's `url` downloads it from intake for this user alone, within 10 minutes.
    """
    row, events = await _get(rt, user, ref)
    return {**queries.ticket_view(row, user, utcnow(), tracker(rt).clocks), "timeline": events,
            "attachments": queries.attachment_links(rt.secret, user, row)}


# --- actions (JSON) -------------------------------------------------------------------

Department = Annotated[User, Depends(require(Role.DEPARTMENT))]
Supervisor = Annotated[User, Depends(require(Role.SUPERVISOR))]
Visitor = Annotated[User, Depends(require(Role.VISITOR, Role.SUPERVISOR))]
Worker = Annotated[User, Depends(require(Role.DEPARTMENT, Role.SUPERVISOR))]


def tracker(rt) -> "Tracker":
    return rt.state["tracker"]


async def _answer(rt, user: User, row) -> dict:
    """The ticket after an action, as `get_ticket` shows it (and audits it)."""
    async with rt.store("tracker").db.session() as s:
        await queries.record_contact_view(s, user, row)
        return {**queries.ticket_view(row, user, utcnow(), tracker(rt).clocks),
                "timeline": await queries.timeline_of(s, row, user)}


class Note(BaseModel):
    note: str = Field(default="", max_length=2000)


class PauseIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000)
    expected_until: datetime | None = None


class ExtensionIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    new_due: date  # the working day by which the department will reply


class DecisionIn(BaseModel):
    approved: bool
    note: str = Field(default="", max_length=2000)


class ReturnIn(BaseModel):
    reason_code: str = Field(max_length=32)
    reason: str = Field(min_length=1, max_length=2000)


class ReplyIn(BaseModel):
    reply: str = Field(min_length=1, max_length=20000)


class NoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


class VisitIn(BaseModel):
    outcome: Literal["satisfied", "basically_satisfied", "dissatisfied", "unreachable"]
    department_caused: bool | None = None
    comment: str = Field(default="", max_length=2000)


class SuperviseIn(BaseModel):
    level: Literal["normal", "key"] = "normal"
    reason: str = Field(min_length=1, max_length=2000)


class ContactIn(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)


@api.post("/tickets/{ref}/sign-for")
async def sign_for(ref: str, rt: RuntimeDep, user: Department) -> dict:
    """签收."""
    return await _answer(rt, user, await tracker(rt).sign_for(user, ref))


@api.post("/tickets/{ref}/contact")
async def contact(ref: str, body: Note, rt: RuntimeDep, user: Department) -> dict:
    """联系市民: record that the citizen was contacted, and what was agreed; also while an extension request waits for
    the office, which then takes the ticket back to `contacted`."""
    return await _answer(rt, user, await tracker(rt).contact(user, ref, body.note))


@api.post("/tickets/{ref}/wait-citizen")
async def wait_citizen(ref: str, body: PauseIn, rt: RuntimeDep, user: Department) -> dict:
    """待补充材料: the reply clock stops until `resume`."""
    return await _answer(rt, user, await tracker(rt).pause(user, ref, "waiting_citizen", body.note,
                                                           body.expected_until))


@api.post("/tickets/{ref}/defer")
async def defer(ref: str, body: PauseIn, rt: RuntimeDep, user: Department) -> dict:
    """挂账: a matter that cannot finish in time (works, seasonal); tracked, clock stopped, not overdue."""
    return await _answer(rt, user, await tracker(rt).pause(user, ref, "deferred", body.note, body.expected_until))


@api.post("/tickets/{ref}/resume")
async def resume(ref: str, rt: RuntimeDep, user: Worker) -> dict:
    """恢复办理: the clock runs again; the reply deadline moves by the working time paused."""
    return await _answer(rt, user, await tracker(rt).resume(user, ref))


@api.post("/tickets/{ref}/extension")
async def request_extension(ref: str, body: ExtensionIn, rt: RuntimeDep, user: Department) -> dict:
    """延期申请: a new reply date and the reason; the supervision office decides."""
    return await _answer(rt, user, await tracker(rt).request_extension(user, ref, body.reason, body.new_due))


@api.post("/tickets/{ref}/extension/decision")
async def decide_extension(ref: str, body: DecisionIn, rt: RuntimeDep, user: Supervisor) -> dict:
    return await _answer(rt, user, await tracker(rt).decide_extension(user, ref, body.approved, body.note))


@api.post("/tickets/{ref}/return")
async def return_ticket(ref: str, body: ReturnIn, rt: RuntimeDep, user: Department) -> dict:
    """退单: reason code (see /api/v1/tracker/return-reasons) and the explanation."""
    return await _answer(rt, user, await tracker(rt).return_ticket(user, ref, body.reason_code, body.reason))


@api.get("/return-reasons")
async def return_reasons(user: Reader) -> dict:
    return {"items": [{"code": k, "label": v} for k, v in RETURN_REASONS.items()]}


@api.post("/tickets/{ref}/reply")
async def reply(ref: str, body: ReplyIn, rt: RuntimeDep, user: Department) -> dict:
    """答复: what was found, done and the result; stock phrases alone are refused."""
    return await _answer(rt, user, await tracker(rt).reply(user, ref, body.reply))


@api.post("/tickets/{ref}/notes")
async def add_note(ref: str, body: NoteIn, rt: RuntimeDep, user: Worker) -> dict:
    """协办意见."""
    return await _answer(rt, user, await tracker(rt).note(user, ref, body.note))


@api.post("/tickets/{ref}/return-visit")
async def return_visit(ref: str, body: VisitIn, rt: RuntimeDep, user: Visitor) -> dict:
    """回访结果. `message` says what followed, as the visit page says it: closed, reopened (and whether key
    supervision was ordered), or how many calls are left before 联系不上 closes the ticket. Another 联系不上 sooner
    than actions.UNREACHABLE_CALL_GAP after the last one is refused (409 `visit_call_too_soon`, saying from when the
    next call may be made) and changes nothing."""
    row = await tracker(rt).record_visit(user, ref, body.outcome, department_caused=body.department_caused,
                                         comment=body.comment)
    return {**await _answer(rt, user, row), "message": visit_message(row, body.outcome)}


@api.post("/tickets/{ref}/supervise")
async def supervise(ref: str, body: SuperviseIn, rt: RuntimeDep, user: Supervisor) -> dict:
    """督办单, by hand (the system orders one by itself after 1 working day overdue). Refused (409
    `order_awaiting_answer`) while an order of the ticket awaits its unit's answer, but for `key` over `normal` ones."""
    return await _answer(rt, user, await tracker(rt).supervise(user, ref, body.level, body.reason))


@api.get("/return-visits")
async def visits(rt: RuntimeDep, user: Visitor) -> dict:
    """The return visits due, with the numbers to call (an export of contacts: audited), in the visit queue's order:
    those that may be called now first, then those whose last call went unanswered too recently, the soonest
    callable first. `next_call_at` says from when such a ticket may be called again (actions.UNREACHABLE_CALL_GAP),
    null for one that may be called now."""
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows = await queries.visit_queue(s)
        unanswered = await last_unanswered_calls(s, rows)
        await queries.record_contact_export(s, user, "api.return_visits", rows)
    return {"items": [{**queries.ticket_view(r, user, now, tracker(rt).clocks),
                       "next_call_at": call_after.isoformat() if call_after else None}
                      for r, call_after in callable_first(rows, unanswered, now)]}


@api.get("/notifications")
async def list_notifications(rt: RuntimeDep, user: Department) -> dict:
    async with rt.store("tracker").db.session() as s:
        rows = await queries.recent_notifications(s, user.department, 50)
        unread = await queries.unread_count(s, user.department)
    return {"unread": unread, "items": [{"id": r.id, "kind": r.kind, "number": r.number, "message": r.message,
                                         "at": r.created_at.isoformat(), "read": r.read_at is not None} for r in rows]}


@api.post("/notifications/read")
async def read_notifications(rt: RuntimeDep, user: Department) -> dict:
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(notifications).where(notifications.c.unit_code == user.department,
                                                    notifications.c.read_at.is_(None)).values(read_at=utcnow()))
    return {"unread": 0}


@api.put("/units/{code}/contact")
async def set_unit_contact(code: str, body: ContactIn, rt: RuntimeDep, user: Supervisor) -> dict:
    """Where a department's e-mail notifications go."""
    async with rt.store("tracker").db.session() as s:
        await s.execute(delete(unit_contacts).where(unit_contacts.c.unit_code == code))
        await s.execute(unit_contacts.insert().values(unit_code=code, email=body.email))
    return {"unit_code": code, "email": body.email}

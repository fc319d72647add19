"""The tracker's HTTP API and pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.web import RuntimeDep, page, require
from schemas.enums import Role, TicketState
from schemas.events import utcnow
from services.tracker import queries

api = APIRouter(prefix="/api/v1/tracker", tags=["tracker"])
pages = APIRouter(prefix="/tracker", include_in_schema=False)

Reader = Annotated[User, Depends(require(Role.OPERATOR, Role.DISPATCHER, Role.DEPARTMENT, Role.VISITOR,
                                         Role.SUPERVISOR))]


async def _get(rt, user: User, ref: str):
    async with rt.store("tracker").db.session() as s:
        row = (await s.execute(queries.scoped(queries.find_stmt(ref), user))).first()
        if row is None:
            # The same answer whether it does not exist or belongs to another department.
            raise ApiError(404, "ticket_not_found", f"未找到工单 {ref}", f"No ticket {ref} that you may see")
        return row, await queries.timeline_of(s, row.ticket_id)


@api.get("/tickets")
async def list_tickets(
    rt: RuntimeDep, user: Reader,
    state: Annotated[TicketState | None, Query()] = None,
    phone: Annotated[str | None, Query(max_length=32, description="caller's number (caller history)")] = None,
    unit: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """Tickets the caller may see, newest first. Department staff see only their unit's."""
    if phone and user.role not in (Role.OPERATOR, Role.VISITOR, Role.SUPERVISOR, Role.ADMIN):
        raise ApiError(403, "forbidden", "您的角色不能按电话号码查询", "Your role may not search by phone number")
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows, total = await queries.list_tickets(s, user, state=state.value if state else None, phone=phone,
                                                 unit=unit, limit=limit, offset=offset)
    return {"total": total, "items": [queries.ticket_view(r, user, now) for r in rows]}


@api.get("/tickets/{ref}")
async def get_ticket(ref: str, rt: RuntimeDep, user: Reader) -> dict:
    """One ticket by id or number, with its timeline."""
    row, events = await _get(rt, user, ref)
    return {**queries.ticket_view(row, user, utcnow()), "timeline": events}


@pages.get("/tickets", response_class=HTMLResponse)
async def tickets_page(request: Request, rt: RuntimeDep, user: Reader,
                       state: Annotated[TicketState | None, Query()] = None,
                       page_no: Annotated[int, Query(alias="page", ge=1)] = 1) -> HTMLResponse:
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows, total = await queries.list_tickets(s, user, state=state.value if state else None, limit=50,
                                                 offset=(page_no - 1) * 50)
    return page(request, "tracker_tickets.html", items=[queries.ticket_view(r, user, now) for r in rows],
                total=total, state=state.value if state else "", page_no=page_no, now=now,
                title="工单列表" if user.role != Role.DEPARTMENT else "本单位工单")


@pages.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request, rt: RuntimeDep,
                user: Annotated[User, Depends(require(Role.DEPARTMENT))]) -> HTMLResponse:
    return await tickets_page(request, rt, user)


@pages.get("/tickets/{ref}", response_class=HTMLResponse)
async def ticket_page(ref: str, request: Request, rt: RuntimeDep, user: Reader) -> HTMLResponse:
    row, events = await _get(rt, user, ref)
    return page(request, "tracker_ticket.html", t=queries.ticket_view(row, user, utcnow()), timeline=events)

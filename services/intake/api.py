"""Intake's HTTP API."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query, Request, status
from sqlalchemy import select

from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.web import RuntimeDep, require
from schemas.enums import Channel, Role
from services.intake import service
from services.intake.domain.submission import Receipt, TicketSubmission
from services.intake.store import tickets

api = APIRouter(prefix="/api/v1/intake", tags=["intake"])

Operator = Annotated[User, Depends(require(Role.OPERATOR))]


@api.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=Receipt,
          responses={200: {"model": Receipt, "description": "a retry: the ticket created earlier"}})
async def create_ticket(
    sub: TicketSubmission,
    rt: RuntimeDep,
    user: Operator,
    request: Request,
    channel: Annotated[Channel, Query(description="the channel the request came through")] = Channel.HOTLINE,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    """Log a request (a hotline call by default) and return the ticket number to read back.

    Retrying with the same `Idempotency-Key` header (or the same `source_ref`) returns the
    same ticket with status 200, never a second one.
    """
    receipt = await service.accept(
        rt.store("intake"), sub, channel=channel, operator=user.username, idempotency_key=idempotency_key,
        tz=ZoneInfo(rt.settings.timezone), trace_id=request.headers.get("x-trace-id"),
    )
    if receipt.duplicate_request:
        from fastapi.responses import JSONResponse

        return JSONResponse(receipt.model_dump(mode="json"), status_code=200)
    return receipt


@api.get("/tickets/{number}")
async def get_ticket(number: str, rt: RuntimeDep, user: Operator) -> dict:
    """Intake's record of a ticket and the last state the tracker reported for it."""
    async with rt.store("intake").db.session() as s:
        row = (await s.execute(select(tickets).where(tickets.c.number == number))).first()
    if row is None:
        raise ApiError(404, "ticket_not_found", f"没有编号为 {number} 的工单", f"No ticket numbered {number}")
    return {
        "ticket_id": str(row.ticket_id), "number": row.number, "channel": row.channel, "kind": row.kind,
        "urgency": row.urgency, "subject": row.subject, "received_at": row.received_at.isoformat(),
        "state": row.state, "department": row.department,
        "tracked_at": row.tracked_at.isoformat() if row.tracked_at else None,
    }

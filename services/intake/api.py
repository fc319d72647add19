"""Intake's JSON API: tickets from operators and machine clients, repeats, the citizen's look-up."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from jiesu import attachment_grants, audit
from jiesu.errors import ApiError, opened_from_pages
from jiesu.identity import User
from jiesu.web import RuntimeDep, require
from schemas.enums import STATE_LABELS, Channel, Role
from services.intake import files, mail, service
from services.intake.domain.submission import MAX_DESCRIPTION, MAX_SUBJECT, Receipt, TicketSubmission, read_number
from services.intake.limits import JSON_LIMIT, client_address, limited
from services.intake.store import tickets

api = APIRouter(prefix="/api/v1/intake", tags=["intake"], route_class=limited(JSON_LIMIT))

Operator = Annotated[User, Depends(require(Role.OPERATOR))]

LOOKUPS_PER_ADDRESS = 20  # per 10 minutes
FAILED_LOOKUPS_PER_NUMBER = 10  # per day: four digits are not a password
LOOKUP_WINDOW = timedelta(minutes=10)


@api.get("/directory")
async def directory(rt: RuntimeDep, user: Annotated[User, Depends(require())]) -> dict:
    """Districts and their streets and the categories, as intake checks tickets against them: the directory the
    router last published (the file it starts from until then). The console's pickers read it, so they offer
    what intake accepts, and work while the router is down."""
    return rt.store("intake").local[service.PLACES].listing()


def _answer(receipt: Receipt):
    if receipt.duplicate_request:
        return JSONResponse(receipt.model_dump(mode="json"), status_code=200)
    return receipt


async def _accept(sub: TicketSubmission, *, channel: Channel, user: User, idempotency_key: str | None,
                  request: Request) -> Receipt:
    # The runtime from the request, not a RuntimeDep: FastAPI pays for every dependency on
    # every request, and these two endpoints are intake's busiest.
    rt = request.app.state.runtime
    return await service.accept(
        rt.store("intake"), sub, channel=channel, operator=user.username, idempotency_key=idempotency_key,
        tz=ZoneInfo(rt.settings.timezone), trace_id=request.headers.get("x-trace-id"),
    )


@api.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=Receipt,
          responses={200: {"model": Receipt, "description": "a retry: the ticket created earlier"},
                     413: {"description": "the body is larger than 256 KB"}})
async def create_ticket(
    sub: TicketSubmission,
    user: Operator,
    request: Request,
    channel: Annotated[Channel, Query(description="the channel the request came through")] = Channel.HOTLINE,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    """Log a request (a hotline call by default) and return the ticket number to read back.

    Retrying with the same `Idempotency-Key` header (or the same `source_ref`) returns the
    same ticket with status 200, never a second one. `answer` records a consultation
    answered on the call (直接办结); `duplicate_of_number` attaches the call to an open
    ticket of the same citizen (重复件) instead of opening a new matter.
    """
    return _answer(await _accept(sub, channel=channel, user=user, idempotency_key=idempotency_key,
                                 request=request))


@api.post("/messages", status_code=status.HTTP_201_CREATED, response_model=Receipt,
          responses={200: {"model": Receipt, "description": "a retry: the message accepted earlier"}})
async def create_message(
    sub: TicketSubmission,
    user: Operator,
    request: Request,
    channel: Annotated[Channel, Query(description="online (网上留言, default) or mailbox (市长信箱)")] = Channel.ONLINE,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    """网上留言 / 市长信箱 from a portal or an app: machine clients with an API token only.

    The portal's account is an operator-role account; send `Authorization: Bearer <token>`
    (`jiesu token USER NAME`) and the portal's own message id as `source_ref` or `Idempotency-Key`.
    """
    if not getattr(request.state, "via_token", False):
        raise ApiError(401, "token_required", "此接口仅供门户和应用调用，请使用访问令牌",
                       "This endpoint is for portals and apps: authenticate with an API token",
                       headers={"WWW-Authenticate": "Bearer"})
    if channel not in (Channel.ONLINE, Channel.MAILBOX):
        raise ApiError(422, "invalid_input", "提交的内容有误：channel：只能是 online 或 mailbox",
                       "Invalid input: channel: must be online or mailbox",
                       fields=[{"field": "channel", "type": "enum", "zh": "只能是 online 或 mailbox",
                                "en": "must be online or mailbox"}])
    return _answer(await _accept(sub, channel=channel, user=user, idempotency_key=idempotency_key,
                                 request=request))


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=32)
    subject: str = Field(default="", max_length=MAX_SUBJECT)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


@api.post("/similar")
async def similar(body: SimilarRequest, rt: RuntimeDep, user: Operator) -> dict:
    """重复件 warning for the console: the caller's open tickets (30 days) whose text reads alike."""
    found = await service.repeats_of(rt.store("intake"), body.phone, body.subject, body.description)
    return {"items": [{"ticket_id": str(r.ticket.ticket_id), "number": r.ticket.number, "subject": r.ticket.subject,
                       "state": r.ticket.state, "state_label": STATE_LABELS.get(r.ticket.state, r.ticket.state),
                       "received_at": r.ticket.received_at.isoformat(), "similarity": r.similarity}
                      for r in found]}


@api.get("/tickets/{number}")
async def get_ticket(number: str, rt: RuntimeDep, user: Operator) -> dict:
    """Intake's record of a ticket, the last state the tracker reported for it, and how its receipt e-mail
    (受理回执) stands: `receipt` is null when none was owed, else its status, and why it failed if it did."""
    async with rt.store("intake").db.session() as s:
        row = (await s.execute(select(tickets).where(tickets.c.number == number))).first()
        receipt = await mail.receipt_of(s, row) if row else None
    if row is None:
        raise ApiError(404, "ticket_not_found", f"没有编号为 {number} 的工单", f"No ticket numbered {number}")
    return {
        "ticket_id": str(row.ticket_id), "number": row.number, "channel": row.channel, "kind": row.kind,
        "urgency": row.urgency, "subject": row.subject, "received_at": row.received_at.isoformat(),
        "state": row.state, "department": row.department, "reply": row.reply,
        "reply_due": row.reply_due.isoformat() if row.reply_due else None,
        "tracked_at": row.tracked_at.isoformat() if row.tracked_at else None,
        "attachments": row.attachments or [], "answer": row.answer,
        "duplicate_of": str(row.duplicate_of) if row.duplicate_of else None, "receipt": receipt,
    }


# The ticket page links here: a person whose link expired is shown a page that says what to do, not JSON.
@api.get("/tickets/{number}/attachments/{sha256}", response_class=FileResponse,
         dependencies=[Depends(opened_from_pages)])
async def attachment(number: str, sha256: str, rt: RuntimeDep, user: Annotated[User, Depends(require())],
                     grant: Annotated[str | None, Query(max_length=1000, description=(
                         "a download grant the tracker signed for this user, ticket and file (department "
                         "staff, who may open only their own department's tickets)"))] = None):
    """One attachment of a ticket, always as a download: never rendered or run in the browser.

    Operators, dispatchers and supervisors may open any; anyone else needs a grant, because only
    the tracker knows whose department a ticket is in. A grant that is sent is always checked.
    A citizen's photo or scan is personal data: each download is written to the audit trail.
    """
    details: dict = {"role": user.role.value}
    if grant is not None:
        granted = attachment_grants.check(rt.secret, grant, number=number, sha256=sha256, user=user)
        details.update(department=granted.department, via="grant")
    elif not user.has(Role.OPERATOR, Role.DISPATCHER, Role.SUPERVISOR):
        raise ApiError(403, "forbidden", "您的角色无权执行此操作", "Your role may not do this")
    store = rt.store("intake")
    async with store.db.session() as s:
        row = (await s.execute(select(tickets.c.ticket_id, tickets.c.attachments)
                               .where(tickets.c.number == number))).first()
        meta = next((a for a in (row.attachments or []) if a["sha256"] == sha256), None) if row else None
        path = files.path_of(rt.settings, sha256) if meta else None
        if meta is None or not path.is_file():
            raise ApiError(404, "attachment_not_found", "没有这个附件", "No such attachment on this ticket")
        await audit.record(s, store.tables.audit, "download_attachment", ticket_id=row.ticket_id,
                           details={**details, "sha256": sha256})
    return FileResponse(path, media_type=meta["content_type"], filename=meta["filename"],
                        content_disposition_type="attachment",
                        headers={"Content-Security-Policy": "default-src 'none'; sandbox",
                                 "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})


# What a look-up's ticket number may be as typed: its 21 characters, and room for pasted spaces, full-width
# characters and a Chinese keyboard's doubled dashes (——), which domain.submission.plain takes out.
NUMBER_AS_TYPED = 32


class ProgressQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(max_length=NUMBER_AS_TYPED, description="工单编号 (full-width characters, any dash, "
                                                                 "spaces, or the 19 digits alone are read as the "
                                                                 "number)")
    phone_last4: str = Field(default="", max_length=8, description="last four digits of the phone number given")
    query_code: str = Field(default="", max_length=16,
                            description="查询码 (ABCD-EFGH) on the acceptance page (受理页面) or in the receipt mail "
                                        "(受理回执邮件), instead of phone_last4")


NOT_FOUND = ApiError(404, "progress_not_found", "未查到：请核对工单编号，以及联系电话后四位或查询码",
                     "Not found: check the ticket number, and the last four digits of the phone number or the "
                     "query code")
NO_PROOF = ApiError(422, "proof_required", "请填写联系电话后四位；未留电话的，请填写受理页面或受理回执邮件上的查询码",
                    "Give the last four digits of the phone number or, without one, the query code on the acceptance "
                    "page or in the receipt mail",
                    fields=[{"field": "phone_last4", "type": "missing", "zh": "请填写联系电话后四位或查询码",
                             "en": "the last four digits of the phone number, or the query code"}])
TOO_MANY = ApiError(429, "too_many_requests", "查询过于频繁，请稍后再试", "Too many look-ups; try again later",
                    headers={"Retry-After": "600"})


def progress_view(found: tuple, *, for_page: bool = False) -> dict:
    """All a citizen sees: never names, phones, addresses or the text of the request. A ticket merged into
    another as a repeat (重复件) is handled there: `merged_into` is that ticket's progress. The reply is the
    department's, or the operator's answer on the call (直接办结).

    While a reply to an online channel waits for its rating (评价): `rating_link`, the one-time page where the
    citizen rates it, to a look-up proved by the query code only; one proved by the phone's last four digits,
    which the handling unit sees too, gets `rating_needs_query_code` instead, so that no unit rates itself. A
    repeat's own query code proves its caller for the ticket it was merged into too. `rating_expired` once the
    link expired unused (a visitor calls instead), `rating_received` once the citizen rated through it and the
    reply still waits for the visitor's call (a dissatisfied rating). On the page (`for_page`), `called_back` where a
    caller waits for 12345's call about the reply instead (回访); the API, which portals and apps read for online
    messages, answers as before."""
    row, into, by_code = found
    view = {"number": row.number, "state": row.state, "state_label": STATE_LABELS.get(row.state, row.state),
            "department": row.department, "reply_due": row.reply_due.isoformat() if row.reply_due else None,
            "reply": row.reply or row.answer}
    stands, link = service.rating(row)
    if stands == "offered":
        view["rating_link" if by_code else "rating_needs_query_code"] = link if by_code else True
    elif stands is not None:
        view[f"rating_{stands}"] = True  # rating_expired, rating_received
    elif for_page and service.called_back(row):
        view["called_back"] = True
    if into is not None:  # its progress only to the same caller: an operator may link another's ticket
        view["merged_into"] = (progress_view((into, None, by_code), for_page=for_page)
                               if service.same_citizen(row, into) else {"number": into.number})
    return view


async def look_up(rt, request: Request, number: str, proof: str) -> tuple:
    """The ticket and, if it was merged into another (重复件), that one. Rate-limited per address and per
    number; the same answer for any mismatch. `proof`: the last four digits of the phone, or the query code.
    The router merges only a caller's own repeats, but an operator may link a call to a neighbour's ticket
    about the same matter: `progress_view` shows the other ticket's progress to the same caller only."""
    if not proof.strip():
        raise NO_PROOF
    store = rt.store("intake")
    if not await service.allow(store, f"lookup:{client_address(request)}", limit=LOOKUPS_PER_ADDRESS,
                               window=LOOKUP_WINDOW):
        raise TOO_MANY
    number = read_number(number)  # as stored, however it was typed or pasted
    if number is None:
        raise NOT_FOUND
    found = await service.progress(store, number, proof)
    if found is None:
        if not await service.allow(store, f"lookup-fail:{number}", limit=FAILED_LOOKUPS_PER_NUMBER,
                                   window=timedelta(days=1)):
            raise TOO_MANY
        raise NOT_FOUND
    row, by_code = found
    return row, await service.merged_into(store, row), by_code


@api.post("/progress", responses={404: {"description": "no such number, or the digits do not match"},
                                  429: {"description": "too many look-ups"}})
async def progress(body: ProgressQuery, rt: RuntimeDep, request: Request) -> dict:
    """Citizen's progress look-up (public): ticket number + the last four digits of the phone, or the
    query code (查询码) the citizen got with the number (for those who gave no phone number).

    Answers only the state, the department, the deadline and the reply, and while the reply waits for the
    citizen's rating (online channels), the link to rate it when the query code proved the look-up. A wrong number,
    wrong digits and a wrong code get the same answer; full-width characters, any dash and spaces in the number or
    the proof are read as typed plainly, and so are the number's 19 digits typed alone.
    """
    return progress_view(await look_up(rt, request, body.number, body.query_code or body.phone_last4))

"""督查室 pages: the live overdue ledger, supervision orders, the department scorecard,
trends and hotspots, the wall screen and the published reports; and the escalation of
orders left unanswered past their date (逾期升级), which runs beside the timers.

Supervisors and admins only (department staff never see other units' figures); the
one exception is a department answering a supervision order addressed to its own unit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy import ColumnElement, func, select, update

from jiesu import audit
from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore
from jiesu.web import Message, RuntimeDep, page, redirect_with, require, templates
from schemas.enums import CHANNEL_LABELS, KIND_LABELS, Role
from schemas.events import new_event_id, utcnow
from services.tracker import hotspots as hot, queries, reports, rollup, stats, timers
from services.tracker.actions import OUTCOME_LABELS
from services.tracker.queries import awaiting_answer, levels_awaiting_answer
from services.tracker.domain.escalation import KEY, RELEASE_REASONS, Escalation, escalated_due, released
from services.tracker.ledger import LATENESS, SORTS, LedgerFilter, LedgerHub, ledger
from services.tracker.notify import notify, notify_many
from services.tracker.store import supervision_orders, tickets, timeline
from services.tracker.web import back_to, display_names, pages_of, ticket_of, ticket_refused

if TYPE_CHECKING:
    from services.tracker.handlers import Clocks

sup = APIRouter(prefix="/tracker/sup", include_in_schema=False)
sup_api = APIRouter(prefix="/api/v1/tracker/supervision", tags=["supervision"])

log = get_logger(__name__)

Supervisor = Annotated[User, Depends(require(Role.SUPERVISOR))]
Responder = Annotated[User, Depends(require(Role.SUPERVISOR, Role.DEPARTMENT))]


def _clocks(rt) -> Clocks:
    return rt.state["tracker"].clocks


def _tz(rt):
    return _clocks(rt).calendar.timezone


def hub(rt) -> LedgerHub:
    if "tracker.ledger" not in rt.state:
        rt.state["tracker.ledger"] = LedgerHub(rt.store("tracker"))
    return rt.state["tracker.ledger"]


async def _choices(s) -> dict:
    """What the ledger's filters offer: the units, districts and categories that occur."""
    t = tickets.c
    running = t.state.in_(stats.RUNNING)  # what the ledger can hold: an index range, never the whole table
    units = (await s.execute(select(t.lead_code, func.max(t.lead_name)).where(running, t.lead_code.is_not(None))
                             .group_by(t.lead_code).order_by(t.lead_code))).all()
    districts = (await s.execute(select(t.district).where(running, t.district.is_not(None)).distinct()
                                 .order_by(t.district))).scalars().all()
    categories = (await s.execute(select(t.category).where(running, t.category.is_not(None)).distinct()
                                  .order_by(t.category).limit(300))).scalars().all()
    return {"units": units, "districts": districts, "categories": categories, "names": await queries.code_names(s)}


# --- 督办台账 --------------------------------------------------------------------------


def _filter(unit: str, district: str, kind: str, channel: str, category: str, late: str, sort: str) -> LedgerFilter:
    return LedgerFilter(unit=unit, district=district, kind=kind, channel=channel, category=category,
                        late=late if late in LATENESS else "", sort=sort if sort in SORTS else "due")


LedgerQuery = Annotated[str, Query(max_length=64)]


@sup.get("/ledger", response_class=HTMLResponse)
async def ledger_page(request: Request, rt: RuntimeDep, user: Supervisor, unit: LedgerQuery = "",
                      district: LedgerQuery = "", kind: LedgerQuery = "", channel: LedgerQuery = "",
                      category: LedgerQuery = "", late: LedgerQuery = "", sort: LedgerQuery = "due",
                      done: Message = "", refused: Message = "") -> HTMLResponse:
    f = _filter(unit, district, kind, channel, category, late, sort)
    now = utcnow()
    async with rt.store("tracker").db.reading() as s:
        rows, counts = await ledger(s, f, now)
        choices = await _choices(s)
    return page(request, "tracker_sup_ledger.html", title="督办台账", f=f, counts=counts, now=now,
                items=[queries.ticket_view(r, user, now, _clocks(rt)) for r in rows], lateness=LATENESS, sorts=SORTS,
                done=done, refused=refused, **choices)


@sup.get("/ledger/rows", response_class=HTMLResponse)
async def ledger_rows(request: Request, rt: RuntimeDep, user: Supervisor, unit: LedgerQuery = "",
                      district: LedgerQuery = "", kind: LedgerQuery = "", channel: LedgerQuery = "",
                      category: LedgerQuery = "", late: LedgerQuery = "", sort: LedgerQuery = "due") -> HTMLResponse:
    """The ledger's table body and counts, fetched again when the stream says it changed."""
    f = _filter(unit, district, kind, channel, category, late, sort)
    now = utcnow()
    async with rt.store("tracker").db.reading() as s:
        rows, counts = await ledger(s, f, now)
        names = await queries.code_names(s)
    return page(request, "tracker_sup_ledger_rows.html", counts=counts, names=names,
                items=[queries.ticket_view(r, user, now, _clocks(rt)) for r in rows])


@sup.get("/ledger/stream")
async def ledger_stream(request: Request, rt: RuntimeDep, user: Supervisor) -> StreamingResponse:
    """Server-sent events: `changed` whenever the ledger gains, loses or moves a ticket."""
    h = hub(rt)

    async def events():
        queue = h.subscribe()
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    sig = await asyncio.wait_for(queue.get(), 15)
                    yield f"event: changed\ndata: {json.dumps(sig)}\n\n"
                except TimeoutError:
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    break
        finally:
            h.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def remind(rt, user: User, numbers: list[str], message: str) -> int:
    """催办: a notice to each ticket's lead unit and a line in its timeline."""
    store = rt.store("tracker")
    sent = 0
    async with store.transaction() as tx:
        rows = (await tx.session.execute(select(tickets).where(tickets.c.number.in_(numbers)))).all()
        now = utcnow()
        for row in rows:
            if not row.lead_code or row.state not in stats.OPEN:
                continue
            text = f"催办：工单 {row.number} 请抓紧办理并按期答复。" + (f"督查室意见：{message}" if message else "")
            await notify(tx, rt.state["tracker"].clocks.settings, row, row.lead_code, "reminder", text)
            await tx.session.execute(timeline.insert().values(
                ticket_id=row.ticket_id, event_id=new_event_id(), event_type="ReminderSent", at=now,
                actor=(user.display_name or user.username)[:64], summary="督查室催办" + (f"：{message}" if message else ""),
                data={"by": user.username}))
            sent += 1
    return sent


async def order_many(rt, user: User, numbers: list[str], level: str,
                     reason: str) -> tuple[list[str], list[str], list[str]]:
    """督办单 for each ticket, through the same path as the ticket page (SupervisionOrdered): the orders made, the
    numbers of the tickets passed over because an order of theirs still awaits its answer (`awaiting_answer`), and
    those of them whose waiting orders are all 一般督办 (the ticket page gives a 重点督办 over those: `order_stacks`).
    Such a ticket's unit owes that answer already, and escalation presses it when late (逾期升级): a second order
    would only stack another date, notice and escalation on the same matter. An order answered may be followed by
    another, as the office sees fit.

    The tickets are locked (on PostgreSQL) before their state and orders are read, as a return or a close locks the
    ticket it changes, and as an order from the ticket page does: an order is then either made before such a change,
    which releases it (`released_at`), or not at all, and two bulk orders never both find a ticket without one."""
    if level not in ("normal", "key") or not reason.strip():
        raise ApiError(422, "invalid_input", "请选择督办级别并写明原因", "Choose a level and give a reason")
    clocks = rt.state["tracker"].clocks
    done, ordered_already, normal_only = [], [], []
    async with rt.store("tracker").transaction() as tx:
        stmt = select(tickets).where(tickets.c.number.in_(numbers)).order_by(tickets.c.ticket_id)
        if tx.session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=tickets)
        rows = (await tx.session.execute(stmt)).all()
        waiting = await levels_awaiting_answer(tx.session, [row.ticket_id for row in rows])
        for row in rows:
            if not row.lead_code or row.state not in stats.OPEN:
                continue
            if row.ticket_id in waiting:
                ordered_already.append(row.number)
                if KEY not in waiting[row.ticket_id]:
                    normal_only.append(row.number)
                continue
            done.append(await timers.order_supervision(tx, clocks, row, level=level, by=user.username,
                                                       reason=reason.strip()))
    return done, ordered_already, normal_only


@sup.post("/ledger/bulk")
async def ledger_bulk(request: Request, rt: RuntimeDep, user: Supervisor) -> Response:
    form = await request.form()
    numbers = [str(n) for n in form.getlist("number")][:500]
    back = back_to(form.get("back"), "/tracker/sup/ledger", under="/tracker/sup/")
    if not numbers:
        return redirect_with(back, refused="未选择工单")
    if form.get("op") == "supervise":
        level = str(form.get("level", "normal"))
        try:
            orders, ordered_already, normal_only = await order_many(rt, user, numbers, level,
                                                                    str(form.get("reason", "")))
        except ApiError as exc:
            return redirect_with(back, refused=exc.zh)
        key_wanted = normal_only if level == KEY else []
        said = _ordered_message(len(set(numbers)), orders, ordered_already, key_wanted)
        return redirect_with(back, **({"done": said} if orders else {"refused": said}))
    msg = f"已催办 {await remind(rt, user, numbers, str(form.get('reason', ''))[:500])} 件"
    return redirect_with(back, done=msg)


NUMBERS_NAMED = 3  # of the tickets a message passes over: enough to find them, and the message stays short


def _named(numbers: list[str]) -> str:
    """Up to `NUMBERS_NAMED` ticket numbers, in order, for a message: 12345-…、12345-… 等."""
    return "、".join(sorted(numbers)[:NUMBERS_NAMED]) + (" 等" if len(numbers) > NUMBERS_NAMED else "")


def _ordered_message(selected: int, orders: list[str], ordered_already: list[str], key_wanted: list[str]) -> str:
    """What the ledger's bulk 督办 says: how many orders were made, and which tickets were passed over because an
    order of theirs awaits its answer (`order_many`), with the way to a 重点督办 for those whose waiting order is
    only 一般督办 (`key_wanted`): the ticket page gives one over those (`order_stacks`)."""
    if not orders and not ordered_already:
        return "未下达督办单：所选工单已不在办理中（已答复、办结或退回待改派），无需督办"
    passed = f"已有待回复的督办单（{_named(ordered_already)}），未重复下达"
    if orders:
        msg = f"已下达督办单 {len(orders)} 件" + (f"；另有 {len(ordered_already)} 件{passed}" if ordered_already else "")
    elif len(ordered_already) == selected:
        msg = f"所选 {selected} 件均{passed}"
    else:
        msg = f"未下达督办单：所选工单中 {len(ordered_already)} 件{passed}，其余已不在办理中"
    if key_wanted:
        which = "均" if len(key_wanted) == len(ordered_already) else f"中 {len(key_wanted)} 件"
        msg += f"。待回复的督办单{which}为一般督办，如需重点督办，请在工单页下达"
    return msg


# --- 督办单 -----------------------------------------------------------------------------

ORDER_TABS = {"open": "待回复", "responded": "已回复待销号", "overdue": "逾期未回复", "escalated": "已升级",
              "closed": "已销号", "all": "全部"}


@sup.get("/orders", response_class=HTMLResponse)
async def orders_page(request: Request, rt: RuntimeDep, user: Supervisor,
                      tab: Annotated[str, Query(max_length=16)] = "open",
                      level: Annotated[str, Query(max_length=8)] = "",
                      done: Message = "", refused: Message = "") -> HTMLResponse:
    o = supervision_orders.c
    now = utcnow()
    conds = {"open": awaiting_answer(),
             "responded": [o.responded_at.is_not(None), o.closed_at.is_(None)],
             "overdue": [*awaiting_answer(), o.due_at < now],
             "escalated": [o.escalated_at.is_not(None)],  # 逾期升级 once, answered since or not
             "closed": [o.closed_at.is_not(None)], "all": []}
    tab = tab if tab in conds else "open"
    extra = [o.level == level] if level in ("normal", "key") else []
    async with rt.store("tracker").db.reading() as s:
        counts = {k: await s.scalar(select(func.count()).select_from(supervision_orders).where(*c, *extra))
                  for k, c in conds.items()}
        rows = (await s.execute(
            select(supervision_orders, tickets.c.number, tickets.c.subject, tickets.c.lead_name, tickets.c.state,
                   # Whether the order still binds its unit (`escalation.released`), by the page's name for it.
                   o.released_at.is_(None).label("bound"))
            .join(tickets, tickets.c.ticket_id == o.ticket_id).where(*conds[tab], *extra)
            .order_by((o.level == KEY).desc(), o.due_at).limit(300))).all()  # 重点 first
    names = await display_names(rt, [r.by for r in rows] + [r.responded_by for r in rows])
    return page(request, "tracker_sup_orders.html", title="督办单", rows=rows, tab=tab, tabs=ORDER_TABS,
                counts=counts, level=level, now=now, done=done, refused=refused, released=released,
                release_reasons=RELEASE_REASONS, names=names)


RESPONSE_MIN_CHARS = 5  # a 督办回复 says what was done: not a bare 已处理
templates.env.globals["ORDER_RESPONSE_MIN_CHARS"] = RESPONSE_MIN_CHARS  # the forms' minlength, the same rule


async def respond_order(rt, user: User, order_no: str, text: str) -> None:
    """督办回复: the unit says what it did about the order (its own unit's orders only), or the office enters
    the answer it was given (代录回复).

    Until the office closes the order it may be answered again; the answer replaces the last one on the order,
    and the audit trail records each, naming the one it replaced.
    """
    if len(text.strip()) < RESPONSE_MIN_CHARS:
        raise ApiError(422, "response_required", f"请写明督办回复内容（至少 {RESPONSE_MIN_CHARS} 个字）",
                       f"Write the response (at least {RESPONSE_MIN_CHARS} characters)")
    async with rt.store("tracker").transaction() as tx:
        order = (await tx.session.execute(select(supervision_orders).where(
            supervision_orders.c.order_no == order_no))).first()
        if order is None or (user.role == Role.DEPARTMENT and order.unit_code != user.department):
            raise ApiError(404, "order_not_found", f"未找到督办单 {order_no}", f"No supervision order {order_no}")
        if order.closed_at is not None:
            raise ApiError(409, "order_closed", "督办单已销号", "The order is already closed")
        now = utcnow()
        await tx.session.execute(update(supervision_orders).where(supervision_orders.c.order_no == order_no).values(
            response=text.strip(), responded_at=now, responded_by=user.username))
        overdue = now > order.due_at
        late = "（逾期回复）" if overdue else ""
        await tx.session.execute(timeline.insert().values(
            ticket_id=order.ticket_id, event_id=new_event_id(), event_type="SupervisionResponded", at=now,
            actor=(user.display_name or user.username)[:64], summary=f"督办单 {order_no} 回复{late}：{text.strip()}",
            data={"by": user.username, "order_no": order_no}))
        details = {"order_no": order_no, "by": user.username, "unit_code": order.unit_code, "level": order.level,
                   "due_at": order.due_at.isoformat(), "late": overdue, "response_sha256": _fingerprint(text.strip())}
        if order.responded_at is not None:  # answered again: the answer it replaces
            details |= {"replaced_sha256": _fingerprint(order.response or ""), "replaced_by": order.responded_by,
                        "replaced_at": order.responded_at.isoformat()}
        tx.append(tx.tables.audit, audit.entry("SupervisionResponded", ticket_id=order.ticket_id, details=details))


async def close_order(rt, user: User, order_no: str, note: str) -> None:
    """办结销号: the office accepts the response and closes the order.

    An order its unit never answered may be closed too once the unit no longer owes the answer (it is released,
    `released_at`, as for the escalation: the ticket is finished, or the unit returned it), with the office's
    reason (工单已办结, 已改派 …) as the note: the office need not type an answer in the unit's place. While the
    order binds its unit, its answer comes first. The ticket's state now names the reason, in the audit trail."""
    note = note.strip()
    o = supervision_orders.c
    async with rt.store("tracker").transaction() as tx:
        order = (await tx.session.execute(select(supervision_orders, _ticket_state().label("ticket_state"))
                                          .where(o.order_no == order_no))).first()
        if order is None:
            raise ApiError(404, "order_not_found", f"未找到督办单 {order_no}", f"No supervision order {order_no}")
        if order.closed_at is not None:
            raise ApiError(409, "order_closed", "督办单已销号", "The order is already closed")
        why = None if order.responded_at is not None else released(order.ticket_state, order.released_at is None)
        if order.responded_at is None and why is None:
            raise ApiError(409, "order_unanswered", "承办单位尚未回复，不能销号：请等待单位回复或代录回复后再销号",
                           "The unit has not responded yet: wait for its response, or enter it, then close the order")
        if why is not None and len(note) < 2:
            raise ApiError(422, "closing_reason_required", "单位未回复的督办单销号须写明理由（如：工单已办结、已改派）",
                           "Give the reason for closing an order its unit never answered (e.g. ticket completed)")
        now = utcnow()
        await tx.session.execute(update(supervision_orders).where(o.order_no == order_no).values(
            closed_at=now, closed_by=user.username, closing_note=note))
        what = "办结销号（单位未回复）" if why else "办结销号"
        await tx.session.execute(timeline.insert().values(
            ticket_id=order.ticket_id, event_id=new_event_id(), event_type="SupervisionClosed", at=now,
            actor=(user.display_name or user.username)[:64],
            summary=f"督办单 {order_no} {what}" + (f"：{note}" if note else ""),
            data={"by": user.username, "order_no": order_no} | ({"reason": why} if why else {})))
        details = {"order_no": order_no, "by": user.username, "unit_code": order.unit_code, "level": order.level}
        if why:  # nothing answered to fingerprint: why the unit no longer owes it, and the ticket's state then
            details |= {"reason": why, "ticket_state": order.ticket_state, "due_at": order.due_at.isoformat()}
        else:
            details |= {"responded_by": order.responded_by, "responded_at": order.responded_at.isoformat(),
                        "response_sha256": _fingerprint(order.response or "")}
        tx.append(tx.tables.audit, audit.entry("SupervisionClosed", ticket_id=order.ticket_id,
                                               details=details | {"note_sha256": _fingerprint(note)}))


def _fingerprint(text: str) -> str:
    """What the audit trail keeps of a free text (an answer, a closing note): its SHA-256, which shows which text
    was given (the order and the timeline hold it) without copying into a log nobody may ever alter or delete
    the citizens' names and numbers such texts often carry."""
    return hashlib.sha256(text.encode()).hexdigest()


# --- 督办单逾期升级 ---------------------------------------------------------------------

ESCALATION_BATCH = 100  # orders one transaction escalates at most; a backlog takes several in a row
# Orders fall due at the close of a working day, and nobody waits on their escalation to the second: a look a
# minute is soon enough, where the timers' half-second pace would cost 120 times as many idle reads.
ESCALATION_POLL_SECONDS = 60.0


def _ticket_state() -> ColumnElement[str]:
    """An order's ticket's state now, which names why a released order no longer binds its unit: a probe of the
    ticket's primary key."""
    t = tickets.c
    return (select(t.state).where(t.ticket_id == supervision_orders.c.ticket_id)
            .correlate(supervision_orders).scalar_subquery())


def _escalation_owed(now: dt.datetime) -> tuple[ColumnElement[bool], ...]:
    """An order its unit still owes an answer to, past its date, never escalated and not released (`released_at`,
    the one record of whether an order binds its unit: see `escalation`): the only kind escalation may claim. These
    are the partial index's own conditions and its column, so the look for work and the claim read the index and
    the orders alone; the claim re-checks them all, a release committed in between among them."""
    o = supervision_orders.c
    return (o.escalated_at.is_(None), o.responded_at.is_(None), o.closed_at.is_(None), o.released_at.is_(None),
            o.due_at <= now)


async def escalate_overdue_orders(store: ServiceStore, clocks: Clocks, working_days: int, *,
                                  now: dt.datetime | None = None, batch: int = ESCALATION_BATCH) -> int:
    """逾期升级: escalate up to `batch` orders whose unit let them fall due unanswered; answers how many.

    Nothing owed costs one read of the partial index ix_tracker_supervision_orders_awaiting, on a reading
    session (on SQLite it takes no write lock): orders released before they were answered (the ticket finished,
    or the unit returned it) left that index when they were released (`released_at`), and wait in the office's
    list, never looked at here, until answered or closed, or until the ticket goes back to their unit. What it
    finds is claimed by one conditional UPDATE … RETURNING that re-checks every condition, so of several tracker
    instances looking at once each order is escalated by exactly one (PostgreSQL makes the later UPDATE wait for
    the first and re-read the row, which no longer qualifies; so too for a return or a close committing in
    between, which marks the order released). The claim keeps on the order the level it raised it from
    (`from_level`, for the bulletin). In the same transaction: the ticket's timeline, a reminder (催办) to the order's
    unit, which mail and webhook delivery follow with the order's new date as the date to answer by, and a row in
    the audit trail. No event: nothing consumes supervision events, and the answer and the closure of an order emit
    none either (both are audited as escalation is).
    """
    now = now or utcnow()
    o = supervision_orders.c
    async with store.db.reading() as s:
        owed = {r.order_no: r for r in (await s.execute(
            select(o.order_no, o.due_at).where(*_escalation_owed(now)).order_by(o.due_at).limit(batch)))}
    if not owed:
        return 0
    due = escalated_due(clocks.calendar, now, working_days)
    async with store.transaction() as tx:
        claimed = (await tx.session.execute(
            update(supervision_orders).where(o.order_no.in_(list(owed)), *_escalation_owed(now))
            # SET reads the row as it was: from_level is the level the claim raised it from.
            .values(level=KEY, escalated_at=now, due_at=due, from_level=o.level)
            .returning(o.order_no, o.ticket_id, o.unit_code, o.from_level))).all()
        rows = await queries.tickets_by_id(tx.session, {c.ticket_id for c in claimed})
        notices = []
        for c in claimed:
            before = owed[c.order_no]  # its date as read: only an escalation changes it
            e = Escalation(order_no=c.order_no, from_level=c.from_level, previous_due=before.due_at, due_at=due)
            said = e.describe(clocks.calendar.timezone)
            tx.append(timeline, dict(ticket_id=c.ticket_id, event_id=new_event_id(), event_type="SupervisionEscalated",
                                     at=now, actor="system", summary=said, data=e.details()))
            tx.append(tx.tables.audit, audit.entry("SupervisionEscalated", ticket_id=c.ticket_id, details=e.details()))
            row = rows.get(c.ticket_id)
            if row is not None:
                notices.append((timers.with_order_due(row, due), c.unit_code, "reminder",
                                f"催办：工单 {row.number} 的{said}。"))
        await notify_many(tx, clocks.settings, notices)
    if claimed:
        log.info("supervision orders escalated", orders=[c.order_no for c in claimed])
    return len(claimed)


async def escalate_forever(store: ServiceStore, clocks: Clocks, working_days: int,
                           poll_seconds: float = ESCALATION_POLL_SECONDS) -> None:
    """The background job of every tracker instance: escalate what is owed (at once on start, so a tracker
    that was down catches up), then look again every `poll_seconds`."""
    while True:
        try:
            if await escalate_overdue_orders(store, clocks, working_days) < ESCALATION_BATCH:
                await asyncio.sleep(poll_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - database away or a conflict: the next look tries again
            log.warning("supervision order escalation failed", error=repr(exc))
            await asyncio.sleep(poll_seconds)


@sup.post("/orders/{order_no}/respond")
async def order_respond(order_no: str, request: Request, rt: RuntimeDep, user: Responder) -> Response:
    form = await request.form()
    back = back_to(form.get("back"), "/tracker/sup/orders")
    text = str(form.get("response", ""))[:4000]
    try:
        await respond_order(rt, user, order_no, text)
    except ApiError as exc:
        if exc.status == 404:
            raise
        if ref := ticket_of(back):  # answered on the ticket page: it comes back saying why, with what was typed
            typed = {"order_no": order_no, "response": text}
            return await ticket_refused(request, rt, user, ref, exc, "respond", typed)
        return redirect_with(back, refused=exc.zh)
    return redirect_with(back, done=f"督办单 {order_no} 已回复")


@sup.post("/orders/{order_no}/close")
async def order_close(order_no: str, request: Request, rt: RuntimeDep, user: Supervisor) -> Response:
    form = await request.form()
    try:
        await close_order(rt, user, order_no, str(form.get("note", ""))[:2000])
    except ApiError as exc:  # back to the order where it was, not to the closed ones it did not join
        if exc.status == 404:
            raise
        return redirect_with(back_to(form.get("back"), "/tracker/sup/orders"), refused=exc.zh)
    return redirect_with("/tracker/sup/orders?tab=closed", done=f"督办单 {order_no} 已销号")


# --- 部门考评 ----------------------------------------------------------------------------


def _period(rt, key: str) -> stats.Period:
    try:
        return stats.period_of(key or stats.this_month(_tz(rt)), _tz(rt))
    except ValueError as exc:
        zh, _, en = str(exc).partition(" / ")
        raise ApiError(422, "invalid_period", zh, en or zh) from None


PeriodQ = Annotated[str, Query(max_length=24)]


@sup.get("/scorecard", response_class=HTMLResponse)
async def scorecard_page(request: Request, rt: RuntimeDep, user: Supervisor, period: PeriodQ = "") -> HTMLResponse:
    p = _period(rt, period)
    scores, total = await rollup.period_scores(rt.store("tracker").db, p, utcnow(), _tz(rt))
    months = _recent_months(rt)
    return page(request, "tracker_sup_scorecard.html", title="部门考评", p=p, scores=scores, total=total,
                rates=stats.RATES, pct=stats.pct, months=months, score_definition=stats.SCORE_DEFINITION,
                min_sample=stats.MIN_SAMPLE,
                handling_definition=stats.HANDLING_DEFINITION, assigned_definition=stats.ASSIGNED_DEFINITION,
                total_definition=stats.TOTAL_DEFINITION, unnamed_unit=stats.UNNAMED_UNIT)


@sup_api.get("/scorecard")
async def scorecard_json(rt: RuntimeDep, user: Supervisor, period: PeriodQ = "") -> dict:
    """The department scorecard of a period (YYYY-MM, YYYY or YYYY-MM-DD..YYYY-MM-DD)."""
    p = _period(rt, period)
    scores, total = await rollup.period_scores(rt.store("tracker").db, p, utcnow(), _tz(rt))
    return {"period": p.key, "label": p.label, "units": [x.as_dict() for x in scores], "total": total.as_dict(),
            "definitions": {k: {"label": r.label, "numerator": r.numerator, "denominator": r.denominator,
                                "definition": r.definition} for k, r in stats.RATES.items()}}


def _recent_months(rt, n: int = 12) -> list[str]:
    local = dt.datetime.now(_tz(rt))
    out, y, m = [], local.year, local.month
    for _ in range(n):
        out.append(f"{y}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


MEASURE_LABELS = {"assigned": "派件", "handling": "已答复（平均办理时长）"}
FIGURE_PAGE = 100  # rows on one page of a figure's list


@sup.get("/tickets", response_class=HTMLResponse)
async def figure_tickets(request: Request, rt: RuntimeDep, user: Supervisor, period: PeriodQ = "",
                         measure: Annotated[str, Query(max_length=16)] = "assigned",
                         part: Annotated[str, Query(max_length=12)] = "denominator",
                         unit: Annotated[str, Query(max_length=32)] = "",
                         page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1) -> HTMLResponse:
    """What one figure of the scorecard counts, a row for each (`stats.figure_items`): its tickets, or its return
    visits, assignments or returns, each as it was when counted (the visit's result, the clocks a return kept); the
    ticket as it is now only under 当前状态. The head says how many, and of how many tickets when a ticket counts more
    than once."""
    p = _period(rt, period)
    now = utcnow()
    try:
        counted = stats.figure_items(measure, part, p, now, unit or None).subquery()
    except ValueError:
        raise ApiError(404, "unknown_measure", "未知指标", "Unknown measure") from None
    i = counted.c
    async with rt.store("tracker").db.reading() as s:
        by_kind = dict((await s.execute(select(i.item_kind, func.count()).group_by(i.item_kind))).all())
        ticket_count = await s.scalar(select(func.count(i.ticket_id.distinct()))) or 0
        what_counted = [c for c in i if c.key != "ticket_id"]  # the ticket's own id comes with the ticket
        rows = (await s.execute(select(*what_counted, tickets).join(tickets, tickets.c.ticket_id == i.ticket_id)
                                .order_by(i.item_at.desc(), i.ticket_id).limit(FIGURE_PAGE)
                                .offset((page_no - 1) * FIGURE_PAGE))).all()
        names = await stats.unit_names(s, [unit] if unit else [r.item_unit for r in rows])
    total = sum(by_kind.values())
    rate = stats.RATES.get(measure)
    what = (f"{rate.label}·{rate.numerator if part == 'numerator' else rate.denominator}" if rate
            else MEASURE_LABELS.get(measure, measure))
    unit_name = names.get(unit, unit) if unit else "全市"
    qs = urlencode({"period": p.key, "measure": measure, "part": part, "unit": unit})
    kinds = set(by_kind) or {stats.figure_kind(measure, part)}  # an empty list still says what it would hold
    items = [{"t": queries.ticket_view(r, user, now, _clocks(rt)), "kind_key": r.item_kind, "at": r.item_at,
              "kind": _item_label(r), "unit": names.get(r.item_unit, r.item_unit) if r.item_unit else "—",
              "assigned_at": r.item_assigned_at, "sign_for_due": r.item_sign_for_due,
              "signed_for_at": r.item_signed_for_at, "reply_due": r.item_reply_due, "replied_at": r.item_replied_at}
             for r in rows]
    return page(request, "tracker_sup_tickets.html", title=f"{p.label} {unit_name} {what}", what=what, p=p,
                rate=rate, total=total, counted=_counted(by_kind, ticket_count, kinds), page_no=page_no,
                pages=pages_of(total, FIGURE_PAGE), qs=qs,
                unit_name=unit_name, outcomes=OUTCOME_LABELS, events=kinds != {"ticket"},
                # Which clocks the rows of events have: a unit's holding (a ticket, a return, a move) has them, a visit or
                # an assignment none; a reply only a ticket (a return is the unit's answer instead).
                clocks=bool(kinds & {"ticket", "late_return", "late_move", "returned"}), replies="ticket" in kinds,
                nothing=_nothing(kinds), items=items)


def _item_label(row) -> str:
    """What a row of a figure's list counts, in words: 回访：不满意（承办单位原因）, 退单, 本期派件…"""
    label = stats.ITEM_KINDS.get(row.item_kind, row.item_kind)
    if row.item_kind != "visit":
        return label
    cause = {True: "（承办单位原因）", False: "（非承办单位原因）"}.get(row.item_caused, "")
    return f"{label}：{OUTCOME_LABELS.get(row.item_outcome, row.item_outcome)}{cause}"


def _counted(by_kind: dict[str, int], tickets_: int, kinds: set[str]) -> str:
    """How many things a figure's list holds, as the figure counts them, and of how many tickets when that differs:
    共 9 件; 共 10 次回访，涉及 9 件工单; 共 3 项：本期派件 2 件，超时后退单 1 次，涉及 3 件工单; 共 0 次退单 for a list
    of returns with none (`kinds`: what its rows stand for)."""
    total = sum(by_kind.values())
    if kinds <= {"ticket"}:
        return f"共 {total} 件"
    if len(kinds) == 1:
        kind = next(iter(kinds))
        label = stats.ITEM_KINDS.get(kind, kind)
        return f"共 {total} 次{label}，涉及 {tickets_} 件工单" if total else f"共 0 次{label}"
    parts = "，".join(f"{stats.ITEM_KINDS.get(k, k)} {n} {'件' if k == 'ticket' else '次'}"
                      for k, n in sorted(by_kind.items(), key=lambda kv: kv[0] != "ticket"))
    return f"共 {total} 项：{parts}，涉及 {tickets_} 件工单"


def _nothing(kinds: set[str]) -> str:
    """What an empty list of a figure says: 没有工单, 没有回访, 没有退单…"""
    if kinds <= {"ticket"} or len(kinds) > 1:
        return "没有工单"
    kind = next(iter(kinds))
    return f"没有{stats.ITEM_KINDS.get(kind, kind)}"


# --- 趋势与热点 ---------------------------------------------------------------------------

DIMENSIONS = {"channel": "渠道", "kind": "类型", "category": "问题分类", "district": "区域"}


@sup.get("/trends", response_class=HTMLResponse)
async def trends_page(request: Request, rt: RuntimeDep, user: Supervisor,
                      days: Annotated[int, Query(ge=7, le=366)] = 30) -> HTMLResponse:
    now = utcnow()
    async with rt.store("tracker").db.reading() as s:
        spots = await hot.hotspots(s, now - dt.timedelta(days=7), now)
        names = await queries.code_names(s)
    return page(request, "tracker_sup_trends.html", title="趋势与热点", days=days, dimensions=DIMENSIONS,
                spots=spots, now=now, names=names)


@sup_api.get("/trends")
async def trends_json(rt: RuntimeDep, user: Supervisor, days: Annotated[int, Query(ge=1, le=366)] = 30,
                      dimension: Annotated[str, Query(max_length=16)] = "channel",
                      top: Annotated[int, Query(ge=1, le=20)] = 8,
                      until: Annotated[dt.date | None, Query()] = None) -> dict:
    """Tickets received per local day over the `days` days up to `until` (today), split by one dimension
    (top N, rest 其他)."""
    if dimension not in DIMENSIONS:
        raise ApiError(422, "invalid_dimension", "维度应为 channel、kind、category 或 district",
                       "dimension must be channel, kind, category or district")
    tz = _tz(rt)
    today = until or dt.datetime.now(tz).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    column = getattr(tickets.c, dimension)
    async with rt.store("tracker").db.reading() as s:
        day = stats.local_day(s.bind.dialect.name, tickets.c.received_at, tz)
        rows = (await s.execute(select(day, column, func.count()).where(tickets.c.received_at >= start)
                                .group_by(day, column))).all()
        labels = {"channel": {k.value: v for k, v in CHANNEL_LABELS.items()},
                  "kind": {k.value: v for k, v in KIND_LABELS.items()}}.get(dimension) or await queries.code_names(s)
    dates = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    totals: dict = {}
    for _, key, n in rows:
        totals[key] = totals.get(key, 0) + n
    keep = [k for k, _ in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]
    series = {k: [0] * days for k in keep}
    other = [0] * days
    index = {d: i for i, d in enumerate(dates)}
    for d, key, n in rows:
        i = index.get(str(d))
        if i is None:
            continue
        (series[key] if key in series else other)[i] += n
    out = [{"key": k, "name": labels.get(k, k or "未注明"), "data": series[k], "total": totals[k]} for k in keep]
    if any(other):
        out.append({"key": "_other", "name": "其他", "data": other, "total": sum(other)})
    return {"dimension": dimension, "dates": dates, "series": out, "total": sum(totals.values())}


@sup_api.get("/hotspots")
async def hotspots_json(rt: RuntimeDep, user: Supervisor, days: Annotated[int, Query(ge=1, le=31)] = 7) -> dict:
    now = utcnow()
    async with rt.store("tracker").db.reading() as s:
        spots = await hot.hotspots(s, now - dt.timedelta(days=days), now)
        names = await queries.code_names(s)
    return {"items": [{"title": h.title, "place": h.place, "district": h.district, "category": h.category,
                       "district_name": names.get(h.district or "", h.district),
                       "category_name": names.get(h.category or "", h.category),
                       "size": h.size, "units": h.units, "tickets": [r.number for r in h.tickets]} for h in spots]}


# --- 大屏 --------------------------------------------------------------------------------


async def overview(rt) -> dict:
    tz = _tz(rt)
    now = utcnow()
    today = dt.datetime.combine(dt.datetime.now(tz).date(), dt.time(), tz).astimezone(dt.UTC)
    t = tickets.c
    async with rt.store("tracker").db.reading() as s:
        received = await s.scalar(select(func.count()).select_from(tickets).where(t.received_at >= today))
        replied = await s.scalar(select(func.count()).select_from(tickets).where(t.replied_at >= today))
        open_ = await s.scalar(select(func.count()).select_from(tickets).where(t.state.in_(stats.IN_PROGRESS)))
        overdue = await s.scalar(select(func.count()).select_from(tickets).where(
            t.state.in_(stats.RUNNING), t.reply_due < now))
        p = stats.period_of(stats.this_month(tz), tz)
        _, total = await stats.scorecard(s, p, now)
        channels = dict((await s.execute(select(t.channel, func.count()).where(t.received_at >= today)
                                         .group_by(t.channel))).all())
    return {"at": now.isoformat(), "today_received": received, "today_replied": replied, "open": open_,
            "overdue": overdue, "period": p.label,
            "rates": {k: total.rate(k) for k in ("response", "resolution", "satisfaction", "on_time")},
            "channels": [{"name": CHANNEL_LABELS.get(k, k) if k else "未注明", "value": v} for k, v in channels.items()]}


@sup.get("/wall", response_class=HTMLResponse)
async def wall(request: Request, rt: RuntimeDep, user: Supervisor) -> HTMLResponse:
    return page(request, "tracker_sup_wall.html", title="接诉即办大屏", o=await overview(rt), pct=stats.pct,
                open_definition=stats.IN_PROGRESS_DEFINITION)


@sup_api.get("/overview")
async def overview_json(rt: RuntimeDep, user: Supervisor) -> dict:
    return await overview(rt)


# --- 报告 --------------------------------------------------------------------------------


@sup.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request, rt: RuntimeDep, user: Supervisor,
                       kind: Annotated[str, Query(max_length=8)] = "monthly", period: PeriodQ = "",
                       print_: Annotated[bool, Query(alias="print")] = False) -> HTMLResponse:
    kind = kind if kind in ("monthly", "annual") else "monthly"
    if kind == "annual" and len(period) != 4:
        period = str(dt.datetime.now(_tz(rt)).year)
    report = await _report(rt, kind, period)
    return page(request, "tracker_sup_report.html", title=report.title, report=report, kind=kind,
                months=_recent_months(rt), printing=print_)


async def _report(rt, kind: str, period: str) -> reports.Report:
    p = _period(rt, period)
    async with rt.store("tracker").db.reading() as s:
        names = await queries.code_names(s)
    return await reports.build(rt.store("tracker").db, kind, p, utcnow(), _tz(rt), names=names)


@sup.get("/reports/{kind}.{ext}")
async def report_file(kind: str, ext: str, rt: RuntimeDep, user: Supervisor, period: PeriodQ = "") -> Response:
    if kind not in ("monthly", "annual") or ext not in ("xlsx", "csv", "json"):
        raise ApiError(404, "not_found", "没有这种报告", "No such report")
    report = await _report(rt, kind, period)
    if ext == "json":
        return JSONResponse({"title": report.title, "period": report.period.key, "tables": [
            {"key": t.key, "title": t.title, "header": t.header, "rows": t.rows, "note": t.note}
            for t in report.tables]})
    body = reports.to_xlsx(report) if ext == "xlsx" else reports.to_csv(report)
    media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if ext == "xlsx"
             else "text/csv; charset=utf-8")
    return Response(body, media_type=media, headers={
        "Content-Disposition": f"attachment; filename=\"{reports.filename(report, ext)}\""})

"""The tracker's pages: department workbench, ticket page, return visits, supervision, calendar.

Plain HTML forms (keyboard-friendly, work without JavaScript); htmx only refreshes the
notification badge. Every form posts back to the ticket page, which shows what happened
or why it was refused; a list's quick form (deciding extensions) names the list as `back`
and returns there with the message instead. The return-visit form is refused back onto
itself, and a recorded visit returns to the visit queue saying what followed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select, update

from jiesu import attachment_grants
from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.privacy import mask_phones
from jiesu.web import Message, RuntimeDep, localtime, page, redirect_with, require, templates
from schemas.enums import CHANNEL_LABELS, RETURN_REASONS, ROLE_LABELS, ROUTING_METHOD_LABELS, Role, TicketState
from schemas.events import utcnow
from services.tracker import queries, stats
from services.tracker.actions import (OUTCOME_LABELS, UNREACHABLE_ATTEMPTS, call_gap_words, callable_first,
                                      closes_when_unreachable, defer_refused, extension_refused,
                                      last_unanswered_calls, next_call_at, note_refused, order_stacks,
                                      supervision_refused, visit_message)
from services.tracker.domain.lifecycle import allowed_actions, may
from services.tracker.domain.replies import BOILERPLATE, MIN_MEANINGFUL_CHARS
from services.tracker.domain.sla import SlaPolicy
from services.tracker.notify import KIND_LABELS, resend_all, resend_delivery
from services.tracker.store import deliveries, extensions, notifications, supervision_orders, tickets

pages = APIRouter(prefix="/tracker", include_in_schema=False)

Reader = Annotated[User, Depends(require(Role.OPERATOR, Role.DISPATCHER, Role.DEPARTMENT, Role.VISITOR,
                                         Role.SUPERVISOR))]
Workbench = Annotated[User, Depends(require(Role.DEPARTMENT, Role.SUPERVISOR))]
Visitor = Annotated[User, Depends(require(Role.VISITOR, Role.SUPERVISOR))]
Supervisor = Annotated[User, Depends(require(Role.SUPERVISOR))]


def _tracker(rt):
    return rt.state["tracker"]


@pages.get("/tickets", response_class=HTMLResponse)
async def tickets_page(request: Request, rt: RuntimeDep, user: Reader,
                       state: Annotated[TicketState | None, Query()] = None,
                       page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1) -> HTMLResponse:
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows, total = await queries.list_tickets(s, user, state=state.value if state else None, limit=TICKETS_PAGE,
                                                 offset=(page_no - 1) * TICKETS_PAGE)
    clocks = _tracker(rt).clocks
    return page(request, "tracker_tickets.html", items=[queries.ticket_view(r, user, now, clocks) for r in rows],
                total=total, state=state.value if state else "", page_no=page_no, pages=pages_of(total, TICKETS_PAGE),
                now=now, title="工单列表" if user.role != Role.DEPARTMENT else "本单位工单")


TICKETS_PAGE = 50  # tickets on one page of the list


def pages_of(total: int, per_page: int) -> int:
    """How many pages a list of `total` takes, `per_page` a page: one at least, which says 共 0 件."""
    return max(1, -(-total // per_page))


@pages.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request, rt: RuntimeDep, user: Workbench,
                tab: Annotated[str, Query()] = "open", kind: Annotated[str, Query(max_length=32)] = "",
                q: Annotated[str, Query(max_length=100)] = "",
                page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1) -> HTMLResponse:
    tabs = queries.workbench_tabs(user)
    if tab not in tabs:
        tab = "open"
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows, returns, total, counts = await queries.workbench(
            s, user, tab=tab, now=now, kind=kind or None, q=q or None, limit=INBOX_PAGE,
            offset=(page_no - 1) * INBOX_PAGE)
        unread = await queries.unread_count(s, user.department)
        # Unread ones are the newest (only 全部标为已读 reads them): as many as the badge counts, up to a bound.
        notes = await queries.recent_notifications(s, user.department, min(max(unread, NOTES_SHOWN), NOTES_UNREAD_MAX))
        # The unit's own name, whatever the page lists (a search, an empty tab, tickets it only co-handles).
        unit_name = (await stats.unit_names(s, [user.department])).get(user.department)
    title = "本单位工单" if user.role == Role.DEPARTMENT else "承办工作台（全部单位）"
    clocks = _tracker(rt).clocks
    return page(request, "tracker_inbox.html", items=[queries.ticket_view(r, user, now, clocks) for r in rows],
                returns=returns, returned_days=queries.RETURNED_DAYS, total=total, counts=counts, tabs=tabs, tab=tab,
                kind=kind, q=q, page_no=page_no,
                pages=pages_of(total, INBOX_PAGE), title=title,
                notes=notes, unread=unread, unlisted=unread - sum(1 for n in notes if n.read_at is None),
                unit_name=unit_name)


INBOX_PAGE = 50  # tickets on one page of the workbench
NOTES_SHOWN = 8  # the inbox's panel: the newest notifications, read or not, and every unread one
NOTES_UNREAD_MAX = 30  # … up to this many; the panel says how many more are unread


@pages.get("/badge", response_class=HTMLResponse)
async def badge(request: Request, rt: RuntimeDep, user: Workbench) -> HTMLResponse:
    """The workbench's 已超期 count and the unread notifications, polled by htmx every 20 s on every open workbench:
    the two counts alone (two queries for a unit, one for the office, which has no notifications), the same numbers
    as the inbox's."""
    async with rt.store("tracker").db.session() as s:
        unread = await queries.unread_count(s, user.department)
        overdue = await queries.inbox_count(s, user, "overdue", utcnow())
    return page(request, "tracker_badge.html", unread=unread, overdue=overdue)


@pages.post("/notifications/read")
async def read_all(rt: RuntimeDep, user: Workbench) -> Response:
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(notifications).where(notifications.c.unit_code == user.department,
                                                    notifications.c.read_at.is_(None)).values(read_at=utcnow()))
    return RedirectResponse("/tracker/inbox", status_code=303)


# --- who did it, in words people use ------------------------------------------------------
# Timelines and orders store who acted as written at the time: a part of the system, a channel, a user name, or a
# department person's display name. Pages name them at display time (the stored rows stay as they are).

SYSTEM_ACTORS = {  # never a person: not looked up as a user name
    **{c.value: label for c, label in CHANNEL_LABELS.items()},  # a letter or message that came in by itself
    "system": "系统", "router": "智能派单", "hotline": "12345 热线", "citizen": "市民",
}
ROLE_ACTORS = {r.value: label for r, label in ROLE_LABELS.items()}  # a role's word, when no such user is known
# A dispatch a person decided (RoutingReason.method): the router only carried it out.
PERSON_METHODS = {"dispatcher": "派单员", "operator": "话务员"}


def actor_label(actor: str | None, names: dict[str, str] | None = None) -> str:
    """Who did something, as a page names them: 系统, 智能派单, a person's display name where `names` knows the
    user name, else the role (督查室 for `supervisor`), else the stored text (already a name)."""
    if not actor:
        return ""
    if actor in SYSTEM_ACTORS:
        return SYSTEM_ACTORS[actor]
    if names and actor in names:
        return names[actor]
    return ROLE_ACTORS.get(actor, actor)


# A dispatch line's basis (依据) → the routing method: as handlers.py writes it, or as it wrote it before (the method).
BASES = {**{method: method for method in ROUTING_METHOD_LABELS},
         **{label: method for method, label in ROUTING_METHOD_LABELS.items()}}


def timeline_lines(events: list[dict], names: dict[str, str]) -> list[dict]:
    """The timeline as the ticket page shows it: actors named (actor_label); a dispatch a person decided names
    that role, and the dispatcher too where the line knows who it was (`by`); a 重复件 line the operator decided
    names them the same way (queries.merge_lines), and keeps the other ticket's number to link (`link`); a basis
    written as a bare method is in Chinese (lines written before handlers.py wrote it so).

    A dispatch line's method is its data's (queries.timeline_of with `routing`); a line written before the data
    kept the reason says it only in its basis (依据)."""
    lines = []
    for e in events:
        actor, summary = actor_label(e["actor"], names), e["summary"]
        head, sep, basis = summary.rpartition("（依据：")
        written = BASES.get(basis.removesuffix("）")) if sep and basis.endswith("）") else None
        if e["event_type"] in ("TicketAssigned", "TicketMerged") and e["actor"] == "router":
            method = e.get("method") or written
            actor = PERSON_METHODS.get(method, actor)
            if method in PERSON_METHODS and (by := e.get("by")):
                person = actor_label(by, names)  # a display name may say the role already (派单员 李强)
                actor = person if person.startswith(actor) else f"{actor} {person}"
            if written:
                summary = f"{head}（依据：{ROUTING_METHOD_LABELS[written]}）"
        line = {"at": e["at"], "event_type": e["event_type"], "actor": actor, "summary": summary}
        if e.get("link"):
            line["link"] = e["link"]
        lines.append(line)
    return lines


async def display_names(rt, usernames) -> dict[str, str]:
    """The display names of the users among these stored actors (one identity query)."""
    wanted = {u for u in usernames if u and u.isascii() and u not in SYSTEM_ACTORS}
    return {u: name for u, name in (await rt.identity.display_names(wanted)).items() if name != u}


templates.env.filters["actor"] = actor_label  # e.g. {{ o.by|actor }} on lists of orders


def _next_actions(user: User, row) -> set[str]:
    """The lifecycle's next actions on the ticket `row` that `user`'s role may take (a department only on the
    tickets it leads)."""
    lead = user.role != Role.DEPARTMENT or row.lead_code == user.department
    return {a.value for a in allowed_actions(TicketState(row.state)) if may(user.role.value, a) and lead}


ORDER_LEVELS = {"normal": "一般督办", "key": "重点督办"}


@dataclass(frozen=True)
class Offer:
    """What the ticket page offers `user` on a ticket, and the lines that say why a form is left out or narrowed."""

    actions: set[str]  # the forms
    no_extension: str = ""  # why 申请延期 is left out, to a unit that would ask for it
    order_levels: tuple[str, ...] = ()  # the levels the 督办 form offers (ORDER_LEVELS)
    no_order: str = ""  # why a level, or the whole form, is left out: an order awaiting its answer (`order_stacks`)
    no_defer: str = ""  # why 挂账 is left out, to a unit that would do it (`defer_refused`)


def offer(user: User, row, policy: SlaPolicy, waiting: Collection[str] = ()) -> Offer:
    """The forms the ticket page offers `user` on the ticket `row`: the lifecycle's next actions their role may take
    (a department only on the tickets it leads), but no extension (延期) the rules refuse whatever it asks
    (`extension_refused`) nor 挂账 of a matter that may take none (`defer_refused`), and a note or a supervision
    order where the action would accept it (`note_refused`, `supervision_refused`, and `order_stacks` given the
    levels of the ticket's orders awaiting their answer, `waiting`): the same answers as the actions'."""
    can = _next_actions(user, row)
    no_extension = ""
    if "request_extension" in can and (refusal := extension_refused(policy, row)) is not None:
        can.discard("request_extension")  # the page says why instead
        no_extension = _why_no_extension(row, policy, refusal)
    no_defer = ""
    if "defer" in can and (refusal := defer_refused(row)) is not None:
        can.discard("defer")  # likewise
        no_defer = refusal.zh
    if note_refused(user, row) is None:
        can.add("note")
    levels: tuple[str, ...] = ()
    no_order = ""
    if supervision_refused(user, row) is None:
        stacking = {level: order_stacks(level, waiting) for level in ORDER_LEVELS}
        levels = tuple(level for level, refusal in stacking.items() if refusal is None)
        no_order = next((refusal.zh for refusal in stacking.values() if refusal is not None), "")
        if levels:
            can.add("supervise")
    return Offer(can, no_extension, levels, no_order, no_defer)


def _why_no_extension(row, policy: SlaPolicy, refusal: ApiError) -> str:
    """Why the rules refuse every extension of the ticket `row` (`refusal`), in a line for the unit: where its rule
    allows none at all (重办 never does), which rule; else the limit it reached (used up, or the total too long)."""
    if row.reopened:
        return "重办工单须在重办期限内答复，不能申请延期。"
    if policy.rule_for(row.kind or "complaint", row.urgency or "normal").max_extensions == 0:
        return "紧急事项须按时限答复，不能申请延期。" if row.urgency == "urgent" else "该事项不能申请延期。"
    return f"不能再申请延期：{refusal.zh}"


async def _ticket_context(rt, user: User, ref: str) -> dict:
    async with rt.store("tracker").db.session() as s:
        row = await queries.visible_ticket(s, user, ref)
        events = await queries.timeline_of(s, row, user, routing=True)
        # 重复件: a merged ticket runs no clocks of its own; the page names the ticket it follows instead.
        merged_into = row.merged_into and await s.scalar(select(tickets.c.number)
                                                         .where(tickets.c.ticket_id == row.merged_into))
        pending = (await s.execute(select(extensions).where(extensions.c.ticket_id == row.ticket_id,
                                                            extensions.c.approved.is_(None)))).first()
        orders = (await s.execute(select(supervision_orders).where(supervision_orders.c.ticket_id == row.ticket_id)
                                  .order_by(supervision_orders.c.created_at))).all()
        undelivered = []
        if user.has(Role.SUPERVISOR) or user.role == Role.DEPARTMENT:
            undelivered = await failed_deliveries(s, ticket_id=row.ticket_id,
                                                  unit_code=user.department if user.role == Role.DEPARTMENT else None)
        waiting = set()  # the levels of its orders awaiting their answer, which only the office's 督办 form asks
        if user.has(Role.SUPERVISOR):
            waiting = (await queries.levels_awaiting_answer(s, [row.ticket_id])).get(row.ticket_id, set())
    lead = user.role != Role.DEPARTMENT or row.lead_code == user.department
    offered = offer(user, row, _tracker(rt).clocks.policy, waiting)
    today = utcnow().astimezone(_tracker(rt).clocks.calendar.timezone).date()  # 挂账's planned date is no earlier
    names = await display_names(rt, [e["actor"] for e in events] + [pending.requested_by if pending else ""]
                                + [e.get("by") for e in events])
    return dict(t=queries.ticket_view(row, user, utcnow(), _tracker(rt).clocks),
                timeline=timeline_lines(events, names),
                merged_into=merged_into,
                names=names, can=offered.actions, no_extension=offered.no_extension, no_defer=offered.no_defer,
                order_levels=offered.order_levels, today=today,
                order_level_labels=ORDER_LEVELS, no_order=offered.no_order, pending=pending, orders=orders,
                is_lead=lead, reasons=RETURN_REASONS, outcomes=OUTCOME_LABELS, labels=DONE_LABELS,
                now_iso=utcnow().isoformat(), attachments=_attachments(rt.secret, user, row),
                # The reply box counts as the action does (domain/replies.py): tracker.js is given its rule.
                reply_min=MIN_MEANINGFUL_CHARS, stock_phrases=BOILERPLATE,
                grant_minutes=int(attachment_grants.LIFETIME.total_seconds() // 60), undelivered=undelivered)


CHANNEL_NAMES = {"email": "邮件", "webhook": "消息系统"}


async def failed_deliveries(session, *, ticket_id=None, unit_code: str | None = None, limit: int = 50) -> list[dict]:
    """Department notifications by e-mail or webhook that were given up (jiesu.mailer), newest first.

    Read through the partial index of given-up rows, so a few rows however many were sent; a ticket's from its
    own notifications (ix_tracker_notifications_ticket) to their given-up deliveries, however many other tickets
    have. The webhook's address is left out: it may carry the receiving system's token. `id` is the delivery's,
    for 重新发送.
    """
    stmt = (select(deliveries.c.id, deliveries.c.channel, deliveries.c.target, deliveries.c.attempts,
                   deliveries.c.failed_at, deliveries.c.last_error, notifications.c.unit_code,
                   notifications.c.ticket_id, notifications.c.number, notifications.c.kind,
                   tickets.c.lead_code, tickets.c.lead_name)
            .join(notifications, notifications.c.id == deliveries.c.notification_id)
            .outerjoin(tickets, tickets.c.ticket_id == notifications.c.ticket_id)
            .where(deliveries.c.failed_at.isnot(None)).order_by(deliveries.c.failed_at.desc()).limit(limit))
    if ticket_id is not None:
        stmt = stmt.where(notifications.c.ticket_id == ticket_id)
    if unit_code is not None:
        stmt = stmt.where(notifications.c.unit_code == unit_code)
    return [{"id": r.id, "failed_at": r.failed_at, "unit_code": r.unit_code, "number": r.number,
             "ref": r.number or (str(r.ticket_id) if r.ticket_id else ""), "attempts": r.attempts,
             "unit_name": r.lead_name if r.lead_code == r.unit_code and r.lead_name else r.unit_code,
             "kind_label": KIND_LABELS.get(r.kind, r.kind), "channel": CHANNEL_NAMES.get(r.channel, r.channel),
             "target": r.target if r.channel == "email" else "", "error": mask_phones(r.last_error or "")}
            for r in (await session.execute(stmt)).all()]


def _attachments(secret: str, user: User, row) -> list[dict]:
    """The citizen's files with their download links (queries.attachment_links) and sizes as people read them."""
    return [{**a, "size_label": human_size(a["size"])} for a in queries.attachment_links(secret, user, row)]


def human_size(size: int) -> str:
    """A file's size as people read it: 812 字节, 45.3 KB, 2.1 MB (1 KB = 1024 字节, as file managers count)."""
    if size < 1024:
        return f"{size} 字节"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@pages.get("/tickets/{ref}", response_class=HTMLResponse)
async def ticket_page(ref: str, request: Request, rt: RuntimeDep, user: Reader, done: Message = "") -> HTMLResponse:
    """`done` is an action's key (DONE_LABELS, from `act`) or what another form said it did (督办回复)."""
    return page(request, "tracker_ticket.html", done=done, error=None, **await _ticket_context(rt, user, ref))


async def ticket_refused(request: Request, rt, user: User, ref: str, error: ApiError, failed: str,
                         form: dict) -> HTMLResponse:
    """The ticket page again, saying why `failed` (DONE_LABELS) was refused and with what was typed (`form`):
    rendered, not redirected, so the text stays out of the address; tracker.js then shows the ticket's own
    address (data-page-url), so reloading does not post again."""
    context = await _ticket_context(rt, user, ref)
    response = page(request, "tracker_ticket.html", done="", error=error, form=form, failed=failed, **context)
    response.status_code = error.status
    return response


def ticket_of(path: str) -> str | None:
    """The ticket a form's `back` names when it is the ticket page (/tracker/tickets/<number>), else None."""
    ref = path.removeprefix("/tracker/tickets/")
    return ref if ref and ref != path and "/" not in ref and "?" not in ref and "#" not in ref else None


DONE_LABELS = {
    "sign_for": "签收", "contact": "记录联系情况", "wait_citizen": "暂停计时（待市民补充材料）", "defer": "挂账",
    "resume": "恢复办理", "request_extension": "提交延期申请", "decide_extension": "审批延期申请", "return": "退单",
    "reply": "答复", "note": "提交意见", "visit": "登记回访结果", "supervise": "下达督办单",
    "resend": "重新发送通知", "respond": "回复督办单",
}


@pages.post("/tickets/{ref}/do/{action}", response_class=HTMLResponse)
async def act(ref: str, action: str, request: Request, rt: RuntimeDep, user: Reader) -> Response:
    """One form per action; on refusal the page comes back with the reason and what was typed."""
    form = await request.form()
    f = {k: str(v) for k, v in form.items()}
    back = back_to(f.get("back"))
    tracker = _tracker(rt)
    try:
        if action == "sign_for":
            row = await tracker.sign_for(user, ref)
        elif action == "contact":
            row = await tracker.contact(user, ref, f.get("note", ""))
        elif action in ("wait_citizen", "defer"):
            until = _date(f.get("expected_until"))
            row = await tracker.pause(user, ref, "waiting_citizen" if action == "wait_citizen" else "deferred",
                                      f.get("note", ""), tracker.clocks.calendar.end_of_working_day(until)
                                      if until else None)
        elif action == "resume":
            row = await tracker.resume(user, ref)
        elif action == "request_extension":
            new_due = _date(f.get("new_due"))
            if new_due is None:
                raise ApiError(422, "extension_date", "请选择新的答复日期", "Choose the new reply date")
            row = await tracker.request_extension(user, ref, f.get("reason", ""), new_due)
        elif action == "decide_extension":
            row = await tracker.decide_extension(user, ref, f.get("approved") == "yes", f.get("note", ""))
        elif action == "return":
            row = await tracker.return_ticket(user, ref, f.get("reason_code", ""), f.get("reason", ""))
        elif action == "reply":
            row = await tracker.reply(user, ref, f.get("reply", ""))
        elif action == "note":
            row = await tracker.note(user, ref, f.get("note", ""))
        elif action == "visit":
            cause = {"yes": True, "no": False}.get(f.get("department_caused", ""))
            row = await tracker.record_visit(user, ref, f.get("outcome", ""), department_caused=cause,
                                             comment=f.get("comment", ""))
            return redirect_with("/tracker/visits", done=visit_message(row, f.get("outcome", "")))
        elif action == "supervise":
            row = await tracker.supervise(user, ref, f.get("level", "normal"), f.get("reason", ""))
        elif action == "resend":
            row = await _resend(rt, user, ref, f.get("delivery", ""))
        else:
            raise ApiError(404, "unknown_action", "未知操作", "Unknown action")
    except ApiError as exc:
        if exc.status == 404:
            raise
        if back:  # a list's quick form (no text typed that would be lost): the list says why
            return redirect_with(back, refused=f"工单 {ref}：{exc.zh}")
        if action == "visit":
            # Rendered here, not redirected: the comment is the citizen's own words (up to 2000 characters), which
            # a redirect would put in the address, the access log and the history. tracker.js then shows the visit
            # page's own address (data-page-url), so reloading or going back does not post again.
            response = page(request, "tracker_visit.html", error=exc, form=f, **await _visit_context(rt, user, ref))
            response.status_code = exc.status
            return response
        return await ticket_refused(request, rt, user, ref, exc, action, f)  # with what was typed, likewise
    if back:
        return redirect_with(back, done=_done_message(action, row, f))
    target = f"/tracker/tickets/{quote(row.number or str(row.ticket_id))}?done={quote(action)}"
    if user.role == Role.DEPARTMENT and action == "return":
        target = f"/tracker/inbox?returned={quote(row.number or '')}"
    return RedirectResponse(target, status_code=303)


async def _resend(rt, user: User, ref: str, delivery: str):
    """重新发送: the office sends one of the ticket's given-up notifications again (notify.resend_delivery)."""
    if not user.has(Role.SUPERVISOR):
        raise ApiError(403, "forbidden", "只有督查室可以重新发送通知", "Only the supervision office may send a notification again")
    if not delivery.isdigit():
        raise ApiError(422, "delivery_required", "未指明要重新发送的通知，请刷新页面后重试",
                       "Say which notification to send again; reload the page and retry")
    # The ticket `ref` names is read in resend_delivery's own transaction: one session, not one more to look it up.
    ticket_id = queries.find_stmt(ref).with_only_columns(tickets.c.ticket_id).scalar_subquery()
    return await resend_delivery(rt.store("tracker"), rt.settings, int(delivery), ticket_id=ticket_id)


@pages.post("/sup/deliveries/resend")
async def resend_given_up(request: Request, rt: RuntimeDep, user: Supervisor) -> Response:
    """全部重新发送: every given-up notification, once what made them fail is put right (under /tracker/sup, with
    the office's other actions)."""
    form = await request.form()
    back = back_to(form.get("back"), "/tracker/supervision")
    resent, nowhere = await resend_all(rt.store("tracker"), rt.settings)
    if not resent:
        why = (f"{nowhere} 条通知因单位没有通知邮箱或未配置消息系统，无法重新发送，请先设置。" if nowhere
               else "没有停止重试的通知，无需重新发送")
        return redirect_with(back, refused=why)
    msg = f"已重新发送 {resent} 条通知，发送结果稍后刷新本页查看。"
    if nowhere:
        msg += f"另有 {nowhere} 条因单位没有通知邮箱或未配置消息系统而未发送，请先设置。"
    return redirect_with(back, done=msg)


def back_to(value, default: str | None = None, *, under: str = "/tracker/") -> str | None:
    """Where a form sent from a list returns to: the page it names if that is one of ours (under `under`),
    else `default`. Never another site: the value comes from the form."""
    value = str(value or "")
    return value if value.startswith(under) and not value.startswith("//") else default


def _done_message(action: str, row, f: dict) -> str:
    """What was done, for the list the user returns to."""
    number = row.number or str(row.ticket_id)
    if action == "decide_extension":
        due = localtime(row.reply_due)
        return (f"已同意工单 {number} 的延期申请，答复期限延至 {due}。" if f.get("approved") == "yes"
                else f"工单 {number} 的延期申请未获同意，答复期限仍为 {due}。")
    return f"工单 {number}：已{DONE_LABELS.get(action, '完成操作')}。"


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise ApiError(422, "invalid_date", "日期格式不正确（YYYY-MM-DD）", "Write the date as YYYY-MM-DD") from None


# --- return visits ------------------------------------------------------------------------


async def _visit_context(rt, user: User, ref: str) -> dict:
    """The visit form's page: the ticket, how many unreachable calls were made and whether one more closes it, and,
    while the last of them is too recent for another (actions.UNREACHABLE_CALL_GAP), when it was and from when the
    next may be recorded (`last_unanswered`, `next_call`), as the visit queue says it; else both None."""
    context = await _ticket_context(rt, user, ref)
    t = context["t"]
    last = next_call = None
    if "visit_close" in context["can"] and t["visit_attempts"]:
        async with rt.store("tracker").db.session() as s:
            # The ticket as last_unanswered_calls reads a queue's rows: its id and this visit's attempts.
            visit = SimpleNamespace(ticket_id=uuid.UUID(t["ticket_id"]), visit_attempts=t["visit_attempts"])
            last = (await last_unanswered_calls(s, [visit])).get(visit.ticket_id)
        next_call = next_call_at(last)
        if next_call is None or next_call <= utcnow():
            last = next_call = None
    return {**context, "unreachable_limit": UNREACHABLE_ATTEMPTS,
            "last_attempt": closes_when_unreachable(t["visit_attempts"]), "last_unanswered": last,
            "next_call": next_call, "call_gap": call_gap_words()[0]}


@pages.get("/visits", response_class=HTMLResponse)
async def visits(request: Request, rt: RuntimeDep, user: Visitor,
                 done: Message = "") -> HTMLResponse:
    """回访队列: a ticket whose last call went unanswered shows when it may be called again, and waits below the
    tickets that may be called now until then (actions.UNREACHABLE_CALL_GAP)."""
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        rows = await queries.visit_queue(s)
        unanswered = await last_unanswered_calls(s, rows)
    items = [{**queries.ticket_view(r, user, now, _tracker(rt).clocks), "call_after": call_after}
             for r, call_after in callable_first(rows, unanswered, now)]
    return page(request, "tracker_visits.html", items=items, now=now.isoformat(), done=done,
                call_gap=call_gap_words()[0], title="回访队列")


@pages.get("/visits/{ref}", response_class=HTMLResponse)
async def visit_form(ref: str, request: Request, rt: RuntimeDep, user: Visitor) -> HTMLResponse:
    return page(request, "tracker_visit.html", error=None, form={}, **await _visit_context(rt, user, ref))


# --- supervision office --------------------------------------------------------------------


@pages.get("/supervision", response_class=HTMLResponse)
async def supervision(request: Request, rt: RuntimeDep, user: Supervisor,
                      done: Message = "",
                      refused: Message = "") -> HTMLResponse:
    now = utcnow()
    calendar = _tracker(rt).clocks.calendar
    async with rt.store("tracker").db.reading() as s:
        pending = (await s.execute(
            select(extensions, tickets.c.number, tickets.c.subject, tickets.c.lead_name, tickets.c.reply_due)
            .join(tickets, tickets.c.ticket_id == extensions.c.ticket_id)
            .where(extensions.c.approved.is_(None)).order_by(extensions.c.requested_at))).all()
        overdue = (await s.execute(select(tickets).where(tickets.c.state.in_(stats.RUNNING),
                                                         tickets.c.reply_due < now)
                                   .order_by(tickets.c.reply_due).limit(100))).all()
        deferred = (await s.execute(select(tickets).where(tickets.c.state == "deferred")
                                    .order_by(tickets.c.paused_at).limit(100))).all()
        orders = (await s.execute(select(supervision_orders, tickets.c.number, tickets.c.subject, tickets.c.lead_name,
                                         tickets.c.state)
                                  .join(tickets, tickets.c.ticket_id == supervision_orders.c.ticket_id)
                                  .order_by(supervision_orders.c.created_at.desc()).limit(100))).all()
        undelivered = await failed_deliveries(s)
    year = dt.datetime.now(calendar.timezone).year
    unconfirmed = [y for y in (year, year + 1) if not calendar.is_confirmed(y)]
    return page(request, "tracker_supervision.html", pending=pending, now=now,
                overdue=[queries.ticket_view(r, user, now, _tracker(rt).clocks) for r in overdue],
                deferred=[queries.ticket_view(r, user, now, _tracker(rt).clocks) for r in deferred], orders=orders,
                unconfirmed=unconfirmed, undelivered=undelivered, title="延期审批与挂账", done=done,
                refused=refused)


@pages.get("/calendar", response_class=HTMLResponse)
async def calendar_page(request: Request, rt: RuntimeDep, user: Supervisor,
                        year: Annotated[int | None, Query(ge=2004, le=2100)] = None) -> HTMLResponse:
    from services.tracker.calendar_cli import year_summary

    calendar = _tracker(rt).clocks.calendar
    this_year = dt.datetime.now(calendar.timezone).year
    year = year or this_year
    return page(request, "tracker_calendar.html", s=year_summary(calendar, year), year=year,
                years=list(range(this_year - 1, this_year + 3)),
                unconfirmed=[y for y in (this_year, this_year + 1) if not calendar.is_confirmed(y)],
                title=f"{year} 年工作日历")


# --- the citizen's one-time rating page (no log-in) ---------------------------------------


@pages.get("/rate/{token}", response_class=HTMLResponse)
async def rate_page(token: str, request: Request, rt: RuntimeDep) -> HTMLResponse:
    try:
        row, _ = await _tracker(rt).open_link(token)
    except ApiError as exc:
        response = page(request, "tracker_rate.html", t=None, error=exc, done=False, token=token)
        response.status_code = exc.status
        return response
    return page(request, "tracker_rate.html", t=row, error=None, done=False, token=token)


@pages.post("/rate/{token}", response_class=HTMLResponse)
async def rate(token: str, request: Request, rt: RuntimeDep) -> HTMLResponse:
    form = await request.form()
    try:
        await _tracker(rt).rate_by_link(token, str(form.get("outcome", "")), str(form.get("comment", ""))[:2000])
    except ApiError as exc:
        response = page(request, "tracker_rate.html", t=None, error=exc, done=False, token=token)
        response.status_code = exc.status
        return response
    return page(request, "tracker_rate.html", t=None, error=None, done=True, token=token)

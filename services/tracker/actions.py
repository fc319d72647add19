"""What people do to a ticket: the command side of the tracker.

Each action is one transaction (the unit of work): check who may do it and whether the
ticket's state allows it (domain/lifecycle.py), change the ticket, recompute its clocks
(domain/sla.py) and timers, write the timeline, and emit the event through the outbox.
Refusals are `ApiError`s with a stable code and a message in Chinese and English.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update

from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.mailer import public_base_url
from jiesu.messaging import ServiceStore, Transaction
from jiesu.web import localtime
from schemas import topics
from schemas.enums import ONLINE_CHANNELS, RETURN_REASONS, STATE_LABELS, Role, TicketState as S
from schemas.events import (
    RATED_BY_CITIZEN,
    CitizenContacted,
    ClockPaused,
    ClockResumed,
    CoHandlerNoted,
    Envelope,
    EventPayload,
    ExtensionDecided,
    ExtensionRequested,
    ReturnVisitDue,
    ReturnVisitRecorded,
    TicketAccepted,
    TicketClosed,
    TicketReopened,
    TicketReplied,
    TicketReturned,
    UnitRef,
    new_event_id,
    utcnow,
)
from services.tracker import queries, timers
from services.tracker.domain.lifecycle import (
    ACTION_LABELS,
    AWAITING_DISPATCH,
    CITIZEN,
    KEEPS_SET_ASIDE,
    Action,
    TERMINAL,
    ActionNotPermitted,
    TransitionRefused,
    decide,
    next_state,
    set_aside_from,
)
from services.tracker.domain.escalation import KEY
from services.tracker.domain.replies import reply_problem
from services.tracker.domain.sla import (
    Deadlines,
    ExtensionNotAllowed,
    Pause,
    SlaPolicy,
    compute_deadlines,
    extend,
    extension_refusal,
)
from services.tracker.handlers import Clocks, release_orders
from services.tracker.notify import notify
from services.tracker.queries import awaiting_answer, levels_awaiting_answer
from services.tracker.store import (extensions, return_visits, supervision_orders, ticket_units, tickets, timeline,
                                   unit_log, visit_links)

PRODUCER = "tracker"
VISIT_WORKING_DAYS = 3
UNREACHABLE_ATTEMPTS = 3
# Unanswered calls (未接通) at least this far apart, so that 联系不上 means the citizen was tried at different times of
# day, not three times within a minute. An answered call is never held back.
UNREACHABLE_CALL_GAP = dt.timedelta(hours=2)
LINK_DAYS = 7
OUTCOME_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意",
                  "unreachable": "联系不上"}


KEY_ORDER_DISSATISFIED = 2  # the dissatisfied visit (承办单位原因) whose 重办 also orders key supervision (重点督办)


def closes_when_unreachable(attempts_so_far: int) -> bool:
    """Whether one more 联系不上 closes the ticket as unreachable (the UNREACHABLE_ATTEMPTS-th attempt)."""
    return attempts_so_far + 1 >= UNREACHABLE_ATTEMPTS


def next_call_at(last_unanswered: dt.datetime | None) -> dt.datetime | None:
    """When another unanswered call may be recorded after the ticket's last one (`last_unanswered`), or None when
    no unanswered call of this visit was recorded yet."""
    return None if last_unanswered is None else last_unanswered + UNREACHABLE_CALL_GAP


def call_too_soon(outcome: str, last_unanswered: dt.datetime | None, now: dt.datetime) -> ApiError | None:
    """Why recording `outcome` at `now` is refused as too soon after the last unanswered call, or None. Only
    联系不上 is held back (UNREACHABLE_CALL_GAP): the citizen answering settles the visit whenever it happens."""
    allowed = next_call_at(last_unanswered)
    if outcome != "unreachable" or allowed is None or now >= allowed:
        return None
    gap = call_gap_words()
    return ApiError(
        409, "visit_call_too_soon",
        f"上次未接通在 {localtime(last_unanswered)}，两次未接通须间隔至少 {gap[0]}：请于 {localtime(allowed)} 以后再拨。"
        "本次未登记；市民接听了，可随时登记结果。",
        f"The last unanswered call was at {localtime(last_unanswered)} and unanswered calls must be at least "
        f"{gap[1]} apart: call again from {localtime(allowed)} (local time). Nothing was recorded; a call the "
        "citizen answers may be recorded at any time.")


def call_gap_words() -> tuple[str, str]:
    """UNREACHABLE_CALL_GAP in whole hours or minutes, in Chinese and English."""
    minutes = int(UNREACHABLE_CALL_GAP.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60} 小时", f"{minutes // 60} hour{'s' if minutes != 60 else ''}"
    return f"{minutes} 分钟", f"{minutes} minutes"


def callable_first(rows: list, last_unanswered: dict, now: dt.datetime) -> list[tuple]:
    """The visit queue's rows, each with when its next call may be made (None: now), those that may be called now
    first, in their order, then those not yet, the soonest first."""
    queue = [(row, next_call_at(last_unanswered.get(row.ticket_id))) for row in rows]
    waiting = sorted(((row, at) for row, at in queue if at is not None and at > now), key=lambda item: item[1])
    return [(row, None) for row, at in queue if at is None or at <= now] + waiting


async def last_unanswered_calls(session, rows) -> dict:
    """The last unanswered call (未接通) of each ticket in `rows` whose visit has one (`visit_attempts`): by ticket id.
    A 重办 starts the count again, and its unanswered calls are later than any before it."""
    ids = [row.ticket_id for row in rows if row.visit_attempts]
    if not ids:
        return {}
    v = return_visits.c
    return dict((await session.execute(select(v.ticket_id, func.max(v.at)).where(
        v.ticket_id.in_(ids), v.outcome == "unreachable").group_by(v.ticket_id))).all())


def orders_key_supervision(dissatisfied_count: int | None) -> bool:
    """Whether the 重办 after this many dissatisfied visits (the department's doing) orders key supervision."""
    return (dissatisfied_count or 0) >= KEY_ORDER_DISSATISFIED


def visit_message(row, outcome: str) -> str:
    """What a recorded return visit led to, for the queue the visitor returns to: closed, reopened, or how many
    calls are left before 联系不上 closes the ticket (record_visit decides; this only says it)."""
    head = f"工单 {row.number or row.ticket_id} 已登记：{OUTCOME_LABELS.get(outcome, outcome)}"
    if outcome == "unreachable":
        if row.state == S.CLOSED.value:
            return f"{head}（第 {row.visit_attempts} 次），已按联系不上办结，不计入满意率。"
        return (f"{head}（第 {row.visit_attempts} 次，共 {UNREACHABLE_ATTEMPTS} 次后按联系不上办结），"
                "请另选时间再拨。")
    if row.state == S.REOPENED.value:
        message = (f"{head}（承办单位原因），已退回{row.lead_name or '承办单位'}重办，"
                   f"答复期限 {localtime(row.reply_due)}。")
        if orders_key_supervision(row.dissatisfied_count) and row.supervised:
            message += f"这是第 {row.dissatisfied_count} 次不满意，已下达重点督办单。"
        return message
    if outcome == "dissatisfied":
        return f"{head}（非承办单位原因），工单已办结。"
    return f"{head}，工单已办结。"


def supervision_refused(user: User, row) -> ApiError | None:
    """Why `user` may not order supervision (督办单) of the ticket `row` now, or None when they may: the one answer
    for `Tracker.supervise` and for the ticket page that offers the form.

    An order presses a unit to answer: a finished ticket owes nothing more, and one waiting for a dispatcher has no
    unit to press (nobody would see the order, nor could escalation apply it)."""
    if not user.has(Role.SUPERVISOR):
        return ApiError(403, "forbidden", "只有督查室可以下达督办单", "Only the supervision office may do this")
    if S(row.state) in TERMINAL:
        return ApiError(409, "ticket_finished", f"工单{STATE_LABELS.get(row.state, row.state)}，无需督办",
                        "The ticket is finished: there is nothing to supervise")
    if not row.lead_code:
        return ApiError(409, "no_unit", "工单尚无承办单位（待派单），请派单后再下达督办单",
                        "The ticket has no unit yet (it waits for a dispatcher): dispatch it first")
    return None


def order_stacks(level: str, waiting: Collection[str]) -> ApiError | None:
    """Why an order at `level` would stack on the ticket's orders awaiting their answer (`waiting`: their levels),
    or None when it would not: no order waits, or 重点督办 is asked over 一般督办 ones only (the office presses
    harder). The unit owes that answer already, and escalation presses it when late (逾期升级): another order no
    weightier would only stack another date, notice and escalation on the same matter."""
    if not waiting or (level == KEY and KEY not in waiting):
        return None
    if KEY in waiting:
        return ApiError(409, "order_awaiting_answer",
                        "工单已有待回复的重点督办单，不再重复下达：请等待承办单位回复，逾期未回复的系统将升级催办",
                        "A key supervision order of this ticket still awaits the unit's response: wait for it; "
                        "one left unanswered past its date is escalated")
    return ApiError(409, "order_awaiting_answer",
                    "工单已有待回复的一般督办单，不再重复下达一般督办：请等待承办单位回复，或改为重点督办",
                    "A normal supervision order of this ticket still awaits the unit's response: wait for it, or "
                    "order key supervision (重点督办) instead")


def note_refused(user: User, row) -> ApiError | None:
    """Why `user` may not add a note (协办意见) to the ticket `row` now, or None when they may: the one answer for
    `Tracker.note` and for the ticket page that offers the form.

    A note is what a unit on the ticket (lead or co-handler) found or did, or the office's word on it. It belongs
    while a unit holds the ticket, and still after the lead replied while the return visit is pending: a co-handler
    that finishes its part late, or the lead adding what it found since, informs the visit and any 重办. A finished
    ticket (办结, merged, answered directly) takes no more, and one waiting for a dispatcher has no unit to note on
    (its former units no longer see it)."""
    if user.role != Role.DEPARTMENT and not user.has(Role.SUPERVISOR):
        return ApiError(403, "forbidden", "您的角色不能填写协办意见", "Your role may not add notes")
    if S(row.state) in TERMINAL:
        return ApiError(409, "ticket_closed", f"工单{STATE_LABELS.get(row.state, row.state)}，不能再填写意见",
                        "The ticket is finished: it takes no more notes")
    if S(row.state) in AWAITING_DISPATCH:
        return ApiError(409, "no_unit", "工单尚无承办单位（待派单），派单后承办单位可填写意见",
                        "The ticket has no unit yet (it waits for a dispatcher): notes follow its dispatch")
    return None


def rating_refused(row, link=None) -> ApiError | None:
    """Why the citizen's rating link (`link`, a tracker_visit_links row) of the ticket `row` asks for no rating now,
    in words for the citizen, or None while the ticket waits for it: the one answer for opening the link and for
    submitting it, whichever comes first.

    A link rates one reply. The return visit may settle the ticket by phone first, or send it back for 重办; either
    ends the link (`_end_links`), and a new reply brings a new one."""
    if row.state == S.CLOSED.value:
        return ApiError(410, "rating_not_needed", "该工单已在回访后办结，现在无需评价。感谢您的关注！",
                        "This ticket was closed after its return visit: no rating is needed now. Thank you.")
    if S(row.state) in TERMINAL:
        return ApiError(410, "rating_not_needed", "该工单已办结，现在无需评价。感谢您的关注！",
                        "This ticket is finished: no rating is needed now. Thank you.")
    if row.state != S.REPLIED.value:
        return ApiError(410, "rating_not_needed",
                        "该工单已转回承办单位重新办理（重办），现在无需评价。重新答复后，可在“办理进度查询”页面"
                        "凭工单编号和查询码评价；留了电子邮箱的，也会收到新的评价链接。",
                        "The ticket is being handled again: no rating is needed now. Once it is replied anew, rate it "
                        "on the progress page (办理进度查询) with the ticket number and query code; if you gave an "
                        "e-mail address, a new link will be mailed to you too.")
    if link is not None and row.replied_at is not None and link.expires_at <= row.replied_at:
        return ApiError(410, "rating_not_needed",
                        "该工单已重新办理并再次答复，此链接已不再使用。请在“办理进度查询”页面凭工单编号和查询码评价；"
                        "留了电子邮箱的，也可使用新答复邮件中的评价链接。",
                        "The ticket was handled again and replied anew: this link is no longer used. Please rate on "
                        "the progress page (办理进度查询) with the ticket number and query code, or, if you gave an "
                        "e-mail address, through the link in the mail of the new reply.")
    return None


def extension_refused(policy: SlaPolicy, row) -> ApiError | None:
    """Why the rules refuse every extension (延期) of the ticket `row`, whatever date it asks for, or None while
    one may be asked: the one answer for `Tracker.request_extension` and for the ticket page that offers the form.
    Urgent matters and 重办 take none, and a matter whose extensions are used up takes no more (domain/sla.py)."""
    refusal = extension_refusal(policy, row.kind or "complaint", row.urgency or "normal",
                                reopened=bool(row.reopened), extensions=tuple(row.extensions or ()))
    return None if refusal is None else ApiError(422, "extension_not_allowed", refusal.zh, refusal.en)


def defer_refused(row) -> ApiError | None:
    """Why the ticket `row` may not be deferred (挂账) at all, or None when it may: the one answer for `Tracker.pause`
    and for the ticket page that offers the form. 挂账 is for works and seasonal matters that take months; an urgent
    matter (紧急) must be answered within its hours, as it takes no extension either."""
    if row.urgency == "urgent":
        return ApiError(422, "defer_not_allowed", "紧急事项须按时限答复，不能挂账。",
                        "An urgent matter must be answered within its time limit: it cannot be deferred (挂账).")
    return None


def planned_date_refused(expected_until: dt.datetime | None, today: dt.date, timezone) -> ApiError | None:
    """Why 挂账's planned completion date (`expected_until`, 计划完成日期) is refused, or None: one before `today`
    plans nothing. A date given without a zone is read as the calendar's (`timezone`)."""
    return _date_before_today(expected_until, today, timezone, "计划完成日期", "planned completion date")


def supply_date_refused(expected_until: dt.datetime | None, today: dt.date, timezone) -> ApiError | None:
    """Why 待补充材料's date (`expected_until`, 预计补充日期: when the citizen is expected to send the material) is
    refused, or None: one before `today` waits for nothing. Read as `planned_date_refused` reads its date."""
    return _date_before_today(expected_until, today, timezone, "预计补充日期",
                              "date the citizen is expected to supply the material")


def _date_before_today(expected_until: dt.datetime | None, today: dt.date, timezone, zh: str,
                       en: str) -> ApiError | None:
    """A pause's `expected_until` (named `zh`, `en`) refused when its local date is before `today`, or None."""
    if expected_until is None:
        return None
    local = expected_until.replace(tzinfo=timezone) if expected_until.tzinfo is None else expected_until
    if local.astimezone(timezone).date() >= today:
        return None
    return ApiError(422, "expected_until_past", f"{zh}不能早于今天，请选择今天或以后的日期",
                    f"The {en} (expected_until) is in the past: choose today or a later date",
                    fields=[{"field": "expected_until", "zh": f"{zh}不能早于今天", "en": "must not be before today"}])


@dataclass
class Tracker:
    """What every action needs: the tracker's store, its clocks, and the key that signs visit links."""

    store: ServiceStore
    clocks: Clocks
    secret: str

    # --- department work ---------------------------------------------------------------

    async def sign_for(self, user: User, ref: str) -> dict:
        async with self._act(user, ref, Action.SIGN_FOR) as (tx, row, state):
            now = utcnow()
            row = await self._save(tx, row, state=state, signed_for_at=now)
            await self._emit(tx, row, TicketAccepted(unit=_unit(row), by=user.username), user, "签收")
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def contact(self, user: User, ref: str, note: str) -> dict:
        """联系市民, also while an extension request waits for its decision (KEEPS_SET_ASIDE): the request stands, and
        the decision takes the ticket back to 已联系 instead of where it was asked from. The note says what was said
        and agreed: an empty one records nothing, and would stop an urgent matter's contact clock all the same."""
        if not note.strip():
            raise ApiError(422, "note_required", "请填写沟通情况：与市民说了什么、约定了什么",
                           "Write what was said to the citizen and what was agreed",
                           fields=[{"field": "note", "zh": "请填写沟通情况", "en": "required"}])
        async with self._act(user, ref, Action.CONTACT) as (tx, row, state):
            values = {"state": state, "contacted_at": row.contacted_at or utcnow()}
            if (S(row.state), Action.CONTACT) in KEEPS_SET_ASIDE:
                values["resume_to"] = next_state(_resume_to(row), Action.CONTACT).value
            row = await self._save(tx, row, **values)
            await self._emit(tx, row, CitizenContacted(unit=_unit(row), note=note, by=user.username), user,
                             f"联系市民：{note}")
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def pause(self, user: User, ref: str, reason: str, note: str,
                    expected_until: dt.datetime | None = None) -> dict:
        """待补充材料 (waiting on the citizen) or 挂账 (deferred): the reply clock stops. 挂账 is refused for urgent
        matters (`defer_refused`); either is refused with its date (`expected_until`) before today
        (`planned_date_refused`, `supply_date_refused`), and nothing changes."""
        action = Action.WAIT_CITIZEN if reason == "waiting_citizen" else Action.DEFER
        if not note.strip():
            raise ApiError(422, "note_required", "请说明原因", "Say why")
        async with self._act(user, ref, action) as (tx, row, state):
            timezone = self.clocks.calendar.timezone
            today = utcnow().astimezone(timezone).date()
            if action == Action.DEFER:  # the matter first: no date can help
                refusal = defer_refused(row) or planned_date_refused(expected_until, today, timezone)
            else:
                refusal = supply_date_refused(expected_until, today, timezone)
            if refusal:
                raise refusal
            row = await self._save(tx, row, state=state, paused_at=utcnow(), resume_to=row.state)
            label = "待市民补充材料，计时暂停" if action == Action.WAIT_CITIZEN else "挂账，计时暂停"
            await self._emit(tx, row, ClockPaused(reason=reason, note=note, expected_until=expected_until,
                                                  by=user.username), user, f"{label}：{note}")
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def resume(self, user: User, ref: str) -> dict:
        async with self._act(user, ref, Action.RESUME) as (tx, row, state):
            now = utcnow()
            pauses = _closed_pauses(row, now)
            deadlines = self._deadlines(row, pauses=pauses)
            row = await self._save(tx, row, state=state, paused_at=None, pauses=_dump_pauses(pauses), resume_to=None,
                                   **_deadline_values(deadlines))
            await self._emit(tx, row, ClockResumed(reply_due=deadlines.reply_due, by=user.username), user,
                             f"恢复办理，计时继续；答复期限顺延至 {_local(deadlines.reply_due, self.clocks)}")
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def request_extension(self, user: User, ref: str, reason: str, new_due: dt.date) -> dict:
        if not reason.strip():
            raise ApiError(422, "reason_required", "请填写延期理由", "Give the reason for the extension")
        async with self._act(user, ref, Action.REQUEST_EXTENSION) as (tx, row, state):
            if refusal := extension_refused(self.clocks.policy, row):  # before the date, which cannot help
                raise refusal
            calendar = self.clocks.calendar
            if row.reply_due and row.reply_due < utcnow():
                raise ApiError(409, "already_overdue", "已超过答复期限，不能再申请延期，请尽快答复",
                               "The reply deadline has passed; an extension can no longer be requested")
            requested_due = calendar.end_of_working_day(new_due)
            days = calendar.working_days_between(row.reply_due, requested_due)
            if days < 1 or not calendar.is_working_day(new_due):
                raise ApiError(422, "extension_date", "新的答复期限须是现期限之后的某个工作日",
                               "The new reply date must be a working day after the current deadline")
            try:
                extend(self.clocks.policy, calendar, self._deadlines(row), days)
            except ExtensionNotAllowed as exc:
                raise ApiError(422, "extension_not_allowed", exc.zh, exc.en) from None
            pending = await tx.session.scalar(select(extensions.c.id).where(
                extensions.c.ticket_id == row.ticket_id, extensions.c.approved.is_(None)))
            if pending:
                raise ApiError(409, "extension_pending", "已有待审批的延期申请", "An extension request is pending")
            now = utcnow()
            await tx.session.execute(extensions.insert().values(
                ticket_id=row.ticket_id, unit_code=row.lead_code, reason=reason, working_days=days,
                requested_due=requested_due, requested_by=user.username, requested_at=now))
            row = await self._save(tx, row, state=state, resume_to=row.state)
            await self._emit(tx, row, ExtensionRequested(unit=_unit(row), reason=reason, requested_due=requested_due,
                                                         by=user.username), user,
                             f"申请延期 {days} 个工作日至 {new_due.isoformat()}：{reason}")
            return row

    async def decide_extension(self, user: User, ref: str, approved: bool, note: str = "") -> dict:
        async with self._act(user, ref, Action.DECIDE_EXTENSION) as (tx, row, state):
            request = (await tx.session.execute(select(extensions).where(
                extensions.c.ticket_id == row.ticket_id, extensions.c.approved.is_(None)))).first()
            if request is None:
                raise ApiError(409, "no_extension_pending", "没有待审批的延期申请", "No extension request is pending")
            now = utcnow()
            values: dict = {"state": state, "resume_to": None}
            new_due = None
            if approved:
                granted = [*(row.extensions or []), request.working_days]
                deadlines = self._deadlines(row, extensions_=granted)
                values.update(extensions=granted, **_deadline_values(deadlines))
                new_due = deadlines.reply_due
            await tx.session.execute(update(extensions).where(extensions.c.id == request.id).values(
                approved=approved, decided_by=user.username, decided_at=now, note=note))
            row = await self._save(tx, row, **values)
            verdict = f"同意延期，答复期限延至 {_local(new_due, self.clocks)}" if approved else "不同意延期"
            await self._emit(tx, row, ExtensionDecided(approved=approved, new_due=new_due, note=note, by=user.username),
                             user, verdict + (f"：{note}" if note else ""))
            await notify(tx, self.clocks.settings, row, row.lead_code, "extension", f"工单 {row.number}：{verdict}。")
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def return_ticket(self, user: User, ref: str, reason_code: str, reason: str) -> dict:
        """退单: back to the router, which re-routes it without this unit."""
        if reason_code not in RETURN_REASONS:
            raise ApiError(422, "reason_code", "请选择退单原因", "Choose a reason for the return",
                           fields=[{"field": "reason_code", "zh": "不是允许的选项", "en": "unknown reason code"}])
        if len(reason.strip()) < 5:
            raise ApiError(422, "reason_required", "请写明退单理由及依据（至少 5 个字）",
                           "Explain the return and its basis (at least 5 characters)")
        async with self._act(user, ref, Action.RETURN) as (tx, row, state):
            # With the clocks it held the ticket under, which the ticket drops below: lateness stays the unit's.
            await tx.session.execute(unit_log.insert().values(
                ticket_id=row.ticket_id, unit_code=row.lead_code, kind="returned", at=utcnow(),
                assigned_at=row.assigned_at, sign_for_due=row.sign_for_due, signed_for_at=row.signed_for_at,
                reply_due=row.reply_due))
            unit = _unit(row)
            # Handed back: no unit handles it, nor sees it, and no clock runs until it is dispatched again (the
            # next assignment sets the units and the deadlines afresh); the timeline and the unit log keep who had it.
            await tx.session.execute(delete(ticket_units).where(ticket_units.c.ticket_id == row.ticket_id))
            if row.supervised:  # its orders waiting for an answer no longer bind the unit until it has the ticket again
                await release_orders(tx, row.ticket_id)
            row = await self._save(tx, row, state=state, returns_count=(row.returns_count or 0) + 1, paused_at=None,
                                   lead_code=None, lead_name=None, co_handlers=[], sign_for_due=None,
                                   contact_due=None, reply_due=None, warn_at=None)
            payload = TicketReturned(number=row.number, unit=unit, reason_code=reason_code, reason=reason,
                                     by=user.username, returns_so_far=row.returns_count, subject=row.subject or "",
                                     description=row.description or "")
            # The reason in the line's data too, for the unit's 已退单 tab to read (queries.returned_by_unit).
            await self._emit(tx, row, payload, user, f"退单（{RETURN_REASONS[reason_code]}）：{reason}",
                             topic=topics.RETURNED, data={"reason_code": reason_code, "reason": reason})
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def reply(self, user: User, ref: str, text: str) -> dict:
        problem = reply_problem(text)
        if problem:
            raise ApiError(422, "reply_too_thin", *problem)
        async with self._act(user, ref, Action.REPLY) as (tx, row, state):
            now = utcnow()
            visit_due = self.clocks.calendar.add_working_days(now, VISIT_WORKING_DAYS)
            method = "link" if row.channel in ONLINE_CHANNELS else "phone"
            pauses = _closed_pauses(row, now)
            row = await self._save(tx, row, state=state, reply=text.strip(), replied_at=now, replied_by=user.username,
                                   visit_due=visit_due, visit_method=method, paused_at=None, resume_to=None,
                                   pauses=_dump_pauses(pauses))
            await self._emit(tx, row, TicketReplied(unit=_unit(row), reply=text.strip(), by=user.username), user,
                             f"答复：{text.strip()}")
            link, expires = await self._visit_link(tx, row) if method == "link" else (None, None)
            await self._emit(tx, row, ReturnVisitDue(due_at=visit_due, method=method, link=link,
                                                     link_expires_at=expires), None,
                             "待回访（" + ("已生成市民评价链接" if link else "电话回访") + f"），回访期限 "
                             f"{_local(visit_due, self.clocks)}")
            await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
            return row

    async def note(self, user: User, ref: str, text: str) -> dict:
        """协办意见: any unit on the ticket (lead or co-handler) adds what it found or did."""
        if not text.strip():
            raise ApiError(422, "note_required", "请填写意见内容", "Write the note")
        async with self.store.transaction() as tx:
            row = await self._load(tx, user, ref)
            if refusal := note_refused(user, row):
                raise refusal
            name = next((c.get("name") for c in row.co_handlers or [] if c.get("code") == user.department),
                        row.lead_name if user.department == row.lead_code else user.department or "督查室")
            unit = UnitRef(code=user.department or "SUPERVISION", name=name or "督查室")
            await self._emit(tx, row, CoHandlerNoted(unit=unit, note=text.strip(), by=user.username), user,
                             f"{unit.name} 意见：{text.strip()}")
            if user.department and user.department != row.lead_code:
                await notify(tx, self.clocks.settings, row, row.lead_code, "reminder",
                             f"工单 {row.number}：协办单位 {unit.name} 提交了意见。")
            return row

    async def supervise(self, user: User, ref: str, level: str, reason: str) -> dict:
        if level not in ("normal", "key") or not reason.strip():
            raise ApiError(422, "invalid_input", "请选择督办级别并写明原因", "Choose a level and give a reason")
        async with self.store.transaction() as tx:
            row = await self._load(tx, user, ref, for_update=True)  # as returns, closes and moves lock it
            if refusal := supervision_refused(user, row):
                raise refusal
            waiting = await levels_awaiting_answer(tx.session, [row.ticket_id])
            if refusal := order_stacks(level, waiting.get(row.ticket_id, set())):
                raise refusal
            await timers.order_supervision(tx, self.clocks, row, level=level, by=user.username, reason=reason)
            return await self._save(tx, row)

    # --- return visits (回访) ----------------------------------------------------------

    async def record_visit(self, user: User | None, ref: str, outcome: str, *, department_caused: bool | None = None,
                           comment: str = "", via_link: bool = False) -> dict:
        """A return-visit result, by a visitor on the phone or by the citizen through the link."""
        if outcome not in OUTCOME_LABELS:
            raise ApiError(422, "invalid_outcome", "请选择回访结果", "Choose an outcome")
        if outcome == "dissatisfied" and not via_link and department_caused is None:
            raise ApiError(422, "cause_required", "不满意时请选择是否为承办单位原因",
                           "For a dissatisfied outcome say whether the department caused it")
        if outcome != "dissatisfied" and department_caused is not None:  # stored, it would skew the rates
            raise ApiError(422, "cause_not_dissatisfied", "只有不满意时才选择是否为承办单位原因",
                           "Only a dissatisfied outcome says whether the department caused it: leave it out")
        if via_link and outcome == "unreachable":
            raise ApiError(422, "invalid_outcome", "请选择评价", "Choose a rating")
        role = CITIZEN if via_link else user.role.value
        by = RATED_BY_CITIZEN if via_link else user.username
        async with self.store.transaction() as tx:
            # Locked, as a second visit (the citizen's link, another visitor) waits for this one and sees its end.
            row = await (self._load_by_id(tx, ref, for_update=True) if via_link
                         else self._load(tx, user, ref, for_update=True))
            if via_link and (refusal := rating_refused(row)):  # settled meanwhile: say so, not the state machine
                raise refusal
            self._decide(row, Action.VISIT_CLOSE, role)  # still waiting for its visit, and this role may record it
            now = utcnow()
            if outcome == "unreachable":
                last = (await last_unanswered_calls(tx.session, [row])).get(row.ticket_id)
                if refusal := call_too_soon(outcome, last, now):
                    raise refusal
            await tx.session.execute(return_visits.insert().values(
                ticket_id=row.ticket_id, outcome=outcome, department_caused=department_caused, unit_code=row.lead_code,
                comment=comment, by=by, at=now))
            summary = f"回访：{OUTCOME_LABELS[outcome]}" + (
                "（承办单位原因）" if department_caused else "（非承办单位原因）" if department_caused is False else "")
            if via_link:
                summary = f"市民在线评价：{OUTCOME_LABELS[outcome]}"
            await self._emit(tx, row, ReturnVisitRecorded(outcome=outcome, department_caused=department_caused,
                                                          comment=comment, by=by), user,
                             summary + (f"。{comment}" if comment else ""), actor=by)
            if outcome in ("satisfied", "basically_satisfied"):
                row = await self._close(tx, row, outcome, by)
            elif outcome == "unreachable":
                closing = closes_when_unreachable(row.visit_attempts or 0)
                row = await self._save(tx, row, visit_attempts=(row.visit_attempts or 0) + 1)
                if closing:
                    row = await self._close(tx, row, "unreachable", by)
            elif via_link:  # a visitor calls back and judges the cause before anything is reopened
                row = await self._save(tx, row, citizen_rating=outcome)
            elif department_caused:
                row = await self._reopen(tx, user, row, comment or "回访不满意")
            else:
                row = await self._close(tx, row, "dissatisfied", by)
            return row

    async def _close(self, tx: Transaction, row, outcome: str, by: str):
        row = await self._save(tx, row, state=S.CLOSED.value, outcome=outcome, closed_at=utcnow())
        await _end_links(tx, row)
        if row.supervised:  # finished: its orders no longer bind their unit
            await release_orders(tx, row.ticket_id)
        await self._emit(tx, row, TicketClosed(outcome=outcome), None, f"办结（{OUTCOME_LABELS.get(outcome, outcome)}）",
                         actor=by)
        await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
        return row

    async def _reopen(self, tx: Transaction, user: User, row, reason: str):
        """重办: back to the same department with 3 working days; from the KEY_ORDER_DISSATISFIED-th time, a key
        supervision order as well, unless one awaits its answer already (`_order_key_supervision`)."""
        state = self._decide(row, Action.REOPEN, user.role.value)
        now = utcnow()
        deadlines = compute_deadlines(self.clocks.policy, self.clocks.calendar, now, row.kind, row.urgency,
                                      reopened=True)
        count = (row.dissatisfied_count or 0) + 1
        # The visit of the last reply is over: its date, method (a link sent, or a call) and attempts go with it,
        # and its link ends; the next reply owes a visit of its own.
        row = await self._save(tx, row, state=state, clock_started_at=now, reopened=True, extensions=[], pauses=[],
                               paused_at=None, reopen_count=(row.reopen_count or 0) + 1, dissatisfied_count=count,
                               visit_due=None, visit_method=None, visit_attempts=0, citizen_rating=None,
                               **_deadline_values(deadlines))
        await _end_links(tx, row)
        await self._emit(tx, row, TicketReopened(unit=_unit(row), reason=reason, reply_due=deadlines.reply_due), user,
                         f"重办：{reason}；答复期限 {_local(deadlines.reply_due, self.clocks)}")
        await notify(tx, self.clocks.settings, row, row.lead_code, "reopened",
                     f"重办：工单 {row.number} 回访不满意，请在 3 个工作日内重新办理并答复。")
        await timers.schedule(tx, row.ticket_id, row.state, row, self.clocks.calendar)
        if orders_key_supervision(count):
            row = await self._order_key_supervision(tx, user, row, f"第 {count} 次回访不满意")
        return row

    async def _order_key_supervision(self, tx: Transaction, user: User, row, reason: str):
        """The key order (重点督办) of a 重办, unless it would stack (`order_stacks`): over 一般督办 orders awaiting their
        answer it goes out, as the office's would; over a 重点督办 one it does not, and the timeline says why. That
        order keeps binding the unit with its own date, which the 重办 leaves as it was (escalation presses it when
        late)."""
        waiting = (await levels_awaiting_answer(tx.session, [row.ticket_id])).get(row.ticket_id, set())
        if order_stacks(KEY, waiting) is None:
            await timers.order_supervision(tx, self.clocks, row, level=KEY, by=user.username, reason=reason)
            return await self._save(tx, row)
        o = supervision_orders.c
        numbers = (await tx.session.execute(select(o.order_no).where(
            o.ticket_id == row.ticket_id, o.level == KEY, *awaiting_answer()).order_by(o.created_at))).scalars().all()
        await tx.session.execute(timeline.insert().values(
            ticket_id=row.ticket_id, event_id=new_event_id(), event_type="SupervisionNotOrdered", at=utcnow(),
            actor="system", summary=f"{reason}：已有重点督办单 {'、'.join(numbers)} 待回复，不再另发",
            data={"by": "system", "state": row.state, "waiting": list(numbers)}))
        return row

    # --- one-time links for online channels ---------------------------------------------

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt="jiesu-visit-link")

    async def _visit_link(self, tx: Transaction, row) -> tuple[str, dt.datetime]:
        """A new one-time rating link for the ticket `row`, and when it expires."""
        nonce = secrets.token_urlsafe(18)
        expires = utcnow() + dt.timedelta(days=LINK_DAYS)
        await tx.session.execute(visit_links.insert().values(nonce=_hash(nonce), ticket_id=row.ticket_id,
                                                             expires_at=expires))
        token = self._serializer().dumps({"t": str(row.ticket_id), "n": nonce})
        settings = self.clocks.settings
        return f"{public_base_url(settings) if settings else ''}/tracker/rate/{token}", expires

    async def open_link(self, token: str) -> tuple[dict, str]:
        """The ticket a one-time link rates, and its nonce; refuses expired, forged or used links, and links whose
        ticket asks for no rating now (`rating_refused`)."""
        try:
            data = self._serializer().loads(token, max_age=LINK_DAYS * 86400)
        except SignatureExpired:
            raise ApiError(410, "link_expired", "评价链接已过期", "This rating link has expired") from None
        except BadSignature:
            raise ApiError(404, "link_invalid", "评价链接无效", "This rating link is not valid") from None
        async with self.store.db.session() as s:
            link = (await s.execute(select(visit_links).where(visit_links.c.nonce == _hash(data["n"])))).first()
            if link is None or str(link.ticket_id) != data["t"]:
                raise ApiError(404, "link_invalid", "评价链接无效", "This rating link is not valid")
            if link.used_at is not None:
                raise ApiError(410, "link_used", "您已评价过，感谢您的反馈", "This link has already been used")
            row = (await s.execute(select(tickets).where(tickets.c.ticket_id == link.ticket_id))).first()
        if refusal := rating_refused(row, link):
            raise refusal
        if link.expires_at <= utcnow():
            raise ApiError(410, "link_expired", "评价链接已过期", "This rating link has expired")
        return row, data["n"]

    async def rate_by_link(self, token: str, outcome: str, comment: str) -> dict:
        row, nonce = await self.open_link(token)
        async with self.store.transaction() as tx:
            used = await tx.session.execute(update(visit_links).where(
                visit_links.c.nonce == _hash(nonce), visit_links.c.used_at.is_(None)).values(used_at=utcnow()))
            if used.rowcount != 1:
                raise ApiError(410, "link_used", "您已评价过，感谢您的反馈", "This link has already been used")
        try:
            return await self.record_visit(None, str(row.ticket_id), outcome, comment=comment, via_link=True)
        except ApiError:
            async with self.store.transaction() as tx:  # nothing was recorded: the link stays usable
                await tx.session.execute(update(visit_links).where(visit_links.c.nonce == _hash(nonce))
                                         .values(used_at=None))
            raise

    # --- the machinery shared by every action -------------------------------------------

    @asynccontextmanager
    async def _act(self, user: User, ref: str, action: Action):
        """One action's transaction: the ticket (locked on PostgreSQL), checked, and its next state."""
        async with self.store.transaction() as tx:
            row = await self._load(tx, user, ref, for_update=True)
            if user.role == Role.DEPARTMENT and row.lead_code != user.department:
                raise ApiError(403, "lead_only", f"只有主办单位可以{ACTION_LABELS[action]}",
                               f"Only the lead unit may take the action '{action.value}'")
            state = self._decide(row, action, user.role.value)
            yield tx, row, state.value

    @staticmethod
    def _decide(row, action: Action, role: str) -> S:
        try:
            return decide(S(row.state), action, role, resume_to=_resume_to(row))
        except TransitionRefused as exc:
            raise ApiError(409, "transition_refused", exc.zh, exc.en) from None
        except ActionNotPermitted as exc:
            raise ApiError(403, "action_not_permitted", exc.zh, exc.en) from None

    async def _load(self, tx: Transaction, user: User, ref: str, *, for_update: bool = False):
        stmt = queries.scoped(queries.find_stmt(ref), user)
        if for_update and tx.session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=tickets)
        row = (await tx.session.execute(stmt)).first()
        if row is None:
            raise ApiError(404, "ticket_not_found", f"未找到工单 {ref}", f"No ticket {ref} that you may see")
        return row

    async def _load_by_id(self, tx: Transaction, ticket_id: str, *, for_update: bool = False):
        stmt = select(tickets).where(tickets.c.ticket_id == uuid.UUID(ticket_id))
        if for_update and tx.session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=tickets)
        row = (await tx.session.execute(stmt)).first()
        if row is None:
            raise ApiError(404, "ticket_not_found", "未找到工单", "No such ticket")
        return row

    async def _save(self, tx: Transaction, row, **values):
        await tx.session.execute(update(tickets).where(tickets.c.ticket_id == row.ticket_id)
                                 .values(updated_at=utcnow(), **values))
        return (await tx.session.execute(select(tickets).where(tickets.c.ticket_id == row.ticket_id))).first()

    async def _emit(self, tx: Transaction, row, payload: EventPayload, user: User | None, summary: str, *,
                    topic: str = topics.LIFECYCLE, actor: str | None = None, data: dict | None = None) -> Envelope:
        """Emit `payload` through the outbox and write its timeline line: `summary`, and in its data who and the
        state, with `data` besides."""
        envelope = Envelope.wrap(payload, ticket_id=row.ticket_id, producer=PRODUCER)
        await tx.emit(topic, envelope)
        who = actor or (f"{user.display_name or user.username}（{user.department}）" if user and user.department
                        else (user.display_name or user.username) if user else "system")
        await tx.session.execute(timeline.insert().values(
            ticket_id=row.ticket_id, event_id=envelope.event_id, event_type=envelope.event_type,
            at=envelope.occurred_at, actor=who[:64], summary=summary,
            data={"by": getattr(user, "username", actor or "system"), "state": row.state, **(data or {})}))
        return envelope

    def _deadlines(self, row, *, pauses: list[Pause] | None = None, extensions_: list[int] | None = None) -> Deadlines:
        start = row.clock_started_at or row.assigned_at
        return compute_deadlines(
            self.clocks.policy, self.clocks.calendar, start, row.kind or "complaint", row.urgency or "normal",
            extensions=tuple(row.extensions or ()) if extensions_ is None else tuple(extensions_),
            pauses=tuple(_load_pauses(row)) if pauses is None else tuple(pauses), reopened=bool(row.reopened))


def _unit(row) -> UnitRef:
    return UnitRef(code=row.lead_code or "?", name=row.lead_name or row.lead_code or "?")


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


async def _end_links(tx: Transaction, row) -> None:
    """The ticket's rating links not yet used end now (`expires_at`): its visit was settled (办结) or sent it back
    for 重办, so they rate nothing; a link opened later says why (`rating_refused`)."""
    now = utcnow()
    await tx.session.execute(update(visit_links).where(
        visit_links.c.ticket_id == row.ticket_id, visit_links.c.used_at.is_(None), visit_links.c.expires_at > now)
        .values(expires_at=now))


def _resume_to(row) -> S:
    """The working state the ticket `row`, set aside, goes back to (lifecycle.set_aside_from)."""
    return set_aside_from(row.resume_to, row.contacted_at is not None)


def _load_pauses(row) -> list[Pause]:
    return [Pause(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) for a, b in row.pauses or []]


def _closed_pauses(row, now: dt.datetime) -> list[Pause]:
    pauses = _load_pauses(row)
    if row.paused_at is not None and now > row.paused_at:
        pauses.append(Pause(row.paused_at, now))
    return pauses


def _dump_pauses(pauses: list[Pause]) -> list[list[str]]:
    return [[p.start.isoformat(), p.end.isoformat()] for p in pauses]


def _deadline_values(d: Deadlines) -> dict:
    return dict(sign_for_due=d.sign_for_due, contact_due=d.contact_due, reply_due=d.reply_due, warn_at=d.warn_at,
                calendar_unconfirmed=d.calendar_unconfirmed)


def _local(value: dt.datetime | None, clocks: Clocks) -> str:
    return value.astimezone(clocks.calendar.timezone).strftime("%Y-%m-%d %H:%M") if value else "—"

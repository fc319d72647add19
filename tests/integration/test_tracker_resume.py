"""A ticket set aside goes back to the working state it left, through the tracker's own actions, on SQLite and
PostgreSQL.

Waiting on the citizen (待补充材料), 挂账 and an extension request (延期申请) set the work aside; resuming, or the
office deciding the extension, takes it up where it stood: signed for (签收) and still owing an urgent call to the
citizen, contacted (已联系), or 重办. Before, every one of them landed in 已联系: an urgent ticket never contacted
lost its contact reminder and its page said 已联系 and 尚未联系市民 at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from jiesu.errors import ApiError
from jiesu.identity import User
from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, UnitRef
from services.tracker import handlers
from services.tracker.store import tickets, timeline, timers
from tests.integration.test_tracker_escalation import UNIT, _dispose, _migrated_runtime
from tests.integration.test_tracker_workflow import REPLY

STAFF = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=UNIT)
OFFICE = User(id=2, username="sup", display_name="督查室", role=Role.SUPERVISOR)
VISITOR = User(id=3, username="hf", display_name="回访员", role=Role.VISITOR)
CGW = UnitRef(code=UNIT, name="市城市管理委员会")


async def _assigned(rt, i: int, *, urgency: str = "normal") -> str:
    """A complaint dispatched to UNIT now, as the tracker consumes the router's TicketAssigned: its number."""
    number = f"12345-20261124-{i:06d}"
    p = TicketAssigned(number=number, kind="complaint", urgency=urgency, lead=CGW,
                       reason=RoutingReason(method="rule", rule_id="R-noise"))
    async with rt.store("tracker").transaction() as tx:
        await handlers.assigned_many(tx, [(Envelope.wrap(p, ticket_id=_id(number), producer="router"), p)],
                                     rt.state["tracker.clocks"])
    return number


def _id(number: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, number)


async def _row(rt, number: str):
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(tickets).where(tickets.c.number == number))).one()


async def _pending(rt, number: str) -> dict[str, dt.datetime]:
    async with rt.store("tracker").db.session() as s:
        return dict((await s.execute(select(timers.c.kind, timers.c.due_at).where(
            timers.c.ticket_id == _id(number), timers.c.fired_at.is_(None)))).all())


async def _last_entry(rt, number: str):
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(timeline).where(timeline.c.ticket_id == _id(number))
                                .order_by(timeline.c.id.desc()).limit(1))).one()


def _later_working_day(rt, due: dt.datetime, days: int = 3) -> dt.date:
    calendar = rt.state["tracker.clocks"].calendar
    return calendar.add_working_days(due, days).astimezone(calendar.timezone).date()


async def test_an_urgent_ticket_signed_for_waits_on_the_citizen_and_resumes_signed_for_still_owing_its_call(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 1, urgency="urgent")
        await tracker.sign_for(STAFF, number)
        contact_due = (await _row(rt, number)).contact_due
        assert contact_due is not None and (await _pending(rt, number))["contact_due"] == contact_due

        paused = await tracker.pause(STAFF, number, "waiting_citizen", "请市民补充漏水位置照片")
        assert (paused.state, paused.resume_to) == ("waiting_citizen", "signed_for")
        assert await _pending(rt, number) == {}  # the clock stands still

        resumed = await tracker.resume(STAFF, number)
        assert (resumed.state, resumed.contacted_at, resumed.resume_to) == ("signed_for", None, None)
        pending = await _pending(rt, number)
        assert pending["contact_due"] == resumed.contact_due == contact_due  # the contact reminder is owed again
        assert pending["reply_due"] == resumed.reply_due
        entry = await _last_entry(rt, number)
        assert entry.event_type == "ClockResumed" and entry.data["state"] == "signed_for"
    finally:
        await _dispose(rt)


async def test_a_contacted_ticket_deferred_and_lifted_by_the_office_is_contacted_again(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 2)
        await tracker.sign_for(STAFF, number)
        contacted = await tracker.contact(STAFF, number, "已电话联系，约定周四上门")
        deferred = await tracker.pause(STAFF, number, "deferred", "需待明年道路改造统一解决")
        assert (deferred.state, deferred.resume_to) == ("deferred", "contacted")

        resumed = await tracker.resume(OFFICE, number)  # the supervision office lifts the deferral (挂账)
        assert (resumed.state, resumed.contacted_at, resumed.resume_to) == (
            "contacted", contacted.contacted_at, None)
        assert "contact_due" not in await _pending(rt, number)
    finally:
        await _dispose(rt)


async def test_a_reopened_ticket_paused_and_resumed_is_still_reopened(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 3)
        await tracker.sign_for(STAFF, number)
        await tracker.contact(STAFF, number, "已联系")
        await tracker.reply(STAFF, number, REPLY)
        reopened = await tracker.record_visit(VISITOR, number, "dissatisfied", department_caused=True,
                                              comment="噪音仍在")
        assert reopened.state == "reopened"

        paused = await tracker.pause(STAFF, number, "waiting_citizen", "请市民提供夜间录音")
        assert paused.resume_to == "reopened"
        resumed = await tracker.resume(STAFF, number)
        assert (resumed.state, resumed.resume_to) == ("reopened", None)
        assert {"reply_due", "overdue_supervision"} <= set(await _pending(rt, number))
    finally:
        await _dispose(rt)


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "refused"])
async def test_an_extension_decided_either_way_takes_the_ticket_back_to_where_it_asked_from(any_settings, approved):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        signed, contacted = await _assigned(rt, 4), await _assigned(rt, 5)
        for number in (signed, contacted):
            await tracker.sign_for(STAFF, number)
        await tracker.contact(STAFF, contacted, "已联系")
        for number, was in ((signed, "signed_for"), (contacted, "contacted")):
            due = (await _row(rt, number)).reply_due
            asked = await tracker.request_extension(STAFF, number, "需协调住建部门联合执法",
                                                    _later_working_day(rt, due))
            assert (asked.state, asked.resume_to) == ("extension_requested", was)
            decided = await tracker.decide_extension(OFFICE, number, approved, "同意" if approved else "请按期办结")
            assert (decided.state, decided.resume_to, decided.extensions or []) == (
                was, None, [3] if approved else [])
            assert (await _pending(rt, number))["reply_due"] == decided.reply_due
        assert (await _row(rt, signed)).contacted_at is None
    finally:
        await _dispose(rt)


@pytest.mark.parametrize(("contacted", "back_to"), [(True, "contacted"), (False, "signed_for")])
async def test_a_ticket_paused_before_the_tracker_kept_its_working_state_resumes_by_whether_it_was_contacted(
        any_settings, contacted, back_to):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 6)
        await tracker.sign_for(STAFF, number)
        if contacted:
            await tracker.contact(STAFF, number, "已联系")
        await tracker.pause(STAFF, number, "waiting_citizen", "请补充材料")
        async with rt.store("tracker").db.session() as s:  # as tracker_0015 found it: nothing kept
            await s.execute(update(tickets).where(tickets.c.number == number).values(resume_to=None))
        assert (await tracker.resume(STAFF, number)).state == back_to
    finally:
        await _dispose(rt)


async def test_an_extension_the_rules_forbid_is_refused_with_the_chinese_and_the_english_each_said_once(
        any_settings):
    """Urgent matters take no extension: the refusal's zh is Chinese only and its en English only."""
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 7, urgency="urgent")
        await tracker.sign_for(STAFF, number)
        due = (await _row(rt, number)).reply_due
        with pytest.raises(ApiError) as refused:
            await tracker.request_extension(STAFF, number, "需协调", _later_working_day(rt, due))
        assert refused.value.body() == {"error": {
            "code": "extension_not_allowed", "zh": "该事项不能延期。", "en": "This matter cannot be extended.",
            "message": "该事项不能延期。 / This matter cannot be extended."}}
        assert (await _row(rt, number)).state == "signed_for"  # nothing changed
    finally:
        await _dispose(rt)

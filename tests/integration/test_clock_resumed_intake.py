"""A citizen's progress look-up follows the reply clock through a pause: while the department waits on the citizen
(待补充材料) or has deferred the ticket (挂账) it says so, and once the clock resumes it shows the reply date the
pause moved. Over the real broker with the tracker's own actions, and through intake's consumer on SQLite and
PostgreSQL for redelivered and late events.

Intake did not subscribe to ClockPaused or ClockResumed, so the page kept the reply date from before the pause."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from bench.records import records_of
from jiesu.consumer import EventConsumer
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from jiesu.web import localtime
from schemas import topics
from schemas.enums import Channel, Role, TicketState
from schemas.events import ClockPaused, ClockResumed, Envelope, TicketReopened, TicketTracked, UnitRef, utcnow
from services.intake import service
from services.intake.domain.submission import TicketSubmission
from services.intake.store import tickets as intake_tickets
from services.tracker.domain.sla import compute_deadlines
from services.tracker.store import tickets as tracker_tickets
from tests.integration.test_tracker_workflow import Desk

PAUSE_NOTE = "计时暂停中，恢复办理后期限顺延"
UNIT = UnitRef(code="S-01-03", name="解放路街道")


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


async def shown_by_intake(live, number: str, state: str, reply_due: dt.datetime | None = None, timeout=15.0):
    """Intake's row for the ticket once it shows `state` (and `reply_due`, if given)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with live.runtime.store("intake").db.session() as s:
            row = (await s.execute(select(intake_tickets).where(intake_tickets.c.number == number))).one()
        if row.state == state and (reply_due is None or row.reply_due == reply_due):
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"intake shows {row.state} due {row.reply_due}, not {state} due {reply_due}")
        await asyncio.sleep(0.05)


async def test_the_progress_page_shows_the_pause_and_then_the_reply_date_the_pause_moved(desk, live):
    t = await desk.post_ticket()  # phone 13800138000
    number = t["number"]
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.act("dept", number, "sign-for")
    before = await shown_by_intake(live, number, "signed_for")

    await desk.act("dept", number, "wait-citizen", {"note": "请市民补充施工地点照片"})
    await shown_by_intake(live, number, "waiting_citizen")
    page = await desk.client.post("/intake/progress", data={"number": number, "proof": "8000"})
    assert "待补充材料" in page.text and PAUSE_NOTE in page.text

    # As in test_tracker_workflow: the clock and the pause started in the past, on working time, so that the
    # pause certainly swallowed working time and moves the deadline, whatever hour the test runs.
    clocks = live.runtime.state["tracker.clocks"]
    start = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
    planned = compute_deadlines(clocks.policy, clocks.calendar, start, "complaint", "normal")
    async with live.runtime.store("tracker").db.session() as s:
        await s.execute(update(tracker_tickets).where(tracker_tickets.c.number == number).values(
            clock_started_at=start, paused_at=dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.UTC),
            reply_due=planned.reply_due, warn_at=planned.warn_at))
    resumed = await desk.act("dept", number, "resume")
    moved = dt.datetime.fromisoformat(resumed["reply_due"])
    assert resumed["state"] == "signed_for" and moved != before.reply_due

    await shown_by_intake(live, number, "signed_for", moved)
    view = (await desk.client.post("/api/v1/intake/progress", json={"number": number, "phone_last4": "8000"})).json()
    assert (view["state"], view["state_label"]) == ("signed_for", "已签收")
    assert dt.datetime.fromisoformat(view["reply_due"]) == moved
    page = await desk.client.post("/intake/progress", data={"number": number, "proof": "8000"})
    assert localtime(moved) in page.text and PAUSE_NOTE not in page.text


@pytest.fixture
async def intake(any_settings):
    """Intake's store and its consumer with the handlers it subscribes."""
    await asyncio.to_thread(upgrade, "intake", any_settings.database_url("intake"))
    rt = Runtime.create(any_settings, ["intake"], bootstrap="unused:9092")
    try:
        yield rt.store("intake"), EventConsumer(rt.store("intake"), rt.specs["intake"].subscriptions(rt)[0].handlers)
    finally:
        await rt.close()


async def test_a_reopened_ticket_deferred_and_resumed_is_reopened_with_the_new_date_and_late_events_change_nothing(
        intake):
    store, consumer = intake
    sub = TicketSubmission.model_validate({"kind": "complaint", "subject": "路灯不亮", "description": "一周了",
                                           "citizen": {"phone": "137-0000-1234"}})
    receipt = await service.accept(store, sub, channel=Channel.HOTLINE, operator="op", idempotency_key=None,
                                   tz=ZoneInfo("Asia/Shanghai"))
    now = utcnow()

    def event(payload, minutes: int) -> Envelope:
        return Envelope.wrap(payload, ticket_id=receipt.ticket_id, producer="tracker",
                             occurred_at=receipt.received_at + timedelta(minutes=minutes))

    async def shown():
        async with store.db.session() as s:
            row = (await s.execute(select(intake_tickets).where(
                intake_tickets.c.ticket_id == receipt.ticket_id))).one()
        return row.state, row.reply_due

    async def apply(*envelopes: Envelope):
        await consumer.process(records_of(envelopes, topics.LIFECYCLE))

    redo_due, moved_due, later_due = (now + timedelta(days=d) for d in (3, 5, 8))
    await apply(event(TicketTracked(number=receipt.number, state=TicketState.ASSIGNED, lead=UNIT,
                                    reply_due=now + timedelta(days=7)), 1))
    await apply(event(TicketReopened(unit=UNIT, reason="回访不满意", reply_due=redo_due), 2))
    await apply(event(ClockPaused(reason="deferred", note="需等待施工季", by="dept"), 3))
    assert await shown() == ("deferred", redo_due)  # 挂账

    resumed = event(ClockResumed(reply_due=moved_due, by="sup"), 4)
    await apply(resumed)
    assert await shown() == ("reopened", moved_due)  # back to 重办, as the tracker is

    await apply(event(ClockPaused(reason="waiting_citizen", by="dept"), 6), resumed)  # redelivered after a pause
    assert await shown() == ("waiting_citizen", moved_due)
    await apply(event(ClockResumed(reply_due=now + timedelta(days=4), by="dept"), 5))  # older than that pause
    assert await shown() == ("waiting_citizen", moved_due)
    await apply(event(ClockResumed(reply_due=later_due, by="dept"), 7))
    assert await shown() == ("reopened", later_due)


async def test_a_pause_intake_learnt_only_from_a_later_acknowledgement_still_ends_at_the_resumption(intake):
    """ClockPaused lost (intake shows the pause from the tracker's held-back TicketTracked, with nothing kept to go
    back to): the resumption still ends it, at 已签收 as the tracker's own fall-back, not 待补充材料 for ever."""
    store, consumer = intake
    sub = TicketSubmission.model_validate({"kind": "complaint", "subject": "井盖缺失", "description": "路口井盖没了",
                                           "citizen": {"phone": "137-0000-1234"}})
    receipt = await service.accept(store, sub, channel=Channel.HOTLINE, operator="op", idempotency_key=None,
                                   tz=ZoneInfo("Asia/Shanghai"))
    moved = utcnow() + timedelta(days=6)

    def event(payload, minutes: int) -> Envelope:
        return Envelope.wrap(payload, ticket_id=receipt.ticket_id, producer="tracker",
                             occurred_at=receipt.received_at + timedelta(minutes=minutes))

    await consumer.process(records_of([
        event(TicketTracked(number=receipt.number, state=TicketState.WAITING_CITIZEN, lead=UNIT,
                            reply_due=utcnow() + timedelta(days=4)), 1),
        event(ClockResumed(reply_due=moved, by="dept"), 2)], topics.LIFECYCLE))
    async with store.db.session() as s:
        row = (await s.execute(select(intake_tickets).where(intake_tickets.c.ticket_id == receipt.ticket_id))).one()
    assert (row.state, row.reply_due, row.resume_to) == ("signed_for", moved, None)

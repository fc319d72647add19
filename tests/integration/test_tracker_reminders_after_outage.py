"""A tracker back from an outage owes some tickets several reminders at once: each ticket gets only the one that
still means something.

Of a ticket's timers due together, a later one overtakes the earlier ones (签收预警 < 签收催办 < 联系市民催办 <
答复预警 < 答复超期 < 超期督办单); those are claimed and skipped (counted, never notified), and no move of the
ticket brings them back. The overdue order overtakes nothing while an order of the ticket awaits its answer, since it
orders nothing then. A state that owes a timer no more (signed for) skips it too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from jiesu.identity import User
from jiesu.migrate import upgrade
from schemas.enums import Role
from schemas.events import Envelope, utcnow
from services.tracker.domain.sla import compute_deadlines
from services.tracker.store import notifications, supervision_orders, ticket_units, tickets, timers
from services.tracker.timers import SKIPPED, TimerLoop, wanted_timers
from tests.integration.test_tracker_timers import _drain, _tracker_runtime

UNIT = "M-CGW"


@pytest.fixture
async def rt(sqlite_settings):
    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    yield rt
    await rt.store("tracker").db.dispose()
    await rt.identity.db.dispose()


async def assigned_ticket(rt, start: dt.datetime, *, state: str = "assigned", urgency: str = "normal",
                          kind: str = "complaint", number: str = "12345-20261101-000001"):
    """A ticket assigned to UNIT at `start` with its real deadlines, in `state`, and the timers that state needs."""
    clocks = rt.state["tracker.clocks"]
    d = compute_deadlines(clocks.policy, clocks.calendar, start, kind, urgency)
    ticket_id = uuid.uuid4()
    async with rt.store("tracker").transaction() as tx:
        await tx.session.execute(tickets.insert().values(
            ticket_id=ticket_id, number=number, state=state, kind=kind, urgency=urgency, subject="路灯不亮",
            confidential=False, lead_code=UNIT, lead_name="市城市管理委员会", co_handlers=[], received_at=start,
            assigned_at=start, clock_started_at=start, sign_for_due=d.sign_for_due, contact_due=d.contact_due,
            reply_due=d.reply_due, warn_at=d.warn_at, updated_at=start))
        await tx.session.execute(ticket_units.insert().values(ticket_id=ticket_id, unit_code=UNIT, role="lead"))
        row = (await tx.session.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).one()
        await tx.session.execute(timers.insert(), [{"ticket_id": ticket_id, "kind": k, "due_at": at}
                                                   for k, at in wanted_timers(state, row, clocks.calendar)])
    return row


async def told(rt) -> list[str]:
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(notifications.c.kind).order_by(notifications.c.id))).scalars().all()


async def emitted(rt) -> Counter:
    store = rt.store("tracker")
    async with store.db.session() as s:
        values = (await s.execute(select(store.tables.outbox.c.value))).scalars().all()
    return Counter(Envelope.from_bytes(v).event_type for v in values)


async def pending(rt) -> int:
    async with rt.store("tracker").db.session() as s:
        return await s.scalar(select(func.count()).select_from(timers).where(timers.c.fired_at.is_(None)))


def skipped(kind: str, why: str = "overtaken") -> float:
    return SKIPPED.labels(kind=kind, why=why)._value.get()


async def test_an_unsigned_ticket_past_its_overdue_order_gets_the_order_alone(rt):
    """Down for more than a week: the ticket owes 签收预警, 签收催办, 答复预警, 答复超期 and the overdue order at
    once. The unit is told of the order only; every timer is claimed, none is left, none fires twice."""
    row = await assigned_ticket(rt, utcnow() - dt.timedelta(days=12))
    before = {k: skipped(k) for k in ("sign_for_warning", "sign_for_due", "reply_warning", "reply_due")}
    loop = TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name="t")
    assert await _drain(loop) == 5
    assert await told(rt) == ["supervision"]
    assert await emitted(rt) == Counter({"SupervisionOrdered": 1})
    assert await pending(rt) == 0
    assert {k: skipped(k) - n for k, n in before.items()} == dict.fromkeys(before, 1)

    # The unit signs for it now: the timers skipped stay fired, and nothing is owed again.
    dept = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=UNIT)
    await rt.state["tracker"].sign_for(dept, str(row.ticket_id))
    await _drain(loop)
    assert await told(rt) == ["supervision"]


async def test_the_reply_reminder_goes_when_an_order_awaiting_its_answer_leaves_the_overdue_order_nothing_to_do(rt):
    row = await assigned_ticket(rt, utcnow() - dt.timedelta(days=12), state="signed_for")
    async with rt.store("tracker").transaction() as tx:
        await tx.session.execute(supervision_orders.insert().values(
            order_no="DB-20261101-000001-1", ticket_id=row.ticket_id, level="normal", unit_code=UNIT,
            reason="市民多次来电", due_at=utcnow() + dt.timedelta(days=2), created_at=utcnow(), by="office"))
    assert await _drain(TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name="t")) == 3
    assert await told(rt) == ["overdue"]
    assert await emitted(rt) == Counter({"DeadlineMissed": 1})
    async with rt.store("tracker").db.session() as s:
        assert await s.scalar(select(func.count()).select_from(supervision_orders)) == 1


async def test_an_unsigned_ticket_past_its_reply_warning_gets_the_warning_not_the_sign_for_reminder_too(rt):
    clocks = rt.state["tracker.clocks"]
    start = utcnow() - dt.timedelta(days=30)
    d = compute_deadlines(clocks.policy, clocks.calendar, start, "complaint", "normal")
    row = await assigned_ticket(rt, start)
    now = d.warn_at + (d.reply_due - d.warn_at) / 2  # back between the 80 % warning and the deadline
    assert await TimerLoop(rt.store("tracker"), clocks, name="t").fire_due(now) == 3
    assert await told(rt) == ["warning"]
    async with rt.store("tracker").db.session() as s:
        left = (await s.execute(select(timers.c.kind).where(timers.c.ticket_id == row.ticket_id,
                                                             timers.c.fired_at.is_(None)))).scalars().all()
    assert sorted(left) == ["overdue_supervision", "reply_due"]  # still ahead: they fire in their time


async def test_an_urgent_ticket_past_its_reply_deadline_is_chased_for_the_reply_not_also_for_the_call(rt):
    """紧急: the call to the citizen (联系市民) and the 24-hour reply both passed while the tracker was down."""
    clocks = rt.state["tracker.clocks"]
    start = utcnow() - dt.timedelta(days=30)
    d = compute_deadlines(clocks.policy, clocks.calendar, start, "help", "urgent")
    assert d.contact_due is not None and d.contact_due < d.reply_due
    await assigned_ticket(rt, start, state="signed_for", kind="help", urgency="urgent")
    calls = skipped("contact_due")
    await TimerLoop(rt.store("tracker"), clocks, name="t").fire_due(d.reply_due + dt.timedelta(minutes=5))
    assert await told(rt) == ["overdue"]
    assert skipped("contact_due") - calls == 1


async def test_a_reminder_whose_later_timers_are_still_ahead_fires_as_ever(rt):
    """Back before the next moment of the ticket's clocks: nothing overtakes the sign-for reminder."""
    clocks = rt.state["tracker.clocks"]
    start = utcnow() - dt.timedelta(days=30)
    d = compute_deadlines(clocks.policy, clocks.calendar, start, "complaint", "normal")
    await assigned_ticket(rt, start)
    assert await TimerLoop(rt.store("tracker"), clocks, name="t").fire_due(d.sign_for_due + dt.timedelta(minutes=1)) \
        == 2  # the warning, overtaken, and the reminder
    assert await told(rt) == ["reminder"]


async def test_sign_for_timers_left_on_a_ticket_already_signed_for_are_skipped_as_not_owed(rt):
    row = await assigned_ticket(rt, utcnow() - dt.timedelta(days=30))
    async with rt.store("tracker").db.session() as s:
        await s.execute(tickets.update().where(tickets.c.ticket_id == row.ticket_id).values(state="signed_for"))
        await s.execute(timers.delete().where(timers.c.kind.not_in(("sign_for_warning", "sign_for_due"))))
    before = skipped("sign_for_due", "not_owed")
    assert await _drain(TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name="t")) == 2
    assert await told(rt) == [] and await emitted(rt) == Counter()
    assert skipped("sign_for_due", "not_owed") - before == 1

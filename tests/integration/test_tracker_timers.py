"""SLA timers are rows that any number of tracker instances claim, each firing exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas.events import Envelope, utcnow
from services.tracker.store import notifications, supervision_orders, tickets, timers

TICKETS = 120


async def _tracker_runtime(settings) -> Runtime:
    rt = Runtime.create(settings, ["tracker"], bootstrap="unused:9092")
    await rt.specs["tracker"].setup(rt)  # clocks and the Tracker; no broker, no HTTP
    return rt


async def _seed_overdue(rt: Runtime, count: int) -> None:
    """`count` signed-for tickets whose reply deadline has just passed, each with its timers."""
    now = utcnow()
    store = rt.store("tracker")
    async with store.transaction() as tx:
        for i in range(count):
            ticket_id = uuid.uuid4()
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number=f"12345-20261123-{i:06d}", state="signed_for", kind="complaint",
                urgency="normal", subject="路灯不亮", citizen_phone="13800138000", confidential=False,
                lead_code="M-CGW", lead_name="市城市管理委员会", co_handlers=[], assigned_at=now - dt.timedelta(days=9),
                reply_due=now - dt.timedelta(seconds=1), warn_at=now - dt.timedelta(days=1), updated_at=now))
            await tx.session.execute(timers.insert(), [
                {"ticket_id": ticket_id, "kind": "reply_warning", "due_at": now - dt.timedelta(days=1)},
                {"ticket_id": ticket_id, "kind": "reply_due", "due_at": now - dt.timedelta(seconds=1)},
                {"ticket_id": ticket_id, "kind": "overdue_supervision", "due_at": now - dt.timedelta(milliseconds=500)},
            ])


async def _drain(loop, rounds: int = 200) -> int:
    fired = 0
    for _ in range(rounds):
        n = await loop.fire_due()
        fired += n
        if n == 0:
            return fired
        await asyncio.sleep(0)
    return fired


@pytest.mark.postgres
async def test_two_tracker_instances_on_postgresql_fire_every_timer_exactly_once(pg_settings):
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", pg_settings.database_url("tracker"))
    one, two = await _tracker_runtime(pg_settings), await _tracker_runtime(pg_settings)
    try:
        await _seed_overdue(one, TICKETS)
        loops = [TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name=name, batch=7)
                 for rt, name in ((one, "tracker-1"), (two, "tracker-2"))]
        # Several concurrent claimers per instance, as if both ran flat out.
        results = await asyncio.gather(*(_drain(loop) for loop in loops for _ in range(3)))
        assert sum(results) == TICKETS * 3

        store = one.store("tracker")
        async with store.db.session() as s:
            values = (await s.execute(select(store.tables.outbox.c.value))).scalars().all()
            claimed = Counter((await s.execute(select(timers.c.claimed_by))).scalars().all())
            pending = await s.scalar(select(func.count()).select_from(timers).where(timers.c.fired_at.is_(None)))
            orders = await s.scalar(select(func.count()).select_from(supervision_orders))
            reminders = await s.scalar(select(func.count()).select_from(notifications))
        kinds = Counter(Envelope.from_bytes(v).event_type for v in values)
        assert kinds["DeadlineWarning"] == 0  # each warning fired after its deadline: the reminder speaks for it
        assert kinds["DeadlineMissed"] == TICKETS
        assert kinds["SupervisionOrdered"] == TICKETS == orders
        assert reminders == TICKETS * 2  # reminder (催办) and supervision notice per ticket
        assert pending == 0
        assert set(claimed) == {"tracker-1", "tracker-2"}, claimed  # both instances did work
        print(f"claimed per instance: {dict(claimed)}")
    finally:
        for rt in (one, two):
            await rt.store("tracker").db.dispose()
            await rt.identity.db.dispose()


async def test_a_timer_fires_within_a_second_of_its_due_time(sqlite_settings):
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    store = rt.store("tracker")
    task = asyncio.create_task(TimerLoop(store, rt.state["tracker.clocks"]).run(sqlite_settings.timer_poll_seconds))
    try:
        ticket_id = uuid.uuid4()
        due = utcnow() + dt.timedelta(seconds=1)
        async with store.transaction() as tx:
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number="12345-20261123-000001", state="assigned", kind="complaint",
                urgency="normal", confidential=False, lead_code="M-CGW", co_handlers=[], sign_for_due=due,
                updated_at=utcnow()))
            await tx.session.execute(timers.insert().values(ticket_id=ticket_id, kind="sign_for_due", due_at=due))
        fired_at = None
        for _ in range(60):
            await asyncio.sleep(0.1)
            async with store.db.session() as s:
                fired_at = await s.scalar(select(timers.c.fired_at).where(timers.c.ticket_id == ticket_id))
            if fired_at:
                break
        assert fired_at is not None
        assert dt.timedelta(0) <= fired_at - due < dt.timedelta(seconds=1)
        async with store.db.session() as s:
            values = (await s.execute(select(store.tables.outbox.c.value))).scalars().all()
            note = (await s.execute(select(notifications.c.message))).scalars().all()
        missed = [Envelope.from_bytes(v).parsed() for v in values]
        assert [m.clock for m in missed] == ["sign_for"]
        assert note and "催办" in note[0] and "13800138000" not in note[0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.db.dispose()
        await rt.identity.db.dispose()


async def test_pausing_cancels_the_reply_timers_and_resuming_re_times_them(live):
    """Through the real system: timers follow the ticket as it moves."""
    import httpx

    from schemas.enums import Role

    op = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {op}"}, json={
            "kind": "complaint", "subject": "楼下工地夜间施工噪音扰民", "description": "每天晚上十一点以后工地还在打桩。",
            "citizen": {"name": "张伟", "phone": "13800138000"}, "location": {"address": "滨江路18号"}})
        number = r.json()["number"]
        store = live.runtime.store("tracker")

        async def pending() -> dict[str, dt.datetime]:
            async with store.db.session() as s:
                rows = (await s.execute(select(timers.c.kind, timers.c.due_at).join(
                    tickets, tickets.c.ticket_id == timers.c.ticket_id).where(
                    tickets.c.number == number, timers.c.fired_at.is_(None)))).all()
            return {k: d for k, d in rows}

        for _ in range(200):
            if "sign_for_due" in await pending():
                break
            await asyncio.sleep(0.05)
        assert set(await pending()) == {"sign_for_warning", "sign_for_due", "reply_warning", "reply_due",
                                        "overdue_supervision"}
        ticket = (await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {op}"})).json()
        dept = await live.user("dept", Role.DEPARTMENT, department=ticket["lead"]["code"])
        h = {"Authorization": f"Bearer {dept}"}
        assert (await client.post(f"/api/v1/tracker/tickets/{number}/sign-for", headers=h)).status_code == 200
        assert set(await pending()) == {"reply_warning", "reply_due", "overdue_supervision"}
        assert (await client.post(f"/api/v1/tracker/tickets/{number}/wait-citizen", headers=h,
                                  json={"note": "请补充照片"})).status_code == 200
        assert await pending() == {}
        resumed = await client.post(f"/api/v1/tracker/tickets/{number}/resume", headers=h)
        assert resumed.status_code == 200
        after = await pending()
        assert after["reply_due"] == dt.datetime.fromisoformat(resumed.json()["reply_due"])


async def test_a_timer_that_fails_is_retried_later_and_does_not_hold_back_the_others(sqlite_settings):
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    store = rt.store("tracker")
    try:
        await _seed_overdue(rt, 2)
        async with store.transaction() as tx:  # the first ticket's supervision order number is already taken
            await tx.session.execute(supervision_orders.insert().values(
                order_no="DB-20261123-000000-1", ticket_id=uuid.uuid4(), level="normal", reason="x",
                due_at=utcnow(), created_at=utcnow(), by="test"))
        fired = await TimerLoop(store, rt.state["tracker.clocks"], name="t").fire_due()
        assert fired == 5  # six due, one failed
        async with store.db.session() as s:
            left = (await s.execute(select(timers).where(timers.c.fired_at.is_(None)))).all()
        assert [t.kind for t in left] == ["overdue_supervision"]
        assert left[0].due_at > utcnow() + dt.timedelta(seconds=30)  # pushed back, not lost
    finally:
        await store.db.dispose()
        await rt.identity.db.dispose()


async def test_an_urgent_ticket_not_contacted_in_time_is_chased_and_one_contacted_is_left_alone(sqlite_settings):
    from services.tracker.store import timeline
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    store = rt.store("tracker")
    try:
        due = utcnow() - dt.timedelta(seconds=1)
        late, called = uuid.uuid4(), uuid.uuid4()
        async with store.transaction() as tx:
            for i, (ticket_id, state) in enumerate(((late, "signed_for"), (called, "contacted"))):
                await tx.session.execute(tickets.insert().values(
                    ticket_id=ticket_id, number=f"12345-20261123-00000{i}", state=state, kind="help",
                    urgency="urgent", confidential=False, lead_code="M-SW", co_handlers=[], contact_due=due,
                    updated_at=utcnow()))
                await tx.session.execute(timers.insert().values(ticket_id=ticket_id, kind="contact_due", due_at=due))

        assert await TimerLoop(store, rt.state["tracker.clocks"], name="t").fire_due() == 2

        async with store.db.session() as s:
            missed = [Envelope.from_bytes(v).parsed() for v in (await s.execute(
                select(store.tables.outbox.c.value))).scalars().all()]
            notes = (await s.execute(select(notifications.c.unit_code, notifications.c.message))).all()
            chased = (await s.execute(select(timeline.c.ticket_id).where(
                timeline.c.event_type == "DeadlineMissed"))).scalars().all()
        assert [(m.clock, m.due_at) for m in missed] == [("contact", due)]
        assert [n.unit_code for n in notes] == ["M-SW"] and "联系市民" in notes[0].message
        assert [str(t) for t in chased] == [str(late)]
    finally:
        await store.db.dispose()
        await rt.identity.db.dispose()


async def test_a_timer_that_fired_on_its_retry_is_not_fired_again_when_the_ticket_moves(sqlite_settings, monkeypatch):
    """A retry moves a timer's due time; the ticket's next move must still count it as fired.

    The reply deadline's reminder fails once, fires a minute later, and then the department records
    contact with the citizen, which re-times the ticket's timers: one 答复超期 reminder in all, not two.
    """
    from jiesu.identity import User
    from schemas.enums import Role
    from services.tracker import notify as notify_module
    from services.tracker.store import ticket_units, timeline
    from services.tracker.timers import TimerLoop, wanted_timers

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    store, clocks = rt.store("tracker"), rt.state["tracker.clocks"]
    try:
        now = utcnow()
        ticket_id = uuid.uuid4()
        async with store.transaction() as tx:
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number="12345-20261123-000001", state="signed_for", kind="complaint",
                urgency="normal", subject="路灯不亮", confidential=False, lead_code="M-CGW",
                lead_name="市城市管理委员会", co_handlers=[], assigned_at=now - dt.timedelta(days=9),
                reply_due=now - dt.timedelta(seconds=1), warn_at=now - dt.timedelta(days=1), updated_at=now))
            await tx.session.execute(ticket_units.insert().values(ticket_id=ticket_id, unit_code="M-CGW", role="lead"))
            row = (await tx.session.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).one()
            await tx.session.execute(timers.insert(), [
                {"ticket_id": ticket_id, "kind": kind, "due_at": at}
                for kind, at in wanted_timers("signed_for", row, clocks.calendar) if kind != "overdue_supervision"])

        real_notify, away = notify_module.notify, [True]

        async def notify_while_away(tx, settings, row, unit_code, kind, message):
            if kind == "overdue" and away[0]:
                raise RuntimeError("mail relay away")
            await real_notify(tx, settings, row, unit_code, kind, message)

        monkeypatch.setattr(notify_module, "notify", notify_while_away)
        loop = TimerLoop(store, clocks, name="t")
        assert await loop.fire_due(now) == 1  # the warning; the reminder failed and waits a minute
        away[0] = False
        assert await loop.fire_due(now + dt.timedelta(seconds=61)) == 1  # the reminder, on its retry

        dept = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")
        await rt.state["tracker"].contact(dept, str(ticket_id), "已电话联系市民")
        await loop.fire_due(now + dt.timedelta(seconds=122))

        async with store.db.session() as s:
            reminders = (await s.execute(select(func.count()).select_from(timeline).where(
                timeline.c.ticket_id == ticket_id, timeline.c.event_type == "DeadlineMissed"))).scalar_one()
            notices = (await s.execute(select(func.count()).select_from(notifications).where(
                notifications.c.kind == "overdue"))).scalar_one()
        assert (reminders, notices) == (1, 1)
    finally:
        await store.db.dispose()
        await rt.identity.db.dispose()


@pytest.mark.parametrize(("fired", "created"), [
    ([], True),  # never fired
    ([dt.timedelta(0)], False),  # fired for this very deadline: the ticket only moved
    ([dt.timedelta(seconds=60)], False),  # fired on its retry, a minute after the deadline
    ([-dt.timedelta(days=2)], True),  # fired for the deadline before an extension: the new one is owed
    ([-dt.timedelta(days=2), dt.timedelta(0)], False),  # fired for both the old deadline and the new one
], ids=["never", "same-instant", "retried", "before-extension", "both"])
async def test_a_move_re_creates_a_timer_only_if_its_kind_has_not_fired_at_or_after_that_instant(
        sqlite_settings, fired, created):
    from services.tracker.timers import schedule

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    store, calendar = rt.store("tracker"), rt.state["tracker.clocks"].calendar
    try:
        await _seed_overdue(rt, 1)
        async with store.transaction() as tx:
            row = (await tx.session.execute(select(tickets))).one()
            for offset in fired:
                await tx.session.execute(timers.insert().values(
                    ticket_id=row.ticket_id, kind="reply_due", due_at=row.reply_due + offset,
                    fired_at=row.reply_due + offset))
            await schedule(tx, row.ticket_id, "contacted", row, calendar)
            pending = (await tx.session.execute(select(timers.c.due_at).where(
                timers.c.kind == "reply_due", timers.c.fired_at.is_(None)))).scalars().all()
        assert pending == ([row.reply_due] if created else [])
    finally:
        await store.db.dispose()
        await rt.identity.db.dispose()


async def test_an_order_issued_late_says_how_many_working_days_the_ticket_is_overdue(sqlite_settings):
    """A tracker that was down fires the order when it is back: it says how late the ticket really is."""
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    try:
        await _seed_overdue(rt, 2)
        now, calendar = utcnow(), rt.state["tracker.clocks"].calendar
        due = now - dt.timedelta(days=9)
        late = calendar.working_days_between(due, now)
        assert late >= 5
        async with rt.store("tracker").db.session() as s:
            await s.execute(tickets.update().where(tickets.c.number == "12345-20261123-000001").values(reply_due=due))
        await _drain(TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name="t"))
        async with rt.store("tracker").db.session() as s:
            reasons = sorted((await s.execute(select(supervision_orders.c.reason))).scalars().all())
        assert reasons == sorted(["超期 1 个工作日仍未答复", f"超期 {late} 个工作日仍未答复"])
    finally:
        await rt.store("tracker").db.dispose()
        await rt.identity.db.dispose()


async def test_a_warning_due_before_an_outage_is_not_sent_once_its_deadline_has_passed(sqlite_settings):
    """Back from an outage, the tracker owes a ticket its 80 % warning and its deadline at once: the unit gets
    the reminder (催办) alone. A ticket whose deadline is still ahead gets its warning."""
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    try:
        await _seed_overdue(rt, 2)
        ahead = "12345-20261123-000001"
        async with rt.store("tracker").db.session() as s:  # this one's deadline is still a day away
            await s.execute(tickets.update().where(tickets.c.number == ahead)
                            .values(reply_due=utcnow() + dt.timedelta(days=1)))
            await s.execute(timers.delete().where(timers.c.kind != "reply_warning",
                                                  timers.c.ticket_id.in_(select(tickets.c.ticket_id).where(
                                                      tickets.c.number == ahead))))
        assert await _drain(TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name="t")) == 4
        async with rt.store("tracker").db.session() as s:
            sent = sorted((await s.execute(select(tickets.c.number, notifications.c.kind).join(
                tickets, tickets.c.ticket_id == notifications.c.ticket_id))).all())
        assert sent == [("12345-20261123-000000", "overdue"), ("12345-20261123-000000", "supervision"),
                        (ahead, "warning")]
    finally:
        await rt.store("tracker").db.dispose()
        await rt.identity.db.dispose()


async def test_a_sign_for_warning_is_not_sent_once_the_sign_for_time_has_passed(sqlite_settings):
    """The same for signing for (签收): after an outage the unit gets the sign-for reminder, not a warning too."""
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    try:
        await _seed_overdue(rt, 1)
        now = utcnow()
        async with rt.store("tracker").db.session() as s:
            await s.execute(tickets.update().values(state="assigned", sign_for_due=now - dt.timedelta(hours=1),
                                                    reply_due=now + dt.timedelta(days=4)))
            await s.execute(timers.delete())
            ticket_id = await s.scalar(select(tickets.c.ticket_id))
            await s.execute(timers.insert(), [
                {"ticket_id": ticket_id, "kind": "sign_for_warning", "due_at": now - dt.timedelta(hours=2)},
                {"ticket_id": ticket_id, "kind": "sign_for_due", "due_at": now - dt.timedelta(hours=1)}])
        assert await _drain(TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], name="t")) == 2
        async with rt.store("tracker").db.session() as s:
            sent = (await s.execute(select(notifications.c.kind))).scalars().all()
        assert sent == ["reminder"]
    finally:
        await rt.store("tracker").db.dispose()
        await rt.identity.db.dispose()


async def test_the_automatic_overdue_order_does_not_stack_on_an_order_awaiting_its_answer(sqlite_settings):
    """The office ordered 督办 before the deadline passed: a working day later the system orders none of its own
    while that order awaits the unit's answer (escalation presses it when late); the other ticket gets its order."""
    from services.tracker.timers import TimerLoop

    await asyncio.to_thread(upgrade, "tracker", sqlite_settings.database_url("tracker"))
    rt = await _tracker_runtime(sqlite_settings)
    store = rt.store("tracker")
    try:
        await _seed_overdue(rt, 2)
        async with store.transaction() as tx:
            ordered, other = [r.ticket_id for r in (await tx.session.execute(
                select(tickets.c.ticket_id).order_by(tickets.c.number))).all()]
            await tx.session.execute(supervision_orders.insert().values(
                order_no="DB-20261123-000000-1", ticket_id=ordered, level="normal", reason="市民多次来电",
                due_at=utcnow() + dt.timedelta(days=2), created_at=utcnow(), by="office"))
        assert await TimerLoop(store, rt.state["tracker.clocks"], name="t").fire_due() == 6
        async with store.db.session() as s:
            orders = Counter(r.ticket_id for r in (await s.execute(select(supervision_orders.c.ticket_id))).all())
            pending = (await s.execute(select(func.count()).select_from(timers).where(
                timers.c.fired_at.is_(None)))).scalar()
        assert orders == {ordered: 1, other: 1} and pending == 0
    finally:
        await store.db.dispose()
        await rt.identity.db.dispose()

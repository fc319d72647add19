"""A supervision order its unit lets fall due unanswered is escalated once (督办单逾期升级), by whichever
tracker instance claims it, on SQLite and PostgreSQL; the office's pages badge and filter escalated orders.

Orders are made the way the timers and the office make them (timers.order_supervision: due 2 working days
after they are issued); the instants are Beijing wall-clock times of November 2026.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import uuid
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from jiesu.identity import User
from jiesu.migrate import upgrade
from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, UnitRef, utcnow
from services.tracker import handlers, supervision
from services.tracker import notify as notify_module
from services.tracker.notify import DeliveryWorker
from services.tracker.store import (
    deliveries,
    notifications,
    supervision_orders,
    ticket_units,
    tickets,
    timeline,
    unit_contacts,
)
from services.tracker.supervision import escalate_forever, escalate_overdue_orders
from services.tracker.timers import order_supervision
from tests.integration.test_tracker_timers import _tracker_runtime

BEIJING = ZoneInfo("Asia/Shanghai")
UNIT = "M-CGW"
ISSUED = dt.datetime(2026, 11, 18, 10, 0, tzinfo=BEIJING)  # Wednesday: due Friday 20 November 17:30
FRIDAY_DUE = dt.datetime(2026, 11, 20, 17, 30, tzinfo=BEIJING)
TUESDAY_DUE = dt.datetime(2026, 11, 24, 17, 30, tzinfo=BEIJING)  # 2 working days after Friday, over the weekend
ESCALATED = FRIDAY_DUE + dt.timedelta(minutes=1)
WORKING_DAYS = 2


async def _order(rt, i: int, issued: dt.datetime, *, level: str = "normal", reason: str = "超期 1 个工作日仍未答复",
                 day: str = "20261118") -> tuple[str, str]:
    """A signed-for ticket of UNIT (lead, so its staff see it) and an order on it issued at `issued`:
    (ticket number, order number)."""
    store = rt.store("tracker")
    ticket_id, number = uuid.uuid4(), f"12345-{day}-{i:06d}"
    async with store.transaction() as tx:
        await tx.session.execute(tickets.insert().values(
            ticket_id=ticket_id, number=number, state="signed_for", kind="complaint", urgency="normal",
            subject="路灯不亮", citizen_phone="13800138000", confidential=False, lead_code=UNIT,
            lead_name="市城市管理委员会", co_handlers=[], assigned_at=issued - dt.timedelta(days=9),
            reply_due=issued - dt.timedelta(days=1), updated_at=issued))
        await tx.session.execute(ticket_units.insert().values(ticket_id=ticket_id, unit_code=UNIT, role="lead"))
        row = (await tx.session.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).one()
        order_no = await order_supervision(tx, rt.state["tracker.clocks"], row, level=level, by="system",
                                           reason=reason, now=issued)
    return number, order_no


async def _escalate(rt, now: dt.datetime | None = None, batch: int = 100) -> int:
    return await escalate_overdue_orders(rt.store("tracker"), rt.state["tracker.clocks"], WORKING_DAYS, now=now,
                                         batch=batch)


async def _order_row(rt, order_no: str):
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(supervision_orders).where(supervision_orders.c.order_no == order_no))).one()


async def _migrated_runtime(settings):
    await asyncio.to_thread(upgrade, "tracker", settings.database_url("tracker"))
    return await _tracker_runtime(settings)


async def _dispose(*runtimes) -> None:
    for rt in runtimes:
        await rt.store("tracker").db.dispose()
        await rt.identity.db.dispose()


async def test_an_order_left_unanswered_past_its_date_is_escalated_once_with_a_new_date_timeline_and_reminder(
        any_settings):
    rt = await _migrated_runtime(any_settings.model_copy(update={"webhook_url": "http://127.0.0.1:9/hook"}))
    store = rt.store("tracker")
    try:
        number, order_no = await _order(rt, 1, ISSUED)
        assert (await _order_row(rt, order_no)).due_at == FRIDAY_DUE
        assert await _escalate(rt, FRIDAY_DUE - dt.timedelta(minutes=1)) == 0  # not due yet

        assert await _escalate(rt, ESCALATED) == 1
        order = await _order_row(rt, order_no)
        assert (order.level, order.escalated_at, order.due_at) == ("key", ESCALATED, TUESDAY_DUE)

        said = f"督办单 {order_no} 逾期未回复，已升级为重点督办，请于 2026-11-24 17:30 前回复"
        async with store.db.session() as s:
            entries = (await s.execute(select(timeline).where(timeline.c.event_type == "SupervisionEscalated"))).all()
            reminders = (await s.execute(select(notifications).where(notifications.c.kind == "reminder"))).all()
            sent = (await s.execute(select(deliveries))).all()
            audited = (await s.execute(select(store.tables.audit).where(
                store.tables.audit.c.action == "SupervisionEscalated"))).all()
            outbox = (await s.execute(select(store.tables.outbox.c.value))).scalars().all()
        assert [(e.summary, e.actor, e.at) for e in entries] == [(said, "system", ESCALATED)]
        assert entries[0].data["from_level"] == "normal"
        assert dt.datetime.fromisoformat(entries[0].data["previous_due"]) == FRIDAY_DUE
        assert [(n.unit_code, n.message) for n in reminders] == [(UNIT, f"催办：工单 {number} 的{said}。")]
        # The reminder goes out by webhook as every notification does (beside the order's own notice).
        hooked = [d for d in sent if d.body["notification_id"] == reminders[0].id]
        assert len(sent) == 2 and len(hooked) == 1 and hooked[0].body["kind_label"] == "催办"
        assert [(a.actor, a.ticket_id, a.details["order_no"], dt.datetime.fromisoformat(a.details["due_at"]))
                for a in audited] == [("system", order.ticket_id, order_no, TUESDAY_DUE)]
        assert [Envelope.from_bytes(v).event_type for v in outbox] == ["SupervisionOrdered"]  # escalation emits none

        # Once only: not again at the same instant, nor once the new date has passed unanswered too.
        assert await _escalate(rt, ESCALATED) == 0
        assert await _escalate(rt, TUESDAY_DUE + dt.timedelta(days=3)) == 0
        again = await _order_row(rt, order_no)
        assert (again.level, again.escalated_at, again.due_at) == ("key", ESCALATED, TUESDAY_DUE)
        async with store.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(timeline).where(
                timeline.c.event_type == "SupervisionEscalated")) == 1
            assert await s.scalar(select(func.count()).select_from(notifications).where(
                notifications.c.kind == "reminder")) == 1
    finally:
        await _dispose(rt)


async def test_answered_closed_and_not_yet_due_orders_are_left_alone_and_a_key_order_keeps_its_level(any_settings):
    rt = await _migrated_runtime(any_settings)
    staff = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=UNIT)
    office = User(id=2, username="sup", display_name="督查室", role=Role.SUPERVISOR)
    try:
        _, answered = await _order(rt, 1, ISSUED)
        _, closed = await _order(rt, 2, ISSUED)
        _, not_due = await _order(rt, 3, ISSUED + dt.timedelta(days=1))  # Thursday: due Monday 23 November
        _, key = await _order(rt, 4, ISSUED, level="key")
        await supervision.respond_order(rt, staff, answered, "已派人修复路灯")
        await supervision.respond_order(rt, staff, closed, "已派人修复路灯")
        await supervision.close_order(rt, office, closed, "核实属实")
        # Closed without an answer: the pages refuse it, but the claim must not rely on the pages.
        _, closed_unanswered = await _order(rt, 5, ISSUED)
        async with rt.store("tracker").db.session() as s:
            await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == closed_unanswered)
                            .values(closed_at=ISSUED + dt.timedelta(days=1), closed_by="sup"))

        assert await _escalate(rt, ESCALATED) == 1
        for order_no in (answered, closed, not_due, closed_unanswered):
            order = await _order_row(rt, order_no)
            assert (order.level, order.escalated_at) == ("normal", None), order_no
        assert (await _order_row(rt, not_due)).due_at == dt.datetime(2026, 11, 23, 17, 30, tzinfo=BEIJING)
        kept = await _order_row(rt, key)
        assert (kept.level, kept.escalated_at, kept.due_at) == ("key", ESCALATED, TUESDAY_DUE)
        async with rt.store("tracker").db.session() as s:
            summary = await s.scalar(select(timeline.c.summary).where(timeline.c.event_type == "SupervisionEscalated"))
        assert summary == f"督办单 {key} 逾期未回复，重点督办再次催办，请于 2026-11-24 17:30 前回复"
    finally:
        await _dispose(rt)


async def _finish_ticket(rt, number: str, state: str) -> None:
    """The ticket is finished (办结 after its return visit, or merged as a duplicate) without the long way there: its
    state, and its orders released in the same transaction by the step every finishing path takes."""
    async with rt.store("tracker").transaction() as tx:
        await _finish_in(tx, number, state)


async def _finish_in(tx, number: str, state: str) -> None:
    ticket_id = await tx.session.scalar(select(tickets.c.ticket_id).where(tickets.c.number == number))
    await tx.session.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(state=state))
    await handlers.release_orders(tx, ticket_id)


async def test_an_unanswered_order_whose_ticket_is_finished_is_not_escalated_and_waits_for_the_office(any_settings):
    rt = await _migrated_runtime(any_settings)
    office = User(id=2, username="sup", display_name="督查室", role=Role.SUPERVISOR)
    try:
        running, owed = await _order(rt, 1, ISSUED)
        finished = {}
        for i, state in enumerate(("closed", "merged"), start=2):  # 办结 after the return visit; a duplicate
            number, order_no = await _order(rt, i, ISSUED)
            await _finish_ticket(rt, number, state)
            finished[order_no] = number

        assert await _escalate(rt, ESCALATED) == 1
        assert (await _order_row(rt, owed)).level == "key"
        for order_no in finished:
            order = await _order_row(rt, order_no)
            assert (order.level, order.escalated_at, order.due_at) == ("normal", None, FRIDAY_DUE), order_no
        async with rt.store("tracker").db.session() as s:
            nagged = (await s.execute(select(notifications.c.number).where(
                notifications.c.kind == "reminder"))).scalars().all()
            escalated = (await s.execute(select(timeline.c.data).where(
                timeline.c.event_type == "SupervisionEscalated"))).scalars().all()
        assert nagged == [running] and [e["order_no"] for e in escalated] == [owed]
        assert await _escalate(rt, TUESDAY_DUE + dt.timedelta(days=3)) == 0  # later looks leave them too

        # Still open and overdue for the office, which enters the unit's answer and closes the order.
        closed_one = next(iter(finished))
        await supervision.respond_order(rt, office, closed_one, "工单已回访办结，市民满意")
        await supervision.close_order(rt, office, closed_one, "工单已办结，予以销号")
        assert (await _order_row(rt, closed_one)).closed_at is not None
    finally:
        await _dispose(rt)


class _TicketFinishedBeforeTheClaim:
    """The tracker's store, but the ticket is closed between escalation's look for work and its claim, as a
    return visit committing in between would: the claim must re-check the ticket, not trust the look."""

    def __init__(self, store, number: str) -> None:
        self.store = store
        self.number = number

    @property
    def db(self):
        return self.store.db

    @contextlib.asynccontextmanager
    async def transaction(self):
        async with self.store.transaction() as closing:
            await _finish_in(closing, self.number, "closed")
        async with self.store.transaction() as tx:
            yield tx


async def test_an_order_whose_ticket_closes_after_the_look_for_work_is_not_claimed(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number, order_no = await _order(rt, 1, ISSUED)
        store = _TicketFinishedBeforeTheClaim(rt.store("tracker"), number)
        assert await escalate_overdue_orders(store, rt.state["tracker.clocks"], WORKING_DAYS, now=ESCALATED) == 0
        order = await _order_row(rt, order_no)
        assert (order.level, order.escalated_at, order.due_at) == ("normal", None, FRIDAY_DUE)
    finally:
        await _dispose(rt)


async def test_the_escalation_reminder_gives_the_orders_new_date_to_answer_by_not_the_tickets(sqlite_settings,
                                                                                                monkeypatch):
    settings = sqlite_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": 9,
                                                  "mail_from": "jiesu@city.example"})
    rt = await _migrated_runtime(settings)
    store = rt.store("tracker")
    try:
        async with store.db.session() as s:
            await s.execute(unit_contacts.insert().values(unit_code=UNIT, email="duty@cgw.city.example"))
        number, order_no = await _order(rt, 1, ISSUED)
        ticket_due = ISSUED - dt.timedelta(days=1)  # the ticket's own reply date, long past
        assert await _escalate(rt, ESCALATED) == 1
        async with store.db.session() as s:
            reminder = (await s.execute(select(notifications).where(notifications.c.kind == "reminder"))).one()
            mailed = (await s.execute(select(deliveries).where(
                deliveries.c.notification_id == reminder.id))).one()
        assert mailed.channel == "email" and mailed.target == "duty@cgw.city.example"
        assert dt.datetime.fromisoformat(mailed.body["reply_due"]) == TUESDAY_DUE != ticket_due
        assert mailed.body["number"] == number and order_no in mailed.body["message"]
        async with store.db.session() as s:  # the notice of the order itself gave its first date
            issued = (await s.execute(select(deliveries).join(notifications, notifications.c.id ==
                                                              deliveries.c.notification_id)
                                      .where(notifications.c.kind == "supervision"))).one()
        assert dt.datetime.fromisoformat(issued.body["reply_due"]) == FRIDAY_DUE

        sent = []  # the mail as the delivery worker writes it (the order's own notice beside it)
        monkeypatch.setattr(notify_module, "send_mail", lambda _settings, msg: sent.append(msg))
        assert await DeliveryWorker(store, settings).deliver_once() == 2
        text = next(m for m in sent if "催办" in m["Subject"]).get_body(("plain",)).get_content()
        assert "答复期限：2026年11月24日 17:30" in text  # Beijing time, as the unit reads dates
    finally:
        await _dispose(rt)


@pytest.mark.postgres
async def test_two_tracker_instances_on_postgresql_escalate_each_order_exactly_once(pg_settings):
    one = await _migrated_runtime(pg_settings)
    two = await _tracker_runtime(pg_settings)
    orders = 40
    try:
        for i in range(orders):
            await _order(one, i, ISSUED)

        async def claimer(rt) -> int:
            """Looks again and again, as a busy instance would, whether or not its last look found anything."""
            done = 0
            for _ in range(12):
                done += await _escalate(rt, ESCALATED, batch=7)
                await asyncio.sleep(0)
            return done

        # Several claimers per instance, all at the same instant, as if both ran flat out.
        results = await asyncio.gather(*(claimer(rt) for rt in (one, two) for _ in range(3)))
        assert sum(results) == orders, results

        store = one.store("tracker")
        async with store.db.session() as s:
            escalated = await s.scalar(select(func.count()).select_from(supervision_orders).where(
                supervision_orders.c.escalated_at == ESCALATED, supervision_orders.c.level == "key"))
            entries = (await s.execute(select(timeline.c.ticket_id).where(
                timeline.c.event_type == "SupervisionEscalated"))).scalars().all()
            reminders = await s.scalar(select(func.count()).select_from(notifications).where(
                notifications.c.kind == "reminder"))
            audited = await s.scalar(select(func.count()).select_from(store.tables.audit).where(
                store.tables.audit.c.action == "SupervisionEscalated"))
        assert escalated == orders
        assert len(entries) == len(set(entries)) == orders
        assert reminders == audited == orders
        print(f"escalated per claimer: {results}")
    finally:
        await _dispose(one, two)


async def test_the_background_job_escalates_at_once_on_start_and_keeps_looking(sqlite_settings):
    from services.tracker.bootstrap import SPEC

    rt = await _migrated_runtime(sqlite_settings)
    assert "order_escalation" in [job.__name__ for job in SPEC.background(rt)]
    store = rt.store("tracker")
    now = utcnow()
    _, first = await _order(rt, 1, now - dt.timedelta(days=10))  # overdue before the job starts
    task = asyncio.create_task(escalate_forever(store, rt.state["tracker.clocks"], WORKING_DAYS, poll_seconds=0.05))
    try:
        _, second = await _order(rt, 2, now - dt.timedelta(days=10))  # and one that falls overdue meanwhile
        for _ in range(100):
            rows = [await _order_row(rt, o) for o in (first, second)]
            if all(r.escalated_at for r in rows):
                break
            await asyncio.sleep(0.05)
        assert all(r.escalated_at is not None and r.due_at > now for r in rows)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await _dispose(rt)


def _row_of(html: str, order_no: str) -> str:
    """The table row of one order on the orders page."""
    return next(row for row in re.findall(r"<tr[ >].*?</tr>", html, re.S) if order_no in row)


async def test_the_office_sees_escalated_orders_badged_and_filtered_and_the_unit_sees_its_new_date(live):
    rt = live.runtime
    now = utcnow()
    day = f"{now.astimezone(BEIJING):%Y%m%d}"
    number, escalating = await _order(rt, 1, now - dt.timedelta(days=10), reason="<b>拖延</b>", day=day)
    _, overdue_again = await _order(rt, 2, now - dt.timedelta(days=20), day=day)
    _, fresh = await _order(rt, 3, now, day=day)
    finished_number, finished = await _order(rt, 4, now - dt.timedelta(days=10), day=day)
    await _finish_ticket(rt, finished_number, "closed")  # closed after the return visit, the order never answered
    async with rt.store("tracker").db.session() as s:  # escalated earlier, and its new date has passed unanswered too
        await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == overdue_again).values(
            level="key", escalated_at=now - dt.timedelta(days=5), due_at=now - dt.timedelta(days=1)))
    await _escalate(rt)  # the live system's own job looks only once a minute
    order = await _order_row(rt, escalating)
    assert order.escalated_at is not None and order.due_at > utcnow()
    assert (await _order_row(rt, overdue_again)).escalated_at == now - dt.timedelta(days=5)

    office = await live.user("sup", Role.SUPERVISOR)
    staff = await live.user("cgw", Role.DEPARTMENT, department=UNIT)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        escalated = (await client.get("/tracker/sup/orders", params={"tab": "escalated"})).text
        overdue = (await client.get("/tracker/sup/orders", params={"tab": "overdue"})).text
        everything = (await client.get("/tracker/sup/orders", params={"tab": "all"})).text
    assert escalating in escalated and overdue_again in escalated and fresh not in escalated
    assert re.search(r'aria-current="page">已升级<span class="count">2</span>', escalated)
    assert '<span class="badge">已升级</span>' in _row_of(escalated, escalating)
    assert "&lt;b&gt;拖延&lt;/b&gt;" in escalated and "<b>拖延</b>" not in escalated
    # Overdue again after its escalation: in red under 逾期未回复, and still badged; the one just escalated is not.
    assert overdue_again in overdue and escalating not in overdue and fresh not in overdue
    late = _row_of(overdue, overdue_again)
    assert 'class="overdue"' in late and '<strong class="sub red">逾期未回复</strong>' in late and "已升级" in late
    assert "已升级" not in _row_of(everything, fresh) and "逾期未回复" not in _row_of(everything, fresh)
    # Overdue on a finished ticket: not escalated, and the office is told why it stays as it is.
    held = _row_of(overdue, finished)
    assert "逾期未回复" in held and "工单已结束，不再升级" in held and "已升级" not in held
    assert "不再升级" not in _row_of(overdue, overdue_again) and finished not in escalated
    assert "升级后的新期限" in _row_of(everything, escalating)
    # Key orders (重点督办), now every escalated one, head the list.
    assert max(everything.index(overdue_again), everything.index(escalating)) < everything.index(fresh)

    new_due = f"{order.due_at.astimezone(BEIJING):%Y-%m-%d %H:%M}"
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {staff}"}) as dept:
        ticket = (await dept.get(f"/tracker/tickets/{number}")).text
    assert '重点督办 <span class="badge">已升级</span>' in ticket
    assert new_due in ticket and "逾期未回复升级，此为新的回复期限" in ticket
    assert f"督办单 {escalating} 逾期未回复，已升级为重点督办，请于 {new_due} 前回复" in ticket  # the timeline


async def test_an_order_waiting_for_a_unit_that_returned_the_ticket_is_closed_when_another_unit_gets_it(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        number, waiting = await _order(rt, 1, ISSUED)
        _, answered = await _order(rt, 2, ISSUED)
        kept_number, kept = await _order(rt, 3, ISSUED)  # dispatched again to the same unit: its order stands
        await supervision.respond_order(rt, User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT,
                                                 department=UNIT),
                                        answered, "已安排人员现场处理，正在协调。")
        async with store.db.session() as s:  # both units returned their tickets (退单) and the router chose again
            await s.execute(update(tickets).values(state="returned"))
            ids = dict((await s.execute(select(tickets.c.number, tickets.c.ticket_id))).all())
        new_lead, same = UnitRef(code="S-01-03", name="解放路街道"), UnitRef(code=UNIT, name="市城市管理委员会")
        items = [(Envelope.wrap(p, ticket_id=ids[n], producer="router"), p) for n in ids
                 for p in [TicketAssigned(number=n, kind="complaint", lead=same if n == kept_number else new_lead,
                                          reason=RoutingReason(method="reroute"), attempt=2)]]
        async with store.transaction() as tx:
            await handlers.assigned_many(tx, items, rt.state["tracker.clocks"])

        closed = await _order_row(rt, waiting)
        assert closed.closed_at is not None and closed.closed_by == "system"
        assert closed.closing_note == "工单已改派至 解放路街道，本督办单随之销号"
        assert (await _order_row(rt, answered)).closed_at is None  # answered: the office closes it
        assert (await _order_row(rt, kept)).closed_at is None
        assert await _escalate(rt, ESCALATED) == 1  # the order on the ticket its unit has again
        async with store.db.session() as s:
            said = (await s.execute(select(timeline.c.summary).where(
                timeline.c.ticket_id == ids[number], timeline.c.event_type == "SupervisionClosed"))).scalars().all()
            trail = (await s.execute(select(store.tables.audit.c.details).where(
                store.tables.audit.c.action == "SupervisionClosed"))).scalars().all()
        assert said == [f"督办单 {waiting} 办结销号：工单已改派至 解放路街道，本督办单随之销号"]
        assert [(d["order_no"], d["reason"], d["to_unit"]) for d in trail] == [(waiting, "reassigned", "S-01-03")]
    finally:
        await _dispose(rt)

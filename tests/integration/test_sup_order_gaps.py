"""Supervision orders (督办单) whose unit no longer owes the answer.

A unit that returns its ticket (退单) no longer handles, or even sees, it until the router or a dispatcher gives
it out again: an order still waiting for that unit's answer is not escalated or nagged meanwhile, and the office
sees why. The office may close (销号) an unanswered order whose ticket is finished or whose unit no longer holds
it, giving a reason instead of typing an answer in the unit's place; the closure is audited like any other.

Orders are made as the system makes them (timers.order_supervision); instants are Beijing times of November 2026.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import re
import uuid

import httpx
import pytest
from sqlalchemy import delete, event, func, select, update

from jiesu.errors import ApiError
from jiesu.identity import User
from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, TicketMerged, UnitRef, utcnow
from services.tracker import handlers, supervision
from services.tracker.store import notifications, supervision_orders, ticket_units, tickets, timeline
from services.tracker.timers import order_supervision
from tests.integration.test_tracker_escalation import (
    BEIJING,
    ESCALATED,
    FRIDAY_DUE,
    ISSUED,
    TUESDAY_DUE,
    UNIT,
    WORKING_DAYS,
    _dispose,
    _escalate,
    _finish_ticket,
    _migrated_runtime,
    _order,
    _order_row,
    _row_of,
)

STAFF = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=UNIT)
OFFICE = User(id=2, username="sup", display_name="督查室", role=Role.SUPERVISOR)
OTHER = UnitRef(code="S-01-03", name="解放路街道")


async def _return(rt, number: str) -> None:
    """The unit hands the ticket back (退单), through the unit's own action."""
    await rt.state["tracker"].return_ticket(STAFF, number, "other_unit", "该路段属开发区管辖，应由开发区管委会处理")


async def _dispatch_again(rt, number: str, lead: UnitRef) -> None:
    """The router gives the returned ticket out again (TicketAssigned, as the tracker consumes it)."""
    store = rt.store("tracker")
    async with store.db.session() as s:
        ticket_id = await s.scalar(select(tickets.c.ticket_id).where(tickets.c.number == number))
    p = TicketAssigned(number=number, kind="complaint", lead=lead, reason=RoutingReason(method="reroute"), attempt=2)
    async with store.transaction() as tx:
        await handlers.assigned_many(tx, [(Envelope.wrap(p, ticket_id=ticket_id, producer="router"), p)],
                                     rt.state["tracker.clocks"])


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_an_order_is_not_escalated_while_the_ticket_its_unit_returned_waits_and_is_once_the_unit_has_it_again(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        returned_number, returned = await _order(rt, 1, ISSUED)
        co_number, co_handled = await _order(rt, 2, ISSUED)
        await _return(rt, returned_number)
        # Another unit leads the second ticket now and UNIT helps (协办): UNIT still holds it, so its order binds it.
        # Written by hand: the system never makes this state. A signed-for ticket is re-dispatched only after a
        # return, and the re-dispatch (TicketAssigned) closes UNIT's waiting order even when UNIT stays on as
        # co-handler (handlers._close_orders_of_former_units).
        async with store.db.session() as s:
            ticket_id = await s.scalar(select(tickets.c.ticket_id).where(tickets.c.number == co_number))
            await s.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                lead_code=OTHER.code, lead_name=OTHER.name, co_handlers=[{"code": UNIT, "name": "市城市管理委员会"}]))
            await s.execute(delete(ticket_units).where(ticket_units.c.ticket_id == ticket_id))
            await s.execute(ticket_units.insert().values([dict(ticket_id=ticket_id, unit_code=OTHER.code, role="lead"),
                                                          dict(ticket_id=ticket_id, unit_code=UNIT, role="co")]))

        assert await _escalate(rt, ESCALATED) == 1
        waiting = await _order_row(rt, returned)
        assert (waiting.level, waiting.escalated_at, waiting.due_at, waiting.closed_at) == (
            "normal", None, FRIDAY_DUE, None)
        assert (await _order_row(rt, co_handled)).escalated_at == ESCALATED
        async with store.db.session() as s:
            nagged = (await s.execute(select(notifications.c.number).where(
                notifications.c.kind == "reminder"))).scalars().all()
            escalated = (await s.execute(select(timeline.c.data).where(
                timeline.c.event_type == "SupervisionEscalated"))).scalars().all()
        assert nagged == [co_number] and [e["order_no"] for e in escalated] == [co_handled]
        assert await _escalate(rt, TUESDAY_DUE + dt.timedelta(days=3)) == 0  # days in the dispatch queue: still not

        # Dispatched back to the same unit: the order stands (it is that unit's) and binds the unit again.
        await _dispatch_again(rt, returned_number, UnitRef(code=UNIT, name="市城市管理委员会"))
        later = TUESDAY_DUE + dt.timedelta(days=4)
        assert await _escalate(rt, later) == 1
        again = await _order_row(rt, returned)
        assert (again.level, again.escalated_at, again.closed_at) == ("key", later, None)
    finally:
        await _dispose(rt)


class _ReturnedBeforeTheClaim:
    """The tracker's store, but the unit returns the ticket between escalation's look for work and its claim:
    the claim must re-check that the unit still holds the ticket, not trust the look."""

    def __init__(self, rt, number: str) -> None:
        self.rt = rt
        self.number = number

    @property
    def db(self):
        return self.rt.store("tracker").db

    @contextlib.asynccontextmanager
    async def transaction(self):
        await _return(self.rt, self.number)
        async with self.rt.store("tracker").transaction() as tx:
            yield tx


async def test_an_order_whose_ticket_is_returned_after_the_look_for_work_is_not_claimed(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number, order_no = await _order(rt, 1, ISSUED)
        store = _ReturnedBeforeTheClaim(rt, number)
        assert await supervision.escalate_overdue_orders(store, rt.state["tracker.clocks"], WORKING_DAYS,
                                                         now=ESCALATED) == 0
        order = await _order_row(rt, order_no)
        assert (order.level, order.escalated_at, order.due_at) == ("normal", None, FRIDAY_DUE)
    finally:
        await _dispose(rt)


async def test_the_office_closes_an_unanswered_order_with_a_reason_once_the_unit_no_longer_owes_the_answer(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        finished_number, finished = await _order(rt, 1, ISSUED)
        await _finish_ticket(rt, finished_number, "closed")  # 办结 after the return visit, the order never answered
        returned_number, returned = await _order(rt, 2, ISSUED)
        await _return(rt, returned_number)
        _, in_hand = await _order(rt, 3, ISSUED)

        # The unit still holds an open ticket: its answer comes first, whatever the office writes.
        with pytest.raises(ApiError) as refused:
            await supervision.close_order(rt, OFFICE, in_hand, "工单已办结")
        assert (refused.value.status, refused.value.code) == (409, "order_unanswered")
        assert "尚未回复" in refused.value.zh and (await _order_row(rt, in_hand)).closed_at is None
        # No answer to accept, so the reason is required.
        with pytest.raises(ApiError) as bare:
            await supervision.close_order(rt, OFFICE, finished, "  ")
        assert (bare.value.status, bare.value.code) == (422, "closing_reason_required")
        assert (await _order_row(rt, finished)).closed_at is None

        await supervision.close_order(rt, OFFICE, finished, "工单已办结")
        await supervision.close_order(rt, OFFICE, returned, " 已改派 ")
        for order_no, note in ((finished, "工单已办结"), (returned, "已改派")):
            order = await _order_row(rt, order_no)
            assert (order.closed_by, order.closing_note, order.responded_at) == ("sup", note, None)
            assert order.closed_at is not None
        with pytest.raises(ApiError) as twice:
            await supervision.close_order(rt, OFFICE, finished, "工单已办结")
        assert twice.value.code == "order_closed"

        audit = store.tables.audit
        async with store.db.session() as s:
            said = (await s.execute(select(timeline.c.summary).where(
                timeline.c.event_type == "SupervisionClosed").order_by(timeline.c.id))).scalars().all()
            rows = (await s.execute(select(audit).where(audit.c.action == "SupervisionClosed")
                                    .order_by(audit.c.id))).all()
        assert said == [f"督办单 {finished} 办结销号（单位未回复）：工单已办结",
                        f"督办单 {returned} 办结销号（单位未回复）：已改派"]
        base = {"by": "sup", "unit_code": UNIT, "level": "normal", "due_at": FRIDAY_DUE.astimezone(dt.UTC).isoformat()}
        details = [a.details for a in rows]
        for d in details:  # SQLite hands back UTC instants, PostgreSQL the session's zone: compare the instant
            d["due_at"] = dt.datetime.fromisoformat(d["due_at"]).astimezone(dt.UTC).isoformat()
        assert details == [
            {**base, "order_no": finished, "reason": "ticket_finished", "ticket_state": "closed",
             "note_sha256": _sha("工单已办结")},
            {**base, "order_no": returned, "reason": "ticket_returned", "ticket_state": "returned",
             "note_sha256": _sha("已改派")}]
        assert [a.ticket_id for a in rows] == [(await _order_row(rt, o)).ticket_id for o in (finished, returned)]
    finally:
        await _dispose(rt)


async def _as_returned(rt, number: str, state: str) -> None:
    """What a return (退单) leaves, its orders released as the return releases them, without its event (the live
    router would dispatch the ticket again at once)."""
    async with rt.store("tracker").transaction() as tx:
        s = tx.session
        ticket_id = await s.scalar(select(tickets.c.ticket_id).where(tickets.c.number == number))
        await s.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
            state=state, lead_code=None, lead_name=None, co_handlers=[], reply_due=None))
        await s.execute(delete(ticket_units).where(ticket_units.c.ticket_id == ticket_id))
        await handlers.release_orders(tx, ticket_id)


async def test_the_orders_page_says_why_an_order_waits_and_offers_to_close_it_with_a_reason(live):
    rt = live.runtime
    now = utcnow()
    day = f"{now.astimezone(BEIJING):%Y%m%d}"
    returned_number, returned = await _order(rt, 1, now - dt.timedelta(days=10), day=day)
    await _as_returned(rt, returned_number, "dispatching")  # a second return: in the dispatch queue
    finished_number, finished = await _order(rt, 2, now - dt.timedelta(days=10), day=day)
    await _finish_ticket(rt, finished_number, "merged")
    _, in_hand = await _order(rt, 3, now, day=day)  # not due yet, its unit holds the ticket
    await _escalate(rt)
    assert (await _order_row(rt, returned)).escalated_at is None

    office = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        overdue = (await client.get("/tracker/sup/orders", params={"tab": "overdue"})).text
        everything = (await client.get("/tracker/sup/orders", params={"tab": "all"})).text
        waiting = _row_of(overdue, returned)
        assert "逾期未回复" in waiting and "工单已退回，待重新派单，不再升级" in waiting
        assert "工单已结束，不再升级" in _row_of(overdue, finished)
        for order_no in (returned, finished):  # a reason to choose or type, required
            assert re.search(rf'action="/tracker/sup/orders/{order_no}/close".*?<input name="note" '
                             r'list="order-close-reasons"[^>]* required', _row_of(everything, order_no))
        assert '<datalist id="order-close-reasons">' in everything and '<option value="已改派">' in everything
        held = _row_of(everything, in_hand)
        assert "/close" not in held and "不再升级" not in held and "代录回复" in held

        r = await client.post(f"/tracker/sup/orders/{returned}/close",
                              data={"note": "", "back": "/tracker/sup/orders?tab=all"}, follow_redirects=False)
        assert "须写明理由" in httpx.URL(r.headers["location"]).params["refused"]
        r = await client.post(f"/tracker/sup/orders/{in_hand}/close", data={"note": "已改派"}, follow_redirects=False)
        refused = httpx.URL(r.headers["location"])  # shown as what went wrong, where the order still is
        assert "尚未回复" in refused.params["refused"] and "done" not in refused.params
        assert refused.path == "/tracker/sup/orders"
        shown = (await client.get(r.headers["location"])).text
        assert re.search(r'<div class="msg err" role="alert">[^<]*尚未回复', shown) and 'class="msg ok"' not in shown
        r = await client.post(f"/tracker/sup/orders/{returned}/close", data={"note": "已改派"}, follow_redirects=False)
        assert f"督办单 {returned} 已销号" in httpx.URL(r.headers["location"]).params["done"]

        closed = _row_of((await client.get("/tracker/sup/orders", params={"tab": "closed"})).text, returned)
        ticket = (await client.get(f"/tracker/tickets/{returned_number}")).text
    assert "已销号" in closed and "已改派" in closed and "未回复" in closed
    assert f"督办单 {returned} 办结销号（单位未回复）：已改派" in ticket  # the ticket's timeline

    store = rt.store("tracker")
    async with store.db.session() as s:
        trail = (await s.execute(select(store.tables.audit).where(
            store.tables.audit.c.action == "SupervisionClosed"))).all()
    assert [(a.actor, a.details["order_no"], a.details["reason"], a.details["ticket_state"]) for a in trail] == [
        ("sup", returned, "ticket_returned", "dispatching")]
    assert "已改派" not in json.dumps(trail[0].details, ensure_ascii=False)


async def test_the_office_cannot_order_supervision_of_a_ticket_with_no_unit_to_press_or_nothing_left_to_do(
        any_settings):
    """An order presses a unit for an answer: on a ticket waiting for a dispatcher after a return nobody would see
    it, and a finished ticket owes nothing more. Both are refused with the reason, and nothing is written."""
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    tracker = rt.state["tracker"]
    try:
        returned_number, _ = await _order(rt, 1, ISSUED)
        await _return(rt, returned_number)
        closed_number, _ = await _order(rt, 2, ISSUED)
        await _finish_ticket(rt, closed_number, "closed")
        running_number, _ = await _order(rt, 3, ISSUED)
        async with store.db.session() as s:
            before = (await s.execute(select(func.count()).select_from(supervision_orders))).scalar_one()
        for number, code, zh in ((returned_number, "no_unit", "尚无承办单位"), (closed_number, "ticket_finished", "无需督办")):
            with pytest.raises(ApiError) as refused:
                await tracker.supervise(OFFICE, number, "key", "群众反映强烈")
            assert (refused.value.status, refused.value.code) == (409, code) and zh in refused.value.zh
        async with store.db.session() as s:
            assert (await s.execute(select(func.count()).select_from(supervision_orders))).scalar_one() == before
        await tracker.supervise(OFFICE, running_number, "key", "群众反映强烈")  # a unit holds it: ordered
        async with store.db.session() as s:
            assert (await s.execute(select(func.count()).select_from(supervision_orders))).scalar_one() == before + 1
    finally:
        await _dispose(rt)


async def test_re_dispatching_tickets_never_supervised_reads_no_supervision_orders(any_settings):
    """改派 of tickets that never had an order: nothing to close or bind again, so not a statement about orders, while
    a supervised ticket moved in the same run still has its former unit's order closed."""
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        plain = {uuid.uuid4(): f"12345-20261118-{i:06d}" for i in (1, 2)}
        async with store.transaction() as tx:  # dispatched once, and returned by the unit (退单), never supervised
            for ticket_id, number in plain.items():
                await tx.session.execute(tickets.insert().values(
                    ticket_id=ticket_id, number=number, state="returned", kind="complaint", urgency="normal",
                    confidential=False, co_handlers=[], assigned_at=ISSUED, updated_at=ISSUED))
        supervised_number, order_no = await _order(rt, 3, ISSUED)
        await _return(rt, supervised_number)
        async with store.db.session() as s:
            supervised_id = await s.scalar(select(tickets.c.ticket_id).where(tickets.c.number == supervised_number))

        read = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if "tracker_supervision_orders" in statement:
                read.append(statement)

        async def dispatch(numbers: dict) -> None:
            items = [(Envelope.wrap(p, ticket_id=ticket_id, producer="router"), p)
                     for ticket_id, number in numbers.items()
                     for p in [TicketAssigned(number=number, kind="complaint", lead=OTHER,
                                              reason=RoutingReason(method="reroute"), attempt=2)]]
            engine = store.db.engine.sync_engine
            event.listen(engine, "before_cursor_execute", capture)
            try:
                async with store.transaction() as tx:
                    await handlers.assigned_many(tx, items, rt.state["tracker.clocks"])
            finally:
                event.remove(engine, "before_cursor_execute", capture)

        await dispatch(plain)
        assert read == []
        async with store.db.session() as s:
            leads = (await s.execute(select(tickets.c.lead_code).where(tickets.c.ticket_id.in_(list(plain))))).scalars()
            assert set(leads) == {OTHER.code}

        await dispatch({supervised_id: supervised_number, **dict(list(plain.items())[:1])})
        assert read and (await _order_row(rt, order_no)).closed_by == "system"
    finally:
        await _dispose(rt)


@pytest.mark.postgres
async def test_an_order_given_while_the_unit_returns_the_ticket_is_not_made_on_the_returned_ticket(pg_settings):
    """The office orders supervision (督办, from the ledger) while the unit's return (退单) is committing: the order
    waits for the return and then finds no unit to press, rather than being made unreleased on a returned ticket,
    where escalation, which reads only `released_at`, would press the unit that no longer has it."""
    rt = await _migrated_runtime(pg_settings)
    store = rt.store("tracker")
    try:
        number, first = await _order(rt, 1, ISSUED)
        async with store.transaction() as returning:  # the return, holding the ticket as a return does
            ticket_id = await returning.session.scalar(select(tickets.c.ticket_id).where(tickets.c.number == number)
                                                       .with_for_update())
            await returning.session.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                state="returned", lead_code=None, lead_name=None))
            await handlers.release_orders(returning, ticket_id)
            ordering = asyncio.create_task(supervision.order_many(rt, OFFICE, [number], "key", "群众反映强烈"))
            await asyncio.sleep(0.5)  # the ledger's order reads the ticket meanwhile
        assert await ordering == ([], [], [])
        async with store.db.session() as s:
            orders = (await s.execute(select(supervision_orders.c.order_no, supervision_orders.c.released_at)
                                      .where(supervision_orders.c.ticket_id == ticket_id))).all()
        assert [(o.order_no, o.released_at is not None) for o in orders] == [(first, True)]
    finally:
        await _dispose(rt)


@pytest.mark.postgres
@pytest.mark.parametrize("change", ["re_dispatched", "merged"])
async def test_an_order_given_while_its_ticket_is_re_dispatched_or_merged_is_closed_or_released_with_it(pg_settings,
                                                                                                      change):
    """The office orders supervision of a ticket (holding it, as an order does) while the router re-dispatches it to
    another unit (改派) or merges it as a duplicate: the change waits for the order and then deals with it as with
    any order it finds, closed for the unit that lost the ticket or released on the merged ticket, never left
    binding a unit that no longer has the ticket."""
    rt = await _migrated_runtime(pg_settings)
    store = rt.store("tracker")
    ticket_id, number = uuid.uuid4(), "12345-20261118-000001"
    try:
        async with store.transaction() as tx:  # dispatched to UNIT, not signed for yet, never supervised
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number=number, state="assigned", kind="complaint", urgency="normal",
                confidential=False, lead_code=UNIT, lead_name="市城市管理委员会", co_handlers=[], assigned_at=ISSUED,
                updated_at=ISSUED))
            await tx.session.execute(ticket_units.insert().values(ticket_id=ticket_id, unit_code=UNIT, role="lead"))

        async def changing() -> None:
            if change == "re_dispatched":
                await _dispatch_again(rt, number, OTHER)
                return
            into = TicketMerged(number=number, into_ticket_id=uuid.uuid4(), into_number="12345-20261101-000001",
                                similarity=0.97)
            async with store.transaction() as tx:
                await handlers.on_merged(tx, Envelope.wrap(into, ticket_id=ticket_id, producer="router"), into)

        async with store.transaction() as ordering:
            row = (await ordering.session.execute(select(tickets).where(tickets.c.ticket_id == ticket_id)
                                                  .with_for_update())).one()
            order_no = await order_supervision(ordering, rt.state["tracker.clocks"], row, level="key", by="sup",
                                               reason="群众反映强烈", now=ISSUED)
            router = asyncio.create_task(changing())
            await asyncio.sleep(0.5)  # the router's run reads the ticket meanwhile
        await router
        order = await _order_row(rt, order_no)
        if change == "re_dispatched":
            assert (order.closed_by, order.closing_note) == ("system", f"工单已改派至 {OTHER.name}，本督办单随之销号")
        else:
            assert order.released_at is not None and order.closed_at is None
        assert await _escalate(rt, ESCALATED) == 0
    finally:
        await _dispose(rt)

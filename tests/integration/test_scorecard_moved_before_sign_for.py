"""A dispatcher's move (改派) before sign-for ends the unit's holding; a deadline it let pass stays its own.

A ticket assigned to unit A, left unsigned past its sign-for deadline (签收期限) and then moved by a dispatcher to
unit B, left A's cohort with its clocks: A's late sign-for (响应率), and its reply deadline if that had passed too
(按时办结率), counted nowhere. The move now keeps A's clocks in the unit log (kind "moved"), as a return does, and
the scorecard counts them as it counts a late return (`stats.late_return_conditions`). A move before the deadline
counts nothing against A: it was not A's doing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from schemas.events import UnitRef, utcnow
from services.tracker import stats
from services.tracker.store import tickets, unit_log
from tests.integration.test_sup_order_gaps import _dispatch_again
from tests.integration.test_tracker_escalation import BEIJING, UNIT, _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import _assigned, _id, _row

ZJW = UnitRef(code="M-ZJW", name="市住房和城乡建设委员会")
HOUR = dt.timedelta(hours=1)


async def _figures(rt, unit: str, now: dt.datetime):
    """The unit's scorecard row this month (None when it has none), and what its lists of 应签收 and 应答复 hold,
    (item_kind, item_sign_for_due) a row."""
    period = stats.period_of(stats.this_month(BEIJING, now), BEIJING)
    async with rt.store("tracker").db.reading() as s:
        scores, total = await stats.scorecard(s, period, now)
        lists = {}
        for key in ("response", "on_time"):
            items = stats.figure_items(key, "denominator", period, now, unit).subquery()
            lists[key] = sorted((await s.execute(select(items.c.item_kind, items.c.item_sign_for_due))).all())
    return next((x for x in scores if x.unit_code == unit), None), total, lists


async def _past(rt, number: str, *, sign_for: dt.timedelta, reply: dt.timedelta | None = None) -> None:
    """The unit's deadlines run out while it holds the ticket: `sign_for` (and `reply`) ago."""
    values = {"sign_for_due": utcnow() - sign_for}
    if reply is not None:
        values["reply_due"] = utcnow() - reply
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == number).values(**values))


async def test_a_unit_that_let_its_sign_for_and_reply_deadlines_pass_keeps_them_when_a_dispatcher_moves_the_ticket(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _assigned(rt, 71)
        await _past(rt, number, sign_for=3 * HOUR, reply=HOUR)
        held = await _row(rt, number)
        await _dispatch_again(rt, number, ZJW)  # 改派 before A signed for it
        assert (await _row(rt, number)).lead_code == ZJW.code

        async with rt.store("tracker").db.reading() as s:
            moved = (await s.execute(select(unit_log).where(unit_log.c.ticket_id == _id(number),
                                                             unit_log.c.kind == "moved"))).one()
        assert (moved.unit_code, moved.assigned_at, moved.sign_for_due, moved.signed_for_at, moved.reply_due) == (
            UNIT, held.assigned_at, held.sign_for_due, None, held.reply_due)

        a, total, lists = await _figures(rt, UNIT, utcnow())
        assert a.counts["response"] == (0, 1) and a.counts["on_time"] == (0, 1)
        assert a.assigned == 0 and a.counts["return"] == (0, 1)  # moved, not returned: no 退单
        assert lists["response"] == lists["on_time"] == [("late_move", held.sign_for_due)]
        # The ticket is B's now, with B's own clocks: an obligation of each, so the total counts it for both.
        b, _, b_lists = await _figures(rt, ZJW.code, utcnow())
        assert b.assigned == 1 and b.counts["response"] == (0, 0)  # B's sign-for time has not come
        assert total.counts["response"] == (0, 1) and total.counts["on_time"] == (0, 1)
    finally:
        await _dispose(rt)


async def test_a_unit_that_let_only_its_sign_for_deadline_pass_is_late_to_sign_for_and_not_to_reply(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _assigned(rt, 72)
        await _past(rt, number, sign_for=HOUR)
        await _dispatch_again(rt, number, ZJW)
        a, _, lists = await _figures(rt, UNIT, utcnow())
        assert a.counts["response"] == (0, 1) and a.counts["on_time"] == (0, 0)
        assert [kind for kind, _ in lists["response"]] == ["late_move"] and lists["on_time"] == []
    finally:
        await _dispose(rt)


async def test_a_move_before_the_sign_for_deadline_counts_nothing_against_the_unit(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _assigned(rt, 73)  # its sign-for deadline is hours away
        await _dispatch_again(rt, number, ZJW)
        async with rt.store("tracker").db.reading() as s:  # the holding is kept, in time
            assert await s.scalar(select(func.count()).select_from(unit_log).where(
                unit_log.c.ticket_id == _id(number), unit_log.c.kind == "moved")) == 1
        a, _, lists = await _figures(rt, UNIT, utcnow())
        assert a.counts["response"] == (0, 0) and a.counts["on_time"] == (0, 0)
        assert lists == {"response": [], "on_time": []}
    finally:
        await _dispose(rt)


async def test_the_scorecard_counts_a_move_the_unit_log_keeps_as_it_counts_a_return_and_lists_each_by_its_kind(
        any_settings):
    """The definition, on unit log rows as a move and a return keep them: late ones count in the unit's 应签收 and
    应答复 in the period it was given the ticket, each listed as what it was (超时后被改派, 超时后退单); one moved
    before its deadlines counts nowhere, nor does a move in the 退单率."""
    rt = await _migrated_runtime(any_settings)
    try:
        now = utcnow()
        given = stats.period_of(stats.this_month(BEIJING, now), BEIJING).start + dt.timedelta(minutes=1)
        held = {"assigned_at": given, "sign_for_due": given + 2 * HOUR, "signed_for_at": None,
                "reply_due": given + 4 * HOUR}
        rows = [("late-move", "moved", given + 5 * HOUR, held),  # both deadlines passed, unsigned
                ("in-time-move", "moved", given + HOUR, held),  # before either deadline
                ("late-return", "returned", given + 5 * HOUR, {**held, "signed_for_at": given + 3 * HOUR})]
        async with rt.store("tracker").db.session() as s:
            await s.execute(unit_log.insert(), [
                {"ticket_id": _id(name), "unit_code": UNIT, "kind": kind, "at": at, **clocks}
                for name, kind, at, clocks in rows])
            await s.execute(unit_log.insert(), [{"ticket_id": _id(name), "unit_code": UNIT, "kind": "assigned",
                                                 "at": given} for name, *_ in rows])
        a, _, lists = await _figures(rt, UNIT, now)
        assert a.counts["response"] == (0, 2) and a.counts["on_time"] == (0, 2)
        assert a.counts["return"] == (1, 3)
        assert [kind for kind, _ in lists["response"]] == ["late_move", "late_return"]
        assert stats.ITEM_KINDS["late_move"] == "超时后被改派"
    finally:
        await _dispose(rt)

"""The key supervision order (重点督办) a 重办 brings from the KEY_ORDER_DISSATISFIED-th dissatisfied visit stacks no
second order on one still awaiting its unit's answer, as no order from the office or the timers does.

Over a waiting 一般督办 the key order goes out (pressing harder is allowed); over a waiting 重点督办 none does, and the
timeline says which order still waits. The 重办 leaves that order as it was: same date, still binding its unit. Once
it is answered, the next dissatisfied visit orders again. On SQLite and PostgreSQL, through the tracker's actions.
"""

from __future__ import annotations

from sqlalchemy import select, update

from schemas.events import utcnow
from services.tracker.actions import KEY_ORDER_DISSATISFIED
from services.tracker.store import supervision_orders, timeline
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import OFFICE, STAFF, VISITOR, _assigned, _id
from tests.integration.test_tracker_workflow import REPLY


async def _orders(rt, number: str) -> list:
    """The ticket's orders, oldest first."""
    o = supervision_orders.c
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(supervision_orders).where(o.ticket_id == _id(number))
                                .order_by(o.created_at, o.order_no))).all()


async def _lines(rt, number: str, event_type: str) -> list[str]:
    async with rt.store("tracker").db.session() as s:
        return list((await s.execute(select(timeline.c.summary).where(
            timeline.c.ticket_id == _id(number), timeline.c.event_type == event_type)
            .order_by(timeline.c.at, timeline.c.id))).scalars())


async def _redo(tracker, number: str) -> int:
    """The unit replies and the visit finds the citizen dissatisfied for its doing (承办单位原因): one more 重办. How
    many dissatisfied visits the ticket has had."""
    await tracker.reply(STAFF, number, REPLY)
    row = await tracker.record_visit(VISITOR, number, "dissatisfied", department_caused=True, comment="晚上仍在施工")
    assert row.state == "reopened"
    return row.dissatisfied_count


async def _answer(rt, order_no: str) -> None:
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == order_no).values(
            response="已约谈施工单位并限期整改", responded_at=utcnow(), responded_by="cgw"))


async def test_a_redo_orders_no_key_order_over_the_one_an_earlier_redo_made_and_the_timeline_says_why(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 1)
        await tracker.sign_for(STAFF, number)
        for _ in range(KEY_ORDER_DISSATISFIED):
            count = await _redo(tracker, number)
        (key,) = await _orders(rt, number)
        assert key.level == "key" and key.reason == f"第 {count} 次回访不满意"

        count = await _redo(tracker, number)  # the key order still awaits its answer
        (still,) = await _orders(rt, number)
        assert still.order_no == key.order_no
        # The 重办 leaves it as it was: its own date, and binding the unit (escalation presses it when late).
        assert (still.due_at, still.released_at, still.escalated_at) == (key.due_at, None, None)
        assert await _lines(rt, number, "SupervisionNotOrdered") == [
            f"第 {count} 次回访不满意：已有重点督办单 {key.order_no} 待回复，不再另发"]
        assert len(await _lines(rt, number, "SupervisionOrdered")) == 1
        assert len(await _lines(rt, number, "TicketReopened")) == count  # the 重办 itself went ahead

        await _answer(rt, key.order_no)  # answered, it no longer stands in the way
        count = await _redo(tracker, number)
        orders = await _orders(rt, number)
        assert [(o.level, o.reason) for o in orders] == [("key", key.reason), ("key", f"第 {count} 次回访不满意")]
        assert len(await _lines(rt, number, "SupervisionNotOrdered")) == 1
    finally:
        await _dispose(rt)


async def test_over_a_normal_order_awaiting_its_answer_the_redo_s_key_order_goes_out(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 2)
        await tracker.sign_for(STAFF, number)
        await tracker.supervise(OFFICE, number, "normal", "超期风险较大")
        for _ in range(KEY_ORDER_DISSATISFIED):
            count = await _redo(tracker, number)
        orders = await _orders(rt, number)
        assert [(o.level, o.reason) for o in orders] == [("normal", "超期风险较大"),
                                                        ("key", f"第 {count} 次回访不满意")]
        assert all(o.responded_at is None and o.closed_at is None for o in orders)  # both wait: key over normal
        assert await _lines(rt, number, "SupervisionNotOrdered") == []
    finally:
        await _dispose(rt)


async def test_over_a_key_order_the_office_made_the_first_redo_to_order_one_makes_none(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 3)
        await tracker.sign_for(STAFF, number)
        await tracker.supervise(OFFICE, number, "key", "群众反映强烈")
        for _ in range(KEY_ORDER_DISSATISFIED):
            count = await _redo(tracker, number)
        (office,) = await _orders(rt, number)
        assert (office.level, office.by) == ("key", OFFICE.username)
        assert await _lines(rt, number, "SupervisionNotOrdered") == [
            f"第 {count} 次回访不满意：已有重点督办单 {office.order_no} 待回复，不再另发"]
    finally:
        await _dispose(rt)

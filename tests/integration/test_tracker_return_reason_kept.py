"""A return (退单) keeps its reason in its timeline line's data, and the unit's 已退单 tab reads it from there.

The line's summary (退单（label）：words) is for people to read and stays as it was; the tab no longer parses it,
but for return lines written before the data kept the reason. On SQLite and PostgreSQL, through the tracker's
actions.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from schemas.events import utcnow
from services.tracker.store import timeline, unit_log
from tests.integration.test_co_handler_inbox import STREET, STREET_STAFF, _id
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_returned_tab import _held, _returned, _returns


async def _return_line(rt, number: str):
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(timeline).where(timeline.c.ticket_id == _id(number),
                                                       timeline.c.event_type == "TicketReturned"))).one()


async def test_a_return_keeps_its_reason_code_and_words_in_its_timeline_line_and_says_them_as_before(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _held(rt, "12345-20261124-000001", STREET)
        await _returned(rt, STREET_STAFF, number, "other_unit", "积水系市政排水管网堵塞，应由市水务局处理")
        line = await _return_line(rt, number)
        assert line.data == {"by": STREET_STAFF.username, "state": "returned", "reason_code": "other_unit",
                             "reason": "积水系市政排水管网堵塞，应由市水务局处理"}
        assert line.summary == "退单（属于其他单位职责）：积水系市政排水管网堵塞，应由市水务局处理"
    finally:
        await _dispose(rt)


async def test_the_returned_tab_reads_the_reason_from_the_line_s_data_not_its_summary(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _held(rt, "12345-20261124-000001", STREET)
        await _returned(rt, STREET_STAFF, number, "unclear", "地址不清（只写了“东门”）：无法核实")
        async with rt.store("tracker").db.session() as s:  # the summary worded otherwise: the data still says why
            await s.execute(update(timeline).where(timeline.c.ticket_id == _id(number),
                                                   timeline.c.event_type == "TicketReturned")
                            .values(summary="街道退回工单，请改派"))
        (r,), _, _ = await _returns(rt, STREET_STAFF)
        assert (r["reason_label"], r["reason"]) == ("诉求不明确", "地址不清（只写了“东门”）：无法核实")
    finally:
        await _dispose(rt)


async def test_a_return_line_written_before_the_data_kept_the_reason_is_read_from_its_summary(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _held(rt, "12345-20261124-000001", STREET)
        at = utcnow() - dt.timedelta(days=3)
        async with rt.store("tracker").transaction() as tx:  # as return_ticket wrote them before
            await tx.session.execute(unit_log.insert().values(ticket_id=_id(number), unit_code=STREET.code,
                                                              kind="returned", at=at))
            await tx.session.execute(timeline.insert().values(
                ticket_id=_id(number), event_id=_id(f"{number}/returned"), event_type="TicketReturned", at=at,
                actor="jfl（S-01-03）", summary="退单（不属于本单位职责）：应由物业公司负责",
                data={"by": STREET_STAFF.username, "state": "returned"}))
        (r,), _, _ = await _returns(rt, STREET_STAFF)
        assert (r["reason_label"], r["reason"]) == ("不属于本单位职责", "应由物业公司负责")
    finally:
        await _dispose(rt)

"""The supervision table of the monthly bulletin (月通报 七、督办情况) counts each order in the month it was
issued, under the level the office issued it at: an order issued in October as 一般督办 and escalated in
November (逾期升级, which makes it 重点督办) stays under 一般督办 in October's bulletin, and is shown again in
the row of the escalated. October's figures of orders issued do not move when November escalates them.

Orders are issued and escalated the way the system does it (timers.order_supervision, escalate_overdue_orders),
on SQLite and PostgreSQL; the instants are Beijing wall-clock times of 2026.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from jiesu.identity import User
from schemas.enums import Role
from services.tracker import reports, stats, supervision
from tests.integration.test_tracker_escalation import _dispose, _escalate, _migrated_runtime, _order, _order_row

BEIJING = ZoneInfo("Asia/Shanghai")
ISSUED = dt.datetime(2026, 10, 28, 10, 0, tzinfo=BEIJING)  # Wednesday: due Friday 30 October 17:30
BEFORE = dt.datetime(2026, 11, 2, 8, 0, tzinfo=BEIJING)  # Monday morning: overdue, not escalated yet
ESCALATED = dt.datetime(2026, 11, 2, 9, 0, tzinfo=BEIJING)  # the escalation: due Wednesday 4 November 17:30
AFTER = dt.datetime(2026, 11, 3, 12, 0, tzinfo=BEIJING)


async def _supervision_table(rt, kind: str, period: str, now: dt.datetime) -> dict[str, list[int]]:
    report = await reports.build(rt.store("tracker").db, kind, stats.period_of(period, BEIJING), now, BEIJING)
    table = report.table("supervision")
    assert table.note == reports.ORDERS_NOTE
    return {row[0]: row[1:] for row in table.rows}


async def test_an_order_escalated_the_next_month_stays_under_the_level_it_was_issued_at(any_settings):
    rt = await _migrated_runtime(any_settings)
    staff = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")
    try:
        _, normal_escalated = await _order(rt, 1, ISSUED, day="20261028")
        _, key_escalated = await _order(rt, 2, ISSUED, level="key", day="20261028")
        _, answered = await _order(rt, 3, ISSUED, day="20261028")
        await supervision.respond_order(rt, staff, answered, "已派人修复路灯")
        await _order(rt, 4, ESCALATED, day="20261102")  # November's own: never in October's figures

        before = await _supervision_table(rt, "monthly", "2026-10", BEFORE)
        assert before == {"重点督办": [1, 0, 0, 1], "一般督办": [2, 1, 0, 1], "合计": [3, 1, 0, 2],
                          "其中：逾期升级": [0, 0, 0, 0]}

        assert await _escalate(rt, ESCALATED) == 2
        assert (await _order_row(rt, normal_escalated)).level == "key"  # what it is now: 重点督办
        assert (await _order_row(rt, key_escalated)).level == "key"

        after = await _supervision_table(rt, "monthly", "2026-10", AFTER)
        # Issued as they were: one key, two normal; both escalated ones are due again on Wednesday.
        assert after == {"重点督办": [1, 0, 0, 0], "一般督办": [2, 1, 0, 0], "合计": [3, 1, 0, 0],
                         "其中：逾期升级": [2, 0, 0, 0]}
        assert all(before[level][0] == after[level][0] for level in ("重点督办", "一般督办", "合计"))

        november = await _supervision_table(rt, "monthly", "2026-11", AFTER)
        assert november["一般督办"] == [1, 0, 0, 0] and november["重点督办"] == [0, 0, 0, 0]
        # The year is put together from its months' facts (the roll-up): the same rule.
        year = await _supervision_table(rt, "annual", "2026", AFTER)
        assert year == {"重点督办": [1, 0, 0, 0], "一般督办": [3, 1, 0, 0], "合计": [4, 1, 0, 0],
                        "其中：逾期升级": [2, 0, 0, 0]}
    finally:
        await _dispose(rt)

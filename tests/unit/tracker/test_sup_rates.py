"""The department scorecard's rates, against a month of tickets whose outcomes are worked out by hand."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from jiesu.db import Database
from jiesu.migrate import upgrade
from services.tracker import stats
from services.tracker.store import tickets
from tests.unit.tracker import sup_month as m

TZ = ZoneInfo("Asia/Shanghai")
OCTOBER = stats.period_of("2026-10", TZ)


@pytest.fixture
async def db(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'tracker.db'}"
    await asyncio.to_thread(upgrade, "tracker", url)
    database = Database(url)
    async with database.session() as s:
        await m.seed(s)
    yield database
    await database.dispose()


async def _card(db, unit=None):
    async with db.session() as s:
        return await stats.scorecard(s, OCTOBER, m.NOW, unit)


def test_a_month_is_its_local_calendar_month_in_utc():
    assert OCTOBER.start.isoformat() == "2026-09-30T16:00:00+00:00"
    assert OCTOBER.end.isoformat() == "2026-10-31T16:00:00+00:00"
    assert stats.period_of("2026", TZ).label == "2026年"
    with pytest.raises(ValueError):
        stats.period_of("2026-13", TZ)


async def test_unit_a_rates_match_the_hand_computed_figures(db):
    scores, _ = await _card(db)
    a = next(s for s in scores if s.unit_code == m.A)
    # Cohort: a1–a8 and a11. a9 is merged, a10 answered directly, r1 now B's, s1 assigned in September.
    assert a.assigned == 9
    assert a.counts["response"] == (7, 9)  # a2 signed late, a7 never signed (time passed)
    assert a.counts["on_time"] == (5, 8)  # a2 late, a6 and a7 overdue unanswered; a8 paused is not counted
    assert a.counts["redo"] == (1, 6)  # a3 reopened, out of the six replied
    assert a.counts["visit"] == (4, 6)  # a4 unreachable and a11 (awaiting the call) not visited
    # Visits in October: a1 满意, a2 基本满意, a3 不满意(单位原因) then 满意, a5 不满意(非单位原因), s1 满意;
    # a4's three unreachable attempts and a11's unverified online rating do not count.
    assert a.counts["satisfaction"] == (4, 6)
    assert a.counts["resolution"] == (5, 6)
    assert a.counts["return"] == (1, 11)  # r1 returned, out of 11 assignments in October
    assert a.handling_hours == pytest.approx((24 + 200 + 48 + 10 + 30 + 8) / 6)
    # Too few tickets and visits to carry a score (stats.MIN_SAMPLE): listed, not ranked.
    assert a.score is None and a.rank is None
    assert a.unranked_reason == f"样本不足：应签收 9 件、参评回访 6 件，须各不少于 {stats.MIN_SAMPLE} 件"


async def test_unit_b_counts_the_ticket_a_returned_and_ignores_what_is_not_yet_due(db):
    scores, total = await _card(db)
    b = next(s for s in scores if s.unit_code == m.B)
    assert b.unit_name == m.B_NAME and b.assigned == 3
    assert b.counts["response"] == (2, 2)  # b3's sign-for time has not come
    assert b.counts["on_time"] == (1, 1)  # b2 and b3 are still within their time
    assert b.counts["satisfaction"] == (1, 1) and b.counts["return"] == (0, 3)
    # One rated visit and two tickets due for sign-for rank nobody: B is listed after A (by volume), unranked.
    assert [s.unit_code for s in scores] == [m.A, m.B] and (scores[0].rank, b.rank) == (None, None)
    assert b.score is None and b.unranked_reason.startswith("样本不足：应签收 2 件、参评回访 1 件")
    assert total.assigned == 12
    assert total.counts["response"] == (9, 11) and total.counts["satisfaction"] == (5, 7)
    assert total.counts["return"] == (1, 14)


async def test_each_figure_lists_exactly_what_it_counts(db):
    scores, total = await _card(db)
    async with db.session() as s:
        for score in [*scores, total]:
            unit = None if score.total else score.unit_code
            for key, (n, d) in score.counts.items():
                for part, expected in (("numerator", n), ("denominator", d)):
                    items = stats.figure_items(key, part, OCTOBER, m.NOW, unit).subquery()
                    listed = await s.scalar(select(func.count()).select_from(items))
                    assert listed == expected, (score.unit_code, key, part)  # visits and returns one row each
        items = stats.figure_items("response", "numerator", OCTOBER, m.NOW, m.A).subquery()
        numbers = {r for r in (await s.execute(select(tickets.c.number).join(
            items, items.c.ticket_id == tickets.c.ticket_id))).scalars()}
    assert m.number_of("a2") not in numbers and m.number_of("a1") in numbers


async def test_a_year_put_together_from_its_months_equals_the_year_counted_at_once(db):
    from services.tracker import rollup

    year = stats.period_of("2026", TZ)
    async with db.session() as s:
        direct, direct_total = await stats.scorecard(s, year, m.NOW)
    combined, combined_total = await rollup.period_scores(db, year, m.NOW, TZ)
    again, _ = await rollup.period_scores(db, year, m.NOW, TZ)  # now from the stored roll-up
    as_dicts = [x.as_dict() for x in direct]
    assert [x.as_dict() for x in combined] == as_dicts == [x.as_dict() for x in again]
    assert combined_total.counts == direct_total.counts
    assert combined_total.handling_hours == pytest.approx(direct_total.handling_hours)

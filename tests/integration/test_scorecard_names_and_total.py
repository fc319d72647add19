"""The scorecard names every unit it can, says why when it cannot, and says what the city total adds up.

- A unit that returned every ticket before the tracker kept unit names (tracker_code_names) was shown by its code.
  The timeline named it with each assignment (派单至 <name>, the unit's code beside it): tracker_0018 names such
  units from there. One that nothing names keeps its code, with a tooltip saying why (`stats.UNNAMED_UNIT`).
- The city total (全市合计) counts a late return or move for the unit that had the ticket and the ticket again for
  the unit that got it next: each assignment is an obligation. The page says so under the total row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from jiesu.db import Database
from jiesu.migrate import upgrade
from schemas.enums import Role
from services.tracker import stats
from services.tracker.store import code_names, timeline, unit_log
from tests.unit.tracker import sup_month as m

KFQ, KFQ_NAME = "M-KFQ", "开发区管理委员会"  # named only by the timeline
JTW, JTW_NAME = "M-JTW", "市交通委员会"  # already kept: stays as kept
GONE = "M-GONE"  # nothing names it
TZ = ZoneInfo("Asia/Shanghai")


def _held(ticket_id, unit: str, at: dt.datetime) -> list[dict]:
    """A unit given a ticket and returning it (as the unit log kept returns before tracker_0016: no clocks)."""
    return [{"ticket_id": ticket_id, "unit_code": unit, "kind": "assigned", "at": at},
            {"ticket_id": ticket_id, "unit_code": unit, "kind": "returned", "at": at + dt.timedelta(hours=1)}]


def _entry(ticket_id, at: dt.datetime, summary: str, data: dict) -> dict:
    return {"ticket_id": ticket_id, "event_id": uuid.uuid4(), "event_type": "TicketAssigned", "at": at,
            "actor": "router", "summary": summary, "data": data}


async def test_a_unit_that_returned_every_ticket_before_names_were_kept_is_named_from_its_assignments(
        unmigrated_settings):
    url = unmigrated_settings.database_url("tracker")
    await asyncio.to_thread(upgrade, "tracker", url, "tracker_0017")
    db = Database(url)
    at = m.T0
    first, second, lost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with db.session() as s:
            await s.execute(unit_log.insert(), [*_held(first, KFQ, at), *_held(second, JTW, at + dt.timedelta(hours=2)),
                                                *_held(lost, GONE, at)])
            await s.execute(timeline.insert(), [
                _entry(first, at, "派单至 旧名称管委会（依据：规则 R-road）", {"lead": KFQ, "reason": {}}),
                _entry(first, at + dt.timedelta(minutes=5), f"派单至 {KFQ_NAME}，协办 {JTW_NAME}（依据：模型 v3（82%））",
                       {"lead": KFQ, "reason": {}}),
                # the re-route after its return names the next unit, not this one
                _entry(first, at + dt.timedelta(hours=2), "派单至 市交通委（依据：退单后改派）", {"lead": JTW, "reason": {}}),
                _entry(lost, at, "派单未生效（工单状态：merged）", {}),
            ])
            await s.execute(code_names.insert().values(code=JTW, name=JTW_NAME))
        await asyncio.to_thread(upgrade, "tracker", url)
        async with db.session() as s:
            kept = dict((await s.execute(select(code_names.c.code, code_names.c.name))).all())
            scores, _ = await stats.scorecard(s, stats.period_of("2026-10", TZ), m.NOW)
    finally:
        await db.dispose()
    assert kept == {KFQ: KFQ_NAME, JTW: JTW_NAME}  # the latest entry naming it; GONE has none
    named = {x.unit_code: (x.unit_name, x.named) for x in scores}
    assert named == {KFQ: (KFQ_NAME, True), JTW: (JTW_NAME, True), GONE: (GONE, False)}


async def test_the_scorecard_says_under_the_total_row_what_it_adds_up_and_why_a_unit_is_shown_by_its_code(live):
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
        await s.execute(unit_log.insert(), _held(uuid.uuid4(), GONE, m.T0))
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}, timeout=20) as client:
        html = (await client.get("/tracker/sup/scorecard", params={"period": "2026-10"})).text
    total_row = html.index('<tr class="total">')
    note = html.index(f'<tr class="total-note"><td colspan="12" class="muted" id="total-rule">{stats.TOTAL_DEFINITION}'
                      '</td></tr>')
    assert total_row < note < html.index("</tbody>")
    assert "每次派单各是一项责任" in stats.TOTAL_DEFINITION and "同一工单可计入多次" in stats.TOTAL_DEFINITION
    assert f'<dt>全市合计</dt><dd>{stats.TOTAL_DEFINITION}</dd>' in html
    assert f'<td class="unnamed" title="{stats.UNNAMED_UNIT}">{GONE}<span class="sub">名称未知</span></td>' in html
    assert f'<td>{m.A_NAME}<span class="sub">{m.A}</span></td>' in html  # a named unit as before

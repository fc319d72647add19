"""The bulletin (月通报 / 年度报告, 八、承办单位考评) says when it shows a unit by its code, as the scorecard does.

A unit the tracker knows by no name (it only returned tickets, and nothing named it: `stats.Score.named`) was listed
by its bare code, with no word on why. Its cell now reads "M-GONE（名称未知）" on the page, in the workbook, the CSV
and the JSON alike (one list, four renderings); the page's cell carries the reason as a tooltip and the table's note
says it (`stats.UNNAMED_UNIT`), so that the exports and the print say it too. A month where every unit is named
reads as before. On the hand-made October (tests/unit/tracker/sup_month.py).
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from zoneinfo import ZoneInfo

import httpx
from openpyxl import load_workbook

from jiesu.db import Database
from jiesu.migrate import upgrade
from schemas.enums import Role
from services.tracker import reports, stats
from services.tracker.store import unit_log
from tests.integration.test_scorecard_names_and_total import _held  # a unit given a ticket that returned it
from tests.unit.tracker import sup_month as m

TZ = ZoneInfo("Asia/Shanghai")
GONE = "M-GONE"  # nothing names it: it was given a ticket in October and returned it
SHOWN = f"{GONE}（名称未知）"


def _units(report: reports.Report) -> dict[str, list]:
    return {row[1]: row for row in report.table("units").rows}


async def test_a_unit_known_by_no_name_is_shown_by_its_code_marked_unknown_and_the_note_says_why(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'tracker.db'}"
    await asyncio.to_thread(upgrade, "tracker", url)
    database = Database(url)
    october = stats.period_of("2026-10", TZ)
    try:
        async with database.session() as s:
            await m.seed(s)
        named_only = await reports.build(database, "monthly", october, m.NOW, TZ)
        async with database.session() as s:
            await s.execute(unit_log.insert(), _held(uuid.uuid4(), GONE, m.T0))
        monthly = await reports.build(database, "monthly", october, m.NOW, TZ)
        annual = await reports.build(database, "annual", stats.period_of("2026", TZ), m.NOW, TZ)
    finally:
        await database.dispose()

    assert set(_units(named_only)) == {m.A_NAME, m.B_NAME}  # every unit named: as before
    assert stats.UNNAMED_UNIT not in named_only.table("units").note
    for report in (monthly, annual):  # the year adds up its months' facts: the same rule
        units = _units(report)
        assert set(units) == {m.A_NAME, m.B_NAME, SHOWN}, report.kind
        assert units[SHOWN][1].hint == stats.UNNAMED_UNIT and units[m.A_NAME][1].hint is None
        note = report.table("units").note
        assert note.endswith(stats.UNNAMED_UNIT) and note.count(stats.UNNAMED_UNIT) == 1


async def test_the_bulletins_page_and_exports_show_the_unnamed_unit_and_why(live):
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
        await s.execute(unit_log.insert(), _held(uuid.uuid4(), GONE, m.T0))
    sup = await live.user("sup", Role.SUPERVISOR)
    october = {"period": "2026-10"}
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}, timeout=20) as client:
        page = (await client.get("/tracker/sup/reports", params=october)).text
        data = (await client.get("/tracker/sup/reports/monthly.json", params=october)).json()
        text = (await client.get("/tracker/sup/reports/monthly.csv", params=october)).content.decode("utf-8-sig")
        book = load_workbook(io.BytesIO((await client.get("/tracker/sup/reports/monthly.xlsx", params=october)).content))

    # The page: the cell with the reason as its tooltip, the reason in the table's note for the print.
    units = page[page.index('id="t-units"'):]
    assert f'<td class="unnamed" title="{stats.UNNAMED_UNIT}">{SHOWN}</td>' in units
    assert f'<td class="">{m.A_NAME}</td>' in units  # a named unit as before, with no tooltip
    assert stats.UNNAMED_UNIT + "</p>" in units[:units.index("</section>")]
    # The exports: the same cell and the same note.
    table = next(t for t in data["tables"] if t["key"] == "units")
    assert SHOWN in [row[1] for row in table["rows"]] and table["note"].endswith(stats.UNNAMED_UNIT)
    rows = list(csv.reader(io.StringIO(text)))
    assert any(row[1:2] == [SHOWN] for row in rows) and [f"说明：{table['note']}"] in rows
    sheet = book["承办单位考评"]
    assert SHOWN in [row[1].value for row in sheet.iter_rows(min_row=3) if len(row) > 1]
    assert f"说明：{table['note']}" in [row[0].value for row in sheet.iter_rows(min_row=3)]

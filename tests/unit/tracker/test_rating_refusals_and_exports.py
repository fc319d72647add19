"""What a citizen's rating link answers once the visit has settled the ticket, and the bulletin's workbook with its
rates as numbers."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from jiesu.db import Database
from jiesu.migrate import upgrade
from services.tracker import reports, stats
from services.tracker.actions import rating_refused
from tests.unit.tracker import sup_month as m

TZ = ZoneInfo("Asia/Shanghai")
REPLIED_AT = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def _ticket(state: str, replied_at: dt.datetime | None = REPLIED_AT) -> SimpleNamespace:
    return SimpleNamespace(state=state, replied_at=replied_at)


def _link(made: dt.datetime, ended: dt.datetime | None = None) -> SimpleNamespace:
    """A rating link made with a reply at `made`, valid for a week unless `ended` (a close or 重办) came first."""
    return SimpleNamespace(expires_at=ended or made + dt.timedelta(days=7))


def test_a_link_of_a_ticket_waiting_for_its_visit_asks_for_the_rating():
    assert rating_refused(_ticket("replied"), _link(REPLIED_AT)) is None
    assert rating_refused(_ticket("replied")) is None  # the submit, which reads the ticket alone


def test_a_link_of_a_ticket_closed_after_its_visit_says_no_rating_is_needed():
    refusal = rating_refused(_ticket("closed"), _link(REPLIED_AT, ended=REPLIED_AT + dt.timedelta(hours=3)))
    assert (refusal.status, refusal.code) == (410, "rating_not_needed")
    assert refusal.zh == "该工单已在回访后办结，现在无需评价。感谢您的关注！"
    assert "closed after its return visit" in refusal.en


@pytest.mark.parametrize("state", ["reopened", "signed_for", "contacted", "waiting_citizen", "returned", "assigned"])
def test_a_link_of_a_ticket_sent_back_for_redo_says_it_is_being_handled_again(state):
    refusal = rating_refused(_ticket(state), _link(REPLIED_AT, ended=REPLIED_AT + dt.timedelta(days=1)))
    assert refusal.code == "rating_not_needed"
    assert refusal.zh.startswith("该工单已转回承办单位重新办理（重办），现在无需评价")
    assert "工单当前状态" not in refusal.zh


def test_the_link_of_an_earlier_reply_points_to_the_new_one():
    first_reply = REPLIED_AT - dt.timedelta(days=4)
    refusal = rating_refused(_ticket("replied"), _link(first_reply, ended=first_reply + dt.timedelta(days=1)))
    assert refusal.code == "rating_not_needed" and "请在“办理进度查询”页面凭工单编号和查询码评价" in refusal.zh


# --- the bulletin's workbook ------------------------------------------------------------------------------------


@pytest.fixture
async def october(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'tracker.db'}"
    await asyncio.to_thread(upgrade, "tracker", url)
    database = Database(url)
    async with database.session() as s:
        await m.seed(s)
    yield await reports.build(database, "monthly", stats.period_of("2026-10", TZ), m.NOW, TZ)
    await database.dispose()


def test_the_workbook_writes_every_rate_as_a_number_in_a_percent_format_and_the_csv_as_text(october):
    book = load_workbook(io.BytesIO(reports.to_xlsx(october)))
    units = book["承办单位考评"]
    header = [c.value for c in units[2]]
    a = next(row for row in units.iter_rows(min_row=3) if row[1].value == m.A_NAME)
    response, handling = a[header.index("响应率")], a[header.index("平均办理时长（小时）")]
    assert response.value == pytest.approx(7 / 9) and response.number_format == "0.0%"
    assert isinstance(handling.value, float) and handling.number_format == "General"
    assert a[header.index("综合得分")].value == "—"  # no score: the text stays

    overview = {row[0].value: row for row in book["受理总体情况"].iter_rows(min_row=3) if row[0].value}
    assert overview["受理诉求"][2].value == 1 and overview["受理诉求"][2].number_format == "0.0%"
    assert overview["已答复（含直接办结）"][2].value == pytest.approx(8 / 13)
    for sheet in book.worksheets[1:]:  # no rate left as text anywhere
        assert not [c.coordinate for row in sheet.iter_rows(min_row=3) for c in row
                    if isinstance(c.value, str) and c.value.endswith("%")], sheet.title

    text = reports.to_csv(october).decode("utf-8-sig")
    rows = {row[1]: row for row in csv.reader(io.StringIO(text)) if len(row) > 3}
    assert rows[m.A_NAME][3] == "77.8%"

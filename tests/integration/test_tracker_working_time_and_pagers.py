"""The department workbench and the office's lists over HTTP, as their users read them every day:

- The badge every open workbench polls every 20 s counts only what it shows, 已超期 and the unread notifications,
  with the inbox's own numbers: two queries for a unit (before, every tab's count, eight or so), one for the office.
- The time left to reply counts working time where the deadline does (the JSON API too), and says on hover what
  it counts to.
- An urgent call still owed while an extension request waits is overdue in red on the ticket page and the lists,
  as its timer chases it (`timers.awaiting_contact`).
- 待补充材料 until a date in the past is refused, in Chinese and English, and changes nothing; the form says so.
- The ticket list and the office's figure lists page back and on, like the inbox, keeping their filters.

The pages are served by the tracker alone, in this process, with nothing running beside them (no broker, no timers,
no delivery): every statement its database runs during a request is the request's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from html import unescape

import httpx
import pytest
from sqlalchemy import event, select, update

from jiesu.errors import ApiError
from jiesu.migrate import upgrade_all
from jiesu.runtime import Runtime, load_spec
from jiesu.web import create_app
from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.queries import working_time_left
from services.tracker.store import tickets, timeline
from tests.conftest import DEMO_PASSWORD, copy_migrated
from tests.integration.test_co_handler_inbox import CGW, STREET, _count, _tickets
from tests.integration.test_contact_while_extension_pending import CALL_AND_EXTENSION
from tests.integration.test_inbox_paging_and_unit_name import _assign_many, _pager
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import STAFF, _assigned, _id, _later_working_day, _row
from tests.integration.test_tracker_workflow import bearer
from tests.pages import action_form


class TrackerApp:
    """The tracker's pages and API in this process, and its runtime."""

    def __init__(self, app) -> None:
        self.app = app

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime

    async def client(self, username: str, role: Role, department: str | None = None) -> httpx.AsyncClient:
        """A client logged in (by API token) as a new user of `role`."""
        identity = self.runtime.identity
        await identity.create_user(username, DEMO_PASSWORD, role, department=department, display_name=username)
        token = await identity.create_token(username, "test")
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://jiesu.test",
                                 headers=bearer(token))


@pytest.fixture
async def pages(sqlite_settings, migrated_sqlite) -> TrackerApp:
    copy_migrated(sqlite_settings, migrated_sqlite)
    await asyncio.to_thread(upgrade_all, sqlite_settings)
    app = create_app(lambda: Runtime.create(sqlite_settings, ["tracker"], bootstrap="unused:9092"),
                     load_spec("tracker").routers, start=False, prepare=True)
    async with app.router.lifespan_context(app):
        yield TrackerApp(app)


def _local_today(rt) -> dt.date:
    return utcnow().astimezone(rt.state["tracker.clocks"].calendar.timezone).date()


class _Statements:
    """The SQL statements the tracker's database runs inside the `with` block."""

    def __init__(self, rt) -> None:
        self.engine = rt.store("tracker").db.engine.sync_engine
        self.seen: list[str] = []

    def _capture(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.seen.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._capture)
        return self.seen

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._capture)


def _badge(html: str) -> tuple[int, int]:
    """The badge's 超期 and 通知 numbers."""
    overdue, unread = re.findall(r'<span class="badge[^"]*"[^>]*>(\d+)</span>', html)
    return int(overdue), int(unread)


def _unread(inbox: str) -> int:
    """The inbox's unread notifications, as its panel's heading counts them (none shown when there are none)."""
    found = re.search(r'<h2[^>]*>通知 (?:<span class="badge">(\d+)</span>)?', inbox)
    return int(found.group(1) or 0)


# --- the badge ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("username", "role", "unit", "queries"), [
    ("jfl", Role.DEPARTMENT, STREET.code, 2),  # leads one overdue ticket and co-handles another, which is not its own
    ("sup", Role.SUPERVISOR, None, 1),  # every unit's; the office has no notifications
], ids=["unit", "office"])
async def test_the_badge_shows_the_inboxs_numbers_and_runs_a_query_for_each_alone(pages, username, role, unit,
                                                                                  queries):
    await _tickets(pages.runtime)
    async with await pages.client(username, role, unit) as client:
        inbox = (await client.get("/tracker/inbox")).text
        with _Statements(pages.runtime) as ran:
            badge = (await client.get("/tracker/badge")).text
    assert _badge(badge) == (_count(inbox, "已超期"), _unread(inbox))
    assert _badge(badge)[0] == (1 if unit else 2)
    assert len(ran) == queries, ran


# --- the time left, in working time --------------------------------------------------------------------------


async def test_the_api_and_the_inbox_count_a_complaints_time_left_in_working_time(pages):
    rt = pages.runtime
    calendar = rt.state["tracker.clocks"].calendar
    number = await _assigned(rt, 1)
    due = (await _row(rt, number)).reply_due
    async with await pages.client("cgw", Role.DEPARTMENT, STAFF.department) as client:
        before = utcnow()
        shown = (await client.get(f"/api/v1/tracker/tickets/{number}")).json()
        inbox = (await client.get("/tracker/inbox")).text
        after = utcnow()
    assert shown["time_left"] in {working_time_left(calendar, due, before), working_time_left(calendar, due, after)}
    local = due.astimezone(calendar.timezone)
    assert shown["time_left_note"].startswith(f"答复期限 {local:%Y-%m-%d %H:%M}（周")
    assert "按工作时间计" in shown["time_left_note"]
    cell = re.search(r'<td class="nowrap left [a-z]+" title="([^"]+)">([^<]+)<', inbox)
    assert cell and (unescape(cell.group(1)), cell.group(2)) == (shown["time_left_note"], shown["time_left"])


# --- the call an urgent matter owes, while an extension waits -------------------------------------------------


async def test_a_call_still_owed_while_an_extension_waits_is_overdue_on_the_ticket_page_and_the_lists(pages):
    rt = pages.runtime
    rt.state["tracker.clocks"].policy = CALL_AND_EXTENSION  # a 2-hour call, and a reply that may be extended
    tracker = rt.state["tracker"]
    number = await _assigned(rt, 2)
    await tracker.sign_for(STAFF, number)
    await tracker.request_extension(STAFF, number, "需协调住建部门联合执法",
                                    _later_working_day(rt, (await _row(rt, number)).reply_due))
    async with rt.store("tracker").db.session() as s:  # the two hours have passed, and no call was recorded
        await s.execute(update(tickets).where(tickets.c.number == number)
                        .values(contact_due=utcnow() - dt.timedelta(minutes=5)))
    unit = await pages.client("cgw", Role.DEPARTMENT, STAFF.department)
    async with unit, await pages.client("sup", Role.SUPERVISOR) as office:
        page = (await unit.get(f"/tracker/tickets/{number}")).text
        inbox = (await unit.get("/tracker/inbox")).text
        listed = (await office.get("/tracker/tickets", params={"state": "extension_requested"})).text
    assert '<div class="overdue" id="contact-clock"><small>联系市民期限（紧急）</small>' in page
    assert re.search(r'<span class="sub contact overdue">联系市民期限 [\d-]+ [\d:]+（已超时）</span>', inbox)
    assert '<span class="tag overdue" title="联系市民期限' in listed and ">联系超时</span>" in listed

    await tracker.contact(STAFF, number, "已电话联系市民，说明延期原因")  # called: nothing is owed any more
    async with await pages.client("cgw2", Role.DEPARTMENT, STAFF.department) as unit:
        page = (await unit.get(f"/tracker/tickets/{number}")).text
        inbox = (await unit.get("/tracker/inbox")).text
    assert '<div class="" id="contact-clock">' in page and "联系市民期限" not in inbox


# --- 待补充材料 until a date in the past -----------------------------------------------------------------------


async def test_waiting_on_the_citizen_until_yesterday_is_refused_and_changes_nothing(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    calendar = rt.state["tracker.clocks"].calendar
    try:
        number = await _assigned(rt, 3)
        await tracker.sign_for(STAFF, number)
        yesterday = calendar.end_of_working_day(_local_today(rt) - dt.timedelta(days=1))
        with pytest.raises(ApiError) as refused:
            await tracker.pause(STAFF, number, "waiting_citizen", "请市民补充漏水位置照片", yesterday)
        assert (refused.value.status, refused.value.code) == (422, "expected_until_past")
        assert "预计补充日期不能早于今天" in refused.value.zh and "in the past" in refused.value.en
        row = await _row(rt, number)
        assert (row.state, row.paused_at, row.resume_to) == ("signed_for", None, None)
        async with rt.store("tracker").db.session() as s:
            paused = (await s.execute(select(timeline).where(timeline.c.ticket_id == _id(number),
                                                             timeline.c.event_type == "ClockPaused"))).all()
        assert paused == []

        today = calendar.end_of_working_day(_local_today(rt))
        assert (await tracker.pause(STAFF, number, "waiting_citizen", "请市民补充漏水位置照片", today)).state == \
            "waiting_citizen"
    finally:
        await _dispose(rt)


async def test_the_wait_form_says_no_earlier_than_today_and_a_refusal_comes_back_with_what_was_typed(pages):
    rt = pages.runtime
    number = await _assigned(rt, 4)
    await rt.state["tracker"].sign_for(STAFF, number)
    today = _local_today(rt)
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    async with await pages.client("cgw", Role.DEPARTMENT, STAFF.department) as client:
        form = action_form((await client.get(f"/tracker/tickets/{number}")).text, "wait_citizen")
        assert f'name="expected_until" min="{today.isoformat()}"' in form and "不早于今天" in form
        r = await client.post(f"/tracker/tickets/{number}/do/wait_citizen",
                              data={"note": "请市民补充漏水位置照片", "expected_until": yesterday})
    assert r.status_code == 422
    shown = unescape(r.text)
    assert "未能暂停计时（待市民补充材料）：" in shown and "预计补充日期不能早于今天" in shown
    assert "The date the citizen is expected to supply the material (expected_until) is in the past" in shown
    form = action_form(shown, "wait_citizen")
    assert "请市民补充漏水位置照片</textarea>" in form and f'value="{yesterday}"' in form
    assert (await _row(rt, number)).state == "signed_for"


# --- the pagers -----------------------------------------------------------------------------------------------


async def test_the_ticket_list_pages_back_and_on_keeping_its_state_filter(pages):
    await _assign_many(pages.runtime, 57, CGW)
    async with await pages.client("sup", Role.SUPERVISOR) as client:
        first = _pager((await client.get("/tracker/tickets", params={"state": "assigned"})).text)
        second = _pager((await client.get("/tracker/tickets", params={"state": "assigned", "page": 2})).text)
        unfiltered = _pager((await client.get("/tracker/tickets")).text)
        none = _pager((await client.get("/tracker/tickets", params={"state": "closed"})).text)
    assert "第 1 / 2 页，共 57 件" in first and "上一页" not in first
    assert '<a href="?state=assigned&page=2" rel="next">下一页 →</a>' in first
    assert "第 2 / 2 页，共 57 件" in second and "下一页" not in second
    assert '<a href="?state=assigned&page=1" rel="prev">← 上一页</a>' in second
    assert '<a href="?state=&page=2" rel="next">下一页 →</a>' in unfiltered
    assert none == ""  # one page: the heading's 共 0 件 says it


async def test_a_figures_list_pages_back_and_on_keeping_its_period_measure_and_unit(pages):
    await _assign_many(pages.runtime, 101, CGW)
    params = {"measure": "assigned", "part": "denominator", "unit": CGW.code}
    async with await pages.client("sup", Role.SUPERVISOR) as client:
        first = unescape(_pager((await client.get("/tracker/sup/tickets", params=params)).text))
        second = unescape(_pager((await client.get("/tracker/sup/tickets", params=params | {"page": 2})).text))
    assert "第 1 / 2 页，共 101 件" in first and "上一页" not in first
    assert "第 2 / 2 页，共 101 件" in second and "下一页" not in second
    nexts, prevs = re.findall(r'href="\?([^"]+)" rel="next"', first), re.findall(r'href="\?([^"]+)" rel="prev"', second)
    for (link,), page in ((nexts, "2"), (prevs, "1")):
        kept = dict(pair.split("=", 1) for pair in link.split("&"))
        assert {k: kept[k] for k in ("measure", "part", "unit", "page")} == params | {"page": page}
        assert kept["period"]  # the month the list is of

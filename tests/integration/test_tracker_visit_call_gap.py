"""Unanswered return-visit calls (未接通) must be spread out before 联系不上 closes a ticket.

Through the real system: a second unanswered call within UNREACHABLE_CALL_GAP of the last is refused (409, Chinese
and English, saying from when the next call may be made in local time) by the API and by the visit page, and
changes nothing; a call the citizen answers is recorded at once; once the gap has passed the call is recorded. The
visit queue says when a ticket may be called again and lists it after the tickets that may be called now.
"""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from jiesu.web import localtime
from services.tracker.actions import UNREACHABLE_CALL_GAP
from services.tracker.store import return_visits, tickets, timeline
from tests.integration.test_tracker_workflow import REPLY, bearer, wait_out_the_call_gap
from tests.integration.test_visit_form_refusals import (  # noqa: F401 (desk is a fixture)
    desk, post_visit, replied_ticket, stored_visits, visitor_browser)


async def last_unanswered(live, number: str):
    async with live.runtime.store("tracker").db.session() as s:
        return await s.scalar(select(func.max(return_visits.c.at)).join(
            tickets, tickets.c.ticket_id == return_visits.c.ticket_id).where(
            tickets.c.number == number, return_visits.c.outcome == "unreachable"))


async def recorded_visits_in_timeline(live, number: str) -> int:
    async with live.runtime.store("tracker").db.session() as s:
        return await s.scalar(select(func.count()).select_from(timeline).join(
            tickets, tickets.c.ticket_id == timeline.c.ticket_id).where(
            tickets.c.number == number, timeline.c.event_type == "ReturnVisitRecorded"))


async def test_a_second_unanswered_call_within_the_gap_is_refused_saying_when_and_changes_nothing(desk, live):
    number = await replied_ticket(desk)
    first = await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    assert first["visit_attempts"] == 1
    last = await last_unanswered(live, number)

    error = (await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"}, status=409))["error"]
    assert error["code"] == "visit_call_too_soon"
    again = localtime(last + UNREACHABLE_CALL_GAP)
    assert error["zh"].startswith(f"上次未接通在 {localtime(last)}，两次未接通须间隔至少 2 小时：请于 {again} 以后再拨。")
    assert f"call again from {again} (local time)" in error["en"]
    t = await desk.wait(number, "replied")
    assert t["visit_attempts"] == 1 and t["outcome"] is None
    assert await stored_visits(live, number) == 1 and await recorded_visits_in_timeline(live, number) == 1

    await wait_out_the_call_gap(live, number)
    second = await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    assert second["state"] == "replied" and second["visit_attempts"] == 2


async def test_a_call_the_citizen_answers_is_recorded_a_minute_after_an_unanswered_one(desk, live):
    number = await replied_ticket(desk)
    await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    closed = await desk.act("visitor", number, "return-visit",
                            {"outcome": "dissatisfied", "department_caused": False, "comment": "噪音小了些"})
    assert closed["state"] == "closed" and closed["outcome"] == "dissatisfied"


async def test_a_redo_starts_the_calls_afresh_and_its_first_unanswered_call_is_not_held_back(desk, live):
    number = await replied_ticket(desk)
    await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    await desk.act("visitor", number, "return-visit",
                   {"outcome": "dissatisfied", "department_caused": True, "comment": "晚上仍在施工"})
    await desk.act("dept", number, "reply", {"reply": REPLY + "重办：已对施工单位立案处罚。"})
    r = await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    assert r["visit_attempts"] == 1  # though the first visit's unanswered call was only moments ago


async def test_the_visit_page_refuses_the_call_back_onto_the_form_with_the_time_to_call_again(desk, live):
    number = await replied_ticket(desk)
    await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    again = localtime(await last_unanswered(live, number) + UNREACHABLE_CALL_GAP)
    async with visitor_browser(live) as client:
        r = await post_visit(client, number, outcome="unreachable", comment="又没接")
    assert r.status_code == 409
    assert f"请于 {again} 以后再拨" in html.unescape(r.text)
    assert await stored_visits(live, number) == 1


async def test_the_queue_says_when_a_ticket_may_be_called_again_and_lists_it_after_those_callable_now(desk, live):
    waiting = await replied_ticket(desk)  # replied first: the earlier visit deadline, ahead in the queue until called
    other = await desk.post_ticket(subject="小区门口路灯不亮", description="小区门口的路灯坏了一个多星期，晚上很黑。",
                                   citizen={"name": "李娜", "phone": "13900139000"})
    await desk.act("dept", other["number"], "sign-for")
    await desk.act("dept", other["number"], "reply", {"reply": REPLY})
    callable_now = other["number"]
    await desk.act("visitor", waiting, "return-visit", {"outcome": "unreachable"})
    again = localtime(await last_unanswered(live, waiting) + UNREACHABLE_CALL_GAP)

    page = (await desk.client.get("/tracker/visits", headers=bearer(desk.tokens["visitor"]))).text
    rows = re.findall(r'<tr class="([^"]*)">\s*<td><a class="row-link" href="/tracker/visits/([^"]+)"', page)
    order = [n for _, n in rows if n in (waiting, callable_now)]
    assert order == [callable_now, waiting]
    row = page[page.index(f'href="/tracker/visits/{waiting}"'):]
    row = row[:row.index("</tr>")]
    assert "未接通 1 次" in row and f"{again} 后再拨" in row
    assert "后再拨" not in page[page.index(f'href="/tracker/visits/{callable_now}"'):].split("</tr>")[0]

    await wait_out_the_call_gap(live, waiting)
    page = (await desk.client.get("/tracker/visits", headers=bearer(desk.tokens["visitor"]))).text
    order = [n for n in re.findall(r'<a class="row-link" href="/tracker/visits/([^"]+)"', page)
             if n in (waiting, callable_now)]
    assert order == [waiting, callable_now] and "后再拨</span>" not in page

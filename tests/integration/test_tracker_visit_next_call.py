"""When the next unanswered return-visit call (未接通) may be recorded, said before anyone tries too soon.

The visit form says when the last call went unanswered and from when another may be recorded while the gap
(UNREACHABLE_CALL_GAP) still applies, and nothing once it has passed or before any call went unanswered. The API's
return-visit list gives each ticket's `next_call_at` (null when it may be called now) in the order of the visit
queue's page: those callable now first, then the others, the soonest first. Through the real system.
"""

from __future__ import annotations

import datetime as dt
import html
import re

from jiesu.web import localtime
from services.tracker.actions import UNREACHABLE_CALL_GAP
from tests.integration.test_tracker_visit_call_gap import last_unanswered
from tests.integration.test_tracker_workflow import REPLY, Desk, bearer, wait_out_the_call_gap
from tests.integration.test_visit_form_refusals import desk, replied_ticket  # noqa: F401 (desk is a fixture)


async def visit_page(desk: Desk, number: str) -> str:
    r = await desk.client.get(f"/tracker/visits/{number}", headers=bearer(desk.tokens["visitor"]))
    assert r.status_code == 200, r.text
    return html.unescape(r.text)


def next_call_line(last: dt.datetime) -> str:
    """What the form says after an unanswered call at `last`: the next one's time alone when it is the same day."""
    again = last + UNREACHABLE_CALL_GAP
    same_day = localtime(last, "%Y-%m-%d") == localtime(again, "%Y-%m-%d")
    return (f"上次未接通 {localtime(last, '%m-%d %H:%M')}，"
            f"{localtime(again, '%H:%M' if same_day else '%m-%d %H:%M')} 以后可再次登记未接通")


async def api_queue(desk: Desk) -> list[dict]:
    r = await desk.client.get("/api/v1/tracker/return-visits", headers=bearer(desk.tokens["visitor"]))
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_the_visit_form_says_from_when_the_next_unanswered_call_may_be_recorded_while_the_gap_applies(desk, live):
    number = await replied_ticket(desk)
    assert 'id="next-call"' not in await visit_page(desk, number)  # no call went unanswered yet

    await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    last = await last_unanswered(live, number)
    page = await visit_page(desk, number)
    line = re.search(r'<p id="next-call" class="warnbar">([^<]*)</p>', page)
    assert line and line.group(1).startswith(next_call_line(last))
    assert "市民接听了，可随时登记结果" in line.group(1)

    await wait_out_the_call_gap(live, number)
    assert 'id="next-call"' not in await visit_page(desk, number)


async def test_a_redo_s_visit_form_says_nothing_of_the_unanswered_calls_of_the_visit_before(desk, live):
    number = await replied_ticket(desk)
    await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
    await desk.act("visitor", number, "return-visit",
                   {"outcome": "dissatisfied", "department_caused": True, "comment": "晚上仍在施工"})
    await desk.act("dept", number, "reply", {"reply": REPLY + "重办：已对施工单位立案处罚。"})
    assert 'id="next-call"' not in await visit_page(desk, number)


async def test_the_api_s_visit_list_says_when_each_ticket_may_be_called_next_in_the_page_s_order(desk, live):
    waiting = await replied_ticket(desk)  # replied first: ahead in the queue until its call goes unanswered
    other = await desk.post_ticket(subject="小区门口路灯不亮", description="小区门口的路灯坏了一个多星期，晚上很黑。",
                                   citizen={"name": "李娜", "phone": "13900139000"})
    await desk.act("dept", other["number"], "sign-for")
    await desk.act("dept", other["number"], "reply", {"reply": REPLY})
    callable_now = other["number"]
    await desk.act("visitor", waiting, "return-visit", {"outcome": "unreachable"})
    last = await last_unanswered(live, waiting)

    items = {i["number"]: i for i in await api_queue(desk)}
    assert [n for n in items if n in (waiting, callable_now)] == [callable_now, waiting]
    assert dt.datetime.fromisoformat(items[waiting]["next_call_at"]) == last + UNREACHABLE_CALL_GAP
    assert items[callable_now]["next_call_at"] is None
    page = (await desk.client.get("/tracker/visits", headers=bearer(desk.tokens["visitor"]))).text
    assert list(items) == re.findall(r'<a class="row-link" href="/tracker/visits/([^"]+)"', page)  # its order

    await wait_out_the_call_gap(live, waiting)
    items = await api_queue(desk)
    assert [i["number"] for i in items if i["number"] in (waiting, callable_now)] == [waiting, callable_now]
    assert all(i["next_call_at"] is None for i in items)

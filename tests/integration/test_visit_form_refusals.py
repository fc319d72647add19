"""The return-visit operator's form (/tracker/visits/{number}), posted as a browser without script posts it.

A refused visit comes back to the visit form with the reason and with the outcome, the cause and the comment
still filled in, naming the visit page as its own address. A cause (承办单位原因) belongs only to 不满意: given
with any other outcome it is refused, by the page and by the API, and nothing is stored. Once recorded, the
queue says what followed: closed, sent back to the department, or how many calls are left before 联系不上
closes the ticket; the form warns before the call that would close it.
"""

from __future__ import annotations

import contextlib
import html
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from schemas.enums import Role
from services.tracker.actions import UNREACHABLE_ATTEMPTS
from services.tracker.store import return_visits, tickets
from tests.conftest import DEMO_PASSWORD
from tests.integration.test_tracker_workflow import REPLY, Desk, bearer, wait_out_the_call_gap

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
COMMENT = "晚上十一点以后还是有打桩声，孩子睡不着"


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        desk = Desk(live, client)
        await desk.as_("visitor", Role.VISITOR)
        yield desk


async def replied_ticket(desk: Desk) -> str:
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.act("dept", t["number"], "sign-for")
    await desk.act("dept", t["number"], "reply", {"reply": REPLY})
    return t["number"]


@contextlib.asynccontextmanager
async def visitor_browser(live):
    """The visitor logged in through the log-in form, as a browser without script."""
    async with httpx.AsyncClient(base_url=live.url, timeout=20, headers=BROWSER) as client:
        r = await client.post("/login", data={"username": "visitor", "password": DEMO_PASSWORD,
                                              "next": "/tracker/visits"})
        assert r.status_code == 303, r.text
        yield client


async def open_form(client: httpx.AsyncClient, number: str) -> tuple[str, str]:
    """The visit page's HTML and its form token."""
    r = await client.get(f"/tracker/visits/{number}")
    assert r.status_code == 200, r.text
    return r.text, re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


async def post_visit(client: httpx.AsyncClient, number: str, **fields: str) -> httpx.Response:
    _, token = await open_form(client, number)
    return await client.post(f"/tracker/tickets/{number}/do/visit", data={"csrf_token": token, **fields})


def done_message(r: httpx.Response) -> str:
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert urlsplit(location).path == "/tracker/visits"
    return parse_qs(urlsplit(location).query)["done"][0]


def checked(page: str, name: str) -> list[str]:
    return re.findall(rf'<input type="radio" name="{name}" value="([a-z_]+)"[^>]*\bchecked\b', page)


async def stored_visits(live, number: str) -> int:
    """How many return-visit results are stored for this ticket."""
    async with live.runtime.store("tracker").db.session() as s:
        return await s.scalar(select(func.count()).select_from(return_visits).where(
            return_visits.c.ticket_id.in_(select(tickets.c.ticket_id).where(tickets.c.number == number))))


async def test_a_dissatisfied_visit_without_a_cause_comes_back_to_the_visit_form_with_what_was_typed(desk, live):
    number = await replied_ticket(desk)
    async with visitor_browser(live) as client:
        r = await post_visit(client, number, outcome="dissatisfied", comment=COMMENT)
    assert r.status_code == 422
    page = r.text
    assert f"<title>回访 {number}" in page  # the visit form, not the department's ticket page
    assert f'action="/tracker/tickets/{number}/do/visit"' in page and "答复市民" not in page
    assert "未能登记回访结果" in page and "不满意时请选择是否为承办单位原因" in page
    assert "For a dissatisfied outcome say whether the department caused it" in page
    assert checked(page, "outcome") == ["dissatisfied"] and checked(page, "department_caused") == []
    assert f'<textarea id="comment" name="comment" rows="3">{COMMENT}</textarea>' in page
    assert f'data-page-url="/tracker/visits/{number}"' in page  # tracker.js shows the visit page's address
    assert (await desk.wait(number, "replied"))["outcome"] is None and await stored_visits(live, number) == 0


async def test_a_refused_cause_keeps_the_cause_chosen_so_the_operator_can_correct_it(desk, live):
    number = await replied_ticket(desk)
    async with visitor_browser(live) as client:
        r = await post_visit(client, number, outcome="satisfied", department_caused="yes", comment=COMMENT)
    assert r.status_code == 422
    assert "只有不满意时才选择是否为承办单位原因" in r.text and "Only a dissatisfied outcome" in r.text
    assert checked(r.text, "outcome") == ["satisfied"] and checked(r.text, "department_caused") == ["yes"]
    assert html.escape(COMMENT) in r.text
    assert await stored_visits(live, number) == 0


@pytest.mark.parametrize("outcome, caused", [("satisfied", True), ("basically_satisfied", False),
                                             ("unreachable", True)])
async def test_the_api_refuses_a_cause_given_with_any_outcome_but_dissatisfied_and_stores_nothing(desk, live,
                                                                                                 outcome, caused):
    number = await replied_ticket(desk)
    r = await desk.client.post(f"/api/v1/tracker/tickets/{number}/return-visit",
                               json={"outcome": outcome, "department_caused": caused},
                               headers=bearer(desk.tokens["visitor"]))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "cause_not_dissatisfied"
    assert error["zh"] == "只有不满意时才选择是否为承办单位原因" and error["en"].startswith("Only a dissatisfied")
    t = await desk.wait(number, "replied")
    assert t["outcome"] is None and t["visit_attempts"] == 0 and await stored_visits(live, number) == 0
    assert "ReturnVisitRecorded" not in [e["event_type"] for e in t["timeline"]]


async def test_unreachable_calls_say_how_many_are_left_and_the_form_warns_before_the_one_that_closes(desk, live):
    number = await replied_ticket(desk)
    async with visitor_browser(live) as client:
        page, _ = await open_form(client, number)
        assert 'id="attempts"' not in page  # no call yet: nothing to warn about
        for attempt in range(1, UNREACHABLE_ATTEMPTS):
            message = done_message(await post_visit(client, number, outcome="unreachable"))
            assert message == (f"工单 {number} 已登记：联系不上（第 {attempt} 次，共 {UNREACHABLE_ATTEMPTS} 次后按联系"
                               "不上办结），请另选时间再拨。")
            page, _ = await open_form(client, number)
            assert f"已联系不上 {attempt} 次（满 {UNREACHABLE_ATTEMPTS} 次按“联系不上”办结" in page
            last = attempt == UNREACHABLE_ATTEMPTS - 1
            assert ("这次再登记“联系不上”，工单即按“联系不上”办结" in page) is last
            assert (f"联系不上（第 {attempt + 1} 次，将办结）" in page) is last
            await wait_out_the_call_gap(live, number)
        r = await post_visit(client, number, outcome="unreachable")
        message = done_message(r)
        assert message == f"工单 {number} 已登记：联系不上（第 {UNREACHABLE_ATTEMPTS} 次），已按联系不上办结，不计入满意率。"
        shown = await client.get(r.headers["location"])
        assert f'<div class="msg ok" role="status">{message}</div>' in shown.text
    closed = await desk.wait(number, "closed")
    assert closed["outcome"] == "unreachable"


async def test_the_queue_says_a_dissatisfied_visit_went_back_to_the_department_and_a_satisfied_one_closed(desk,
                                                                                                         live):
    number = await replied_ticket(desk)
    async with visitor_browser(live) as client:
        message = done_message(await post_visit(client, number, outcome="dissatisfied", department_caused="yes",
                                                comment=COMMENT))
        reopened = await desk.wait(number, "reopened")
        assert message.startswith(f"工单 {number} 已登记：不满意（承办单位原因），已退回{reopened['lead']['name']}重办，"
                                  "答复期限 ")
        ticket_page = await client.get(f"/tracker/tickets/{number}")
        bar = re.search(r'<div class="bar">.*?</div>', ticket_page.text, re.S).group(0)
        assert bar.count("重办") == 1  # the state says it; no second tag beside it
        for path, who in (("/tracker/inbox", "dept"), (f"/tracker/sup/tickets?q={number}", "sup")):
            listed = await desk.client.get(path, headers={"Authorization": f"Bearer {desk.tokens[who]}"})
            row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{number}.*?</tr>", listed.text, re.S)
            assert row is not None and row.group(0).count("重办") == 1, (path, listed.status_code)

        await desk.act("dept", number, "reply", {"reply": REPLY + "重办：已对施工单位立案处罚。"})
        message = done_message(await post_visit(client, number, outcome="satisfied"))
        assert message == f"工单 {number} 已登记：满意，工单已办结。"
    assert (await desk.wait(number, "closed"))["outcome"] == "satisfied"


async def test_a_dissatisfied_visit_not_caused_by_the_department_says_the_ticket_is_closed(desk, live):
    number = await replied_ticket(desk)
    async with visitor_browser(live) as client:
        message = done_message(await post_visit(client, number, outcome="dissatisfied", department_caused="no"))
    assert message == f"工单 {number} 已登记：不满意（非承办单位原因），工单已办结。"
    assert (await desk.wait(number, "closed"))["outcome"] == "dissatisfied"

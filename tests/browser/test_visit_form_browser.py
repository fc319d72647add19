"""The return-visit operator's form in Chromium: what the page sends, and what comes back.

The cause question (承办单位原因) must be answered while 不满意 is chosen, and an answer left behind by switching
to another outcome is cleared and never sent. A refusal comes back onto the visit page's own address with the
outcome and the comment still there. Alt+1…4 choose the outcome. Before the call that would close a ticket as
联系不上 the form says so, and the queue then says what followed.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.tracker.actions import OUTCOME_LABELS, UNREACHABLE_ATTEMPTS
from services.tracker.store import return_visits, tickets
from tests.integration.test_tracker_workflow import wait_out_the_call_gap
from tests.integration.test_visit_form_refusals import desk, replied_ticket  # noqa: F401 (desk is a fixture)

pytestmark = pytest.mark.browser

COMMENT = "晚上十一点以后还是有打桩声"
FORM = "form[action$='/do/visit']"
ALT = 1  # the Alt bit of a CDP key event's modifiers


@pytest.fixture
async def visitor_page(live, browser, login):
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "visitor")
    yield page
    await context.close()
    assert errors == []


async def test_the_cause_is_required_for_dissatisfied_and_a_hidden_answer_is_never_sent(desk, live, visitor_page):
    page = visitor_page
    number = await replied_ticket(desk)
    await page.goto(f"{live.url}/tracker/visits/{number}")
    await page.check("input[name=outcome][value=dissatisfied]")
    assert await page.is_visible("#cause")
    await page.click("button:has-text('登记')")  # no cause chosen: the browser holds the form back
    assert await page.eval_on_selector("input[name=department_caused]", "r => r.validity.valueMissing")
    assert page.url.endswith(f"/tracker/visits/{number}")

    await page.check("input[name=department_caused][value=yes]")
    await page.check("input[name=outcome][value=satisfied]")  # changed their mind: the cause no longer applies
    assert not await page.is_visible("#cause")
    assert await page.eval_on_selector_all("input[name=department_caused]",
                                           "rs => rs.every(r => !r.checked && r.disabled)")
    await page.click("button:has-text('登记')")
    await page.wait_for_url("**/tracker/visits?done=*")
    assert await page.inner_text(".msg.ok") == f"工单 {number} 已登记：满意，工单已办结。"

    closed = await desk.wait(number, "closed")
    assert closed["outcome"] == "satisfied"
    assert "回访：满意" in [e["summary"] for e in closed["timeline"]]  # not 满意（承办单位原因）
    async with live.runtime.store("tracker").db.session() as s:
        caused = (await s.execute(select(return_visits.c.department_caused).join(
            tickets, tickets.c.ticket_id == return_visits.c.ticket_id).where(tickets.c.number == number))).scalars()
        assert list(caused) == [None]


async def test_a_refused_visit_comes_back_on_the_visit_page_with_the_outcome_and_comment(desk, live, visitor_page):
    page = visitor_page
    number = await replied_ticket(desk)
    await page.goto(f"{live.url}/tracker/visits/{number}")
    await page.check("input[name=outcome][value=dissatisfied]")
    await page.fill("#comment", COMMENT)
    # What a page without script sends (the cause is required only by tracker.js): the server refuses it.
    await page.eval_on_selector(FORM, "f => { f.noValidate = true; }")
    await page.click("button:has-text('登记')")
    await page.wait_for_selector(".msg.err")
    assert "未能登记回访结果：不满意时请选择是否为承办单位原因" in await page.inner_text(".msg.err")
    assert page.url == f"{live.url}/tracker/visits/{number}"  # the visit page's own address, not …/do/visit
    assert await page.is_checked("input[name=outcome][value=dissatisfied]")
    assert await page.input_value("#comment") == COMMENT
    assert await page.is_visible("#cause")

    await page.check("input[name=department_caused][value=yes]")
    await page.click("button:has-text('登记')")
    await page.wait_for_url("**/tracker/visits?done=*")
    reopened = await desk.wait(number, "reopened")
    assert f"已登记：不满意（承办单位原因），已退回{reopened['lead']['name']}重办" in await page.inner_text(".msg.ok")
    assert reopened["timeline"][-2]["summary"] == f"回访：不满意（承办单位原因）。{COMMENT}"


async def test_the_form_warns_before_the_unreachable_call_that_closes_the_ticket(desk, live, visitor_page):
    page = visitor_page
    number = await replied_ticket(desk)
    for _ in range(UNREACHABLE_ATTEMPTS - 1):
        await desk.act("visitor", number, "return-visit", {"outcome": "unreachable"})
        await wait_out_the_call_gap(live, number)
    await page.goto(f"{live.url}/tracker/visits/{number}")
    warning = await page.inner_text("#attempts.warnbar")
    assert f"已联系不上 {UNREACHABLE_ATTEMPTS - 1} 次" in warning
    assert "这次再登记“联系不上”，工单即按“联系不上”办结" in warning
    await page.check("input[name=outcome][value=unreachable]")
    await page.click("button:has-text('登记')")
    await page.wait_for_url("**/tracker/visits?done=*")
    assert await page.inner_text(".msg.ok") == (f"工单 {number} 已登记：联系不上（第 {UNREACHABLE_ATTEMPTS} 次），"
                                                "已按联系不上办结，不计入满意率。")
    assert (await desk.wait(number, "closed"))["outcome"] == "unreachable"


async def test_alt_and_a_digit_choose_the_outcome_without_the_mouse(desk, live, visitor_page):
    """Alt+1…4 (the radios' access keys, shown beside each outcome) pick 满意, 基本满意, 不满意, 联系不上 in turn; the
    cause question follows the choice as it does for a click."""
    page = visitor_page
    number = await replied_ticket(desk)
    await page.goto(f"{live.url}/tracker/visits/{number}")
    assert await page.eval_on_selector_all("input[name=outcome]", "rs => rs.every(r => !r.checked)")
    # Sent as Chromium gets Alt+digit from a keyboard: Playwright's keyboard.press("Alt+4") leaves out the key's text,
    # which is what an access key is matched by, so it would never reach one.
    cdp = await page.context.new_cdp_session(page)
    for digit, outcome in reversed(list(enumerate(OUTCOME_LABELS, start=1))):  # 4 first: not the order on the page
        key = {"modifiers": ALT, "key": str(digit), "code": f"Digit{digit}", "windowsVirtualKeyCode": 48 + digit,
               "unmodifiedText": str(digit)}
        await cdp.send("Input.dispatchKeyEvent", {"type": "keyDown", **key})
        await cdp.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})
        checked = await page.eval_on_selector_all("input[name=outcome]:checked", "rs => rs.map(r => r.value)")
        assert checked == [outcome], f"Alt+{digit}"
        assert await page.is_visible("#cause") == (outcome == "dissatisfied")
    assert page.url == f"{live.url}/tracker/visits/{number}"  # chosen, nothing sent



async def test_alt_and_a_digit_choose_the_outcome_when_the_key_carries_no_access_key(desk, live, visitor_page):
    """Firefox reaches an access key only with Alt+Shift, and macOS turns Alt+digit into another character; the page
    itself answers Alt+digit, so the keys shown beside each outcome are true everywhere, from the comment box too.
    Playwright's keyboard.press sends Alt+digit without the key's text, as those browsers do: no access key fires."""
    page = visitor_page
    number = await replied_ticket(desk)
    await page.goto(f"{live.url}/tracker/visits/{number}")
    await page.keyboard.press("Alt+2")
    assert await page.eval_on_selector_all("input[name=outcome]:checked", "rs => rs.map(r => r.value)") == [
        "basically_satisfied"]
    assert await page.evaluate("document.activeElement.value") == "basically_satisfied"

    await page.fill("#comment", COMMENT)
    await page.keyboard.press("Alt+3")  # typing the comment, the cause question follows
    assert await page.is_checked("input[name=outcome][value=dissatisfied]")
    assert await page.is_visible("#cause")
    await page.focus("#comment")
    await page.keyboard.press("Alt+4")
    assert await page.is_checked("input[name=outcome][value=unreachable]")
    assert not await page.is_visible("#cause")
    assert await page.input_value("#comment") == COMMENT
    assert page.url == f"{live.url}/tracker/visits/{number}"  # chosen, nothing sent

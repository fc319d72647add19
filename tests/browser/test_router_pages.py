"""A dispatcher clears the dispatch queue with the keyboard; a rule is tried on the rule page."""

import asyncio

import httpx
import pytest

from schemas.enums import Role

pytestmark = pytest.mark.browser

VAGUE = {"kind": "complaint", "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
         "citizen": {"name": "周先生", "phone": "13600002222"}}
LAMP = {"kind": "complaint", "subject": "路灯不亮", "description": "小区门口的路灯坏了一个多星期，晚上很黑，老人出门不安全。",
        "citizen": {"name": "吴女士", "phone": "13600003333"}, "location": {"district": "D-02"}}


async def _state(client, token, number):
    r = await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {token}"})
    return r.json() if r.status_code == 200 else {}


async def _post(client, token, body) -> str:
    r = await client.post("/api/v1/intake/tickets", json=body, headers={"Authorization": f"Bearer {token}"})
    return r.json()["number"]


async def _wait(client, token, number, state):
    for _ in range(200):
        ticket = await _state(client, token, number)
        if ticket.get("state") == state:
            return ticket
        await asyncio.sleep(0.05)
    raise AssertionError(f"{number} never reached {state}: {ticket}")


async def _queued(live, *bodies):
    """Tickets every one of which waits for a dispatcher, oldest first, with an operator's token."""
    live.runtime.state["router"].threshold = 1.01  # nothing is certain enough
    operator = await live.user("op", Role.OPERATOR)
    await live.user("disp", Role.DISPATCHER)
    async with httpx.AsyncClient(base_url=live.url) as client:
        numbers = [await _post(client, operator, body) for body in bodies]
        for number in numbers:
            await _wait(client, operator, number, "dispatching")
    return operator, numbers


async def test_dispatcher_clears_the_queue_with_the_keyboard(live, browser, login):
    operator, (water, vague) = await _queued(live, LAMP, VAGUE)
    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await browser.new_page()
        await login(page, live.url, "disp")
        assert page.url.endswith("/router/dispatch")  # the dispatcher's home
        first = page.locator("article.ticket.selected")
        assert water in await first.inner_text()  # oldest first, selected
        suggested = (await first.locator("button.suggestion").first.get_attribute("value"))
        async with page.expect_navigation():
            await page.keyboard.press("1")  # take the first suggestion
        assert await page.locator("article.ticket", has_text=water).count() == 0

        assert vague in await page.locator("article.ticket.selected").inner_text()
        await page.keyboard.press("/")
        await page.keyboard.type("M-CGW")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert await page.locator("article.ticket", has_text=vague).count() == 0

        taken = await _wait(client, operator, water, "assigned")
        assert taken["lead"]["code"] == suggested and taken["routing"]["method"] == "dispatcher"
        assert taken["category"]  # the suggestion's category came with it
        typed = await _wait(client, operator, vague, "assigned")
        assert typed["lead"]["code"] == "M-CGW"


async def gas_leak_on_the_rule_tester(live, browser, login):
    """The rule tester, as a dispatcher, filled with a smell of gas (a rule fires for it), not yet sent."""
    await live.user("disp", Role.DISPATCHER)
    page = await browser.new_page()
    await login(page, live.url, "disp")
    await page.goto(f"{live.url}/router/rules")
    await page.fill("input[name=subject]", "闻到燃气味")
    await page.fill("textarea[name=description]", "楼道里有很明显的燃气味，担心燃气泄漏。")
    return page


async def test_rule_page_shows_which_rule_fires_and_why(live, browser, login):
    page = await gas_leak_on_the_rule_tester(live, browser, login)
    await page.click("form[action=\"/router/rules\"] button[type=submit]")
    fired = page.locator("tr.fired")
    await fired.wait_for()
    text = await fired.inner_text()
    assert "命中" in text and "燃气" in text
    heading = await page.locator("#result h2").inner_text()
    assert "燃气" in heading


async def test_enter_on_the_selected_card_goes_to_its_unit_box_and_a_typed_name_is_understood(live, browser, login):
    operator, (lamp, vague) = await _queued(live, LAMP, VAGUE)
    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await browser.new_page()
        await login(page, live.url, "disp")
        focused = "document.activeElement.closest('article') && [document.activeElement.tagName," \
                  " document.activeElement.closest('article').innerText]"

        await page.keyboard.press("j")
        await page.keyboard.press("Enter")  # the unit box is empty: Enter goes there, nothing is sent
        tag, text = await page.evaluate(focused)
        assert tag == "INPUT" and vague in text and page.url.endswith("/router/dispatch")

        await page.keyboard.type("公安")  # 市公安局 or its 交通管理局?
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        card = page.locator("article.ticket.selected")
        assert vague in await card.inner_text()
        alert = await card.locator("[role=alert]").inner_text()
        assert "对应多个承办单位" in alert and "市公安局（M-GAJ）" in alert and "市公安局交通管理局（M-JGJ）" in alert
        tag, text = await page.evaluate(focused)  # back in the box with what was typed, to correct it
        assert tag == "INPUT" and vague in text
        assert await card.locator("input[data-units]").input_value() == "公安"

        await page.keyboard.type("局")
        await page.keyboard.press("Escape")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")  # the box holds a unit now: Enter on the card sends it
        assert await page.locator("article.ticket", has_text=vague).count() == 0
        assert (await _wait(client, operator, vague, "assigned"))["lead"]["code"] == "M-GAJ"

        lamp_card = page.locator("article.ticket", has_text=lamp)
        assert await lamp_card.locator("button.suggestion").count() > 0
        await page.keyboard.press("/")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")  # an empty box is not the first suggestion
        alert = await page.locator("article.ticket.selected [role=alert]").inner_text()
        assert "请采纳一条建议，或输入承办单位的名称或代码" in alert
        assert lamp in await page.locator("article.ticket.selected").inner_text()
        assert (await _state(client, operator, lamp))["state"] == "dispatching"


async def test_enter_in_an_empty_unit_box_without_the_script_sends_no_suggestion(live, browser, login):
    """With the page's script off, Enter in a text box presses the form's first submit button: that must not be
    suggestion 1, or an empty box would dispatch the ticket to it."""
    live.runtime.state["router"].threshold = 1.01
    operator = await live.user("op", Role.OPERATOR)
    await live.user("disp", Role.DISPATCHER)
    async with httpx.AsyncClient(base_url=live.url) as client:
        lamp = await _post(client, operator, {
            "kind": "complaint", "subject": "路灯不亮", "description": "小区门口的路灯坏了一个多星期，晚上很黑，老人出门不安全。",
            "citizen": {"name": "吴女士", "phone": "13600003333"}, "location": {"district": "D-02"}})
        await _wait(client, operator, lamp, "dispatching")

        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await login(page, live.url, "disp")
        card = page.locator("article.ticket", has_text=lamp)
        assert await card.locator("button.suggestion").count() > 0
        await card.locator("input[data-units]").focus()
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        alert = await page.locator("article.ticket", has_text=lamp).locator("[role=alert]").inner_text()
        assert "请采纳一条建议，或输入承办单位的名称或代码" in alert
        assert (await _state(client, operator, lamp))["state"] == "dispatching"

        await page.locator("article.ticket", has_text=lamp).locator("input[data-units]").fill("M-CGW")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")  # what was typed is sent
        assert (await _wait(client, operator, lamp, "assigned"))["lead"]["code"] == "M-CGW"
        await context.close()

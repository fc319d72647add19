"""A dispatcher clears the dispatch queue with the keyboard; a rule is tried on the rule page."""

import asyncio

import httpx
import pytest

from schemas.enums import Role

pytestmark = pytest.mark.browser

VAGUE = {"kind": "complaint", "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
         "citizen": {"name": "周先生", "phone": "13600002222"}}


async def _state(client, token, number):
    r = await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {token}"})
    return r.json() if r.status_code == 200 else {}


async def test_dispatcher_assigns_a_queued_ticket_with_the_keyboard(live, browser, login):
    operator = await live.user("op", Role.OPERATOR)
    await live.user("disp", Role.DISPATCHER)
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/tickets", json=VAGUE, headers={"Authorization": f"Bearer {operator}"})
        number = r.json()["number"]
        for _ in range(100):
            if (await _state(client, operator, number)).get("state") == "dispatching":
                break
            await asyncio.sleep(0.05)

        page = await browser.new_page()
        await login(page, live.url, "disp")
        assert page.url.endswith("/router/dispatch")  # the dispatcher's home
        card = page.locator("article.ticket", has_text=number)
        await card.wait_for()
        await page.keyboard.press("/")
        await page.keyboard.type("M-CGW")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert await page.locator("article.ticket", has_text=number).count() == 0, await page.content()

        for _ in range(100):
            ticket = await _state(client, operator, number)
            if ticket.get("state") == "assigned":
                break
            await asyncio.sleep(0.05)
        assert ticket["lead"]["code"] == "M-CGW" and ticket["routing"]["method"] == "dispatcher"


async def test_rule_page_shows_which_rule_fires_and_why(live, browser, login):
    await live.user("disp", Role.DISPATCHER)
    page = await browser.new_page()
    await login(page, live.url, "disp")
    await page.goto(f"{live.url}/router/rules")
    await page.fill("input[name=subject]", "闻到燃气味")
    await page.fill("textarea[name=description]", "楼道里有很明显的燃气味，担心燃气泄漏。")
    await page.click("form[action=\"/router/rules\"] button[type=submit]")
    fired = page.locator("tr.fired")
    await fired.wait_for()
    text = await fired.inner_text()
    assert "命中" in text and "燃气" in text
    heading = await page.locator("#result h2").inner_text()
    assert "燃气" in heading

"""The dispatcher sees what each press did: where a dispatched ticket went, why one was not sent (on a page that can
be reloaded), and the rule tester answers the key its button names."""

import httpx
import pytest

from schemas.enums import Role
from tests.browser.test_router_pages import LAMP, VAGUE, _queued, _wait, gas_leak_on_the_rule_tester

pytestmark = pytest.mark.browser

DONE = "[role=status].dispatch-done"


async def test_each_way_of_dispatching_says_which_ticket_went_to_which_unit(live, browser, login):
    operator, (lamp, vague, third) = await _queued(live, LAMP, VAGUE, {**VAGUE, "subject": "再反映个情况",
                                                                         "citizen": {"name": "王先生",
                                                                                     "phone": "13600005555"}})
    page = await browser.new_page()
    await login(page, live.url, "disp")
    first = page.locator("article.ticket.selected")
    assert lamp in await first.inner_text()
    suggested = await first.locator("button.suggestion").first.get_attribute("value")
    async with page.expect_navigation():
        await page.keyboard.press("1")  # the first suggestion, by key
    async with httpx.AsyncClient(base_url=live.url) as client:
        lead = (await _wait(client, operator, lamp, "assigned"))["lead"]
    assert lead["code"] == suggested
    unit = lead["name"]
    assert await page.locator(DONE).inner_text() == f"工单 {lamp} 已派至 {unit}"

    await page.keyboard.press("/")  # a unit typed into the box, sent with Enter
    await page.keyboard.type("城管")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.locator(DONE).inner_text() == f"工单 {vague} 已派至 市城市管理委员会"

    async with page.expect_navigation():  # a suggestion clicked
        await page.locator("article.ticket", has_text=third).locator("button.suggestion").first.click()
    async with httpx.AsyncClient(base_url=live.url) as client:
        unit = (await _wait(client, operator, third, "assigned"))["lead"]["name"]
    assert await page.locator(DONE).inner_text() == f"工单 {third} 已派至 {unit}"
    assert await page.locator("article.ticket").count() == 0


async def test_a_refused_dispatch_comes_back_on_a_page_that_can_be_reloaded(live, browser, login):
    operator, (lamp, vague) = await _queued(live, LAMP, VAGUE)
    page = await browser.new_page()
    await login(page, live.url, "disp")
    await page.keyboard.press("j")
    await page.keyboard.press("/")
    await page.keyboard.type("公安")  # 市公安局 or its 交通管理局?
    async with page.expect_navigation() as navigation:
        await page.keyboard.press("Enter")
    assert (await navigation.value).status == 200
    assert "/router/dispatch?" in page.url and "/router/dispatch/" not in page.url

    for _ in range(2):  # as refused, and once more after reloading the address the browser shows
        card = page.locator("article.ticket.selected")
        assert vague in await card.inner_text()
        assert "对应多个承办单位" in await card.locator("[role=alert]").inner_text()
        focused = await page.evaluate("[document.activeElement.tagName, document.activeElement.value,"
                                      " document.activeElement.closest('article').innerText]")
        assert focused[0] == "INPUT" and focused[1] == "公安" and vague in focused[2]
        assert await page.locator(DONE).count() == 0
        response = await page.reload()
        assert response.status == 200

    await page.keyboard.type("局")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.locator(DONE).inner_text() == f"工单 {vague} 已派至 市公安局"
    assert await page.locator(".dispatch-error").count() == 0


@pytest.mark.parametrize(("field", "key"), [("input[name=subject]", "Control+Enter"),
                                            ("textarea[name=description]", "Meta+Enter")])
async def test_the_rule_tester_runs_on_the_key_its_button_names(live, browser, login, field, key):
    page = await gas_leak_on_the_rule_tester(live, browser, login)
    await page.focus(field)
    await page.keyboard.press(key)
    await page.locator("#result tr.fired").wait_for()
    assert "燃气" in await page.locator("#result h2").inner_text()
    assert page.url.endswith("/router/rules")  # htmx sent it: the page stayed


async def test_the_keys_on_the_rule_testers_button_can_be_read(live, browser, login):
    await live.user("disp", Role.DISPATCHER)
    page = await browser.new_page()
    await login(page, live.url, "disp")
    await page.goto(f"{live.url}/router/rules")
    colours = await page.eval_on_selector_all(
        "form[action='/router/rules'] button kbd",
        "keys => keys.map(k => [getComputedStyle(k).color, getComputedStyle(k).backgroundColor])")
    assert len(colours) == 2
    for colour, background in colours:
        assert colour != background and colour != "rgb(255, 255, 255)", (colour, background)

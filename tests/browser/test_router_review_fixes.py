"""The dispatch queue and the rule tester after a review, in the browser: a suggestion's key sends that suggestion
whatever the unit box holds, Enter in the box sends what was typed, the queue goes on from the card after the one
dispatched, and on a phone a suggestion's unit reads as a name; the rule tester's rule ids do not break."""

import pytest

from schemas.enums import Role
from tests.browser.test_router_pages import LAMP, VAGUE, _queued
from tests.mandatory import require_chinese_font

pytestmark = pytest.mark.browser

DONE = "[role=status].dispatch-done"
PHONE = {"width": 390, "height": 844}
LINES = """box => {
    const style = getComputedStyle(box);
    return Math.round(box.getBoundingClientRect().height / parseFloat(style.lineHeight));
}"""
CALLER = {"name": "王先生", "phone": "13600005555"}


async def test_a_suggestions_key_sends_that_suggestion_though_the_unit_box_holds_a_name(live, browser, login):
    _, (lamp, vague) = await _queued(live, LAMP, VAGUE)
    page = await browser.new_page()
    await login(page, live.url, "disp")
    card = page.locator("article.ticket.selected")
    assert lamp in await card.inner_text()
    second = card.locator('button.suggestion[data-key="2"] .unit')
    assert await second.count() == 1, "the lamp's card has a second suggestion"
    unit = await second.inner_text()
    assert unit != "市城市管理委员会"

    await page.keyboard.press("/")
    await page.keyboard.type("市城管委")
    await page.keyboard.press("Escape")  # back to the card, the name still in its box
    async with page.expect_navigation():
        await page.keyboard.press("2")
    assert await page.locator(DONE).inner_text() == f"工单 {lamp} 已派至 {unit}"

    assert vague in await page.locator("article.ticket.selected").inner_text()
    await page.keyboard.press("/")
    await page.keyboard.type("市城管委")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")  # Enter in the box: what was typed
    assert await page.locator(DONE).inner_text() == f"工单 {vague} 已派至 市城市管理委员会"


async def test_after_a_dispatch_the_next_card_is_selected_and_focused(live, browser, login):
    _, (lamp, vague, third) = await _queued(live, LAMP, VAGUE, {**VAGUE, "subject": "再反映个情况", "citizen": CALLER})
    page = await browser.new_page()
    await login(page, live.url, "disp")
    await page.keyboard.press("j")
    assert vague in await page.locator("article.ticket.selected").inner_text()
    await page.keyboard.press("/")
    await page.keyboard.type("M-CGW")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.locator(DONE).inner_text() == f"工单 {vague} 已派至 市城市管理委员会"
    assert third in await page.locator("article.ticket.selected").inner_text()
    assert third in await page.evaluate("document.activeElement.closest('article').innerText")


async def test_on_a_phone_a_suggestions_unit_reads_as_a_name(live, browser, login):
    require_chinese_font()  # the widths measured are those of Chinese text
    await _queued(live, LAMP, VAGUE)
    page = await browser.new_page(viewport=PHONE, has_touch=True, is_mobile=True)
    await login(page, live.url, "disp")
    names = page.locator("button.suggestion .unit")
    assert await names.count() > 0
    for i in range(await names.count()):
        name = names.nth(i)
        text = await name.inner_text()
        # 市卫生健康委员会 came out as 市卫/生健/康委/员会: a name of a dozen characters fits a phone's line.
        assert await name.evaluate(LINES) <= (1 if len(text) <= 12 else 2), text
    assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


async def test_the_rule_testers_rule_ids_stay_on_one_line(live, browser, login):
    await live.user("disp", Role.DISPATCHER)
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await login(page, live.url, "disp")
    await page.goto(f"{live.url}/router/rules")
    await page.fill("input[name=subject]", "闻到燃气味")
    await page.fill("textarea[name=description]", "楼道里有很明显的燃气味，担心燃气泄漏。")
    await page.click("form[action='/router/rules'] button[type=submit]")
    await page.locator("#result tr.fired").wait_for()
    ids = page.locator("#result .rule-id")
    assert await ids.count() > 0
    lines = await ids.evaluate_all("ids => ids.map(i => [i.textContent, i.getClientRects().length])")
    assert all(n == 1 for _, n in lines), lines

"""The operator console keeps one caller's details away from the next: drafts per operator, look-ups that answer
late dropped, nothing typed while intake answers silently lost, and a number typed with dashes is the same caller's."""

import asyncio

from playwright.async_api import expect
import pytest

from schemas.enums import Role
from tests.browser.test_intake_console import earlier_ticket

pytestmark = pytest.mark.browser

CALLER = "13900001111"


async def type_call(page, phone: str, subject: str, description: str) -> None:
    kb = page.keyboard
    await page.locator("#f-phone").focus()
    await kb.type(phone)
    await kb.press("Alt+s")
    await kb.type(subject)
    await kb.press("Tab")
    await kb.type(description)


async def answer_late(page, pattern: str, seconds: float) -> None:
    """The requests to `pattern` reach the server `seconds` late, as on a slow line."""
    async def late(route):
        await asyncio.sleep(seconds)
        await route.continue_()

    await page.route(pattern, late)


async def test_a_draft_is_not_handed_to_the_next_operator_at_the_desk(live, browser, login):
    await live.user("wangli", Role.OPERATOR)
    await live.user("zhaoqian", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await type_call(page, "13611112222", "举报邻居家暴", "每天晚上都能听到打骂声。")
    await page.wait_for_timeout(400)  # the draft is saved
    assert await page.evaluate("localStorage.getItem('jiesu.intake.console.draft:wangli')") is not None

    async with page.expect_navigation():
        await page.get_by_role("button", name="退出").click()
    await login(page, live.url, "zhaoqian")
    await page.goto(f"{live.url}/intake/console")
    await page.locator("#suggestion-body").wait_for()
    assert await page.locator("#f-phone").input_value() == ""
    assert await page.locator("#f-subject").input_value() == ""
    assert await page.locator("#draft-note").is_hidden()


async def test_what_is_typed_while_intake_answers_is_refused_not_lost(live, browser, login):
    await live.user("wangli", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await type_call(page, "13700003333", "小区路灯不亮", "解放路路灯坏了一周。")
    await answer_late(page, "**/api/v1/intake/tickets", 3)  # long enough to be seen on a busy machine
    await expect(page.locator("#f-description")).to_be_focused()  # Ctrl+Enter is the form's
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#submit")).to_have_text("提交中…")
    await page.keyboard.type("，已经持续一个月")  # the focus is still in 诉求内容
    assert await page.locator("#f-description").input_value() == "解放路路灯坏了一周。"
    await page.locator("#result-number").wait_for()
    await expect(page.locator("#submit")).to_contain_text("登记并生成工单编号")
    assert await page.locator("#f-description").is_editable()


async def test_look_ups_that_answer_after_the_call_was_logged_are_dropped(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    earlier = await earlier_ticket(live, token, CALLER)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await answer_late(page, "**/api/v1/intake/similar", 2)
    await type_call(page, CALLER, "工地夜间施工噪音又扰民", "晚上十一点以后还在打桩，孩子睡不着。")
    await page.wait_for_timeout(700)  # the repeat check has been asked, and waits
    await page.keyboard.press("Control+Enter")
    await page.locator("#result-number").wait_for()
    await page.wait_for_timeout(2500)  # its answer has come
    assert await page.locator("#repeat").is_hidden(), f"the finished call's repeat of {earlier} is offered"


async def test_a_number_typed_with_dashes_is_the_same_callers(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    earlier = await earlier_ticket(live, token, CALLER)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await type_call(page, "139-0000 1111", "工地夜间施工噪音又扰民", "晚上十一点以后还在打桩，孩子睡不着。")
    await page.locator("#history-body").get_by_text(earlier).wait_for()
    await expect(page.locator("#repeat")).to_contain_text(earlier)


async def test_a_refusal_stands_beside_its_field_whichever_key_submits(live, browser, login):
    await live.user("wangli", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await type_call(page, "13700004444", "", "解放路路灯坏了一周。")  # no subject
    await page.locator("#f-name").focus()
    await page.keyboard.press("Enter")  # plain Enter: intake's refusal, not the browser's bubble
    beside = page.locator("#error-f-subject")
    await expect(beside).to_have_text("请填写标题")
    assert await page.evaluate("document.activeElement.id") == "f-subject"
    assert await page.locator("#f-subject").get_attribute("aria-describedby") == "error-f-subject"
    await page.keyboard.type("路灯不亮")  # put right: its refusal goes
    await expect(beside).to_have_count(0)
    await page.keyboard.press("Control+Enter")
    await page.locator("#result-number").wait_for()

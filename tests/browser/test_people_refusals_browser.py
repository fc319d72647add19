"""Refusals that reach people, in Chromium: an htmx click that is refused says why, a poll that cannot reach the
server says so once, an expired download link shows a page that leads back to a fresh one, and a refused action on
a ticket's page comes back on the ticket's own address."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from jiesu import attachment_grants
from schemas.enums import Role
from tests.browser.test_tracker_pages import open_ticket_with_photo
from tests.integration.test_intake_letters import PNG, quick_challenge, staff  # noqa: F401 (fixtures)
from tests.integration.test_tracker_workflow import desk  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

NOTICE = ".notice[role=alert]"
RULE_FORM = 'form[action="/router/rules"]'



async def set_form_token(page, token: str) -> None:
    await page.locator(f"{RULE_FORM} input[name=csrf_token]").evaluate("(input, token) => { input.value = token; }",
                                                                       token)


async def test_a_rule_tried_with_a_stale_form_token_says_the_page_expired_and_a_fresh_try_clears_it(
        live, browser, login):
    await live.user("disp", Role.DISPATCHER)
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))  # script errors (CSP violations included)
    await login(page, live.url, "disp")
    await page.goto(f"{live.url}/router/rules")
    token = await page.input_value(f"{RULE_FORM} input[name=csrf_token]")
    await page.fill("input[name=subject]", "闻到燃气味")
    await page.fill("textarea[name=description]", "楼道里有很明显的燃气味，担心燃气泄漏。")

    # The page stayed open while the session changed (logged in again in another tab): its token is stale.
    await set_form_token(page, "stale")
    await page.click(f"{RULE_FORM} button[type=submit]")
    notice = page.locator(NOTICE)
    await notice.wait_for()
    said = await notice.inner_text()
    assert "页面已过期，请刷新后重试" in said and "The form has expired; reload the page and retry" in said
    assert '"error"' not in said
    assert "结果将显示在这里" in await page.inner_text("#result")  # nothing was swapped in
    await page.screenshot(path=str(live.settings.data_dir / "stale-rule-test.png"))

    await set_form_token(page, token)
    await page.click(f"{RULE_FORM} button[type=submit]")
    await page.locator("tr.fired").wait_for()
    await notice.wait_for(state="hidden")  # the same form's request went through: the notice goes
    assert errors == []


async def test_a_badge_poll_that_cannot_reach_the_server_says_so_once_and_not_after_it_can(live, browser, login):
    await live.user("cgw", Role.DEPARTMENT, department="M-CGW")
    page = await browser.new_page()
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/inbox")
    await page.locator("#badge a").first.wait_for()  # the first poll (on load) went through

    poll = "() => { htmx.ajax('GET', '/tracker/badge', {source: '#badge', target: '#badge', swap: 'innerHTML'}); }"
    await page.route("**/tracker/badge", lambda route: route.abort("internetdisconnected"))
    for _ in range(3):  # three polls, 20 s apart on the page, while the network is down
        await page.evaluate(poll)
    notice = page.locator(NOTICE)
    await notice.wait_for()
    assert await page.locator(".notice").count() == 1 and await notice.locator("p").count() == 2
    assert "无法连接服务器" in await notice.inner_text()

    await page.unroute("**/tracker/badge")
    await page.evaluate(poll)  # the network is back
    await notice.wait_for(state="hidden")
    assert await page.locator("#badge a").count() == 2


async def test_an_expired_download_link_shows_a_page_whose_way_back_gives_a_fresh_link(
        live, browser, login, staff, quick_challenge):
    page, number, lead = await open_ticket_with_photo(live, browser, login, staff)
    ticket_url = page.url
    link = page.locator("#attachments tr", has_text="现场.png").get_by_role("link", name="下载")

    # The page was left open for eleven minutes: its link's grant has expired.
    now = time.time()
    with pytest.MonkeyPatch.context() as clock:
        clock.setattr(time, "time", lambda: now - 11 * 60)
        old = attachment_grants.sign(live.runtime.secret, attachment_grants.AttachmentGrant(
            number, hashlib.sha256(PNG).hexdigest(), "lead-staff", "department", lead))
    await link.evaluate("(a, grant) => { a.href = a.href.replace(/grant=[^&]*/, 'grant=' + grant); }", old)

    async with page.expect_navigation():
        await link.click()
    shown = await page.inner_text(".error-page")
    assert "下载链接已过期，请刷新工单页面后重新下载" in shown
    assert "请返回工单页面，重新点击附件的“下载”" in shown and "The download link has expired" in shown
    assert "lead-staff" in await page.inner_text("header.top")  # the common layout, still logged in
    await page.screenshot(path=str(live.settings.data_dir / "expired-link.png"), full_page=True)

    async with page.expect_navigation():
        await page.click(".error-page a:has-text('返回工单页面')")
    assert page.url == ticket_url
    async with page.expect_download() as started:
        await link.click()
    assert Path(await (await started.value).path()).read_bytes() == PNG


async def test_a_refused_action_on_a_ticket_comes_back_on_the_tickets_own_address(desk, live, browser, login):
    """The refusal is rendered from the form's POST (what was typed stays): the address bar then shows the ticket's
    page, not …/do/reply, so reloading it or coming back to it posts nothing again."""
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.act("dept", t["number"], "sign-for")
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "dept")
    ticket_url = f"{live.url}/tracker/tickets/{t['number']}"
    await page.goto(ticket_url)
    await page.click("summary:has-text('答复市民')")
    await page.fill("#reply", "已处理，谢谢")  # stock phrases alone: refused by the server
    await page.click("button:has-text('提交答复')")
    refusal = page.locator(".msg.err")
    await refusal.wait_for()
    assert "未能答复" in await refusal.inner_text()
    assert page.url == ticket_url  # the ticket's own address, not …/do/reply
    assert await page.input_value("#reply") == "已处理，谢谢"

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    await page.reload()
    assert posts == [] and page.url == ticket_url and await refusal.count() == 0
    assert (await desk.wait(t["number"], "signed_for"))["reply"] is None
    assert errors == []


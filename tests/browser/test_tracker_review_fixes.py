"""The tracker's screens in Chromium: an overdue row reads as clearly as any other wherever it is listed, a
department answers a supervision order on the ticket page and is told what happened, and the office's lists and the
ticket page fit a phone."""

from __future__ import annotations

import pytest

from tests.integration.test_tracker_review_fixes import seeded
from tests.mandatory import require_chinese_font
from tests.unit.tracker import sup_month as m

pytestmark = pytest.mark.browser

# The contrast of each element's text with what shows behind it (WCAG 2: the first ancestor with a background).
CONTRASTS = """selector => [...document.querySelectorAll(selector)].map(el => {
    const rgb = c => c.match(/[\\d.]+/g).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map(v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    let behind = el;
    while (behind && (rgb(getComputedStyle(behind).backgroundColor)[3] ?? 1) === 0) behind = behind.parentElement;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)),
                    lum(rgb(getComputedStyle(behind || document.body).backgroundColor))];
    return {text: el.textContent.trim().slice(0, 20), color: getComputedStyle(el).color,
            ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
})"""
OVERDUE = "tr.overdue td, td.overdue, .tag.overdue, .clock .overdue small, .clock .overdue b"
RED = "rgb(198, 40, 40)"  # --accent


async def test_an_overdue_row_and_its_time_left_read_clearly_on_every_list(live, browser, login):
    await seeded(live)
    for user, paths in (("cgw", ["/tracker/inbox", f"/tracker/tickets/{m.number_of('a6')}"]),
                        ("sup", ["/tracker/sup/ledger", "/tracker/sup/orders", "/tracker/tickets?state=signed_for"])):
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        await login(page, live.url, user)
        for path in paths:
            await page.goto(f"{live.url}{path}")
            await page.mouse.move(0, 0)  # no row under the pointer (a hovered row is tinted otherwise)
            seen = await page.evaluate(CONTRASTS, OVERDUE)
            assert seen, path  # the page has something overdue to read
            unreadable = [s for s in seen if s["ratio"] < 4.5]
            assert unreadable == [], (path, unreadable)
            assert all(s["color"] == RED for s in await page.evaluate(CONTRASTS, "td.overdue")), path
        await page.close()


async def test_a_department_answers_an_order_on_the_ticket_page_and_is_told_what_happened(live, browser, login):
    await seeded(live)
    number = m.number_of("a6")
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/tickets/{number}")
    answer = page.get_by_label("督办单 DB-a6-1 的回复")
    assert await answer.get_attribute("minlength") == "5" and await answer.get_attribute("required") is not None

    await answer.fill("已处理")  # too short: the browser says so before anything is sent
    await page.click("button:has-text('提交督办回复')")
    assert await answer.evaluate("e => e.validity.tooShort") and page.url.endswith(f"/tracker/tickets/{number}")

    await answer.evaluate("e => e.removeAttribute('minlength')")  # the server's rule holds without the browser's
    async with page.expect_navigation():
        await page.click("button:has-text('提交督办回复')")
    said = page.get_by_role("alert")
    assert "请写明督办回复内容（至少 5 个字）" in await said.inner_text()
    assert await page.get_by_label("督办单 DB-a6-1 的回复").input_value() == "已处理"  # what was typed is kept
    assert page.url == f"{live.url}/tracker/tickets/{number}"  # reloading does not post it again

    await page.get_by_label("督办单 DB-a6-1 的回复").fill("已约谈施工单位，责令夜间停工并连续三晚巡查")
    async with page.expect_navigation():
        await page.click("button:has-text('提交督办回复')")
    assert await page.get_by_role("status").inner_text() == "督办单 DB-a6-1 已回复"
    assert "已约谈施工单位" in await page.inner_text("#orders") and await page.get_by_role("alert").count() == 0


async def test_the_office_lists_and_the_ticket_with_an_order_fit_a_phone(live, browser, login):
    require_chinese_font()  # the widths measured are those of Chinese text
    await seeded(live)
    fits = "(d => d.scrollWidth <= d.clientWidth)(document.documentElement)"
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await login(page, live.url, "sup")
    for path in ("/tracker/sup/orders?tab=all", "/tracker/sup/scorecard?period=2026-10", "/tracker/sup/ledger",
                 "/tracker/sup/trends"):
        await page.goto(f"{live.url}{path}")
        assert await page.evaluate(fits), (path, await page.evaluate("document.documentElement.scrollWidth"))

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/tickets/{m.number_of('a6')}")
    await page.screenshot(path=str(live.settings.data_dir / "ticket-order-390.png"), full_page=True)
    assert await page.evaluate(fits), await page.evaluate("document.documentElement.scrollWidth")
    box = await page.get_by_label("督办单 DB-a6-1 的回复").bounding_box()
    assert box["width"] >= 280, box  # the card's width, not a squeezed cell's

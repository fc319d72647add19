"""The operator console after review: the query code read back with the number, an empty field called required,
and a phone-width page that does not scroll sideways."""

import re

import httpx
import pytest
from playwright.async_api import expect

from schemas.enums import Role
from tests.browser.test_intake_console import CALLER
from tests.mandatory import require_chinese_font

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LONG_SUBJECT = "H4县运管所不退还出租车经营权有偿使用费"


async def console(live, browser, login, viewport=None, query=""):
    page = await browser.new_page(viewport=viewport or {"width": 1366, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console{query}")
    await page.locator('#f-district option[value="D-01"]').wait_for(state="attached")  # the directory is in
    return page, errors


@pytest.mark.parametrize("phone", ["", CALLER], ids=["anonymous", "with-phone"])
async def test_the_query_code_is_read_back_with_the_number_and_finds_the_ticket(live, browser, login, phone):
    await live.user("wangli", Role.OPERATOR)
    page, errors = await console(live, browser, login)
    await page.locator("#f-phone").fill(phone)
    await page.locator("#f-subject").fill("路灯不亮")
    await page.locator("#f-description").fill("解放路路灯坏了一周，晚上很黑。")
    if phone:
        await page.keyboard.press("Control+Enter")
    else:  # a withheld number: the button submits it as Ctrl+Enter does, as the API takes it (no phone required)
        await page.locator("#submit").click()

    await expect(page.locator("#result-number")).to_have_text(re.compile(r"^12345-\d{8}-\d{6}$"))
    number = await page.locator("#result-number").inner_text()
    code = page.locator("#result-query-code")
    await expect(code).to_be_visible()
    shown = await code.inner_text()
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", shown)
    readback = await page.locator("#result-query-readback").inner_text()
    assert readback == "请复述：" + " ".join(shown[:4]) + "，" + " ".join(shown[5:])
    await page.screenshot(path=str(live.settings.data_dir / f"console-query-code-{phone or 'anonymous'}.png"))
    assert errors == []

    # What the operator reads out is what the caller needs: the progress look-up takes it.
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        found = await citizen.post("/api/v1/intake/progress", json={"number": number, "query_code": shown})
    assert found.status_code == 200 and found.json()["number"] == number


async def test_an_empty_subject_and_description_are_asked_for_not_called_too_short(live, browser, login):
    await live.user("wangli", Role.OPERATOR)
    page, errors = await console(live, browser, login, query=f"?caller={CALLER}")
    await page.locator("#f-subject").fill("   ")  # spaces only: nothing written
    await page.keyboard.press("Control+Enter")
    box = page.locator("#form-errors")
    await expect(box).to_contain_text("请填写标题")
    await expect(box).to_contain_text("请填写诉求内容")
    assert "太短" not in await box.inner_text()
    await expect(page.locator("#f-subject")).to_be_focused()
    await expect(page.locator("#f-description")).to_have_attribute("aria-invalid", "true")
    assert await page.locator("#result").is_hidden()
    assert errors == []


async def test_on_a_phone_the_console_with_caller_history_fits_the_screen(live, browser, login):
    require_chinese_font()  # the widths measured are those of Chinese text
    token = await live.user("wangli", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        r = await client.post("/api/v1/intake/tickets", json={
            "kind": "complaint", "subject": LONG_SUBJECT, "description": "多次联系未果。",
            "citizen": {"phone": CALLER}})
        assert r.status_code == 201, r.text
    page, errors = await console(live, browser, login, viewport=PHONE, query=f"?caller={CALLER}")
    cell = page.locator("#history-body td.subject", has_text=LONG_SUBJECT)
    await cell.wait_for()
    await page.screenshot(path=str(live.settings.data_dir / "console-390.png"), full_page=True)
    assert await page.evaluate("document.documentElement.scrollWidth === document.documentElement.clientWidth")
    # The subject keeps the width of a few words, not one character a line; the table scrolls in its own box.
    width, em = await cell.evaluate("c => [c.getBoundingClientRect().width, parseFloat(getComputedStyle(c).fontSize)]")
    assert width >= 7 * em, (width, em)
    assert errors == []

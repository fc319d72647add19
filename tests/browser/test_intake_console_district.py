"""The console shows intake's refusal of a street outside the district beside the street, as any other field error."""

import pytest
from playwright.async_api import expect

from schemas.enums import Role

pytestmark = pytest.mark.browser


async def test_a_street_outside_the_district_is_shown_at_the_street_and_nothing_is_logged(live, browser, login):
    await live.user("wangli", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console?caller=13800138000")
    await page.locator('#f-district option[value="D-02"]').wait_for(state="attached")

    await page.locator("#f-name").fill("李先生")
    await page.locator("#f-district").select_option("D-02")  # 东湖区
    # A picker out of date (the directory changed under an open page) still offers 解放路街道, which is in 临江区.
    await page.evaluate("""() => {
        const street = document.getElementById('f-street');
        street.append(new Option('解放路街道', 'S-01-03'));
        street.value = 'S-01-03';
    }""")
    await page.locator("#f-subject").fill("小区突然停水")
    await page.locator("#f-description").fill("从早上开始停水，没有任何通知，家里有老人。")
    await page.keyboard.press("Control+Enter")

    box = page.locator("#form-errors")
    await expect(box).to_be_visible()
    await expect(box).to_contain_text("街道/乡镇：解放路街道（S-01-03）属于临江区（D-01），不在东湖区（D-02）")
    street = page.locator("#f-street")
    await expect(street).to_have_attribute("aria-invalid", "true")
    await expect(street).to_be_focused()
    assert await page.locator("#result").is_hidden()
    assert errors == []

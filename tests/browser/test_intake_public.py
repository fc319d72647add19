"""A citizen writes to the mayor's mailbox in Chromium, then looks up the progress with the number."""

import re

import pytest
from playwright.async_api import expect

from services.intake.domain import challenge

pytestmark = pytest.mark.browser
DIGITS = "零一二三四五六七八九十"


async def test_a_citizen_writes_a_letter_with_a_photo_and_looks_up_its_progress(live, browser, monkeypatch, tmp_path):
    monkeypatch.setattr(challenge, "MIN_SECONDS", 0.0)
    photo = tmp_path / "井盖.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    page = await browser.new_page(viewport={"width": 1100, "height": 1100})
    await page.goto(f"{live.url}/intake/mailbox")
    await page.select_option("select[name=kind]", "help")
    await page.fill("input[name=subject]", "人行道井盖缺失")
    await page.fill("textarea[name=description]", "解放路18号门口人行道井盖丢了，晚上看不见，很危险。")
    await page.fill("input[name=address]", "解放路18号")
    await page.fill("input[name=name]", "刘洋")
    await page.fill("input[name=phone]", "13512345678")
    await page.check("input[name=may_publish]")
    await page.set_input_files("input[name=attachments]", str(photo))
    question = await page.locator("label", has_text="验证题").inner_text()
    a, b = re.search(r"(.)加(.)等于几", question).groups()
    await page.fill("input[name=challenge_answer]", str(DIGITS.index(a) + DIGITS.index(b)))
    await page.screenshot(path=str(live.settings.data_dir / "mailbox.png"), full_page=True)
    await page.click("button[type=submit]")
    number = await page.locator(".result .number").inner_text()
    assert re.fullmatch(r"12345-\d{8}-\d{6}", number)
    code = await page.locator(".result .query-code").inner_text()
    assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", code)

    await page.goto(f"{live.url}/intake/progress")
    await page.fill("input[name=number]", number)
    await page.fill("input[name=proof]", "5678")
    await page.keyboard.press("Enter")
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text(number)
    assert "刘洋" not in await page.inner_text("main") and "井盖丢了" not in await page.inner_text("main")
    await page.fill("input[name=proof]", "0000")
    await page.keyboard.press("Enter")
    await expect(page.locator(".errors")).to_contain_text("未查到")
    # The receipt page's link fills in the number; the code, typed as people type it, does for the phone.
    await page.goto(f"{live.url}/intake/progress?number={number}")
    await expect(page.locator("input[name=proof]")).to_be_focused()
    await page.keyboard.type(code.lower().replace("-", ""))
    await page.keyboard.press("Enter")
    await expect(page.locator("dl.facts")).to_contain_text(number)

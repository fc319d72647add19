"""The reply box counts what the server counts (domain/replies.py, meaningful_chars): punctuation, spaces and stock
phrases (套话) do not count, and it says the least the server takes. Before, it counted every character but spaces,
so "已处理。已处理。……" read as plenty and was then refused."""

from __future__ import annotations

import pytest

from schemas.enums import Role
from services.tracker.domain.replies import MIN_MEANINGFUL_CHARS, meaningful_chars, reply_problem
from tests.integration.test_contact_while_extension_pending import STAFF, _assigned

pytestmark = pytest.mark.browser

TEXTS = [
    "已处理。已处理。已处理！谢谢！您好，已收到，已办理。",  # stock phrases and punctuation only: nothing counts
    "经现场核实，工地已停工。",
    "经现场核实，该工地夜间施工未取得许可，已责令停工。",
    "ok OK 好的 ___ --- 123 abc",
    "𠀀𠀁 两个扩展区汉字（astral）和 emoji 😀 不计入",
    "全角：１２３ＡＢＣ；罗马数字 Ⅻ，上标²",
    "已 处理 已处 理",  # a phrase broken by a space is words, as the server reads it
]


async def test_the_counter_says_what_the_server_counts_and_the_least_it_takes(live, browser, login):
    rt = live.runtime
    number = await _assigned(rt, 1)
    await rt.state["tracker"].sign_for(STAFF, number)
    await live.user("cgw", Role.DEPARTMENT, department=STAFF.department)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/tickets/{number}")
    await page.click("summary:has-text('答复市民')")
    assert f"有效字数至少 {MIN_MEANINGFUL_CHARS} 个" in await page.inner_text("#reply-rule")
    for text in TEXTS:
        await page.fill("#reply", text)
        shown = await page.inner_text("#reply-count")
        assert shown == f"有效字数 {meaningful_chars(text)}（至少 {MIN_MEANINGFUL_CHARS}）", text
        short = await page.eval_on_selector("#reply-count", "e => e.classList.contains('short')")
        assert short == (reply_problem(text) is not None), text

    # A refused reply comes back counted.
    await page.fill("#reply", TEXTS[0])
    await page.click("button:has-text('提交答复')")
    await page.wait_for_selector(".msg.err")
    assert await page.inner_text("#reply-count") == f"有效字数 0（至少 {MIN_MEANINGFUL_CHARS}）"
    assert errors == []

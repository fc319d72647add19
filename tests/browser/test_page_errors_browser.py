"""A form that went stale while its page stayed open: Chromium shows a page that says so and leads back to it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from schemas.enums import Role

pytestmark = pytest.mark.browser


async def _assigned_ticket(live) -> str:
    operator = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {operator}"}) as client:
        r = await client.post("/api/v1/intake/tickets", json={
            "kind": "complaint", "subject": "夜间施工噪音", "description": "晚上十一点后工地还在打桩，噪音很大。",
            "citizen": {"name": "张伟", "phone": "13800138000"}, "location": {"address": "滨江路18号"}})
        number = r.json()["number"]
        for _ in range(200):
            t = await client.get(f"/api/v1/tracker/tickets/{number}")
            if t.status_code == 200 and t.json()["state"] == "assigned":
                assert t.json()["lead"]["code"] == "M-CGW"
                return number
            await asyncio.sleep(0.05)
    raise AssertionError(f"{number} was never assigned")


async def test_a_stale_sign_for_form_shows_the_expired_page_whose_link_back_lets_the_user_sign_for(
        live, browser, login):
    number = await _assigned_ticket(live)
    await live.user("cgw", Role.DEPARTMENT, department="M-CGW")
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))  # script errors (CSP violations included)
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/tickets/{number}")
    ticket_url = page.url

    # The page stayed open while the session changed (logged in again in another tab): its token is stale.
    await page.evaluate("""() => document.querySelectorAll("input[name=csrf_token]")
                                  .forEach((input) => { input.value = "stale-" + input.value; })""")
    async with page.expect_navigation():
        await page.click("button:has-text('签收')")
    shown = await page.inner_text(".error-page")
    assert "页面已过期，请刷新后重试" in shown and "请返回上一页并刷新后重试" in shown
    assert "The form has expired" in shown
    assert "cgw" in await page.inner_text("header.top")  # the common layout, still logged in
    await page.screenshot(path=str(live.settings.data_dir / "stale-form.png"), full_page=True)

    async with page.expect_navigation():
        await page.click(".error-page a:has-text('返回上一页')")
    assert page.url == ticket_url
    await page.click("button:has-text('签收')")  # the page came back fresh: its form works again
    await page.wait_for_selector(".msg.ok")
    assert "已签收" in await page.inner_text(".msg.ok")
    assert errors == []
    await context.close()

"""An operator logs a call with the keyboard only: history and suggestion beside the form, a number to read back."""

import asyncio
import re

import httpx
import pytest
from playwright.async_api import expect

from schemas.enums import Role

pytestmark = pytest.mark.browser

CALLER = "13800138000"


async def earlier_ticket(live, token, phone: str = CALLER) -> str:
    """A ticket of the caller at `phone`, once the tracker holds it assigned: the number."""
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        r = await client.post("/api/v1/intake/tickets", json={
            "kind": "complaint", "subject": "楼下工地夜间施工噪音扰民", "description": "每天晚上十一点以后还在打桩，孩子睡不着。",
            "citizen": {"name": "张伟", "phone": phone},
            "location": {"district": "D-01", "street": "S-01-03", "address": "解放路18号"}})
        number = r.json()["number"]
        for _ in range(200):
            t = await client.get(f"/api/v1/tracker/tickets/{number}")
            if t.status_code == 200 and t.json()["state"] == "assigned":
                return number
            await asyncio.sleep(0.05)
    raise AssertionError("earlier ticket not tracked")


async def test_operator_logs_a_call_with_the_keyboard_and_reads_back_the_number(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    earlier = await earlier_ticket(live, token)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console?caller={CALLER}&call_id=CALL-20261122-0001")

    history = page.locator("#history-body")
    await history.get_by_text(earlier).wait_for()
    assert "待签收" in await history.inner_text()
    assert await page.evaluate("document.activeElement.id") == "f-name"  # the number is known: start with the name

    kb = page.keyboard
    await kb.type("李先生")
    await kb.press("Alt+q")  # 区
    await kb.press("ArrowDown")
    await kb.press("Alt+j")  # 街道
    await kb.press("ArrowDown")
    await kb.press("Alt+a")
    await kb.type("幸福里小区3号楼")
    await kb.press("Alt+s")
    await kb.type("小区突然停水")
    await kb.press("Tab")
    await kb.type("幸福里小区3号楼从早上开始停水，没有任何通知，家里有老人。")

    # The draft survives a reload (or a dropped connection).
    await page.wait_for_timeout(400)
    await page.reload()
    await expect(page.locator("#f-subject")).to_have_value("小区突然停水")
    await expect(page.locator("#f-name")).to_have_value("李先生")
    assert await page.locator("#draft-note").is_visible()

    suggestion = page.locator("#suggestion-body")
    await page.locator("#suggested-unit").wait_for()
    assert await page.locator("#suggested-unit").inner_text() == "江城自来水集团"
    assert "规则" in await suggestion.inner_text()
    assert await page.locator("#repeat").is_hidden()  # a different matter from the earlier ticket
    await kb.press("Alt+y")  # accept the suggestion
    await expect(suggestion).to_contain_text("已采用建议")

    await page.screenshot(path=str(live.settings.data_dir / "console-filled.png"))
    await kb.press("Control+Enter")
    number_box = page.locator("#result-number")
    await number_box.wait_for()
    number = await number_box.inner_text()
    assert re.fullmatch(r"12345-\d{8}-\d{6}", number) and number != earlier
    assert "请复述" in await page.locator("#result-readback").inner_text()
    assert await page.evaluate("document.activeElement.id") == "f-phone"  # ready for the next call
    assert await page.locator("#f-subject").input_value() == ""
    assert await page.locator("#f-phone").input_value() == ""  # the next caller is someone else
    assert await page.evaluate("localStorage.getItem('jiesu.intake.console.draft:wangli')") is None
    await page.screenshot(path=str(live.settings.data_dir / "console-done.png"))

    # The next caller's number is mistyped: the error stands alone, not beside the last caller's number.
    await kb.type("abc")
    await kb.press("Alt+s")
    await kb.type("路灯不亮")
    await kb.press("Tab")
    await kb.type("解放路路灯坏了一周。")
    await kb.press("Control+Enter")
    await expect(page.locator("#form-errors")).to_contain_text("来电号码：只能由数字")
    assert await page.locator("#result").is_hidden()
    assert errors == []

    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        mine = (await client.get(f"/api/v1/intake/tickets/{number}")).json()
        assert mine["subject"] == "小区突然停水" and mine["channel"] == "hotline"
        for _ in range(200):
            t = (await client.get(f"/api/v1/tracker/tickets/{number}")).json()
            if t.get("state") not in (None, "received"):
                break
            await asyncio.sleep(0.05)
        assert t["lead"]["name"] == "江城自来水集团" and t["citizen"]["name"] == "李先生"
        assert t["location"] == {"district": "D-01", "street": "S-01-01", "address": "幸福里小区3号楼"}


async def test_a_repeat_call_is_attached_to_the_open_ticket_with_one_key(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    earlier = await earlier_ticket(live, token)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console?caller={CALLER}")
    await page.locator("#history-body").get_by_text(earlier).wait_for()
    kb = page.keyboard
    await kb.press("Alt+s")
    await kb.type("工地夜间施工噪音又扰民")
    await kb.press("Tab")
    await kb.type("晚上十一点以后还在打桩，孩子睡不着，上周已经反映过。")
    warning = page.locator("#repeat")
    await warning.wait_for()
    assert earlier in await warning.inner_text()
    await page.screenshot(path=str(live.settings.data_dir / "console-repeat.png"))
    await kb.press("Alt+m")
    await page.locator("#result-number").wait_for()
    assert f"已作为重复件并入 {earlier}" in await page.locator("#result-note").inner_text()


async def test_a_consultation_answered_on_the_call_is_recorded_with_the_answer(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console?caller=13600001111")
    kb = page.keyboard
    await kb.press("Alt+k")
    await kb.press("Home")  # 咨询, the first kind
    await kb.press("Alt+s")
    await kb.type("医保异地就医怎么备案")
    await kb.press("Tab")
    await kb.type("母亲在外地住院，想问怎么报销。")
    assert await page.locator("#f-answer").is_hidden()
    await kb.press("Alt+d")
    await expect(page.locator("#f-answer")).to_be_visible()
    await kb.press("Tab")
    await kb.type("可在国家医保服务平台App办理异地就医备案，备案后出院直接结算。")
    await kb.press("Control+Enter")
    await expect(page.locator("#result-note")).to_have_text("已直接办结，不派单。")
    number = await page.locator("#result-number").inner_text()
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        mine = (await client.get(f"/api/v1/intake/tickets/{number}")).json()
    assert mine["kind"] == "consultation" and mine["answer"].startswith("可在国家医保服务平台")


async def test_a_connection_dropped_after_intake_saved_the_call_does_not_log_it_twice(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    kb = page.keyboard
    await kb.type("13700002222")
    await kb.press("Alt+s")
    await kb.type("小区门口下水道堵塞")
    await kb.press("Tab")
    await kb.type("污水漫到人行道上，气味很大。")

    async def lose_the_answer(route):
        await route.fetch()  # intake receives and stores the call…
        await route.abort()  # …but the answer never reaches the console

    await page.route("**/api/v1/intake/tickets", lose_the_answer)
    await kb.press("Control+Enter")
    await expect(page.locator("#form-errors")).to_contain_text("网络中断")
    assert await page.locator("#f-subject").input_value() == "小区门口下水道堵塞"  # nothing is lost
    await page.unroute("**/api/v1/intake/tickets")
    await kb.press("Control+Enter")
    await expect(page.locator("#result-note")).to_have_text("此来电已登记过，编号不变。")
    number = await page.locator("#result-number").inner_text()
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        history = (await client.get("/api/v1/tracker/tickets", params={"phone": "13700002222"})).json()
        for _ in range(100):
            if history["total"]:
                break
            await asyncio.sleep(0.05)
            history = (await client.get("/api/v1/tracker/tickets", params={"phone": "13700002222"})).json()
    assert [t["number"] for t in history["items"]] == [number]

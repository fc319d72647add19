"""The tracker's pages as department staff and the supervision office use them: people and roles named in
Chinese, a confirmation before 退单 (and other steps that cannot be undone), extensions decided on the list, one
full stop, and layouts that hold at a phone's width and keep the header on one row at 1280 px."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from schemas.enums import Role
from tests.mandatory import require_chinese_font

pytestmark = pytest.mark.browser

VAGUE = {"kind": "complaint", "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
         "citizen": {"name": "周先生", "phone": "13600002222"}}
REASON = "同一工地噪音多次投诉，请尽快查处。"  # ends in 。 as people write it


async def _person(live, username: str, role: Role, name: str, department: str | None = None) -> str:
    """A user with a display name as people have them (live.user names everyone by their user name)."""
    identity = live.runtime.identity
    if await identity.get_user(username) is None:
        await identity.create_user(username, "demo-password-1", role, display_name=name, department=department)
    return await identity.create_token(username, "test")


async def _wait(client, number: str, *states: str) -> dict:
    for _ in range(200):
        r = await client.get(f"/api/v1/tracker/tickets/{number}")
        if r.status_code == 200 and r.json()["state"] in states:
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{number} never reached {states}")


def _as(live, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"})


async def _dispatched_by_hand(live) -> tuple[str, str]:
    """A call the router is unsure of, dispatched by 派单员 李强 to 市城市管理委员会; and a supervisor's token."""
    live.runtime.state["router"].threshold = 1.01  # nothing is certain enough: a person dispatches
    op = await _person(live, "op", Role.OPERATOR, "话务员 王丽")
    disp = await _person(live, "disp", Role.DISPATCHER, "派单员 李强")
    sup = await _person(live, "sup", Role.SUPERVISOR, "督查室 陈刚")
    await _person(live, "cgw", Role.DEPARTMENT, "市城市管理委员会 承办人", "M-CGW")
    async with _as(live, sup) as client:
        number = (await client.post("/api/v1/intake/tickets", json=VAGUE, headers={"Authorization": f"Bearer {op}"})
                  ).json()["number"]
        ticket = await _wait(client, number, "dispatching")
        r = await client.post(f"/api/v1/router/tickets/{ticket['ticket_id']}/dispatch", json={"unit": "M-CGW"},
                              headers={"Authorization": f"Bearer {disp}"})
        assert r.status_code == 200, r.text
        await _wait(client, number, "assigned")
    return number, sup


async def test_the_timeline_names_people_and_roles_in_chinese_and_a_reason_ends_with_one_full_stop(
        live, browser, login):
    number, sup = await _dispatched_by_hand(live)
    async with _as(live, sup) as client:
        r = await client.post(f"/api/v1/tracker/tickets/{number}/supervise", json={"level": "normal", "reason": REASON})
        assert r.status_code == 200, r.text
        stored = [e["summary"] for e in (await client.get(f"/api/v1/tracker/tickets/{number}")).json()["timeline"]]
    assert any(s.endswith("（依据：人工派单）") for s in stored), stored  # written so, not only shown so

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/tickets/{number}")
    actors = await page.locator(".timeline .actor").all_inner_texts()
    assert actors == ["话务员 王丽", "智能派单", "派单员 李强", "督查室 陈刚"]  # who dispatched it, not only 派单员
    lines = await page.inner_text(".timeline")
    assert "派单至 市城市管理委员会（依据：人工派单）" in lines and "dispatcher" not in lines
    await page.screenshot(path=str(live.settings.data_dir / "timeline.png"), full_page=True)

    await page.goto(f"{live.url}/tracker/inbox")
    notes = await page.inner_text("#notes")
    assert "原因：同一工地噪音多次投诉，请尽快查处。" in notes and "。。" not in notes


async def test_a_return_asks_first_naming_the_ticket_esc_cancels_and_enter_confirms(live, browser, login):
    number, sup = await _dispatched_by_hand(live)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/tickets/{number}")
    await page.click("summary:has-text('退单')")
    await page.select_option("select[name=reason_code]", "other_unit")
    await page.fill("#ret-reason", "该事项属开发区管委会职责，应由其处理")

    await page.focus("button:has-text('退回重新派单')")
    await page.keyboard.press("Enter")
    dialog = page.locator("dialog.confirm")
    await dialog.wait_for()
    assert number in await dialog.inner_text()
    assert await page.evaluate("document.activeElement.textContent") == "确认退单"
    await page.screenshot(path=str(live.settings.data_dir / "return-confirm.png"))
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert page.url.endswith(f"/tracker/tickets/{number}")
    async with _as(live, sup) as client:
        assert (await client.get(f"/api/v1/tracker/tickets/{number}")).json()["state"] == "assigned"
        assert await page.evaluate("document.activeElement.textContent") == "退回重新派单"  # back where it was

        await page.keyboard.press("Enter")
        await dialog.wait_for()
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert "/tracker/inbox?returned=" in page.url
        assert (await client.get(f"/api/v1/tracker/tickets/{number}")).json()["state"] != "assigned"
    assert errors == []


async def test_the_office_decides_an_extension_on_the_list_and_stays_there(live, browser, login):
    number, sup = await _dispatched_by_hand(live)
    dept = await live.runtime.identity.create_token("cgw", "ext")
    async with _as(live, sup) as client:
        headers = {"Authorization": f"Bearer {dept}"}
        await client.post(f"/api/v1/tracker/tickets/{number}/sign-for", headers=headers)
        calendar = live.runtime.state["tracker.clocks"].calendar
        due = (await client.get(f"/api/v1/tracker/tickets/{number}")).json()["reply_due"]
        new_day = calendar.add_working_days(dt.datetime.fromisoformat(due), 5).astimezone(calendar.timezone).date()
        r = await client.post(f"/api/v1/tracker/tickets/{number}/extension", headers=headers,
                              json={"reason": "需协调住建部门联合执法", "new_due": new_day.isoformat()})
        assert r.status_code == 200, r.text

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await login(page, live.url, "sup")
        await page.goto(f"{live.url}/tracker/supervision")
        stale = await context.new_page()  # a second tab, left open on the same list
        await stale.goto(f"{live.url}/tracker/supervision")
        heading = await page.inner_text("h1")
        assert heading == "延期审批与挂账" and (await page.title()).startswith(heading)
        assert "请系统管理员更正该单位的通知邮箱" in await page.inner_text("#undelivered")
        row = page.locator("tr", has_text=number)
        await row.locator("button:has-text('不同意')").click()  # a refusal asks first; Esc changes nothing
        dialog = page.locator("dialog.confirm")
        assert number in await dialog.inner_text()
        await page.keyboard.press("Escape")
        await dialog.wait_for(state="hidden")
        assert await page.locator("tr", has_text=number).count() == 1
        async with page.expect_navigation():
            await row.locator("button:has-text('同意')").first.click()
        assert page.url.split("?")[0].endswith("/tracker/supervision")
        said = await page.inner_text(".msg.ok")
        assert f"已同意工单 {number} 的延期申请" in said and new_day.isoformat() in said
        assert await page.locator("tr", has_text=number).count() == 0
        assert (await client.get(f"/api/v1/tracker/tickets/{number}")).json()["extensions"] == [5]
        await page.screenshot(path=str(live.settings.data_dir / "supervision-approved.png"), full_page=True)

        await page.goto(f"{live.url}/tracker/tickets/{number}")  # a supervision order asks first too
        await page.click("summary:has-text('下达督办单')")
        await page.fill("#sup-reason", "延期后仍需加快办理")
        await page.click("button:has-text('下达')")
        assert number in await dialog.inner_text()
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert "已下达督办单" in await page.inner_text(".msg.ok")

        async with stale.expect_navigation():  # decided meanwhile: the list says so, and nothing changes
            await stale.locator("tr", has_text=number).locator("button:has-text('同意')").first.click()
        assert stale.url.split("?")[0].endswith("/tracker/supervision")
        assert f"工单 {number}：" in await stale.inner_text(".msg.err")  # why not, e.g. 不能执行“延期审批”
        assert (await client.get(f"/api/v1/tracker/tickets/{number}")).json()["extensions"] == [5]


async def test_the_inbox_fits_a_phone_and_the_admins_header_stays_on_one_row(live, browser, login):
    require_chinese_font()  # the widths measured are those of Chinese text
    number, _ = await _dispatched_by_hand(live)
    await _person(live, "root", Role.ADMIN, "系统管理员")

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await login(page, live.url, "cgw")
    await page.goto(f"{live.url}/tracker/inbox")
    await page.locator("tr", has_text=number).wait_for()
    await page.screenshot(path=str(live.settings.data_dir / "inbox-390.png"), full_page=True)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert await page.evaluate("(b => b.scrollWidth <= b.clientWidth)(document.querySelector('.table-scroll'))")
    tabs, first_row = await page.locator(".tabs").bounding_box(), await page.locator("tr", has_text=number).bounding_box()
    assert tabs["width"] > 300 and tabs["y"] + tabs["height"] <= first_row["y"]  # above the list, not beside it
    assert not await page.locator(".kbd-hint").is_visible()
    async with page.expect_navigation():
        await page.click(f"text={number}")
    await page.screenshot(path=str(live.settings.data_dir / "ticket-390.png"), full_page=True)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # and the ticket it opens

    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await login(page, live.url, "root")
    await page.goto(f"{live.url}/tracker/supervision")
    await page.screenshot(path=str(live.settings.data_dir / "header-1280.png"))
    header = """() => {
        const h = document.querySelector('header.top'), nav = h.querySelector('nav');
        const oneLine = el => el.getClientRects().length === 1
            && el.getBoundingClientRect().height < 1.8 * parseFloat(getComputedStyle(el).lineHeight);
        return {height: h.getBoundingClientRect().height, hidden: nav.scrollWidth - nav.clientWidth,
                items: nav.querySelectorAll('a').length,
                broken: [...nav.querySelectorAll('a'), h.querySelector('.who button')]
                    .filter(el => !oneLine(el)).map(el => el.textContent)};
    }"""
    at_1280 = await page.evaluate(header)
    assert at_1280["items"] >= 14 and at_1280["height"] < 60, at_1280  # one row: brand, every menu item, 退出
    assert at_1280["hidden"] <= 0 and at_1280["broken"] == [], at_1280
    await page.set_viewport_size({"width": 1024, "height": 800})  # too narrow for them all: the menu scrolls
    at_1024 = await page.evaluate(header)
    assert at_1024["height"] < 60 and at_1024["hidden"] > 0 and at_1024["broken"] == [], at_1024

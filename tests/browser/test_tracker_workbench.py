"""A department works its inbox in Chromium, and a return-visit operator reopens a reply.

The department signs for one ticket, returns another with a reason, replies to a third;
the return-visit operator records the citizen as dissatisfied because of the department,
which reopens the ticket with three working days.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from schemas.enums import Role

pytestmark = pytest.mark.browser

CALLS = [
    ("晚上十点后渣土车轰鸣不断", "每晚十点以后渣土车进出工地，轰鸣声很大。", "李娜", "13900001111"),
    ("凌晨工地切割钢板噪音", "凌晨一点还在切割钢板，刺耳的声音持续一个多小时。", "王强", "13900002222"),
    ("夜间打桩影响休息", "附近工地夜间打桩，震得窗户响，已经持续一周。", "赵敏", "13900003333"),
]
REPLY = ("经现场核实，该工地夜间施工未取得夜间施工许可。我委已责令施工单位停止22时后作业，"
         "并安排执法队连续三晚巡查，未再发现夜间施工。")


async def _post_tickets(live) -> list[str]:
    op = await live.user("op", Role.OPERATOR)
    numbers = []
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {op}"}) as client:
        for subject, description, name, phone in CALLS:
            r = await client.post("/api/v1/intake/tickets", json={
                "kind": "complaint", "subject": subject, "description": description,
                "citizen": {"name": name, "phone": phone}, "location": {"address": "滨江路18号"}})
            numbers.append(r.json()["number"])
        for number in numbers:
            for _ in range(200):
                t = await client.get(f"/api/v1/tracker/tickets/{number}")
                if t.status_code == 200 and t.json()["state"] == "assigned":
                    assert t.json()["lead"]["code"] == "M-CGW"
                    break
                await asyncio.sleep(0.05)
    return numbers


async def _state(live, number: str) -> dict:
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}) as client:
        return (await client.get(f"/api/v1/tracker/tickets/{number}")).json()


async def test_department_signs_returns_and_replies_and_the_visitor_reopens(live, browser, login):
    first, second, third = await _post_tickets(live)
    await live.user("cgw", Role.DEPARTMENT, department="M-CGW")
    await live.user("visitor", Role.VISITOR)
    shots = live.settings.data_dir

    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))  # script errors (CSP violations included)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 and "favicon" not in r.url else None)
    await login(page, live.url, "cgw")
    assert page.url.endswith("/tracker/inbox")
    for number in (first, second, third):
        await page.locator("tr", has_text=number).wait_for()
    assert "在办3" in (await page.inner_text(".tabs")).replace(" ", "").replace("\n", "")
    await page.wait_for_selector("#badge .badge")
    await page.screenshot(path=str(shots / "inbox.png"), full_page=True)

    # 签收 the first ticket.
    await page.click(f"text={first}")
    await page.click("button:has-text('签收')")
    await page.wait_for_selector(".msg.ok")
    assert "已签收" in await page.inner_text(".msg.ok")
    assert (await _state(live, first))["state"] == "signed_for"
    await page.screenshot(path=str(shots / "ticket-actions.png"), full_page=True)

    # 退单 the second, with a reason code and an explanation.
    await page.goto(f"{live.url}/tracker/tickets/{second}")
    await page.click("summary:has-text('退单')")
    await page.select_option("select[name=reason_code]", "other_unit")
    await page.fill("#ret-reason", "该工地位于经济开发区，应由开发区管委会处理")
    await page.click("button:has-text('退回重新派单')")
    await page.click("dialog.confirm button:has-text('确认退单')")  # 退单 cannot be undone: the page asks first
    await page.wait_for_url("**/tracker/inbox?returned=*")
    assert second in await page.inner_text(".msg.ok")
    assert (await _state(live, second))["state"] in ("returned", "assigned", "dispatching")

    # 答复 the third: a stock phrase is refused on the page, a real reply goes through.
    await page.goto(f"{live.url}/tracker/tickets/{third}")
    await page.click("button:has-text('签收')")
    await page.wait_for_selector(".msg.ok")
    await page.click("summary:has-text('答复市民')")
    await page.fill("#reply", "已处理")
    await page.click("button:has-text('提交答复')")
    await page.wait_for_selector(".msg.err")
    assert "答复过于简单" in await page.inner_text(".msg.err")
    await page.fill("#reply", REPLY)
    await page.click("button:has-text('提交答复')")
    await page.wait_for_selector(".msg.ok")
    assert (await _state(live, third))["state"] == "replied"
    await page.screenshot(path=str(shots / "ticket.png"), full_page=True)
    await context.close()

    # The return-visit operator calls the citizen back: dissatisfied, the department's doing.
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    await login(page, live.url, "visitor")
    assert page.url.endswith("/tracker/visits")
    await page.click(f"text={third}")
    assert REPLY[:20] in await page.inner_text(".reply-box")
    await page.check("input[name=outcome][value=dissatisfied]")
    await page.check("input[name=department_caused][value=yes]")
    await page.fill("#comment", "晚上还是有打桩声")
    await page.screenshot(path=str(shots / "visit.png"), full_page=True)
    await page.click("button:has-text('登记')")
    await page.wait_for_url("**/tracker/visits?done=*")
    assert third in await page.inner_text(".msg.ok")
    reopened = await _state(live, third)
    assert reopened["state"] == "reopened" and reopened["reopened"]
    assert [e["event_type"] for e in reopened["timeline"]][-2:] == ["ReturnVisitRecorded", "TicketReopened"]
    await context.close()
    assert errors == [] and missing == []


async def test_supervisor_approves_an_extension_and_is_warned_that_2027_is_unconfirmed(live, browser, login):
    first, *_ = await _post_tickets(live)
    dept = await live.user("cgw", Role.DEPARTMENT, department="M-CGW")
    await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {dept}"}) as client:
        await client.post(f"/api/v1/tracker/tickets/{first}/sign-for")
        calendar = live.runtime.state["tracker.clocks"].calendar
        due = (await _state(live, first))["reply_due"]
        import datetime as dt

        new_day = calendar.add_working_days(dt.datetime.fromisoformat(due), 5).astimezone(calendar.timezone).date()
        r = await client.post(f"/api/v1/tracker/tickets/{first}/extension",
                              json={"reason": "需协调住建部门联合执法", "new_due": new_day.isoformat()})
        assert r.status_code == 200, r.text

    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await login(page, live.url, "sup")
    await page.goto(f"{live.url}/tracker/supervision")
    body = await page.inner_text("main")
    assert "2027 年法定节假日安排尚未确认" in body and "需协调住建部门联合执法" in body
    await page.screenshot(path=str(live.settings.data_dir / "supervision.png"), full_page=True)
    await page.click(f"a:has-text('{first}')")
    await page.fill("#dec-note", "同意，请按期办结")
    await page.click("button:has-text('同意延期')")
    await page.wait_for_selector(".msg.ok")
    t = await _state(live, first)
    assert t["state"] == "signed_for" and t["extensions"] == [5]  # back to where it asked from
    assert "同意延期" in await page.inner_text(".timeline")
    await page.goto(f"{live.url}/tracker/calendar?year=2027")
    assert "未确认" in await page.inner_text("main")
    await page.goto(f"{live.url}/tracker/calendar?year=2026")
    cal = await page.inner_text("main")
    assert "2026-10-01" in cal and "2026-10-10" in cal  # National Day and its make-up Saturday
    await page.screenshot(path=str(live.settings.data_dir / "calendar.png"), full_page=True)


async def test_a_citizen_rates_an_online_reply_on_the_public_page_without_logging_in(live, browser):
    from sqlalchemy import select, update

    from schemas.events import Envelope
    from services.tracker.store import tickets

    first, *_ = await _post_tickets(live)
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == first).values(channel="online"))
    dept = await live.user("cgw", Role.DEPARTMENT, department="M-CGW")
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {dept}"}) as client:
        await client.post(f"/api/v1/tracker/tickets/{first}/sign-for")
        r = await client.post(f"/api/v1/tracker/tickets/{first}/reply", json={"reply": REPLY})
        assert r.status_code == 200, r.text
    async with store.db.session() as s:
        values = (await s.execute(select(store.tables.outbox.c.value))).scalars().all()
    link = next(e.parsed().link for e in map(Envelope.from_bytes, values) if e.event_type == "ReturnVisitDue")
    path = "/tracker/rate/" + link.rsplit("/tracker/rate/", 1)[1]

    page = await browser.new_page(viewport={"width": 420, "height": 860})  # a phone
    await page.goto(live.url + path)
    assert REPLY[:20] in await page.inner_text(".reply-box")
    await page.screenshot(path=str(live.settings.data_dir / "rate.png"), full_page=True)
    await page.check("input[value=basically_satisfied]")
    await page.fill("#comment", "处理及时")
    await page.click("button:has-text('提交评价')")
    await page.wait_for_selector(".msg.ok")
    assert (await _state(live, first))["state"] == "closed"
    await page.goto(live.url + path)
    assert "已评价" in await page.inner_text("main")

"""The supervision office in Chromium: a ticket that goes overdue appears in the ledger without a reload,
and the scorecard, trends, orders, wall screen and bulletin render (screenshots in the data dir)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import update

from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.store import tickets, timers
from tests.unit.tracker import sup_month as m

pytestmark = pytest.mark.browser

RECENT = [  # this week's complaints: two clusters at the same places, and one stray
    ("S-01-03", "C-NOISE", "解放路工地夜间施工噪音扰民", "每天晚上十一点以后工地还在打桩"),
    ("S-01-03", "C-NOISE", "解放路工地夜里打桩噪音太大", "晚上打桩声音很大影响休息"),
    ("S-01-03", "C-NOISE", "夜间施工噪音扰民解放路工地", "工地夜间施工噪音扰民，孩子睡不着"),
    ("S-02-01", "C-ROAD", "人民路人行道砖块破损", "人行道砖块松动破损，老人容易绊倒"),
    ("S-02-01", "C-ROAD", "人民路人行道破损严重", "人行道破损多处，砖块松动"),
    ("S-03-02", "C-BUILD", "小区电梯经常故障", "电梯一周坏了三次"),
]


async def _seed(live) -> str:
    store = live.runtime.store("tracker")
    now = utcnow()
    rows = []
    for i, (street, category, subject, text) in enumerate(RECENT):
        row = dict(m.TICKETS[0])
        row.update(ticket_id=uuid.uuid4(), number=f"12345-20261120-9000{i:02d}", state="signed_for", street=street,
                   district="D-" + street[2:4], category=category, subject=subject, description=text,
                   received_at=now - dt.timedelta(days=1, hours=i), assigned_at=now - dt.timedelta(days=1, hours=i),
                   sign_for_due=now, reply_due=now + dt.timedelta(days=3), warn_at=now + dt.timedelta(days=2),
                   replied_at=None, outcome=None, closed_at=None, reopen_count=0, reopened=False,
                   channel=("hotline", "online", "mailbox")[i % 3])
        rows.append(row)
    soon = dict(rows[-1], ticket_id=uuid.uuid4(), number="12345-20261122-777777", subject="路灯不亮已一周",
                reply_due=now + dt.timedelta(hours=2), warn_at=now + dt.timedelta(hours=1), street="S-01-01")
    async with store.db.session() as s:
        await m.seed(s)
        await s.execute(tickets.insert(), [*rows, soon])
        await s.execute(timers.insert(), [{"ticket_id": soon["ticket_id"], "kind": "reply_due",
                                            "due_at": soon["reply_due"]}])
    return soon["number"]


async def test_a_ticket_that_goes_overdue_appears_in_the_ledger_without_a_reload(live, browser, login):
    number = await _seed(live)
    await live.user("sup", Role.SUPERVISOR)
    shots = live.settings.data_dir
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await login(page, live.url, "sup")
    await page.goto(f"{live.url}/tracker/sup/ledger")
    await page.wait_for_selector("#live.on")
    assert await page.locator(f"tr[data-number='{number}']").count() == 0
    await page.evaluate("window.__sameDocument = true")

    # Its deadline passes: move the deadline and its timer into the past; the timer loop fires it.
    past = utcnow() - dt.timedelta(seconds=1)
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == number).values(
            reply_due=past, warn_at=past - dt.timedelta(hours=1), updated_at=utcnow()))
        await s.execute(update(timers).where(timers.c.kind == "reply_due", timers.c.fired_at.is_(None)).values(
            due_at=past))
    row = page.locator(f"tr[data-number='{number}']")
    await row.wait_for(timeout=10_000)
    assert await page.evaluate("window.__sameDocument === true")  # no reload happened
    assert "超期" in await row.inner_text()
    assert "fresh" in (await row.get_attribute("class"))
    assert int(await page.inner_text("#n-overdue")) == 3  # a6, a7 and this one
    await page.screenshot(path=str(shots / "sup-ledger.png"), full_page=True)

    # Bulk reminder from the list.
    await row.locator("input[type=checkbox]").check()
    await page.fill("input[name=reason]", "请今日内答复")
    await page.click("button:has-text('批量催办')")
    await page.wait_for_selector(".msg.ok")
    assert "已催办 1 件" in await page.inner_text(".msg.ok")

    await page.goto(f"{live.url}/tracker/sup/scorecard?period=2026-10")
    await page.wait_for_selector("#rank-chart[data-ready]")
    assert "77.8%" in await page.inner_text("table.scorecard")
    await page.screenshot(path=str(shots / "sup-scorecard.png"), full_page=True)
    await page.click(f"table.scorecard tr:has-text('{m.A_NAME}') td[data-rate=response] > a")
    await page.wait_for_selector("h1:has-text('响应率')")
    assert "共 7 件" in await page.inner_text("h1")

    await page.goto(f"{live.url}/tracker/sup/trends?days=90")
    for key in ("channel", "kind", "category", "district"):
        await page.wait_for_selector(f"[data-trend={key}][data-ready]")
    hot = await page.inner_text(".hot-list")
    assert "3 件" in hot and "2 件" in hot
    await page.screenshot(path=str(shots / "sup-trends.png"), full_page=True)

    for path, name in (("/tracker/sup/orders?tab=all", "sup-orders"), ("/tracker/sup/reports?period=2026-10", "sup-report"),
                       ("/tracker/sup/wall", "sup-wall")):
        await page.goto(f"{live.url}{path}")
        await page.wait_for_load_state("networkidle")
        await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    await asyncio.sleep(0.2)
    await context.close()
    assert errors == []

"""A citizen rates an online reply on a phone after the return-visit operator has already closed the ticket by phone:
the page says plainly that no rating is needed now, never the state machine's words."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, update

from schemas.enums import Role
from schemas.events import Envelope
from services.tracker.store import tickets
from tests.browser.test_tracker_workbench import REPLY, _post_tickets, _state

pytestmark = pytest.mark.browser


async def test_a_citizen_who_submits_after_the_phone_visit_is_told_no_rating_is_needed(live, browser):
    number, *_ = await _post_tickets(live)
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == number).values(channel="online"))
    dept = await live.user("cgw", Role.DEPARTMENT, department="M-CGW")
    visitor = await live.user("visitor", Role.VISITOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {dept}"}) as client:
        await client.post(f"/api/v1/tracker/tickets/{number}/sign-for")
        assert (await client.post(f"/api/v1/tracker/tickets/{number}/reply", json={"reply": REPLY})).status_code == 200
    async with store.db.session() as s:
        values = (await s.execute(select(store.tables.outbox.c.value))).scalars().all()
    link = next(e.parsed().link for e in map(Envelope.from_bytes, values) if e.event_type == "ReturnVisitDue")
    path = "/tracker/rate/" + link.rsplit("/tracker/rate/", 1)[1]

    page = await browser.new_page(viewport={"width": 420, "height": 860})  # a phone
    await page.goto(live.url + path)
    await page.check("input[value=dissatisfied]")
    await page.fill("#comment", "路面仍有积水，希望再来看看")
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {visitor}"}) as client:
        r = await client.post(f"/api/v1/tracker/tickets/{number}/return-visit", json={"outcome": "satisfied"})
        assert r.json()["state"] == "closed"  # the visitor's call came first

    await page.click("button:has-text('提交评价')")
    said = page.locator("#rating-settled")
    await said.wait_for()
    assert (await said.get_attribute("role")) == "status"
    text = await page.inner_text("main")
    assert "该工单已在回访后办结，现在无需评价。" in text and "工单当前状态" not in text
    await page.screenshot(path=str(live.settings.data_dir / "rate-settled.png"), full_page=True)

    await page.goto(live.url + path)  # opened again later: the same words, and no form
    assert "该工单已在回访后办结，现在无需评价。" in await page.inner_text("main")
    assert await page.locator("form").count() == 0
    assert (await _state(live, number))["outcome"] == "satisfied"

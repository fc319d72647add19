"""An operator working by keyboard reaches the caller's earlier tickets: Tab goes through the form's fields as before,
then its buttons, then the earlier tickets and the mail that could not be delivered; Alt+H jumps to the earlier
tickets, Enter opens one, and Alt+P goes back to the form."""

import asyncio
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import select

from schemas.enums import Role
from schemas.events import utcnow
from services.intake.store import acknowledgements, tickets
from tests.browser.test_intake_console import CALLER

pytestmark = pytest.mark.browser

FOCUSED = "(() => { const e = document.activeElement; return e.id || e.textContent.trim(); })()"
# The form's fields in their Tab order, then its buttons (the console's own tests walk them the same way).
FORM = ["f-name", "f-confidential", "f-kind", "f-urgency", "f-district", "f-street", "f-address", "f-subject",
        "f-description", "f-category", "f-unit", "f-direct", "submit", "clear"]


async def earlier_ticket(live, token: str) -> str:
    """A ticket of the caller that the tracker holds (the console's history is the tracker's): its number. Patient, as
    a busy machine may be slow to route it."""
    async with httpx.AsyncClient(base_url=live.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        r = await client.post("/api/v1/intake/tickets", json={
            "kind": "complaint", "subject": "楼下工地夜间施工噪音扰民", "description": "每天晚上十一点以后还在打桩。",
            "citizen": {"phone": CALLER}})
        assert r.status_code == 201, r.text
        for _ in range(600):
            if (await client.get("/api/v1/tracker/tickets", params={"phone": CALLER})).json()["total"]:
                return r.json()["number"]
            await asyncio.sleep(0.1)
    raise AssertionError("the tracker never held the caller's ticket")


async def receipt_given_up(live, number: str) -> None:
    """The earlier ticket's receipt, given up: the console lists it with a button to send it again."""
    async with live.runtime.store("intake").transaction() as tx:
        ticket = (await tx.session.execute(select(tickets).where(tickets.c.number == number))).one()
        await tx.session.execute(acknowledgements.insert().values(
            ticket_id=ticket.ticket_id, attempts=3, next_attempt_at=utcnow(),
            failing_since=utcnow() - timedelta(days=1), failed_at=utcnow(),
            last_error="收件地址被邮件服务器拒收：550 5.1.1 User unknown"))


async def test_the_callers_earlier_tickets_are_reached_by_keyboard_after_the_forms_fields(live, browser, login):
    token = await live.user("wangli", Role.OPERATOR)
    earlier = await earlier_ticket(live, token)
    await receipt_given_up(live, earlier)
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(60_000)  # a busy machine
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await page.locator('#f-district option[value="D-01"]').wait_for(state="attached")  # the directory is in
    kb = page.keyboard
    await expect(page.locator("#f-phone")).to_be_focused()
    await kb.type(CALLER)
    history = page.locator("#history-body").get_by_role("link", name=earlier)
    await history.wait_for()

    walked = []
    for _ in FORM + ["the earlier ticket", "全部重新发送", "its receipt's ticket", "重新发送"]:
        await kb.press("Tab")
        walked.append(await page.evaluate(FOCUSED))
    assert walked == FORM + [earlier, "全部重新发送", earlier, "重新发送"]  # the history's link, then the mail's
    await kb.press("Shift+Tab")
    await kb.press("Shift+Tab")
    await kb.press("Shift+Tab")
    await expect(history).to_be_focused()

    await kb.press("Alt+s")  # back in the form, typing the matter…
    await kb.type("工地夜间施工噪音")
    await kb.press("Alt+h")  # …the caller's earlier tickets, in one key
    await expect(history).to_be_focused()
    await kb.press("Alt+p")
    await expect(page.locator("#f-phone")).to_be_focused()
    await kb.press("Alt+h")
    async with page.expect_navigation():
        await kb.press("Enter")
    assert page.url.endswith(f"/tracker/tickets/{earlier}")

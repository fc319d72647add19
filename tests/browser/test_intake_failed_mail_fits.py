"""The console's list of mail to citizens that could not be delivered fits its side panel: at a desk's width and at a
phone's, an operator sees each entry, why it failed and its 重新发送 button without scrolling sideways, and reaches
them with the keyboard."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import select, update

from schemas.enums import Role
from schemas.events import utcnow
from services.intake.store import acknowledgements, rating_invitations, tickets
from tests.mandatory import require_chinese_font

pytestmark = pytest.mark.browser

DESK = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SUBJECT = "H4县运管所不退还出租车经营权有偿使用费，多次联系未果"
# What jiesu.mailer writes when a citizen's mail server refuses the address, the address hidden.
REFUSED = ("收件地址被邮件服务器拒收：550 5.1.1 <收件地址>: Recipient address rejected: User unknown in virtual "
           "mailbox table; see https://mail.example.cn/postmaster/bounce-help?code=5.1.1&lang=zh-CN")
UNREACHABLE = "无法连接邮件服务器 smtp-relay.internal.city.example.cn:587：[Errno 111] Connection refused"


async def given_up_mail(live, token: str) -> list[str]:
    """Three tickets whose receipts were given up, one of them a reply whose rating invitation was too: numbers."""
    numbers = []
    async with httpx.AsyncClient(base_url=live.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(3):
            r = await client.post("/api/v1/intake/tickets", json={
                "kind": "complaint", "subject": f"{SUBJECT}（{i + 1}）", "description": "多次联系未果。",
                "citizen": {"phone": f"1390000{i:04d}"}})
            assert r.status_code == 201, r.text
            numbers.append(r.json()["number"])
    await tracked(live, numbers)  # else the tracker's word on them could come after the reply written below
    now = utcnow()
    async with live.runtime.store("intake").transaction() as tx:
        for i, number in enumerate(numbers):
            ticket = (await tx.session.execute(select(tickets).where(tickets.c.number == number))).one()
            await tx.session.execute(acknowledgements.insert().values(
                ticket_id=ticket.ticket_id, attempts=9, next_attempt_at=now, failing_since=now - timedelta(hours=30),
                failed_at=now - timedelta(minutes=i), last_error=REFUSED if i % 2 == 0 else UNREACHABLE))
        link = f"{live.url}/tracker/rate/{numbers[0]}"
        await tx.session.execute(update(tickets).where(tickets.c.number == numbers[0]).values(
            state="replied", rating_link=link, reply="已更换灯泡。"))
        ticket = (await tx.session.execute(select(tickets).where(tickets.c.number == numbers[0]))).one()
        await tx.session.execute(rating_invitations.insert().values(
            event_id=ticket.event_id, ticket_id=ticket.ticket_id, link=link, attempts=1, next_attempt_at=now,
            failing_since=now, failed_at=now, last_error=REFUSED))
    return numbers


async def tracked(live, numbers: list[str]) -> None:
    """Wait until intake has heard from the tracker about each ticket (its state is no longer 受理)."""
    for _ in range(600):
        async with live.runtime.store("intake").db.session() as s:
            states = (await s.execute(select(tickets.c.state).where(tickets.c.number.in_(numbers)))).scalars().all()
        if len(states) == len(numbers) and "received" not in states:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the tracker did not take {numbers} within a minute: {states}")


async def console(live, browser, login, viewport):
    page = await browser.new_page(viewport=viewport)
    page.set_default_timeout(60_000)  # a busy machine
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await page.locator("#failed-receipts").wait_for()
    return page


SIDEWAYS = """section => [section, ...section.querySelectorAll('*')]
  .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
  .map(e => `${e.tagName}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)"""


async def test_each_undelivered_mail_and_its_resend_button_are_seen_without_scrolling_sideways(live, browser, login):
    require_chinese_font()  # the widths measured are those of Chinese text
    token = await live.user("wangli", Role.OPERATOR)
    numbers = await given_up_mail(live, token)
    for viewport in (DESK, PHONE):
        await fits(live, await console(live, browser, login, viewport), numbers)


async def fits(live, page, numbers: list[str]) -> None:
    viewport = page.viewport_size
    listed = page.locator("#failed-receipts")
    await page.screenshot(path=str(live.settings.data_dir / f"console-failed-mail-{viewport['width']}.png"),
                          full_page=True)

    assert await listed.evaluate(SIDEWAYS) == []  # nothing in the panel scrolls sideways
    assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    box = await listed.bounding_box()

    async def within_the_panel(part) -> None:
        await expect(part).to_be_visible()
        seen = await part.bounding_box()
        assert box["x"] <= seen["x"] and seen["x"] + seen["width"] <= box["x"] + box["width"] + 0.5, (seen, box)

    for number in numbers:
        links = listed.get_by_role("link", name=number, exact=True)
        resends = listed.locator(f'form[action="/intake/receipts/{number}/resend"]').get_by_role("button")
        assert await links.count() == await resends.count() == (2 if number == numbers[0] else 1)
        for i in range(await links.count()):
            await within_the_panel(links.nth(i))
            await within_the_panel(resends.nth(i))
            await expect(resends.nth(i)).to_have_text("重新发送")
    for why in ("Recipient address rejected", "Connection refused"):
        await within_the_panel(listed.get_by_text(why).first)

"""重新发送 in Chromium: the supervision office clicks it on a notification the unit's mail server had refused, once
the server takes the mailbox again, and the running system delivers it (a real SMTP server on loopback)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from jiesu.config import Settings
from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.notify import notify
from services.tracker.store import deliveries, tickets, unit_contacts
from tests.integration.test_delivery_failures import GONE
from tests.smtp_sink import mail_server

pytestmark = pytest.mark.browser

NUMBER = "12345-20261125-000042"


@pytest.fixture
def sink():
    with mail_server() as served:
        yield served


@pytest.fixture
def sqlite_settings(tmp_path, sink):
    """The live system sending mail to the sink (overrides the conftest fixture)."""
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    mail_host="127.0.0.1", mail_port=sink[1], _env_file=None)


async def _until(check, timeout: float = 10.0):
    for _ in range(int(timeout / 0.1)):
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("not in time")


async def test_the_office_sends_a_refused_notification_again_by_clicking_resend(live, browser, login, sink):
    mail, _ = sink
    mail.refused[GONE] = "550 5.1.1 <gone@cgw.city.example>: Recipient address rejected: User unknown"
    store = live.runtime.store("tracker")
    async with store.transaction() as tx:
        await tx.session.execute(tickets.insert().values(
            ticket_id=uuid.uuid4(), number=NUMBER, state="assigned", kind="complaint", urgency="normal",
            subject="夜间施工噪音扰民", citizen_phone="13800138000", confidential=False, lead_code="M-CGW",
            lead_name="市城市管理委员会", co_handlers=[], assigned_at=utcnow(), updated_at=utcnow()))
        await tx.session.execute(unit_contacts.insert().values(unit_code="M-CGW", email=GONE))
        row = (await tx.session.execute(select(tickets).where(tickets.c.number == NUMBER))).one()
        await notify(tx, live.settings, row, "M-CGW", "arrived", "新工单：夜间施工噪音扰民")

    async def given_up():
        async with store.db.session() as s:
            return (await s.execute(select(deliveries).where(deliveries.c.failed_at.isnot(None)))).first()

    await _until(given_up)  # the running delivery worker was refused for good
    del mail.refused[GONE]  # the mail server takes the mailbox again

    await live.user("sup", Role.SUPERVISOR)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    await login(page, live.url, "sup")
    await page.goto(f"{live.url}/tracker/supervision")
    failed = page.locator("#undelivered tr", has_text=NUMBER)
    async with page.expect_navigation():
        await failed.get_by_role("button", name="重新发送").click()
    assert f"工单 {NUMBER}：已重新发送通知。" in await page.locator(".msg.ok").inner_text()

    async def delivered():
        return [m for m in mail.messages if NUMBER in m["Subject"]]

    [message] = await _until(delivered)
    assert message["To"] == GONE
    await page.reload()
    assert await page.locator("#undelivered tr", has_text=NUMBER).count() == 0
    await context.close()

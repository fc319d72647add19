"""Departments are told: an e-mail through a real SMTP server, a signed webhook retried until it lands,
and a mailbox that no longer exists shown to the supervision office and the department.

Both receivers (tests.smtp_sink, tests.webhook_sink) run on loopback ports; the webhook receiver fails the
first call so that the retry with back-off is exercised.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx
import pytest
from sqlalchemy import select

from jiesu.config import Settings
from schemas.enums import Role
from services.tracker.store import deliveries, notifications
from tests.smtp_sink import mail_server
from tests.webhook_sink import WebhookSink, webhook_server

SECRET = "webhook-test-secret"
PHONE = "13800138000"


@pytest.fixture
async def sinks():
    with mail_server() as (mail, smtp_port):
        async with webhook_server(WebhookSink(failures=1)) as (hook, hook_url):  # the first call fails
            yield mail, hook, smtp_port, hook_url


@pytest.fixture
def sqlite_settings(tmp_path, sinks) -> Settings:
    """The live system's settings, pointed at the sinks (overrides the conftest fixture)."""
    _, _, smtp_port, hook_url = sinks
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    mail_host="127.0.0.1", mail_port=smtp_port, mail_from="jiesu@city.example",
                    webhook_url=hook_url, webhook_secret=SECRET, timer_poll_seconds=0.2, _env_file=None)


async def _until(check, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)
    return result


async def test_a_new_ticket_reaches_the_department_by_email_and_by_a_signed_webhook_after_a_retry(live, sinks):
    mail, hook, _, _ = sinks
    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        # Rule R-012 sends night-time construction noise to the city management commission.
        r = await client.put("/api/v1/tracker/units/M-CGW/contact", json={"email": "duty@cgw.city.example"},
                             headers={"Authorization": f"Bearer {sup}"})
        assert r.status_code == 200, r.text
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {op}"}, json={
            "kind": "complaint", "subject": f"夜间施工噪音，请回电{PHONE}",
            "description": "每天晚上十一点以后工地还在打桩，噪音很大。", "citizen": {"name": "张伟", "phone": PHONE},
            "location": {"address": "滨江路18号"}})
        number = r.json()["number"]

    message = await _until(lambda: next((m for m in mail.messages if number in m["Subject"]), None))
    assert message["To"] == "duty@cgw.city.example" and message["From"] == "jiesu@city.example"
    assert "新工单" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert number in text and f"/tracker/tickets/{number}" in text
    assert PHONE not in message.as_string() and PHONE not in text

    await _until(lambda: len(hook.calls) >= 2)
    headers, body = hook.calls[-1]
    assert headers["x-jiesu-signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload["number"] == number and payload["kind"] == "arrived" and payload["unit"] == "M-CGW"
    assert PHONE not in body.decode()
    assert hook.calls[0][1] == body  # the retry sends the same signed body

    store = live.runtime.store("tracker")

    async def delivered():
        async with store.db.session() as s:
            return (await s.execute(select(deliveries).where(deliveries.c.channel == "webhook"))).all()

    for _ in range(50):
        rows = await delivered()
        if rows and rows[0].delivered_at:
            break
        await asyncio.sleep(0.1)
    assert rows[0].delivered_at is not None and rows[0].attempts == 2 and rows[0].last_error is None


async def test_the_department_sees_an_unread_badge_and_can_mark_notifications_read(live, sinks):
    op = await live.user("op", Role.OPERATOR)
    dept = await live.user("dept", Role.DEPARTMENT, department="M-CGW")
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {op}"}, json={
            "kind": "complaint", "subject": "夜间施工噪音扰民", "description": "每天晚上十一点以后工地还在打桩，噪音很大。",
            "citizen": {"name": "张伟", "phone": PHONE}, "location": {"address": "滨江路18号"}})
        h = {"Authorization": f"Bearer {dept}"}
        for _ in range(100):
            listed = (await client.get("/api/v1/tracker/notifications", headers=h)).json()
            if listed["unread"]:
                break
            await asyncio.sleep(0.05)
        assert listed["unread"] == 1 and listed["items"][0]["kind"] == "arrived"
        assert PHONE not in json.dumps(listed, ensure_ascii=False)
        badge = await client.get("/tracker/badge", headers=h)
        assert 'data-unread="1"' in badge.text
        assert (await client.post("/api/v1/tracker/notifications/read", headers=h)).json() == {"unread": 0}
        assert (await client.get("/api/v1/tracker/notifications", headers=h)).json()["unread"] == 0


async def test_a_department_mailbox_that_no_longer_exists_is_shown_to_the_office_and_the_department(live, sinks):
    mail, _, _, _ = sinks
    gone = "gone@cgw.city.example"
    mail.refused[gone] = f"550 5.1.1 <{gone}>: Recipient address rejected: User unknown"
    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    dept = await live.user("dept", Role.DEPARTMENT, department="M-CGW")
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        def as_(token):
            return {"Authorization": f"Bearer {token}"}

        r = await client.put("/api/v1/tracker/units/M-CGW/contact", json={"email": gone}, headers=as_(sup))
        assert r.status_code == 200, r.text
        r = await client.post("/api/v1/intake/tickets", headers=as_(op), json={
            "kind": "complaint", "subject": f"夜间施工噪音，请回电{PHONE}",
            "description": "每天晚上十一点以后工地还在打桩，噪音很大。", "citizen": {"name": "张伟", "phone": PHONE},
            "location": {"address": "滨江路18号"}})
        number = r.json()["number"]

        store = live.runtime.store("tracker")

        async def given_up():
            async with store.db.session() as s:
                return (await s.execute(select(deliveries).where(deliveries.c.channel == "email",
                                                                 deliveries.c.failed_at.isnot(None)))).first()

        for _ in range(200):
            if row := await given_up():
                break
            await asyncio.sleep(0.1)
        assert row and row.attempts == 1 and row.last_error.startswith("收件地址被邮件服务器拒收：550")

        # A co-handler's mailbox on the same ticket failed too: its own business, not the lead department's.
        async with store.db.session() as s:
            ticket_id = await s.scalar(select(notifications.c.ticket_id)
                                       .where(notifications.c.id == row.notification_id))
            told = await s.execute(notifications.insert().values(
                unit_code="D-XH", ticket_id=ticket_id, number=number, kind="arrived", message="新工单",
                created_at=row.failed_at))
            await s.execute(deliveries.insert().values(
                notification_id=told.inserted_primary_key[0], channel="email", target="duty@xh.city.example", body={},
                attempts=1, next_attempt_at=row.failed_at, failed_at=row.failed_at, last_error="收件地址被邮件服务器拒收：550"))

        def undelivered(page: str) -> str:
            start = page.find('id="undelivered"')
            return page[start:page.find("</section>", start)] if start >= 0 else ""

        office = undelivered((await client.get("/tracker/supervision", headers=as_(sup))).text)
        assert number in office and gone in office and "收件地址被邮件服务器拒收：550" in office and "新工单" in office
        for token in (sup, dept):  # the office, and the department whose mailbox it was, on the ticket's page
            section = undelivered((await client.get(f"/tracker/tickets/{number}", headers=as_(token))).text)
            assert gone in section and "User unknown" in section and PHONE not in section
            assert ("duty@xh.city.example" in section) == (token == sup)
        page = await client.get(f"/tracker/tickets/{number}", headers=as_(op))
        assert page.status_code == 200 and not undelivered(page.text)  # nothing for an operator to act on

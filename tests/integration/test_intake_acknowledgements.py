"""受理回执: whoever gives an e-mail address gets one receipt with the ticket number, once, even
through retries and a mail server that is down (on SQLite and on PostgreSQL), and the running
system sends it for a letter by e-mail, threaded under the letter."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.message import EmailMessage
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from jiesu.config import Settings
from jiesu.embedded_broker import free_port
from jiesu.migrate import upgrade_all
from jiesu.runtime import Runtime
from schemas.enums import Channel
from schemas.events import utcnow
from services.intake import bootstrap, mail, service
from services.intake.domain.submission import TicketSubmission
from services.intake.store import acknowledgements
from tests.integration.test_intake_email import number_of, send
from tests.integration.test_tracker_notifications import MailSink, _until

TZ = ZoneInfo("Asia/Shanghai")


class FlakyMailSink(MailSink):
    """A mail server that refuses its first `failures` messages for now (451), then takes them."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        if self.failures:
            self.failures -= 1
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def outgoing():
    sink = FlakyMailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        yield sink, smtp.port
    finally:
        smtp.stop()


@pytest.fixture
async def rt(any_settings, outgoing):
    """Intake alone (no broker): its store, the SMTP listener for letters, mail going to the sink."""
    settings = any_settings.model_copy(update={
        "mail_host": "127.0.0.1", "mail_port": outgoing[1], "mail_from": "12345@city.example",
        "public_url": "https://12345.city.example/", "smtp_listen_port": free_port()})
    await asyncio.to_thread(upgrade_all, settings, ("intake",))
    runtime = Runtime.create(settings, ["intake"], bootstrap="unused:9092")
    await bootstrap.setup(runtime)
    server = await mail.start(runtime, settings.smtp_listen_host, settings.smtp_listen_port)
    try:
        yield runtime
    finally:
        server.close()
        await runtime.close()


def letter() -> EmailMessage:
    m = EmailMessage()
    m["From"] = "张伟 <zhangwei@example.cn>"
    m["To"] = "mayor@jiangcheng.gov.cn"
    m["Subject"] = "投诉：解放路工地夜间施工"
    m["Message-ID"] = "<letter-ack-0001@example.cn>"
    m.set_content("市长您好：\n解放路18号工地每晚施工到凌晨，严重扰民。")
    return m


def form(email: str = "", phone: str = "13700001234") -> TicketSubmission:
    return TicketSubmission.model_validate({"kind": "help", "subject": "路灯不亮", "description": "幸福路路灯一周不亮",
                                            "citizen": {"name": "李娜", "phone": phone, "email": email}})


async def owed(rt) -> list:
    async with rt.store("intake").db.session() as s:
        return (await s.execute(select(acknowledgements).order_by(acknowledgements.c.id))).all()


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


async def test_a_letter_gets_one_threaded_receipt_and_its_redelivery_none(rt, outgoing):
    sink, _ = outgoing
    code, reply = await send(SimpleNamespace(settings=rt.settings), letter())
    assert code == 250
    code, again = await send(SimpleNamespace(settings=rt.settings), letter())  # the sender's server retries
    assert code == 250 and number_of(again) == number_of(reply)
    number = number_of(reply)

    assert await mail.receipts(rt).deliver_once() == 1
    assert await mail.receipts(rt).deliver_once() == 0
    [receipt] = sink.messages
    assert receipt["To"] == "zhangwei@example.cn" and receipt["From"] == "12345@city.example"
    assert receipt["In-Reply-To"] == "<letter-ack-0001@example.cn>"
    assert receipt["References"] == "<letter-ack-0001@example.cn>"
    assert number in receipt["Subject"] and "受理回执" in receipt["Subject"]
    text = text_of(receipt)
    assert f"工单编号：{number}" in text and "投诉：解放路工地夜间施工" in text
    assert "https://12345.city.example/intake/progress" in text
    assert "张伟" in text and "受理时间：" in text
    assert "12345热线" in text  # no phone in a letter: the look-up page cannot find it, the hotline can


async def test_a_letter_without_a_message_id_gets_a_receipt_that_answers_nothing(rt, outgoing):
    sink, _ = outgoing
    unnamed = letter()
    del unnamed["Message-ID"]
    code, reply = await send(SimpleNamespace(settings=rt.settings), unnamed)
    assert code == 250
    assert await mail.receipts(rt).deliver_once() == 1
    [receipt] = sink.messages
    assert receipt["In-Reply-To"] is None and receipt["References"] is None
    assert number_of(reply) in receipt["Subject"] and not receipt["Subject"].startswith("Re:")


async def test_a_form_with_an_email_gets_one_receipt_and_one_without_none(rt, outgoing):
    sink, _ = outgoing
    store = rt.store("intake")
    first = await service.accept(store, form(email="lina@example.cn"), channel=Channel.ONLINE, operator=None,
                                 idempotency_key="form-1", tz=TZ)
    retry = await service.accept(store, form(email="lina@example.cn"), channel=Channel.ONLINE, operator=None,
                                 idempotency_key="form-1", tz=TZ)
    assert retry.duplicate_request and retry.number == first.number
    await service.accept(store, form(), channel=Channel.MAILBOX, operator=None, idempotency_key=None, tz=TZ)

    assert [row.ticket_id for row in await owed(rt)] == [first.ticket_id]
    assert await mail.receipts(rt).deliver_once() == 1
    [receipt] = sink.messages
    assert receipt["To"] == "lina@example.cn" and receipt["In-Reply-To"] is None
    assert first.number in text_of(receipt) and "12345热线" not in text_of(receipt)  # a phone was given


async def test_a_receipt_refused_by_the_mail_server_is_sent_once_later(rt, outgoing):
    sink, _ = outgoing
    sink.failures = 1
    store = rt.store("intake")
    receipt = await service.accept(store, form(email="lina@example.cn"), channel=Channel.ONLINE, operator=None,
                                   idempotency_key=None, tz=TZ)
    loop = mail.receipts(rt)
    assert await loop.deliver_once() == 1 and sink.messages == []
    [row] = await owed(rt)
    assert row.delivered_at is None and row.last_error and row.next_attempt_at > utcnow()
    assert await loop.deliver_once() == 0  # backing off

    async with store.db.session() as s:  # the back-off has passed
        await s.execute(update(acknowledgements).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert await loop.deliver_once() == 1
    assert await loop.deliver_once() == 0
    assert [m["Subject"] for m in sink.messages] == [f"【受理回执】{receipt.number} 路灯不亮"]
    [row] = await owed(rt)
    assert row.delivered_at is not None and row.attempts == 2 and row.last_error is None
    assert await mail.purge_acknowledgements(store, timedelta(days=7)) == 0  # kept for the retention
    assert await mail.purge_acknowledgements(store, timedelta(0)) == 1


async def test_without_an_outgoing_mail_server_no_receipt_is_owed(any_settings):
    settings = any_settings.model_copy(update={"mail_host": ""})
    await asyncio.to_thread(upgrade_all, settings, ("intake",))
    runtime = Runtime.create(settings, ["intake"], bootstrap="unused:9092")
    try:
        await bootstrap.setup(runtime)
        await service.accept(runtime.store("intake"), form(email="lina@example.cn"), channel=Channel.ONLINE,
                             operator=None, idempotency_key=None, tz=TZ)
        assert await owed(runtime) == []
    finally:
        await runtime.close()


@pytest.fixture
def sqlite_settings(tmp_path, outgoing):
    """The live system with the SMTP listener on and outgoing mail to the sink (overrides the conftest fixture)."""
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    smtp_listen_port=free_port(), mail_host="127.0.0.1", mail_port=outgoing[1], _env_file=None)


async def test_the_running_system_answers_a_letter_with_its_receipt(live, outgoing):
    sink, _ = outgoing
    code, reply = await send(live, letter())
    assert code == 250
    receipt = await _until(lambda: next((m for m in sink.messages if number_of(reply) in m["Subject"]), None))
    assert receipt["To"] == "zhangwei@example.cn" and receipt["In-Reply-To"] == "<letter-ack-0001@example.cn>"
    assert number_of(reply) in text_of(receipt) and "/intake/progress" in text_of(receipt)

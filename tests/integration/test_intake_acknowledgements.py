"""受理回执: whoever gives an e-mail address gets one receipt with the ticket number, once, even
through retries and a mail server that is down (on SQLite and on PostgreSQL), and the running
system sends it for a letter by e-mail, threaded under the letter. A receipt to an address that
does not exist, or failing for too long, is given up and shown to the operators."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from email.message import EmailMessage
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from jiesu.config import Settings
from jiesu.embedded_broker import free_port
from jiesu.migrate import upgrade_all
from jiesu.runtime import Runtime
from schemas.enums import Channel, Role
from schemas.events import utcnow
from services.intake import bootstrap, mail, service
from services.intake.domain.submission import TicketSubmission
from services.intake.store import acknowledgements, tickets
from tests.integration.test_intake_email import number_of, send
from tests.integration.test_tracker_notifications import _until

TZ = ZoneInfo("Asia/Shanghai")


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
    assert f"https://12345.city.example/intake/progress?number={number}" in text
    assert "张伟" in text and "受理时间：" in text
    # No phone in a letter: the look-up takes the query code the receipt gives.
    code = re.search(r"查询码：([2-9A-Z]{4}-[2-9A-Z]{4})", text).group(1)
    row, by_code = await service.progress(rt.store("intake"), number, code)
    assert row.number == number and by_code
    assert "凭工单编号和查询码查询" in text and "后四位" not in text and "12345热线" not in text


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
    assert f"查询码：{first.query_code[:4]}-{first.query_code[4:]}" in text_of(receipt)
    assert "凭工单编号和联系电话后四位查询，或凭工单编号和查询码查询" in text_of(receipt)


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


NOBODY = "Nobody@Example.cn"  # a mistyped address: the citizen's mail server has no such mailbox
REFUSAL = "550 5.1.1 <nobody@example.cn>: Recipient address rejected: User unknown in virtual mailbox table"


async def test_a_receipt_to_an_address_that_does_not_exist_is_given_up_at_once_and_kept(rt, outgoing, capsys):
    sink, _ = outgoing
    sink.refused[NOBODY.lower()] = REFUSAL
    store = rt.store("intake")
    receipt = await service.accept(store, form(email=NOBODY.lower()), channel=Channel.ONLINE, operator=None,
                                   idempotency_key=None, tz=TZ)
    loop = mail.receipts(rt)
    assert await loop.deliver_once() == 1
    [row] = await owed(rt)
    assert row.failed_at is not None and row.delivered_at is None and row.attempts == 1
    assert row.last_error == ("收件地址被邮件服务器拒收：550 5.1.1 <收件地址>: Recipient address rejected: "
                              "User unknown in virtual mailbox table")
    logged = capsys.readouterr()
    assert "acknowledgement given up" in logged.out + logged.err and str(receipt.ticket_id) in logged.out + logged.err

    async with store.db.session() as s:  # never leased again, however long it waits
        await s.execute(update(acknowledgements).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert await loop.deliver_once() == 0
    assert await mail.purge_acknowledgements(store, timedelta(0)) == 0  # the only record that it never arrived
    assert [r.failed_at for r in await owed(rt)] == [row.failed_at] and sink.messages == []


async def test_a_receipt_failing_for_now_is_given_up_after_the_configured_hours(rt, outgoing):
    sink, _ = outgoing
    sink.failures = 100  # 451 for now, for ever
    store = rt.store("intake")
    await service.accept(store, form(email="lina@example.cn"), channel=Channel.ONLINE, operator=None,
                         idempotency_key=None, tz=TZ)
    loop = mail.receipts(SimpleNamespace(store=rt.store, settings=rt.settings.model_copy(
        update={"delivery_give_up_hours": 5})))

    async def failing_since(ago: timedelta):
        async with store.db.session() as s:
            await s.execute(update(acknowledgements).values(next_attempt_at=utcnow() - timedelta(seconds=1),
                                                            failing_since=utcnow() - ago))
        assert await loop.deliver_once() == 1
        [row] = await owed(rt)
        return row

    assert await loop.deliver_once() == 1
    [row] = await owed(rt)
    assert row.failed_at is None and row.failing_since is not None and "451" in row.last_error
    assert (await failing_since(timedelta(hours=4, minutes=59))).failed_at is None
    row = await failing_since(timedelta(hours=5, minutes=1))
    assert row.failed_at is not None and row.attempts == 3
    assert row.last_error == "邮件暂时被邮件服务器拒收：451 4.3.0 Try again later"


async def test_the_operators_view_of_a_receipt_never_shows_the_citizens_address_or_number(rt):
    """An unexpected error is kept as it was raised and may quote the address: the views mask it."""
    store = rt.store("intake")
    receipt = await service.accept(store, form(email="lina@example.cn"), channel=Channel.ONLINE, operator=None,
                                   idempotency_key=None, tz=TZ)
    async with store.db.session() as s:
        await s.execute(update(acknowledgements).values(failed_at=utcnow(), last_error=(
            "SMTPRecipientsRefused({'LiNa@Example.cn': (550, b'unknown')}) for 13700001234")))
    async with store.db.session() as s:
        ticket = (await s.execute(select(tickets).where(tickets.c.ticket_id == receipt.ticket_id))).one()
        status = await mail.receipt_of(s, ticket)
    assert status["status"] == "failed" and status["attempts"] == 0
    assert status["error"] == "SMTPRecipientsRefused({'***': (550, b'unknown')}) for 137****1234"
    [listed] = await mail.failed_receipts(store, since=utcnow() - timedelta(days=7))
    assert listed["number"] == receipt.number and listed["error"] == status["error"]
    async with store.db.session() as s:  # given up long ago: no longer on the console
        await s.execute(update(acknowledgements).values(failed_at=utcnow() - timedelta(days=8)))
    assert await mail.failed_receipts(store, since=utcnow() - timedelta(days=7)) == []


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


async def test_operators_see_a_receipt_that_could_not_be_delivered_without_the_address(live, outgoing):
    sink, _ = outgoing
    sink.refused[NOBODY.lower()] = REFUSAL
    m = letter()
    m.replace_header("From", f"张伟 <{NOBODY.lower()}>")
    m.replace_header("Message-ID", "<letter-ack-0002@example.cn>")
    m.replace_header("Subject", "投诉：工地夜间施工，请回电13700001234")
    code, reply = await send(live, m)
    assert code == 250
    number = number_of(reply)
    op = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, timeout=20, headers={"Authorization": f"Bearer {op}"}) as client:
        async def given_up():
            r = await client.get(f"/api/v1/intake/tickets/{number}")
            receipt = r.json()["receipt"]
            return receipt if receipt and receipt["status"] == "failed" else None

        receipt = None
        for _ in range(100):
            if receipt := await given_up():
                break
            await asyncio.sleep(0.1)
        assert receipt and receipt["status_label"] == "发送失败，已停止重试" and receipt["attempts"] == 1
        assert receipt["error"].startswith("收件地址被邮件服务器拒收：550") and "nobody" not in receipt["error"].lower()

        console = (await client.get("/intake/console")).text
        listed = console[console.index('id="failed-receipts"'):]
        assert number in listed and "收件地址被邮件服务器拒收：550" in listed
        assert "137****1234" in listed and "13700001234" not in listed  # never the citizen's number
        assert "nobody" not in listed.lower()  # nor the address: the console shows no contact data of this citizen


def test_a_ticket_from_before_query_codes_without_a_phone_is_sent_to_the_hotline(any_settings):
    ticket = SimpleNamespace(ticket_id="t-1", number="12345-20261101-000007", subject="路灯不亮", citizen_name="",
                             citizen_email="a@example.cn", citizen_phone="", query_code=None, source_ref="form:x",
                             channel="online", received_at=utcnow())
    text = mail.acknowledgement(any_settings, ticket).get_body(("plain",)).get_content()
    assert "可拨打12345热线报工单编号查询" in text and "查询码" not in text and "市民朋友" in text

"""A rating invitation (评价邀请) that is given up is listed on the operators' console beside the receipts (受理回执)
and sent again, once, when an operator asks after the fault is put right, one or all; each re-send is audited, and one
that was not given up is refused. On SQLite and PostgreSQL, through the console's own POST routes, with a real SMTP
server on loopback.

A given-up invitation was only logged: nobody saw it, and nobody could send it again once the citizen's mail server
took the address back."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from bench.records import records_of
from jiesu.consumer import EventConsumer
from schemas import topics
from schemas.enums import Channel, Role, TicketState
from schemas.events import Envelope, ReturnVisitDue, TicketReplied, TicketTracked, UnitRef, utcnow
from services.intake import mail, service
from services.intake.domain.submission import TicketSubmission
from services.intake.store import acknowledgements, rating_invitations
from tests.integration.test_delivery_resend import audited, client_of, service_app

UNIT = UnitRef(code="S-01-03", name="解放路街道")
REFUSAL = "550 5.1.1 <{}>: Recipient address rejected: User unknown"


@pytest.fixture
async def intake(any_settings, outgoing):
    settings = any_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": outgoing[1],
                                               "public_url": "https://12345.city.example/"})
    async with service_app(settings, "intake") as app:
        yield app


async def replied(app, email: str) -> str:
    """An online message whose reply brought a rating link, which intake owes its citizen by mail; its number."""
    rt = app.state.runtime
    sub = TicketSubmission.model_validate({"kind": "help", "subject": "路灯不亮", "description": "幸福路路灯一周不亮",
                                           "citizen": {"name": "李娜", "email": email}})
    receipt = await service.accept(rt.store("intake"), sub, channel=Channel.ONLINE, operator=None,
                                   idempotency_key=None, tz=ZoneInfo("Asia/Shanghai"))

    def event(payload, minutes: int) -> Envelope:
        return Envelope.wrap(payload, ticket_id=receipt.ticket_id, producer="tracker",
                             occurred_at=receipt.received_at + timedelta(minutes=minutes))

    consumer = EventConsumer(rt.store("intake"), rt.specs["intake"].subscriptions(rt)[0].handlers)
    await consumer.process(records_of([
        event(TicketTracked(number=receipt.number, state=TicketState.ASSIGNED, lead=UNIT), 1),
        event(TicketReplied(unit=UNIT, reply="已更换灯泡，恢复照明。", by="dept"), 2),
        event(ReturnVisitDue(due_at=utcnow() + timedelta(days=3), method="link",
                             link=f"https://12345.city.example/tracker/rate/{receipt.number}"), 3)], topics.LIFECYCLE))
    return receipt.number


async def invitations(app) -> list:
    async with app.state.runtime.store("intake").db.session() as s:
        return (await s.execute(select(rating_invitations).order_by(rating_invitations.c.id))).all()


async def test_an_invitation_refused_for_good_is_listed_and_delivered_once_when_an_operator_sends_it_again(
        intake, outgoing):
    sink, _ = outgoing
    sink.refused["lina@example.cn"] = REFUSAL.format("lina@example.cn")
    number = await replied(intake, "lina@example.cn")
    loop = mail.invitations(intake.state.runtime)
    assert await loop.deliver_once() == 1
    [row] = await invitations(intake)
    assert row.failed_at is not None and sink.messages == []

    del sink.refused["lina@example.cn"]  # the citizen's mail server takes the mailbox again
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        console = (await operator.get("/intake/console")).text
        listed = console[console.index('id="failed-receipts"'):]
        assert "<h3>评价邀请</h3>" in listed and number in listed and "收件地址被邮件服务器拒收：550" in listed
        assert "<h3>受理回执</h3>" not in listed  # the receipt is still being sent, not given up
        assert "lina@example.cn" not in listed  # no contact data of the citizen
        assert 'name="mail" value="invitation"' in listed and f'action="/intake/receipts/{number}/resend"' in listed

        r = await operator.post(f"/intake/receipts/{number}/resend", data={"mail": "invitation"})
        assert r.status_code == 303 and httpx.URL(r.headers["location"]).fragment == "failed-receipts"
        assert httpx.URL(r.headers["location"]).params["done"].startswith(f"工单 {number} 的评价邀请已重新发送")
    [row] = await invitations(intake)
    assert (row.failed_at, row.failing_since, row.last_error) == (None, None, None) and row.attempts == 1
    assert await loop.deliver_once() == 1
    assert await loop.deliver_once() == 0
    [row] = await invitations(intake)
    assert row.delivered_at is not None
    [sent] = sink.messages
    assert sent["To"] == "lina@example.cn" and sent["Subject"].startswith(f"【请评价】{number}")
    [entry] = await audited(intake.state.runtime.store("intake"), "RatingInvitationResent")
    assert entry.actor == "op" and entry.ticket_id == row.ticket_id and entry.details["attempts"] == 1
    assert await audited(intake.state.runtime.store("intake"), "ReceiptResent") == []


async def test_all_invitations_the_console_lists_as_given_up_are_sent_again_and_the_receipts_are_left_alone(
        intake, outgoing):
    sink, _ = outgoing
    sink.refused.update({"a@example.cn": REFUSAL.format("a@example.cn"), "b@example.cn": REFUSAL.format("b@example.cn")})
    for address in ("a@example.cn", "b@example.cn"):
        await replied(intake, address)
    assert await mail.invitations(intake.state.runtime).deliver_once() == 2
    assert await mail.receipts(intake.state.runtime).deliver_once() == 2  # both receipts given up too
    sink.refused.clear()
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        r = await operator.post("/intake/receipts/resend", data={"mail": "invitation"})
        assert httpx.URL(r.headers["location"]).params["done"].startswith("已重新发送 2 份评价邀请")
        r = await operator.post("/intake/receipts/resend", data={"mail": "invitation"})
        assert httpx.URL(r.headers["location"]).params["refused"] == "没有停止重试的评价邀请，无需重新发送"
    assert all(row.failed_at is None for row in await invitations(intake))
    async with intake.state.runtime.store("intake").db.session() as s:  # the receipts wait for their own resend
        assert all(row.failed_at is not None for row in (await s.execute(select(acknowledgements))).all())


async def test_re_sending_an_invitation_that_was_not_given_up_is_refused(intake, outgoing):
    number = await replied(intake, "lina@example.cn")
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        r = await operator.post(f"/intake/receipts/{number}/resend", data={"mail": "invitation"})
        said = httpx.URL(r.headers["location"]).params
        assert r.status_code == 303 and "评价邀请没有停止重试（正在发送或已送达），无需重新发送" in said["refused"]
        assert "rating invitation" in said["refused_en"]
    [row] = await invitations(intake)
    assert row.attempts == 0 and row.failed_at is None
    assert await audited(intake.state.runtime.store("intake"), "RatingInvitationResent") == []

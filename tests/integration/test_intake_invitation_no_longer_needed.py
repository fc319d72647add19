"""A rating invitation (评价邀请) that was given up is worth sending again only while the ticket still offers its link.
Once the citizen has rated the reply on the progress page, the ticket was closed or reopened, the link expired (a
visitor calls instead) or a later reply brought a new link, the console no longer lists it, 全部重新发送 leaves it, and
asking to send it again is refused with the reason in Chinese and English: it used to answer 已重新发送 for a mail
that would never go. On SQLite and PostgreSQL, through the console's own POST routes, with a real SMTP server on
loopback."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bench.records import records_of
from jiesu.consumer import EventConsumer
from schemas import topics
from schemas.enums import Role
from schemas.events import (RATED_BY_CITIZEN, Envelope, ReturnVisitDue, ReturnVisitRecorded, TicketClosed,
                            TicketReopened, utcnow)
from services.intake import mail
from services.intake.store import tickets
from tests.integration.test_delivery_resend import audited, client_of
from tests.integration.test_intake_invitation_resend import (  # noqa: F401 (intake is a fixture)
    REFUSAL, UNIT, intake, invitations, replied)

# How the link went, and what the refusal says about it (Chinese, English).
GONE = {
    "rated": ("市民已评价", "the citizen has rated the reply"),
    "closed": ("工单现为“已办结”，不再等待评价", "the ticket is now closed and no longer waits for a rating"),
    "reopened": ("工单现为“重办”，不再等待评价", "the ticket is now reopened and no longer waits for a rating"),
    "expired": ("评价链接已过期，改由回访员电话回访", "the rating link expired; a visitor calls the citizen instead"),
}


async def given_up(app, sink, email: str) -> str:
    """A reply's rating invitation that the citizen's mail server refused for good, and then takes again: its
    ticket's number."""
    sink.refused[email] = REFUSAL.format(email)
    number = await replied(app, email)
    assert await mail.invitations(app.state.runtime).deliver_once() == 1
    del sink.refused[email]
    return number


async def the_link_goes(app, number: str, how: str) -> None:
    """What the tracker tells intake ten minutes after the reply (or, for "expired", the clock running out)."""
    store = app.state.runtime.store("intake")
    async with store.db.session() as s:
        ticket = (await s.execute(select(tickets).where(tickets.c.number == number))).one()
    if how == "expired":
        async with store.transaction() as tx:
            await tx.session.execute(update(tickets).where(tickets.c.ticket_id == ticket.ticket_id)
                                     .values(rating_link_expires_at=utcnow() - timedelta(minutes=1)))
        return
    payload = {
        "rated": ReturnVisitRecorded(outcome="satisfied", by=RATED_BY_CITIZEN),
        "closed": TicketClosed(outcome="satisfied"),
        "reopened": TicketReopened(unit=UNIT, reason="市民不满意", reply_due=utcnow() + timedelta(days=5)),
        "replied again": ReturnVisitDue(due_at=utcnow() + timedelta(days=3), method="link",
                                        link=f"https://12345.city.example/tracker/rate/{number}/2"),
    }[how]
    consumer = EventConsumer(store, app.state.runtime.specs["intake"].subscriptions(app.state.runtime)[0].handlers)
    await consumer.process(records_of([Envelope.wrap(
        payload, ticket_id=ticket.ticket_id, producer="tracker",
        occurred_at=ticket.received_at + timedelta(minutes=10))], topics.LIFECYCLE))


@pytest.mark.parametrize("how", list(GONE))
async def test_an_invitation_whose_link_is_gone_is_not_listed_and_sending_it_again_is_refused_with_the_reason(
        intake, outgoing, how):  # noqa: F811
    sink, _ = outgoing
    number = await given_up(intake, sink, "lina@example.cn")
    await the_link_goes(intake, number, how)
    [before] = await invitations(intake)

    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        console = (await operator.get("/intake/console")).text
        assert f'action="/intake/receipts/{number}/resend"' not in console and number not in console
        r = await operator.post(f"/intake/receipts/{number}/resend", data={"mail": "invitation"})
        said = httpx.URL(r.headers["location"]).params
    zh, en = GONE[how]
    assert r.status_code == 303 and "done" not in said
    assert said["refused"] == f"工单 {number} 的评价邀请无需重新发送：{zh}。"
    assert said["refused_en"] == f"The rating invitation of ticket {number} need not be sent again: {en}."

    assert await invitations(intake) == [before]  # still given up, as it was: nothing queued
    assert await mail.invitations(intake.state.runtime).deliver_once() == 0
    assert sink.messages == []
    assert await audited(intake.state.runtime.store("intake"), "RatingInvitationResent") == []


async def test_an_invitation_a_later_reply_replaced_is_not_listed(intake, outgoing):  # noqa: F811
    sink, _ = outgoing
    number = await given_up(intake, sink, "lina@example.cn")
    await the_link_goes(intake, number, "replied again")  # its own invitation is owed, and not given up
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        console = (await operator.get("/intake/console")).text
    assert f'action="/intake/receipts/{number}/resend"' not in console


async def test_sending_all_again_sends_the_invitations_still_offered_and_leaves_the_others(
        intake, outgoing):  # noqa: F811
    sink, _ = outgoing
    still = await given_up(intake, sink, "a@example.cn")
    rated = await given_up(intake, sink, "b@example.cn")
    await the_link_goes(intake, rated, "rated")

    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        console = (await operator.get("/intake/console")).text
        listed = console[console.index('id="failed-receipts"'):]
        assert f'action="/intake/receipts/{still}/resend"' in listed
        assert f'action="/intake/receipts/{rated}/resend"' not in listed
        r = await operator.post("/intake/receipts/resend", data={"mail": "invitation"})
        assert httpx.URL(r.headers["location"]).params["done"].startswith("已重新发送 1 份评价邀请")

    assert await mail.invitations(intake.state.runtime).deliver_once() == 1
    [sent] = sink.messages
    assert sent["To"] == "a@example.cn" and sent["Subject"].startswith(f"【请评价】{still}")
    [entry] = await audited(intake.state.runtime.store("intake"), "RatingInvitationResent")
    assert entry.details["attempts"] == 1

"""What a citizen's progress look-up shows as the tracker's events reach intake, through intake's own consumer on
SQLite and on PostgreSQL (redelivered and late events included), and the rating invitation it mails.

Found by a reviewer who used the system as citizens do:
- the one-time rating link (评价) of a reply to an online channel reached nobody: intake ignored ReturnVisitDue;
- a ticket every unit returned, waiting for a dispatcher, still named the last unit and its deadline;
- a ticket answered on the call (直接办结) said 尚未答复;
- a ticket whose extension (延期) waited for the office's decision still said 已签收.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bench.records import records_of
from jiesu.consumer import EventConsumer
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas import topics
from schemas.enums import Channel, TicketState
from schemas.events import (
    Envelope,
    ExtensionDecided,
    ExtensionRequested,
    ReturnVisitDue,
    ReturnVisitRecorded,
    TicketAccepted,
    TicketClosed,
    TicketReopened,
    TicketReplied,
    TicketTracked,
    UnitRef,
    utcnow,
)
from services.intake import bootstrap, mail, service
from services.intake.api import progress_view
from services.intake.domain.submission import TicketSubmission
from services.intake.store import rating_invitations, tickets

TZ = ZoneInfo("Asia/Shanghai")
UNIT = UnitRef(code="S-01-03", name="解放路街道")
OTHER = UnitRef(code="M-CGW", name="市城市管理委员会")
REPLY = "经现场核实，路灯线路老化，已于今日更换，恢复照明。"
LINK = "https://12345.city.example/tracker/rate/eyJ0IjoiMSJ9.first"
LATER_LINK = "https://12345.city.example/tracker/rate/eyJ0IjoiMSJ9.second"
EMAIL = "lina@example.cn"


@pytest.fixture
async def intake(any_settings, outgoing):
    """Intake alone, mail going to the sink: its runtime, store and consumer with the handlers it subscribes."""
    settings = any_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": outgoing[1],
                                               "mail_from": "12345@city.example",
                                               "public_url": "https://12345.city.example/"})
    await asyncio.to_thread(upgrade, "intake", settings.database_url("intake"))
    rt = Runtime.create(settings, ["intake"], bootstrap="unused:9092")
    await bootstrap.setup(rt)
    try:
        yield rt, EventConsumer(rt.store("intake"), rt.specs["intake"].subscriptions(rt)[0].handlers)
    finally:
        await rt.close()


async def accepted(rt, *, channel=Channel.ONLINE, email: str = EMAIL, answer: str | None = None):
    sub = TicketSubmission.model_validate({
        "kind": "consultation" if answer else "help", "subject": "路灯不亮", "description": "幸福路路灯一周不亮",
        "citizen": {"name": "李娜", "phone": "13700001234", "email": email}, "answer": answer})
    return await service.accept(rt.store("intake"), sub, channel=channel, operator=None, idempotency_key=None, tz=TZ)


class Ticket:
    """One ticket's events as the tracker sends them, `minutes` after it was received."""

    def __init__(self, rt, consumer, receipt) -> None:
        self.rt, self.consumer, self.receipt = rt, consumer, receipt

    def event(self, payload, minutes: float) -> Envelope:
        return Envelope.wrap(payload, ticket_id=self.receipt.ticket_id, producer="tracker",
                             occurred_at=self.receipt.received_at + timedelta(minutes=minutes))

    async def apply(self, *envelopes: Envelope) -> None:
        await self.consumer.process(records_of(envelopes, topics.LIFECYCLE))

    async def row(self):
        async with self.rt.store("intake").db.session() as s:
            return (await s.execute(select(tickets).where(tickets.c.ticket_id == self.receipt.ticket_id))).one()

    async def view(self) -> dict:
        """What a look-up proved by the query code shows (one by the phone's digits shows no link)."""
        return progress_view((await self.row(), None, True))

    async def invitations(self) -> list:
        async with self.rt.store("intake").db.session() as s:
            return (await s.execute(select(rating_invitations).where(
                rating_invitations.c.ticket_id == self.receipt.ticket_id).order_by(rating_invitations.c.id))).all()

    async def replied(self, link: str | None = LINK, minutes: float = 10, method: str = "link",
                      expires: datetime | None = None) -> Envelope:
        """Signed for, then replied; the reply's ReturnVisitDue (returned, to redeliver it)."""
        due = self.event(ReturnVisitDue(due_at=utcnow() + timedelta(days=3), method=method, link=link,
                                        link_expires_at=expires), minutes + 0.5)
        await self.apply(self.event(TicketTracked(number=self.receipt.number, state=TicketState.ASSIGNED, lead=UNIT,
                                                  reply_due=utcnow() + timedelta(days=5)), 1),
                         self.event(TicketAccepted(unit=UNIT, by="dept"), 2),
                         self.event(TicketReplied(unit=UNIT, reply=REPLY, by="dept"), minutes), due)
        return due


@pytest.fixture
async def ticket(intake):
    rt, consumer = intake
    return Ticket(rt, consumer, await accepted(rt))


# --- the rating link (评价) -----------------------------------------------------------------


async def test_a_reply_to_an_online_message_offers_the_rating_link_and_owes_one_mail_however_often_it_comes(
        ticket, intake):
    due = await ticket.replied()
    view = await ticket.view()
    assert (view["state_label"], view["reply"], view["rating_link"]) == ("已答复", REPLY, LINK)

    await ticket.apply(due)  # redelivered: the inbox knows it
    async with ticket.rt.store("intake").transaction() as tx:  # and applied again past the inbox (its entry purged)
        await service.on_return_visit_due(tx, due, due.parsed(), local=ticket.rt.store("intake").local)
    [invitation] = await ticket.invitations()
    assert (invitation.link, invitation.event_id, invitation.delivered_at) == (LINK, due.event_id, None)


async def test_the_link_is_no_longer_offered_once_the_citizen_rated_or_the_ticket_is_closed_or_reopened(intake):
    rt, consumer = intake
    for ending in ("rated", "closed", "reopened"):
        t = Ticket(rt, consumer, await accepted(rt))
        await t.replied()
        assert (await t.view())["rating_link"] == LINK
        if ending == "rated":  # 不满意 through the link: the ticket waits for a visitor's call, the link is used
            await t.apply(t.event(ReturnVisitRecorded(outcome="dissatisfied", comment="灯还是不亮", by="citizen"), 20))
            assert (await t.row()).state == "replied"
        elif ending == "closed":  # by a visitor's call, before the citizen rated
            await t.apply(t.event(TicketClosed(outcome="satisfied"), 20))
        else:
            await t.apply(t.event(TicketReopened(unit=UNIT, reason="回访不满意", reply_due=utcnow()), 20))
        assert "rating_link" not in await t.view(), ending
        assert (await t.row()).rating_link is None, ending


async def test_a_visitors_call_recorded_leaves_the_link_and_a_late_link_changes_nothing(ticket):
    await ticket.replied()
    await ticket.apply(ticket.event(ReturnVisitRecorded(outcome="unreachable", by="visitor"), 20))
    assert (await ticket.view())["rating_link"] == LINK  # the citizen may still rate

    await ticket.apply(ticket.event(TicketReopened(unit=UNIT, reason="回访不满意", reply_due=utcnow()), 30))
    # The second reply's link; then the first reply's ReturnVisitDue again (re-emitted, late): the second stands.
    await ticket.apply(ticket.event(TicketReplied(unit=UNIT, reply=REPLY, by="dept"), 40),
                       ticket.event(ReturnVisitDue(due_at=utcnow(), method="link", link=LATER_LINK), 40.5),
                       ticket.event(ReturnVisitDue(due_at=utcnow(), method="link", link=LINK), 10.5))
    assert (await ticket.view())["rating_link"] == LATER_LINK
    assert [i.link for i in await ticket.invitations()] == [LINK, LATER_LINK]


async def test_a_citizen_called_back_by_phone_gets_no_link_and_no_mail(intake):
    rt, consumer = intake
    t = Ticket(rt, consumer, await accepted(rt, channel=Channel.HOTLINE))
    await t.replied(link=None, method="phone")
    assert "rating_link" not in await t.view() and await t.invitations() == []


async def test_no_mail_is_owed_without_an_address_or_without_a_mail_server(intake):
    rt, consumer = intake
    t = Ticket(rt, consumer, await accepted(rt, email=""))
    await t.replied()
    assert (await t.view())["rating_link"] == LINK and await t.invitations() == []

    rt.store("intake").local[service.ACKNOWLEDGE] = False  # JIESU_MAIL_HOST unset
    t = Ticket(rt, consumer, await accepted(rt))
    await t.replied()
    assert (await t.view())["rating_link"] == LINK and await t.invitations() == []


async def test_the_invitation_mail_gives_the_reply_and_the_link_once_and_none_once_the_link_is_gone(
        intake, outgoing):
    sink, _ = outgoing
    rt, consumer = intake
    loop = mail.invitations(rt)
    t = Ticket(rt, consumer, await accepted(rt))
    await t.replied()
    assert await loop.deliver_once() == 1 and await loop.deliver_once() == 0
    [invitation] = sink.messages
    assert invitation["To"] == EMAIL and invitation["From"] == "12345@city.example"
    assert invitation["Subject"] == f"【请评价】{t.receipt.number} 路灯不亮"
    text = invitation.get_body(("plain",)).get_content()
    assert REPLY in text and LINK in text and "李娜" in text and "解放路街道" in text
    assert f"https://12345.city.example/intake/progress?number={t.receipt.number}" in text
    [row] = await t.invitations()
    assert row.delivered_at is not None and row.attempts == 1

    late = Ticket(rt, consumer, await accepted(rt))  # the mail server was down until the ticket was closed
    await late.replied()
    await late.apply(late.event(TicketClosed(outcome="satisfied"), 20))
    assert await loop.deliver_once() == 1
    assert len(sink.messages) == 1  # nothing sent: the link no longer works
    assert await mail.purge_invitations(rt.store("intake"), timedelta(0)) == 2


async def test_an_expired_link_is_neither_offered_nor_mailed(intake, outgoing):
    sink, _ = outgoing
    rt, consumer = intake
    fresh = Ticket(rt, consumer, await accepted(rt))
    await fresh.replied(expires=utcnow() + timedelta(days=7))
    assert (await fresh.view())["rating_link"] == LINK
    stale = Ticket(rt, consumer, await accepted(rt))  # replied long ago, the mail server down since
    await stale.replied(expires=utcnow() - timedelta(minutes=1))
    view = await stale.view()
    assert view["state_label"] == "已答复" and "rating_link" not in view
    loop = mail.invitations(rt)
    assert await loop.deliver_once() == 2
    assert [m["Subject"] for m in sink.messages] == [f"【请评价】{fresh.receipt.number} 路灯不亮"]


# --- the unit and the deadline of a ticket no unit holds -------------------------------------


async def test_a_ticket_every_unit_returned_waits_for_a_dispatcher_without_a_unit_or_a_deadline(ticket):
    first_due = utcnow() + timedelta(days=5)
    await ticket.apply(ticket.event(TicketTracked(number=ticket.receipt.number, state=TicketState.ASSIGNED,
                                                  lead=UNIT, reply_due=first_due), 1),
                       ticket.event(TicketAccepted(unit=UNIT, by="dept"), 2))
    assert ((await ticket.view())["department"], (await ticket.row()).reply_due) == ("解放路街道", first_due)

    waiting = ticket.event(TicketTracked(number=ticket.receipt.number, state=TicketState.DISPATCHING), 3)
    await ticket.apply(waiting)
    view = await ticket.view()
    assert (view["state_label"], view["department"], view["reply_due"]) == ("待派单", None, None)

    new_due = utcnow() + timedelta(days=6)
    await ticket.apply(ticket.event(TicketTracked(number=ticket.receipt.number, state=TicketState.ASSIGNED,
                                                  lead=OTHER, reply_due=new_due), 4))
    await ticket.apply(ticket.event(TicketTracked(number=ticket.receipt.number, state=TicketState.DISPATCHING), 2.5))
    row = await ticket.row()  # the late one (re-emitted) takes neither the unit nor the deadline away
    assert (row.state, row.department, row.reply_due) == ("assigned", "市城市管理委员会", new_due)


# --- 直接办结 ----------------------------------------------------------------------------------


async def test_a_ticket_answered_on_the_call_shows_the_operators_answer_as_its_reply(intake):
    rt, consumer = intake
    answer = "持备案凭证可在就医地直接结算，详询医保咨询电话 12393。"
    t = Ticket(rt, consumer, await accepted(rt, channel=Channel.HOTLINE, answer=answer))
    await t.apply(t.event(TicketTracked(number=t.receipt.number, state=TicketState.ANSWERED_DIRECTLY), 1))
    view = await t.view()
    assert (view["state_label"], view["reply"], view["department"]) == ("直接办结", answer, None)


# --- 延期审批中 ---------------------------------------------------------------------------------


async def test_an_extension_waiting_for_the_office_shows_and_its_decision_brings_back_the_state_before(ticket):
    due = utcnow() + timedelta(days=5)
    await ticket.apply(ticket.event(TicketTracked(number=ticket.receipt.number, state=TicketState.ASSIGNED,
                                                  lead=UNIT, reply_due=due), 1),
                       ticket.event(TicketAccepted(unit=UNIT, by="dept"), 2))
    requested = ticket.event(ExtensionRequested(unit=UNIT, reason="需协调供电公司", requested_due=due + timedelta(days=7),
                                                by="dept"), 3)
    await ticket.apply(requested)
    assert ((await ticket.view())["state_label"], (await ticket.row()).reply_due) == ("延期审批中", due)

    await ticket.apply(ticket.event(ExtensionDecided(approved=False, note="理由不充分", by="sup"), 4))
    assert ((await ticket.view())["state_label"], (await ticket.row()).reply_due) == ("已签收", due)

    await ticket.apply(ticket.event(ExtensionRequested(unit=UNIT, reason="需协调供电公司", requested_due=due,
                                                       by="dept"), 5))
    again = ticket.event(ExtensionRequested(unit=UNIT, reason="需协调供电公司", requested_due=due, by="dept"), 5)
    async with ticket.rt.store("intake").transaction() as tx:  # applied twice (past the inbox): 已签收 is kept
        await service.on_extension_requested(tx, again, again.parsed())
    later = due + timedelta(days=7)
    await ticket.apply(ticket.event(ExtensionDecided(approved=True, new_due=later, by="sup"), 6))
    assert ((await ticket.view())["state_label"], (await ticket.row()).reply_due) == ("已签收", later)

    await ticket.apply(requested)  # redelivered long after: the inbox knows it
    assert (await ticket.view())["state_label"] == "已签收"


async def test_an_extension_decided_late_changes_nothing(ticket):
    await ticket.replied()
    before = await ticket.row()
    await ticket.apply(ticket.event(ExtensionDecided(approved=True, new_due=utcnow() + timedelta(days=12), by="sup"),
                                    5))  # older than the reply: re-emitted, late
    row = await ticket.row()
    assert (row.state, row.reply_due) == ("replied", before.reply_due)

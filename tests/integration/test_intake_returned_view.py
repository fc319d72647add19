"""退单 on the citizen's progress page: once a unit returns the ticket, the page says 已退单, with no unit and no
deadline, until the router's next decision reaches intake; a return redelivered or arriving late (it comes on its own
topic, tickets.returned, unordered with tickets.lifecycle) moves nothing backwards. Through intake's own consumer, on
SQLite and on PostgreSQL.

Intake did not subscribe to tickets.returned: between the return and the next assignment the page still named the
unit that had sent the ticket back, and its reply deadline."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bench.records import records_of
from schemas import topics
from schemas.enums import Channel, TicketState
from schemas.events import Envelope, TicketAccepted, TicketReturned, TicketTracked, UnitRef, utcnow
from services.intake import service
from services.intake.domain.submission import TicketSubmission
from tests.integration.test_citizen_progress_review import intake, look_up  # noqa: F401 (intake is a fixture)

UNIT = UnitRef(code="S-01-03", name="解放路街道")
OTHER = UnitRef(code="M-CGW", name="市城市管理委员会")
PHONE = "13700001234"


class Ticket:
    """One ticket's events as the tracker publishes them, `minutes` after it was received, each on its own topic."""

    def __init__(self, intake, receipt) -> None:
        self.intake, self.receipt = intake, receipt

    def event(self, payload, minutes: float) -> Envelope:
        return Envelope.wrap(payload, ticket_id=self.receipt.ticket_id, producer="tracker",
                             occurred_at=self.receipt.received_at + timedelta(minutes=minutes))

    def tracked(self, minutes: float, state=TicketState.ASSIGNED, lead: UnitRef | None = UNIT) -> Envelope:
        due = utcnow() + timedelta(days=5) if lead else None
        return self.event(TicketTracked(number=self.receipt.number, state=state, lead=lead, reply_due=due), minutes)

    def returned(self, minutes: float, unit: UnitRef = UNIT, so_far: int = 1) -> Envelope:
        return self.event(TicketReturned(number=self.receipt.number, unit=unit, reason_code="not_our_duty",
                                         reason="不属于本单位职责范围", by="dept", returns_so_far=so_far), minutes)

    async def apply(self, *envelopes: Envelope) -> None:
        """As intake's consumer gets them: the returns from tickets.returned, the rest from tickets.lifecycle."""
        for envelope in envelopes:
            topic = topics.RETURNED if envelope.event_type == "TicketReturned" else topics.LIFECYCLE
            await self.intake[1].process(records_of([envelope], topic))

    async def shown(self) -> dict:
        """What the progress look-up answers (proved by the phone's last four digits)."""
        view, _ = await look_up(self.intake, self.receipt.number, PHONE[-4:])
        return {key: view[key] for key in ("state", "state_label", "department", "reply_due")}


@pytest.fixture
async def ticket(intake):  # noqa: F811 (the fixture imported above)
    sub = TicketSubmission.model_validate({"kind": "complaint", "subject": "小区门口占道经营",
                                           "description": "每天早上摊贩堵路", "citizen": {"phone": PHONE}})
    receipt = await service.accept(intake[0].store("intake"), sub, channel=Channel.HOTLINE, operator="op",
                                   idempotency_key=None, tz=ZoneInfo("Asia/Shanghai"))
    return Ticket(intake, receipt)


RETURNED = {"state": "returned", "state_label": "已退单", "department": None, "reply_due": None}


def test_intake_subscribes_to_the_returns_the_tracker_publishes(intake):  # noqa: F811
    [subscription] = intake[0].specs["intake"].subscriptions(intake[0])
    assert topics.RETURNED in subscription.topics and "TicketReturned" in subscription.handlers


async def test_a_returned_ticket_shows_neither_the_unit_that_returned_it_nor_its_deadline(ticket):
    await ticket.apply(ticket.tracked(1), ticket.event(TicketAccepted(unit=UNIT, by="dept"), 2))
    assert (await ticket.shown())["department"] == "解放路街道"

    await ticket.apply(ticket.returned(3))
    assert await ticket.shown() == RETURNED
    _, page = await look_up(ticket.intake, ticket.receipt.number, ticket.receipt.query_code)
    assert "已退单<span class=\"muted\">（原承办单位已退回，正在重新派单）" in page and "解放路街道" not in page
    assert page.count("<dd>—</dd>") == 2  # neither a unit nor a deadline

    await ticket.apply(ticket.tracked(4, lead=OTHER))  # re-routed: the next unit and its deadline
    shown = await ticket.shown()
    assert (shown["state"], shown["department"]) == ("assigned", "市城市管理委员会") and shown["reply_due"]


async def test_a_return_redelivered_or_arriving_after_the_next_decision_changes_nothing(ticket):
    first_return = ticket.returned(3)
    await ticket.apply(ticket.tracked(1), first_return)
    await ticket.apply(first_return)  # redelivered: the inbox has it
    assert await ticket.shown() == RETURNED

    await ticket.apply(ticket.tracked(2))  # the first assignment's acknowledgement, re-emitted late
    assert await ticket.shown() == RETURNED

    await ticket.apply(ticket.tracked(5, lead=OTHER))
    await ticket.apply(ticket.returned(3.5))  # overtaken on the other topic by the next assignment
    shown = await ticket.shown()
    assert (shown["state"], shown["department"]) == ("assigned", "市城市管理委员会") and shown["reply_due"]


async def test_a_second_return_that_reaches_intake_after_the_dispatchers_queue_leaves_it_there(ticket):
    await ticket.apply(ticket.tracked(1), ticket.returned(2), ticket.tracked(3, lead=OTHER))
    await ticket.apply(ticket.tracked(5, TicketState.DISPATCHING, lead=None))  # the router's answer to the return…
    await ticket.apply(ticket.returned(4, OTHER, 2))  # …overtook the return itself, on the other topic
    assert await ticket.shown() == {"state": "dispatching", "state_label": "待派单", "department": None,
                                    "reply_due": None}

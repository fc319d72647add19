"""回访 on the citizen's progress page: a caller (12345 热线) whose ticket was replied to is told that 12345 will call
back about the reply, where an online citizen is offered the rating link (评价). Through intake's consumer and its own
page, on SQLite and PostgreSQL.

Once the reply came the page said nothing more to callers: not that a call would follow, nor to expect it."""

from __future__ import annotations

import pytest

from schemas.enums import Channel, TicketState
from schemas.events import ReturnVisitRecorded, TicketClosed, TicketReopened, TicketTracked, utcnow
from services.intake import service
from services.intake.domain.submission import TicketSubmission
from tests.integration.test_citizen_progress_events import LINK, UNIT, Ticket
from tests.integration.test_citizen_progress_review import TZ, intake, look_up, received  # noqa: F401 (a fixture)

CALL_BACK = "12345 热线回访员将电话回访"
PHONE = "13700001234"


async def called(intake, phone: str = PHONE, channel: Channel = Channel.HOTLINE) -> Ticket:  # noqa: F811
    """A hotline call (or a request by `channel`), as intake records it; `phone` empty: the number was withheld."""
    rt, consumer, _ = intake
    sub = TicketSubmission.model_validate({"kind": "help", "subject": "路灯不亮", "description": "幸福路路灯一周不亮",
                                           "citizen": {"name": "李娜", "phone": phone}})
    receipt = await service.accept(rt.store("intake"), sub, channel=channel, operator="op",
                                   idempotency_key=None, tz=TZ)
    return Ticket(rt, consumer, receipt)


async def page_of(intake, ticket: Ticket, proof: str) -> str:  # noqa: F811
    return (await look_up(intake, ticket.receipt.number, proof))[1]


async def test_a_caller_whose_ticket_was_replied_to_is_told_that_12345_will_call_back(intake):  # noqa: F811
    t = await called(intake)
    await t.apply(t.event(TicketTracked(number=t.receipt.number, state=TicketState.ASSIGNED, lead=UNIT), 1))
    assert CALL_BACK not in await page_of(intake, t, PHONE[-4:])  # not replied yet

    await t.replied(link=None, method="phone")
    for proof in (PHONE[-4:], t.receipt.query_code):
        page = await page_of(intake, t, proof)
        assert CALL_BACK in page and "请评价" not in page and "/tracker/rate/" not in page
    await t.apply(t.event(ReturnVisitRecorded(outcome="unreachable", by="visitor"), 20))  # not reached: calls again
    assert CALL_BACK in await page_of(intake, t, PHONE[-4:])


@pytest.mark.parametrize("after", [TicketClosed(outcome="satisfied"),
                                   TicketReopened(unit=UNIT, reason="回访不满意", reply_due=utcnow())])
async def test_once_the_return_visit_closed_or_reopened_the_ticket_no_call_is_announced(intake, after):  # noqa: F811
    t = await called(intake)
    await t.replied(link=None, method="phone")
    await t.apply(t.event(after, 30))
    assert CALL_BACK not in await page_of(intake, t, PHONE[-4:])


async def test_a_caller_who_withheld_the_number_is_not_promised_a_call(intake):  # noqa: F811
    t = await called(intake, phone="")
    await t.replied(link=None, method="phone")
    page = await page_of(intake, t, t.receipt.query_code)
    assert "已答复" in page and CALL_BACK not in page


async def test_an_online_citizen_is_offered_the_rating_link_and_no_call(intake):  # noqa: F811
    t = await received(intake)
    await t.replied()
    page = await page_of(intake, t, t.receipt.query_code)
    assert f'href="{LINK}"' in page and CALL_BACK not in page


async def test_a_repeat_merged_into_a_callers_replied_ticket_shows_the_call_back_of_that_ticket(intake):  # noqa: F811
    first = await called(intake)
    await first.replied(link=None, method="phone")
    repeat = await called(intake)
    await repeat.apply(repeat.event(TicketTracked(number=repeat.receipt.number, state=TicketState.MERGED,
                                                  merged_into=first.receipt.ticket_id), 1))
    assert CALL_BACK in await page_of(intake, repeat, PHONE[-4:])


async def test_a_visitor_at_the_counter_is_told_too_as_the_tracker_calls_every_citizen_not_online(intake):  # noqa: F811
    """The tracker calls back every channel that is not online (schemas.enums.ONLINE_CHANNELS), 来访 included."""
    t = await called(intake, channel=Channel.IN_PERSON)
    await t.replied(link=None, method="phone")
    assert CALL_BACK in await page_of(intake, t, PHONE[-4:])

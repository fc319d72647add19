"""The citizen's progress look-up, through intake's consumer and its own page and API, on SQLite and PostgreSQL.

Found by a reviewer who used the look-up as citizens do:
- a repeat (重复件) looked up by its own query code showed the earlier ticket's reply but told the citizen to use
  the query code they had just used, with no rating link;
- a number typed with spaces for its dashes, or as its digits alone, was 未查到;
- intake never heard CitizenContacted: the page said 已签收 where the tracker said 已联系, and a ticket set aside
  came back as 已签收;
- a look-up by the phone's digits was told of a 受理回执 and a mailed link an online citizen may never have had;
- after a dissatisfied rating through the link, or once the link expired, the page said nothing at all.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from jiesu.consumer import EventConsumer
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime, load_spec
from jiesu.web import create_app
from schemas.enums import Channel, TicketState
from schemas.events import (
    CitizenContacted,
    ClockPaused,
    ClockResumed,
    ReturnVisitDue,
    ReturnVisitRecorded,
    TicketAccepted,
    TicketClosed,
    TicketReopened,
    TicketReplied,
    TicketTracked,
    utcnow,
)
from services.intake import bootstrap, service
from services.intake.domain.submission import TicketSubmission
from tests.integration.test_citizen_progress_events import LINK, REPLY, UNIT, Ticket

TZ = ZoneInfo("Asia/Shanghai")
PHONE_HINT = "请用受理页面或受理回执邮件上的查询码查询本工单，即可在此评价；如留有邮箱，也可使用邮件中的评价链接。"
RATED = "已收到您的评价，回访员将与您联系核实"
EXPIRED = "评价链接已过期，回访员将电话回访"


@pytest.fixture
async def intake(any_settings):
    """Intake alone: its runtime, its consumer with the handlers it subscribes, and a client of its pages and API."""
    await asyncio.to_thread(upgrade, "intake", any_settings.database_url("intake"))
    rt = Runtime.create(any_settings, ["intake"], bootstrap="unused:9092")
    await bootstrap.setup(rt)
    app = create_app(lambda: rt, list(load_spec("intake").routers), start=False)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://jiesu.test") as client:
            yield rt, EventConsumer(rt.store("intake"), rt.specs["intake"].subscriptions(rt)[0].handlers), client
    finally:
        await rt.close()


async def received(intake, phone: str = "13700001234", email: str = "lina@example.cn") -> Ticket:
    """An online message, as intake records it."""
    rt, consumer, _ = intake
    sub = TicketSubmission.model_validate({"kind": "help", "subject": "路灯不亮", "description": "幸福路路灯一周不亮",
                                           "citizen": {"name": "李娜", "phone": phone, "email": email}})
    receipt = await service.accept(rt.store("intake"), sub, channel=Channel.ONLINE, operator=None,
                                   idempotency_key=None, tz=TZ)
    return Ticket(rt, consumer, receipt)


async def look_up(intake, number: str, proof: str) -> tuple[dict, str]:
    """The API's answer and the page's text, for the number and the phone's last four digits or the query code."""
    client = intake[2]
    api = await client.post("/api/v1/intake/progress",
                            json={"number": number, ("phone_last4" if len(proof) == 4 else "query_code"): proof})
    page = await client.post("/intake/progress", data={"number": number, "proof": proof})
    assert api.status_code == page.status_code == 200, (api.text, page.text[-500:])
    return api.json(), page.text


# --- a repeat merged into an earlier ticket (重复件) -------------------------------------------


async def test_a_repeat_looked_up_by_its_own_query_code_offers_the_rating_link_of_the_ticket_it_was_merged_into(
        intake):
    first = await received(intake)
    await first.replied()
    repeat = await received(intake)
    await repeat.apply(repeat.event(TicketTracked(number=repeat.receipt.number, state=TicketState.MERGED,
                                                  merged_into=first.receipt.ticket_id), 1))

    view, page = await look_up(intake, repeat.receipt.number, repeat.receipt.query_code)
    assert view["state"] == "merged" and view["merged_into"]["number"] == first.receipt.number
    assert view["merged_into"]["rating_link"] == LINK and f'href="{LINK}"' in page
    assert "请评价" in page and "再次查询" not in page

    # The phone's last four digits, which the handling unit sees too: no link, and the hint names the number whose
    # query code shows it.
    view, page = await look_up(intake, repeat.receipt.number, "1234")
    assert "rating_link" not in view["merged_into"] and view["merged_into"]["rating_needs_query_code"] is True
    assert LINK not in page and f"请填写工单 {repeat.receipt.number} 受理页面或受理回执邮件上的查询码再次查询" in page

    # Another caller's call linked to the same ticket by an operator: its code proves nothing of the first ticket.
    neighbour = await received(intake, phone="13800005678", email="")
    await neighbour.apply(neighbour.event(TicketTracked(number=neighbour.receipt.number, state=TicketState.MERGED,
                                                        merged_into=first.receipt.ticket_id), 1))
    view, page = await look_up(intake, neighbour.receipt.number, neighbour.receipt.query_code)
    assert view["merged_into"] == {"number": first.receipt.number} and LINK not in page and REPLY not in page


# --- the number as typed ------------------------------------------------------------------------


async def test_a_number_typed_with_spaces_for_its_dashes_or_as_its_digits_alone_is_found(intake):
    t = await received(intake)
    number = t.receipt.number
    for typed in (number.replace("-", " "), number.replace("-", "")):
        view, page = await look_up(intake, typed, "1234")
        assert view["number"] == number and "未查到" not in page, typed


# --- 已联系 ---------------------------------------------------------------------------------------


async def test_the_units_call_to_the_citizen_shows_contacted_and_a_ticket_set_aside_goes_back_to_it(intake):
    t = await received(intake)
    await t.apply(t.event(TicketTracked(number=t.receipt.number, state=TicketState.ASSIGNED, lead=UNIT,
                                        reply_due=utcnow() + timedelta(days=5)), 1),
                  t.event(TicketAccepted(unit=UNIT, by="dept"), 2))
    contacted = t.event(CitizenContacted(unit=UNIT, note="已电话联系市民", by="dept"), 3)
    await t.apply(contacted)
    view, page = await look_up(intake, t.receipt.number, "1234")
    assert (view["state"], view["state_label"], view["department"]) == ("contacted", "已联系", UNIT.name)
    assert "已联系" in page

    await t.apply(contacted)  # redelivered: the inbox knows it
    async with t.rt.store("intake").transaction() as tx:  # and applied again past the inbox (its entry purged)
        await service.on_contacted(tx, contacted, contacted.parsed())
    assert (await t.row()).state == "contacted"

    await t.apply(t.event(ClockPaused(reason="waiting_citizen", note="请补充照片", by="dept"), 4))
    async with t.rt.store("intake").transaction() as tx:  # re-emitted after the pause: late, changes nothing
        await service.on_contacted(tx, contacted, contacted.parsed())
    assert (await t.row()).state == "waiting_citizen"

    await t.apply(t.event(ClockResumed(reply_due=utcnow() + timedelta(days=6), by="dept"), 5))
    assert (await t.view())["state_label"] == "已联系"


# --- what the page says about the rating (评价) ----------------------------------------------------


async def test_a_look_up_by_the_phones_digits_is_told_where_the_query_code_is_and_of_the_mail_only_if_any(intake):
    t = await received(intake, email="")
    await t.replied()
    view, page = await look_up(intake, t.receipt.number, "1234")
    assert view["rating_needs_query_code"] is True and LINK not in page
    assert PHONE_HINT in page and "受理回执中的查询码" not in page


async def test_after_a_dissatisfied_rating_through_the_link_the_page_says_it_arrived_until_the_visitors_call(intake):
    t = await received(intake)
    due = await t.replied()
    rated = t.event(ReturnVisitRecorded(outcome="dissatisfied", comment="灯还是不亮", by="citizen"), 20)
    await t.apply(rated)
    view, page = await look_up(intake, t.receipt.number, t.receipt.query_code)
    assert (view["state_label"], view["rating_received"]) == ("已答复", True) and "rating_link" not in view
    assert RATED in page and "评价办理结果" not in page
    view, page = await look_up(intake, t.receipt.number, "1234")  # the digits show it too: it gives nothing away
    assert view["rating_received"] is True and RATED in page and PHONE_HINT not in page

    async with t.rt.store("intake").transaction() as tx:  # applied again past the inbox: the rating's time kept
        await service.on_visit_recorded(tx, rated, rated.parsed())
        # and the reply's ReturnVisitDue re-emitted (late): the used link is not offered again
        await service.on_return_visit_due(tx, due, due.parsed(), local=t.rt.store("intake").local)
    row = await t.row()
    assert (row.rated_at, row.rating_link) == (rated.occurred_at, None)

    # The visitor calls and the unit caused it: 重办, then a second reply whose visit is by phone.
    await t.apply(t.event(TicketReopened(unit=UNIT, reason="回访不满意", reply_due=utcnow() + timedelta(days=3)), 30),
                  t.event(TicketReplied(unit=UNIT, reply=REPLY, by="dept"), 40),
                  t.event(ReturnVisitDue(due_at=utcnow() + timedelta(days=3), method="phone"), 40.5))
    view = await t.view()
    assert view["state_label"] == "已答复" and "rating_received" not in view and (await t.row()).rated_at is None


async def test_a_closed_ticket_forgets_the_rating_and_a_visitors_record_is_no_citizens_rating(intake):
    t = await received(intake)
    await t.replied()
    await t.apply(t.event(ReturnVisitRecorded(outcome="unreachable", by="visitor"), 20))
    assert "rating_received" not in await t.view() and (await t.row()).rated_at is None

    await t.apply(t.event(ReturnVisitRecorded(outcome="dissatisfied", by="citizen"), 25),
                  t.event(TicketClosed(outcome="dissatisfied"), 30))  # not the unit's cause: closed
    view = await t.view()
    assert view["state_label"] == "已办结" and "rating_received" not in view and (await t.row()).rated_at is None


async def test_an_expired_link_says_a_visitor_will_call(intake):
    stale = await received(intake)
    await stale.replied(expires=utcnow() - timedelta(minutes=1))
    for proof in (stale.receipt.query_code, "1234"):
        view, page = await look_up(intake, stale.receipt.number, proof)
        assert view["rating_expired"] is True and "rating_link" not in view and "rating_needs_query_code" not in view
        assert EXPIRED in page and LINK not in page and PHONE_HINT not in page

    fresh = await received(intake)
    await fresh.replied(expires=utcnow() + timedelta(days=7))
    view, page = await look_up(intake, fresh.receipt.number, fresh.receipt.query_code)
    assert view["rating_link"] == LINK and "rating_expired" not in view and EXPIRED not in page

"""The unit's call to the citizen (联系市民) recorded while its extension request (延期申请) waits for the office: the
tracker keeps the ticket 延期申请 and the decision takes it back to 已联系. The citizen's progress look-up says so
too: 延期审批中 until the decision, then 已联系, whether the extension was approved or not. Through intake's consumer
and its own page and API, on SQLite and PostgreSQL.

Intake set 已联系 at once: the look-up said 已联系 while the request still waited for the office."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.enums import TicketState
from schemas.events import (CitizenContacted, ExtensionDecided, ExtensionRequested, TicketAccepted, TicketTracked,
                            utcnow)
from services.intake import service
from tests.integration.test_citizen_progress_events import UNIT
from tests.integration.test_citizen_progress_review import intake, look_up, received  # noqa: F401 (a fixture)


@pytest.mark.parametrize("approved", [True, False])
async def test_a_call_while_the_extension_waits_shows_the_request_until_the_decision_and_contacted_after(
        intake, approved):  # noqa: F811
    t = await received(intake)
    due = utcnow() + timedelta(days=5)
    await t.apply(t.event(TicketTracked(number=t.receipt.number, state=TicketState.ASSIGNED, lead=UNIT, reply_due=due),
                          1),
                  t.event(TicketAccepted(unit=UNIT, by="dept"), 2),
                  t.event(ExtensionRequested(unit=UNIT, reason="需协调供电公司", requested_due=due + timedelta(days=7),
                                             by="dept"), 3))
    contacted = t.event(CitizenContacted(unit=UNIT, note="已电话告知市民延期原因", by="dept"), 4)
    await t.apply(contacted)
    view, page = await look_up(intake, t.receipt.number, "1234")
    assert (view["state"], view["state_label"]) == ("extension_requested", "延期审批中") and "延期审批中" in page
    assert "已联系" not in page

    async with t.rt.store("intake").transaction() as tx:  # applied again past the inbox (its entry purged)
        await service.on_contacted(tx, contacted, contacted.parsed())
    assert ((await t.row()).state, (await t.row()).resume_to) == ("extension_requested", "contacted")

    later = due + timedelta(days=7)
    await t.apply(t.event(ExtensionDecided(approved=approved, new_due=later if approved else None, by="sup"), 5))
    view, page = await look_up(intake, t.receipt.number, "1234")
    assert (view["state"], view["state_label"]) == ("contacted", "已联系") and "已联系" in page
    assert (await t.row()).reply_due == (later if approved else due)


async def test_a_call_intake_hears_before_the_request_it_followed_still_shows_the_request(intake):  # noqa: F811
    """The call was recorded before the request: a late CitizenContacted changes nothing, and the decision goes back
    to 已联系, the state kept when the request came."""
    t = await received(intake)
    await t.apply(t.event(TicketTracked(number=t.receipt.number, state=TicketState.ASSIGNED, lead=UNIT), 1),
                  t.event(TicketAccepted(unit=UNIT, by="dept"), 2))
    contacted = t.event(CitizenContacted(unit=UNIT, by="dept"), 3)
    await t.apply(contacted,
                  t.event(ExtensionRequested(unit=UNIT, reason="需协调供电公司", requested_due=utcnow() + timedelta(days=9),
                                             by="dept"), 4))
    async with t.rt.store("intake").transaction() as tx:  # re-emitted after the request: late
        await service.on_contacted(tx, contacted, contacted.parsed())
    assert (await t.view())["state_label"] == "延期审批中"
    await t.apply(t.event(ExtensionDecided(approved=False, by="sup"), 5))
    assert (await t.view())["state_label"] == "已联系"

"""A unit records its call to the citizen (联系市民) while its extension request (延期申请) waits for the office.

No clock stops for an extension request, so an urgent matter's call is still owed then, and the unit is chased for
it (`timers.awaiting_contact`); it must also be able to record it. The request stands: the ticket stays 延期申请 for
the office to decide, and the decision takes it back to 已联系, not to 已签收 where it was asked from.
"""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import select

from schemas.enums import Role
from services.tracker.domain.sla import SlaPolicy
from services.tracker.store import extensions
from services.tracker.timers import TimerLoop
from tests.integration.test_extension_lateness_and_bulk_orders import _contact_reminders
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import OFFICE, STAFF, _assigned, _id, _later_working_day, _pending, _row

# Ordinary complaints held to a 2-hour call and still extendable (the default policy extends no ticket with a
# contact clock, so this is where the two meet).
CALL_AND_EXTENSION = SlaPolicy.from_mapping({"rules": {"complaint": {"normal": {"contact": {"clock_hours": 2}}}}})


async def _pending_request(rt, number: str):
    async with rt.store("tracker").db.session() as s:
        return (await s.execute(select(extensions).where(extensions.c.ticket_id == _id(number),
                                                         extensions.c.approved.is_(None)))).first()


async def test_the_call_is_recorded_while_the_extension_waits_and_the_decision_goes_back_to_contacted(any_settings):
    rt = await _migrated_runtime(any_settings)
    clocks = rt.state["tracker.clocks"]
    clocks.policy = CALL_AND_EXTENSION
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 1)
        await tracker.sign_for(STAFF, number)
        due = (await _row(rt, number)).reply_due
        await tracker.request_extension(STAFF, number, "需协调住建部门联合执法", _later_working_day(rt, due))
        assert "contact_due" in await _pending(rt, number)  # the call is owed meanwhile, and chased

        contacted = await tracker.contact(STAFF, number, "已电话联系市民，说明延期原因")
        assert (contacted.state, contacted.resume_to) == ("extension_requested", "contacted")
        assert contacted.contacted_at is not None
        assert await _pending_request(rt, number) is not None  # the request still waits for the office
        assert "contact_due" not in await _pending(rt, number)
        await TimerLoop(rt.store("tracker"), clocks).fire_due(contacted.contact_due + dt.timedelta(minutes=1))
        assert await _contact_reminders(rt, number) == ([], 0)  # recorded in time: nobody chases the call

        decided = await tracker.decide_extension(OFFICE, number, True, "同意")
        assert (decided.state, decided.resume_to) == ("contacted", None)
        assert decided.reply_due > due and await _pending_request(rt, number) is None
    finally:
        await _dispose(rt)


async def test_a_second_call_while_the_extension_waits_keeps_the_first_time_and_the_request(any_settings):
    rt = await _migrated_runtime(any_settings)
    rt.state["tracker.clocks"].policy = CALL_AND_EXTENSION
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 2)
        await tracker.sign_for(STAFF, number)
        first = await tracker.contact(STAFF, number, "已电话联系市民")
        await tracker.request_extension(STAFF, number, "需协调住建部门联合执法",
                                        _later_working_day(rt, first.reply_due))
        again = await tracker.contact(STAFF, number, "再次联系市民，告知进展")
        assert (again.state, again.resume_to, again.contacted_at) == ("extension_requested", "contacted",
                                                                      first.contacted_at)
        assert (await tracker.decide_extension(OFFICE, number, False, "理由不充分")).state == "contacted"
    finally:
        await _dispose(rt)


async def test_the_ticket_page_offers_the_call_while_the_extension_waits_and_the_office_still_decides(live):
    rt = live.runtime
    tracker = rt.state["tracker"]
    number = await _assigned(rt, 3)
    await tracker.sign_for(STAFF, number)
    await tracker.request_extension(STAFF, number, "需协调住建部门联合执法",
                                    _later_working_day(rt, (await _row(rt, number)).reply_due))
    unit = await live.user("cgw", Role.DEPARTMENT, department=STAFF.department)
    office = await live.user("sup", Role.SUPERVISOR)
    contact_form = f'action="/tracker/tickets/{number}/do/contact"'
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {unit}"}) as client:
        assert contact_form in (await client.get(f"/tracker/tickets/{number}")).text
        r = await client.post(f"/tracker/tickets/{number}/do/contact", data={"note": "已电话联系市民"},
                              follow_redirects=False)
        assert r.status_code == 303
        shown = (await client.get(r.headers["location"])).text
    assert "已记录联系情况。" in shown and '<span class="tag">延期审批中</span>' in shown
    assert (await _row(rt, number)).state == "extension_requested"
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        shown = (await client.get(f"/tracker/tickets/{number}")).text
    assert f'action="/tracker/tickets/{number}/do/decide_extension"' in shown

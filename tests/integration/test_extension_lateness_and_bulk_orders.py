"""Four tracker defects, through the tracker's own actions, timers, figures and pages.

- 申请延期 was offered on urgent and 重办 tickets, where the rules refuse every extension: the page now leaves the
  form out and says why in a line, and the API still refuses with its error.
- An urgent ticket whose unit asked for an extension before calling the citizen was no longer chased for the call:
  its contact reminder fired while the extension was pending and was swallowed, for good.
- A unit that let a ticket's sign-for or reply deadline pass and then returned it (退单) lost that lateness from its
  scorecard (响应率, 按时办结率): the ticket left its cohort with the return.
- The ledger's bulk 督办 stacked a second order on a ticket whose first still waited for the unit's answer.
"""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import func, select, update

from schemas.enums import Role
from schemas.events import UnitRef, utcnow
from services.tracker import stats, supervision
from services.tracker.domain.sla import SlaPolicy
from services.tracker.store import notifications, supervision_orders, tickets, timeline
from services.tracker.timers import TimerLoop
from tests.integration.test_sup_order_gaps import _dispatch_again, _return
from tests.integration.test_tracker_escalation import BEIJING, UNIT, _dispose, _migrated_runtime, _order
from tests.integration.test_tracker_resume import OFFICE, STAFF, VISITOR, _assigned, _id, _later_working_day, _row
from tests.integration.test_tracker_workflow import REPLY

EXTENSION_FORM = 'action="/tracker/tickets/{}/do/request_extension"'


# --- 1. no extension form where the rules refuse every extension ---------------------------------------


async def test_the_ticket_page_offers_no_extension_on_urgent_or_reopened_tickets_and_the_api_still_refuses(live):
    rt = live.runtime
    tracker = rt.state["tracker"]
    urgent, ordinary, redo = await _assigned(rt, 1, urgency="urgent"), await _assigned(rt, 2), await _assigned(rt, 3)
    for number in (urgent, ordinary, redo):
        await tracker.sign_for(STAFF, number)
    await tracker.contact(STAFF, redo, "已电话联系市民")
    await tracker.reply(STAFF, redo, REPLY)
    assert (await tracker.record_visit(VISITOR, redo, "dissatisfied", department_caused=True,
                                       comment="噪音仍在")).state == "reopened"
    unit = await live.user("cgw", Role.DEPARTMENT, department=UNIT)
    office = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {unit}"}) as client:
        async def page(number: str) -> str:
            return (await client.get(f"/tracker/tickets/{number}")).text

        shown = await page(ordinary)
        assert EXTENSION_FORM.format(ordinary) in shown and 'id="no-extension"' not in shown

        shown = await page(urgent)
        assert EXTENSION_FORM.format(urgent) not in shown and "<summary>申请延期</summary>" not in shown
        assert "紧急事项须按时限答复，不能申请延期。" in shown
        assert f'action="/tracker/tickets/{urgent}/do/contact"' in shown  # the rest of the work as before

        shown = await page(redo)
        assert EXTENSION_FORM.format(redo) not in shown and "重办工单须在重办期限内答复，不能申请延期。" in shown
        await tracker.sign_for(STAFF, redo)  # a 重办 signed for again is still a 重办
        shown = await page(redo)
        assert (await _row(rt, redo)).state == "signed_for" and EXTENSION_FORM.format(redo) not in shown
        assert "重办工单须在重办期限内答复，不能申请延期。" in shown

        # Asked all the same, the API refuses with the rules' own words, whatever the date (a Saturday too: no
        # other date would do).
        saturday = _later_working_day(rt, (await _row(rt, urgent)).reply_due, 6)
        saturday += dt.timedelta(days=(5 - saturday.weekday()) % 7)
        for number, new_due in ((urgent, _later_working_day(rt, (await _row(rt, urgent)).reply_due)),
                                (urgent, saturday), (redo, _later_working_day(rt, (await _row(rt, redo)).reply_due))):
            r = await client.post(f"/api/v1/tracker/tickets/{number}/extension",
                                  json={"reason": "需协调住建部门联合执法", "new_due": new_due.isoformat()})
            assert r.status_code == 422, (number, new_due)
            assert r.json()["error"] == {"code": "extension_not_allowed", "zh": "该事项不能延期。",
                                         "en": "This matter cannot be extended.",
                                         "message": "该事项不能延期。 / This matter cannot be extended."}
    assert (await _row(rt, urgent)).state == "signed_for"  # nothing changed
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        shown = (await client.get(f"/tracker/tickets/{urgent}")).text
    assert 'id="no-extension"' not in shown  # the office asks for no extension: nothing to explain


# --- 2. the call is still owed while an extension asked before it is pending -----------------------------


async def test_a_unit_that_asks_for_an_extension_before_calling_the_citizen_is_chased_for_the_call(any_settings):
    """Under a policy that holds ordinary complaints to a 2-hour call and lets them be extended (the default one
    extends no ticket with a contact clock, so this is where the two meet)."""
    rt = await _migrated_runtime(any_settings)
    clocks = rt.state["tracker.clocks"]
    clocks.policy = SlaPolicy.from_mapping({"rules": {"complaint": {"normal": {"contact": {"clock_hours": 2}}}}})
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 11)
        await tracker.sign_for(STAFF, number)
        row = await _row(rt, number)
        asked = await tracker.request_extension(STAFF, number, "需协调住建部门联合执法",
                                                _later_working_day(rt, row.reply_due))
        assert (asked.state, asked.resume_to, asked.contacted_at) == ("extension_requested", "signed_for", None)

        loop = TimerLoop(rt.store("tracker"), clocks)
        assert await loop.fire_due(row.contact_due + dt.timedelta(minutes=1)) == 1
        chased = await _contact_reminders(rt, number)
        assert chased == (["紧急工单联系市民超时，已催办"], 1)

        decided = await tracker.decide_extension(OFFICE, number, True, "同意")
        assert decided.state == "signed_for"
        await loop.fire_due(row.contact_due + dt.timedelta(minutes=2))
        assert await _contact_reminders(rt, number) == chased  # once, not again after the decision
    finally:
        await _dispose(rt)


async def _contact_reminders(rt, number: str) -> tuple[list[str], int]:
    """The ticket's contact-clock timeline lines, and the reminders (催办) its unit got about the call."""
    async with rt.store("tracker").db.session() as s:
        lines = (await s.execute(select(timeline.c.summary).where(
            timeline.c.ticket_id == _id(number), timeline.c.event_type == "DeadlineMissed"))).scalars().all()
        sent = await s.scalar(select(func.count()).select_from(notifications).where(
            notifications.c.unit_code == UNIT, notifications.c.kind == "reminder",
            notifications.c.message.like("%联系市民时限%")))
    return list(lines), sent


# --- 3. lateness stays on the scorecard of the unit that returned the ticket ------------------------------


async def test_a_unit_that_returns_a_ticket_after_its_deadlines_passed_keeps_that_lateness_on_its_scorecard(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        never_signed, signed_late, in_time = (await _assigned(rt, 21), await _assigned(rt, 22),
                                              await _assigned(rt, 23))
        await tracker.sign_for(STAFF, signed_late)
        now = utcnow()
        async with rt.store("tracker").db.session() as s:  # time passes: the clocks run out while the unit holds them
            await s.execute(update(tickets).where(tickets.c.number == never_signed).values(
                sign_for_due=now - dt.timedelta(days=2), reply_due=now - dt.timedelta(hours=1)))
            await s.execute(update(tickets).where(tickets.c.number == signed_late).values(
                sign_for_due=now - dt.timedelta(days=2), signed_for_at=now - dt.timedelta(days=1)))
        assigned_at = (await _row(rt, never_signed)).assigned_at
        for number in (never_signed, signed_late, in_time):
            await _return(rt, number)
        await _dispatch_again(rt, never_signed, UnitRef(code="S-01-03", name="解放路街道"))  # the next unit has it

        period = stats.period_of(f"{assigned_at.astimezone(BEIJING):%Y-%m}", BEIJING)
        later = utcnow()
        async with rt.store("tracker").db.reading() as s:
            scores, total = await stats.scorecard(s, period, later)
            returned_late = {}
            for key in ("response", "on_time"):
                items = stats.figure_items(key, "denominator", period, later, UNIT).subquery()
                returned_late[key] = set((await s.execute(select(tickets.c.number).join(
                    items, items.c.ticket_id == tickets.c.ticket_id))).scalars())
        unit = next(score for score in scores if score.unit_code == UNIT)
        assert unit.assigned == 0 and unit.counts["return"] == (3, 3)
        assert unit.counts["response"] == (0, 2)  # signed for late, and never signed by the deadline
        assert unit.counts["on_time"] == (0, 1)  # its reply deadline passed before the return
        assert returned_late == {"response": {never_signed, signed_late}, "on_time": {never_signed}}
        nxt = next(score for score in scores if score.unit_code == "S-01-03")  # its own clocks, just started
        assert (nxt.assigned, nxt.counts["response"], nxt.counts["on_time"]) == (1, (0, 0), (0, 0))
        assert total.counts["response"] == (0, 2) and total.counts["on_time"] == (0, 1)
    finally:
        await _dispose(rt)


# --- 4. the ledger's bulk order stacks no second order --------------------------------------------------


async def test_the_ledgers_bulk_order_passes_over_tickets_whose_order_awaits_its_answer_and_says_how_many(live):
    rt = live.runtime
    now = utcnow()
    day = f"{now.astimezone(BEIJING):%Y%m%d}"
    waiting, first = await _order(rt, 1, now, day=day)  # its unit has not answered yet
    answered, second = await _order(rt, 2, now, day=day)
    closed, third = await _order(rt, 3, now, day=day)
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == second).values(
            response="已约谈施工单位并限期整改", responded_at=now, responded_by="cgw"))
        await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == third).values(
            response="已整改完毕", responded_at=now, responded_by="cgw", closed_at=now, closed_by="sup"))
    office = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        r = await client.post("/tracker/sup/ledger/bulk", data={
            "number": [waiting, answered, closed], "op": "supervise", "level": "key", "reason": "超期未办"},
            follow_redirects=False)
    assert httpx.URL(r.headers["location"]).params["done"] == (  # the waiting order is 一般督办: 重点 is elsewhere
        f"已下达督办单 2 件；另有 1 件已有待回复的督办单（{waiting}），未重复下达。"
        "待回复的督办单均为一般督办，如需重点督办，请在工单页下达")
    async with rt.store("tracker").db.session() as s:
        orders = (await s.execute(select(tickets.c.number, func.count()).join(
            supervision_orders, supervision_orders.c.ticket_id == tickets.c.ticket_id).group_by(tickets.c.number)
        )).all()
    assert dict(orders) == {waiting: 1, answered: 2, closed: 2}

    made, passed_over, _ = await supervision.order_many(rt, OFFICE, [waiting, answered, closed], "normal", "仍未办结")
    assert made == [] and sorted(passed_over) == sorted([waiting, answered, closed])  # each has one waiting now

"""Tracker defects found on its pages and in review, through the tracker's own actions, pages and exports.

- A citizen's rating link stayed open once the return visit had closed the ticket by phone, or sent it back for
  重办, and its submit then failed with the state machine's words, losing what the citizen wrote: the link now says
  plainly that no rating is needed, on opening and on submitting, and a close or a 重办 ends it (a new reply brings
  a new one).
- A reopened ticket's card still said 已向市民发送评价链接: the last reply's visit method stayed on it.
- The scorecard counts return visits, assignments and returns, and its lists showed each ticket once: a figure's
  list now has a row for each thing the figure counts, with its date and result, and says of how many tickets.
- A unit that holds no ticket any more was shown by its code on the scorecard, the bulletin, its exports and the
  list behind a figure.
- A ticket given to another unit kept the former unit's call to the citizen (已联系) on record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re

import httpx
import pytest
from sqlalchemy import func, select, update

from jiesu.errors import ApiError
from jiesu.identity import User
from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, UnitRef, utcnow
from services.tracker import handlers, queries, stats
from services.tracker.store import return_visits, tickets, timeline, visit_links
from tests.integration.test_sup_order_gaps import _dispatch_again, _return
from tests.integration.test_tracker_escalation import BEIJING, UNIT, _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import STAFF, VISITOR, _assigned, _id, _row
from tests.integration.test_tracker_workflow import REPLY, Desk, bearer
from tests.unit.tracker import sup_month as m

NO_RATING_AFTER_VISIT = "该工单已在回访后办结，现在无需评价。"
NO_RATING_WHILE_REDONE = "该工单已转回承办单位重新办理（重办），现在无需评价"
NO_RATING_AFTER_NEW_REPLY = "该工单已重新办理并再次答复，此链接已不再使用"
STATE_MACHINE = "工单当前状态为"  # TransitionRefused's words, for staff: never on the citizen's page


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


async def _online_reply(desk: Desk, live) -> tuple[dict, str]:
    """An online message (网上留言) routed, signed for and replied to by its unit: the ticket, and the path of the
    citizen's rating link the reply made."""
    t = await desk.post_ticket()
    async with live.runtime.store("tracker").db.session() as s:  # intake decides the channel; online for the tracker
        await s.execute(update(tickets).where(tickets.c.number == t["number"]).values(channel="online"))
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.as_("visitor", Role.VISITOR)
    await desk.act("dept", t["number"], "sign-for")
    assert (await desk.act("dept", t["number"], "reply", {"reply": REPLY}))["visit_method"] == "link"
    return t, _rating_path((await _links(live.runtime, t["number"]))[-1])


async def _links(rt, number: str) -> list[str]:
    """The rating links the ticket's replies made (ReturnVisitDue), oldest first."""
    store = rt.store("tracker")
    ticket_id = (await _row(rt, number)).ticket_id
    async with store.db.session() as s:
        values = (await s.execute(select(store.tables.outbox.c.value).order_by(store.tables.outbox.c.id))).scalars()
        envelopes = [Envelope.from_bytes(v) for v in values]
    return [e.parsed().link for e in envelopes if e.event_type == "ReturnVisitDue" and e.ticket_id == ticket_id]


def _rating_path(link: str) -> str:
    return "/tracker/rate/" + link.rsplit("/tracker/rate/", 1)[1]


def _token(link: str) -> str:
    return link.rsplit("/tracker/rate/", 1)[1]


# --- 1. a rating link once the visit has settled the ticket ----------------------------------------------------


async def test_a_link_the_citizen_submits_after_the_phone_visit_closed_the_ticket_says_no_rating_is_needed(desk, live):
    t, path = await _online_reply(desk, live)
    opened = await desk.client.get(path)  # the citizen opens the link, and leaves the page open
    assert opened.status_code == 200 and "提交评价" in opened.text
    visited = await desk.act("visitor", t["number"], "return-visit", {"outcome": "satisfied"})  # the call comes first
    assert visited["state"] == "closed"

    submitted = await desk.client.post(path, data={"outcome": "dissatisfied", "comment": "路面仍有积水"})
    assert submitted.status_code == 410
    assert NO_RATING_AFTER_VISIT in submitted.text and STATE_MACHINE not in submitted.text
    assert 'id="rating-settled"' in submitted.text and 'role="alert"' not in submitted.text
    again = await desk.client.get(path)  # opened later, the link says so at once, with no form to fill in
    assert again.status_code == 410 and NO_RATING_AFTER_VISIT in again.text and "<form" not in again.text

    closed = await desk.wait(t["number"], "closed")
    assert (closed["outcome"], closed["citizen_rating"]) == ("satisfied", None)
    async with live.runtime.store("tracker").db.session() as s:
        visits = (await s.execute(select(return_visits.c.outcome, return_visits.c.by).where(
            return_visits.c.ticket_id == t["ticket_id"]))).all()
    assert visits == [("satisfied", "visitor")]


async def test_a_citizen_rating_that_meets_a_visit_just_recorded_gets_the_same_answer(any_settings):
    """The link was opened while the ticket waited for its visit; the visitor's call closes it before the rating is
    recorded (`record_visit` through the link): the answer is the citizen's, not the state machine's."""
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _online_replied(rt, 41)
        row, _ = await tracker.open_link(_token((await _links(rt, number))[-1]))
        await tracker.record_visit(VISITOR, number, "satisfied")
        async with rt.store("tracker").db.session() as s:  # the close ended the link it left unused
            ends = (await s.execute(select(visit_links.c.expires_at, visit_links.c.used_at).where(
                visit_links.c.ticket_id == row.ticket_id))).all()
        assert len(ends) == 1 and ends[0].expires_at <= utcnow() and ends[0].used_at is None
        with pytest.raises(ApiError) as refused:
            await tracker.record_visit(None, str(row.ticket_id), "dissatisfied", comment="路面仍有积水", via_link=True)
        assert (refused.value.status, refused.value.code) == (410, "rating_not_needed")
        assert refused.value.zh.startswith(NO_RATING_AFTER_VISIT)
        assert (await _row(rt, number)).outcome == "satisfied"
    finally:
        await _dispose(rt)


async def test_a_reopen_ends_the_link_and_the_next_reply_brings_a_new_one(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _online_replied(rt, 42)
        first = _token((await _links(rt, number))[-1])
        reopened = await tracker.record_visit(VISITOR, number, "dissatisfied", department_caused=True,
                                              comment="路面仍有积水")
        assert reopened.state == "reopened"
        with pytest.raises(ApiError) as refused:
            await tracker.open_link(first)
        assert refused.value.code == "rating_not_needed" and NO_RATING_WHILE_REDONE in refused.value.zh

        await tracker.sign_for(STAFF, number)
        await tracker.reply(STAFF, number, REPLY)
        links = await _links(rt, number)
        assert len(links) == 2 and _token(links[-1]) != first
        for attempt in (lambda: tracker.open_link(first), lambda: tracker.rate_by_link(first, "satisfied", "")):
            with pytest.raises(ApiError) as refused:  # the first reply's link rates nothing now
                await attempt()
            assert refused.value.code == "rating_not_needed" and NO_RATING_AFTER_NEW_REPLY in refused.value.zh
        assert (await _row(rt, number)).state == "replied"

        rated = await tracker.rate_by_link(_token(links[-1]), "satisfied", "这次修好了")
        assert (rated.state, rated.outcome) == ("closed", "satisfied")
    finally:
        await _dispose(rt)


async def _online_replied(rt, i: int) -> str:
    """A complaint of UNIT that came in online, signed for and replied to: its number (a rating link made)."""
    number = await _assigned(rt, i)
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == number).values(channel="online"))
    await rt.state["tracker"].sign_for(STAFF, number)
    await rt.state["tracker"].reply(STAFF, number, REPLY)
    return number


# --- 2. a reopened ticket's card says nothing of the last reply's link ------------------------------------------


async def test_a_reopened_ticket_no_longer_says_a_rating_link_was_sent(desk, live):
    t, path = await _online_reply(desk, live)
    sup = await desk.as_("sup", Role.SUPERVISOR)

    async def visit_cell() -> str:
        html = (await desk.client.get(f"/tracker/tickets/{t['number']}", headers=bearer(sup))).text
        return re.search(r"<small>回访</small>.*?</div>", html, re.S).group(0)

    assert "已向市民发送评价链接" in await visit_cell()
    reopened = await desk.act("visitor", t["number"], "return-visit",
                              {"outcome": "dissatisfied", "department_caused": True, "comment": "路面仍有积水"})
    assert reopened["state"] == "reopened" and reopened["visit_method"] is None
    cell = await visit_cell()
    assert "已向市民发送评价链接" not in cell and "电话回访" not in cell and "<b>—</b>" in cell
    shown = await desk.client.get(path)  # and the citizen's link says why it asks for nothing now
    assert shown.status_code == 410 and NO_RATING_WHILE_REDONE in shown.text and STATE_MACHINE not in shown.text


# --- 3. a figure's list has a row for each thing the figure counts ----------------------------------------------


async def test_each_figure_of_the_scorecard_lists_as_many_rows_as_it_counts(live):
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers=bearer(sup), timeout=20) as client:
        card = (await client.get("/api/v1/tracker/supervision/scorecard", params={"period": "2026-10"})).json()
        checked = 0
        for unit in [*card["units"], {**card["total"], "unit_code": ""}]:
            for key, figure in unit["rates"].items():
                for part in ("numerator", "denominator"):
                    html = (await client.get("/tracker/sup/tickets", params={
                        "period": "2026-10", "measure": key, "part": part, "unit": unit["unit_code"]})).text
                    head = re.search(r'id="figure-count">[^<]*· 共 (\d+) ', html)
                    rows = html[html.index("<tbody>"):html.index("</tbody>")].count('<tr class="')
                    assert int(head.group(1)) == rows == figure[part], (unit["unit_code"], key, part)
                    checked += 1
        assert checked == 3 * 7 * 2

        # 满意率 of unit A: six visits of five tickets, a3 visited twice (不满意 then, after its 重办, 满意).
        html = (await client.get("/tracker/sup/tickets", params={
            "period": "2026-10", "measure": "satisfaction", "part": "denominator", "unit": m.A})).text
        assert "共 6 次回访，涉及 5 件工单" in html
        a3 = [row for row in html.split("<tr") if m.number_of("a3") in row]
        assert len(a3) == 2
        assert "回访：满意<span" in a3[0] and "2026-10-22 10:00" in a3[0]
        assert "回访：不满意（承办单位原因）<span" in a3[1] and "2026-10-16 10:00" in a3[1]
        # 退单率 of the city: 14 assignments of 13 tickets (r1 went to A, then B), and the one return.
        html = (await client.get("/tracker/sup/tickets", params={
            "period": "2026-10", "measure": "return", "part": "denominator"})).text
        assert "共 14 次派件，涉及 13 件工单" in html
        html = (await client.get("/tracker/sup/tickets", params={
            "period": "2026-10", "measure": "return", "part": "numerator"})).text
        assert "共 1 次退单，涉及 1 件工单" in html and "<td>" + m.A_NAME + "</td>" in html
        # A figure of tickets says so as before.
        html = (await client.get("/tracker/sup/tickets", params={
            "period": "2026-10", "measure": "response", "part": "denominator", "unit": m.A})).text
        assert "· 共 9 件</small>" in html and "<th>计入</th>" not in html


async def test_a_late_return_is_a_row_of_its_own_in_the_list_beside_the_tickets_the_unit_holds(any_settings):
    """A unit that returned a ticket late and was given it back holds it in its cohort and keeps the late return:
    the figure counts both (`stats.late_return_conditions`), and so does its list."""
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 43)
        async with rt.store("tracker").db.session() as s:  # the sign-for deadline passes while the unit holds it
            await s.execute(update(tickets).where(tickets.c.number == number).values(
                sign_for_due=utcnow() - dt.timedelta(hours=1)))
        await _return(rt, number)
        await _dispatch_again(rt, number, UnitRef(code=UNIT, name="市城市管理委员会"))  # given back to the unit
        await tracker.sign_for(STAFF, number)
        now = utcnow()
        period = stats.period_of(stats.this_month(BEIJING, now), BEIJING)
        async with rt.store("tracker").db.reading() as s:
            scores, _ = await stats.scorecard(s, period, now, UNIT)
            items = stats.figure_items("response", "denominator", period, now, UNIT).subquery()
            listed = (await s.execute(select(items.c.item_kind, func.count()).group_by(items.c.item_kind))).all()
        assert scores[0].counts["response"] == (1, 2)
        assert sorted(listed) == [("late_return", 1), ("ticket", 1)]
    finally:
        await _dispose(rt)


# --- 4. a unit that holds no ticket is named ------------------------------------------------------------------


async def test_a_unit_that_holds_no_ticket_any_more_is_named_on_the_scorecard_bulletin_exports_and_lists(desk, live):
    from openpyxl import load_workbook

    t = await desk.post_ticket()  # routed to 市城市管理委员会, which the router names with the assignment
    name = t["lead"]["name"]
    assert (t["lead"]["code"], name) == (UNIT, "市城市管理委员会")
    await desk.as_("dept", Role.DEPARTMENT, department=UNIT)
    await desk.act("dept", t["number"], "return", {"reason_code": "other_unit", "reason": "该路段属开发区管辖，应由开发区管委会处理"})
    for _ in range(300):  # the router gives it to another unit, or to a dispatcher: the unit holds no ticket now
        if (await _row(live.runtime, t["number"])).state not in ("assigned", "returned"):
            break
        await asyncio.sleep(0.05)
    async with live.runtime.store("tracker").db.session() as s:
        assert await s.scalar(select(func.count()).select_from(tickets).where(tickets.c.lead_code == UNIT)) == 0

    period = stats.this_month(BEIJING)
    sup = await desk.as_("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers=bearer(sup), timeout=20) as client:
        card = (await client.get("/api/v1/tracker/supervision/scorecard", params={"period": period})).json()
        unit = next(u for u in card["units"] if u["unit_code"] == UNIT)
        assert unit["unit_name"] == name and unit["rates"]["return"]["numerator"] == 1
        page = (await client.get("/tracker/sup/scorecard", params={"period": period})).text
        assert f'<td>{name}<span class="sub">{UNIT}</span></td>' in page

        bulletin = (await client.get("/tracker/sup/reports/monthly.json", params={"period": period})).json()
        units = next(table for table in bulletin["tables"] if table["key"] == "units")
        assert name in [row[1] for row in units["rows"]] and UNIT not in [row[1] for row in units["rows"]]
        page = (await client.get("/tracker/sup/reports", params={"period": period})).text
        section = page[page.index('id="t-units"'):]
        assert f'<td class="">{name}</td>' in section and f">{UNIT}</td>" not in section
        csv_text = (await client.get("/tracker/sup/reports/monthly.csv", params={"period": period})).content
        assert f",{name}," in csv_text.decode("utf-8-sig") and f",{UNIT}," not in csv_text.decode("utf-8-sig")
        xlsx = (await client.get("/tracker/sup/reports/monthly.xlsx", params={"period": period})).content
        sheet = load_workbook(io.BytesIO(xlsx))["承办单位考评"]
        named = [r[1] for r in sheet.iter_rows(min_row=3, max_row=2 + len(units["rows"]), values_only=True)]
        assert name in named and UNIT not in named

        listed = (await client.get("/tracker/sup/tickets", params={
            "period": period, "measure": "return", "part": "numerator", "unit": UNIT})).text
        assert f"<h1>{name} · 退单率·退单次数" in listed and "共 1 次退单，涉及 1 件工单" in listed


# --- 6. a ticket given to another unit starts with no call to the citizen on record ------------------------------


async def test_a_ticket_given_to_another_unit_keeps_no_call_the_former_unit_made(any_settings):
    """The one way a ticket reaches 退单 with a call on record: contacted, replied, sent back for 重办, signed for
    again and returned. The next unit has not called the citizen, and its own call is what the ticket records."""
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    street = UnitRef(code="S-01-03", name="解放路街道")
    street_staff = User(id=4, username="jfl", display_name="解放路街道", role=Role.DEPARTMENT, department=street.code)
    try:
        number = await _assigned(rt, 45, urgency="urgent")
        await tracker.sign_for(STAFF, number)
        called = (await tracker.contact(STAFF, number, "已电话联系市民")).contacted_at
        await tracker.reply(STAFF, number, REPLY)
        await tracker.record_visit(VISITOR, number, "dissatisfied", department_caused=True, comment="噪音仍在")
        await tracker.sign_for(STAFF, number)
        await _return(rt, number)
        p = TicketAssigned(number=number, kind="complaint", urgency="urgent", lead=street,
                           reason=RoutingReason(method="reroute"), attempt=2)
        async with rt.store("tracker").transaction() as tx:  # the router gives it to the street office
            await handlers.assigned_many(tx, [(Envelope.wrap(p, ticket_id=_id(number), producer="router"), p)],
                                         rt.state["tracker.clocks"])

        row = await _row(rt, number)
        assert (row.state, row.lead_code, row.signed_for_at, row.contacted_at, row.resume_to) == (
            "assigned", street.code, None, None, None)
        assert row.contact_due is not None  # urgent: the new unit owes its call, and is not taken to have made it
        assert queries.ticket_view(row, street_staff, utcnow())["contacted_at"] is None

        await tracker.sign_for(street_staff, number)
        contacted = await tracker.contact(street_staff, number, "已上门联系市民")
        assert contacted.contacted_at > called and contacted.contacted_at >= row.assigned_at
        async with rt.store("tracker").db.session() as s:
            said = (await s.execute(select(timeline.c.summary).where(
                timeline.c.ticket_id == row.ticket_id, timeline.c.summary.like("联系市民%")))).scalars().all()
        assert said == ["联系市民：已电话联系市民", "联系市民：已上门联系市民"]
    finally:
        await _dispose(rt)

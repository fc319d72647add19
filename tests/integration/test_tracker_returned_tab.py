"""已退单: a unit's workbench lists the tickets it sent back (退单) in the last 90 days, newest return first, with when
and why it returned each and where the ticket is now (its state and the unit leading it, or 待派单), so that it can
answer whoever asks. Only its own returns; no citizen's name or number; a number links only to a ticket the unit may
open now. On SQLite and PostgreSQL; the page over the real system.
"""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import update

from jiesu.identity import User
from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, UnitRef, utcnow
from services.tracker import handlers, queries
from services.tracker.store import ticket_units, tickets, timeline, unit_log
from tests.integration.test_co_handler_inbox import CGW, CGW_STAFF, OFFICE, STREET, STREET_STAFF, _id
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime

WATER = UnitRef(code="M-SWJ", name="市水务局")
NAME, PHONE = "王小明", "13912345678"


async def _held(rt, number: str, unit: UnitRef, subject: str = "小区路面积水") -> str:
    """A ticket `unit` leads, signed for, with a citizen's name and number."""
    now = utcnow()
    async with rt.store("tracker").transaction() as tx:
        await tx.session.execute(tickets.insert().values(
            ticket_id=_id(number), number=number, state="signed_for", kind="complaint", urgency="normal",
            subject=subject, citizen_name=NAME, citizen_phone=PHONE, confidential=False, lead_code=unit.code,
            lead_name=unit.name, co_handlers=[], assigned_at=now, signed_for_at=now,
            sign_for_due=now + dt.timedelta(days=1), reply_due=now + dt.timedelta(days=10),
            warn_at=now + dt.timedelta(days=8), updated_at=now))
        await tx.session.execute(ticket_units.insert().values(ticket_id=_id(number), unit_code=unit.code, role="lead"))
    return number


async def _returned(rt, staff: User, number: str, code: str = "other_unit", words: str = "此事应由市水务局办理") -> None:
    await rt.state["tracker"].return_ticket(staff, number, code, words)


async def _dispatched(rt, number: str, lead: UnitRef) -> None:
    p = TicketAssigned(number=number, kind="complaint", lead=lead, co_handlers=[],
                       reason=RoutingReason(method="dispatcher", by="pd1"))
    async with rt.store("tracker").transaction() as tx:
        await handlers.assigned_many(tx, [(Envelope.wrap(p, ticket_id=_id(number), producer="router"), p)],
                                     rt.state["tracker.clocks"])


async def _backdate(rt, number: str, days: int) -> None:
    """The ticket's only return (its unit-log row, its timeline) as if made `days` ago."""
    at = utcnow() - dt.timedelta(days=days)
    async with rt.store("tracker").db.session() as s:
        for table in (unit_log, timeline):
            await s.execute(update(table).where(table.c.ticket_id == _id(number)).values(at=at))


async def _returns(rt, user: User, **kw) -> tuple[list[dict], int, dict[str, int]]:
    async with rt.store("tracker").db.session() as s:
        rows, returns, total, counts = await queries.workbench(s, user, tab="returned", now=utcnow(), **kw)
    assert rows == []
    return returns, total, counts


async def _story(rt) -> dict[str, str]:
    """The street returned: `water` (now led by 市水务局), `waiting` (89 days ago; with a dispatcher), `back`
    (dispatched back to the street, which leads it again), `old` (91 days ago); 城管委 returned `theirs`."""
    n = {name: f"12345-20261124-{i:06d}" for i, name in enumerate(("old", "water", "waiting", "back", "theirs"), 1)}
    for name in ("old", "water", "waiting", "back"):
        await _held(rt, n[name], STREET)
    await _held(rt, n["theirs"], CGW)
    await _returned(rt, STREET_STAFF, n["old"], "wrong_area", "不在本街道辖区")
    await _backdate(rt, n["old"], 91)
    await _returned(rt, STREET_STAFF, n["water"], "other_unit", "积水系市政排水管网堵塞，应由市水务局处理")
    await _dispatched(rt, n["water"], WATER)
    await _returned(rt, STREET_STAFF, n["waiting"], "unclear", "地址不清，无法核实")
    async with rt.store("tracker").db.session() as s:  # no unit certain enough: a dispatcher decides
        await s.execute(update(tickets).where(tickets.c.number == n["waiting"]).values(state="dispatching"))
    await _backdate(rt, n["waiting"], 89)
    await _returned(rt, STREET_STAFF, n["back"], "not_our_duty", "应由物业公司负责")
    await _dispatched(rt, n["back"], STREET)
    await _returned(rt, CGW_STAFF, n["theirs"], "other_unit", "应由解放路街道处理")
    return n


async def test_a_unit_sees_its_returns_of_the_last_90_days_newest_first_with_why_and_where_each_is_now(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        n = await _story(rt)
        returns, total, counts = await _returns(rt, STREET_STAFF)
        assert [r["number"] for r in returns] == [n["back"], n["water"], n["waiting"]] and total == 3
        assert counts["returned"] == 3
        by = {r["number"]: r for r in returns}
        assert (by[n["water"]]["reason_label"], by[n["water"]]["reason"]) == (
            "属于其他单位职责", "积水系市政排水管网堵塞，应由市水务局处理")
        assert (by[n["water"]]["state"], by[n["water"]]["lead"]) == ("assigned", {"code": WATER.code,
                                                                                  "name": "市水务局"})
        assert (by[n["waiting"]]["reason_label"], by[n["waiting"]]["state"], by[n["waiting"]]["lead"]) == (
            "诉求不明确", "dispatching", None)
        assert by[n["back"]]["lead"] == {"code": STREET.code, "name": STREET.name}
        assert [by[x]["subject"] for x in by] == ["小区路面积水"] * 3
        returned_at = dt.datetime.fromisoformat(by[n["water"]]["returned_at"])
        assert abs(utcnow() - returned_at) < dt.timedelta(minutes=5)

        # Only the ticket the street leads again opens from the list; it is in its usual tabs too.
        assert [r["openable"] for r in returns] == [True, False, False]
        async with rt.store("tracker").db.session() as s:
            rows, _, open_count, _ = await queries.workbench(s, STREET_STAFF, tab="open", now=utcnow())
        assert [r.number for r in rows] == [n["back"]] and open_count == 1

        # 城管委 sees its own return alone.
        theirs, total, _ = await _returns(rt, CGW_STAFF)
        assert [r["number"] for r in theirs] == [n["theirs"]] and total == 1
    finally:
        await _dispose(rt)


async def test_the_returned_list_pages_and_follows_the_search_and_kind(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        n = await _story(rt)
        first, total, _ = await _returns(rt, STREET_STAFF, limit=2)
        second, _, _ = await _returns(rt, STREET_STAFF, limit=2, offset=2)
        assert [r["number"] for r in first + second] == [n["back"], n["water"], n["waiting"]] and total == 3
        found, total, counts = await _returns(rt, STREET_STAFF, q=n["water"][-6:])
        assert [r["number"] for r in found] == [n["water"]] and total == counts["returned"] == 1
        assert (await _returns(rt, STREET_STAFF, kind="help"))[1] == 0
    finally:
        await _dispose(rt)


async def test_a_ticket_returned_twice_is_listed_once_for_each_return_each_with_its_own_reason(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _held(rt, "12345-20261124-000001", STREET)
        await _returned(rt, STREET_STAFF, number, "unclear", "地址不清，无法核实")
        await _dispatched(rt, number, STREET)
        await _returned(rt, STREET_STAFF, number, "other_unit", "核实后确属市水务局职责")
        returns, total, _ = await _returns(rt, STREET_STAFF)
        assert [(r["reason_label"], r["reason"]) for r in returns] == [
            ("属于其他单位职责", "核实后确属市水务局职责"), ("诉求不明确", "地址不清，无法核实")]
        assert total == 2 and [r["state"] for r in returns] == ["returned", "returned"]
    finally:
        await _dispose(rt)


async def test_the_returned_list_never_gives_the_citizen_s_name_or_number(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        number = await _held(rt, "12345-20261124-000001", STREET, subject=f"{NAME}反映小区路面积水")
        await _returned(rt, STREET_STAFF, number, "other_unit", f"已联系{NAME}（{PHONE}），应由市水务局处理")
        (r,), _, _ = await _returns(rt, STREET_STAFF)
        shown = repr(r)
        assert NAME not in shown and PHONE not in shown
        assert r["subject"].endswith("反映小区路面积水") and r["reason"].startswith("已联系")
        assert "139****5678" in r["reason"]
    finally:
        await _dispose(rt)


def test_a_unit_s_workbench_has_returned_after_co_and_the_office_s_has_not():
    assert list(queries.workbench_tabs(STREET_STAFF)) == [
        "open", "new", "soon", "overdue", "co", "returned", "paused", "replied", "done"]
    assert queries.workbench_tabs(OFFICE) == queries.inbox_tabs(OFFICE)
    assert "returned" not in queries.inbox_tabs(STREET_STAFF)  # `inbox` counts the tickets a unit holds, as before


def _count(html: str, label: str) -> int:
    return int(re.search(rf'>{label}<span class="count[^"]*">(\d+)</span>', html).group(1))


def _rows(html: str) -> str:
    return html[html.index("<tbody>"):html.index("</tbody>")]


async def _logged_return(rt, number: str, at: dt.datetime, summary: str) -> None:
    """A return by the street as return_ticket keeps it (its unit-log row and timeline line), without the event that
    would send the ticket on to the live router: where the ticket is now is the test's to say."""
    async with rt.store("tracker").transaction() as tx:
        await tx.session.execute(unit_log.insert().values(ticket_id=_id(number), unit_code=STREET.code,
                                                          kind="returned", at=at))
        await tx.session.execute(timeline.insert().values(
            ticket_id=_id(number), event_id=_id(f"{number}/{at.isoformat()}"), event_type="TicketReturned", at=at,
            actor="jfl（S-01-03）", summary=summary, data={}))


async def test_the_returned_tab_shows_the_returns_and_links_only_what_the_unit_may_open(live):
    rt = live.runtime
    gone = await _held(rt, "12345-20261124-000001", WATER)  # returned by the street, now with 市水务局
    back = await _held(rt, "12345-20261124-000002", STREET)  # returned, and dispatched back to the street
    now = utcnow()
    await _logged_return(rt, gone, now - dt.timedelta(hours=2), f"退单（属于其他单位职责）：市民{PHONE}所述路段属市水务局")
    await _logged_return(rt, back, now - dt.timedelta(hours=3), "退单（不属于本单位职责）：应由物业公司负责")
    token = await live.user("jfl", Role.DEPARTMENT, department=STREET.code)
    office = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        first = (await client.get("/tracker/inbox")).text
        page = (await client.get("/tracker/inbox", params={"tab": "returned"})).text
        opened = await client.get(f"/tracker/tickets/{gone}")
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        theirs = (await client.get("/tracker/inbox", params={"tab": "returned"})).text
    assert _count(first, "已退单") == 2
    assert first.index(">协办<") < first.index(">已退单<") < first.index(">暂停计时<")
    assert '<a href="?tab=returned" aria-current="page">已退单' in page
    rows = _rows(page)
    assert rows.index(gone) < rows.index(back)  # the newest return first
    assert f'<span class="number">{gone}</span>' in rows and f'href="/tracker/tickets/{gone}"' not in rows
    assert f'<a class="row-link" href="/tracker/tickets/{back}">{back}</a>' in rows
    assert "属于其他单位职责" in rows and "市民139****5678所述路段属市水务局" in rows and "市水务局</span>" in rows
    assert PHONE not in page and NAME not in page
    assert opened.status_code == 404  # the list does not widen who may open the ticket
    assert '<a href="?tab=open" aria-current="page">在办' in theirs and ">已退单<" not in theirs  # the office's


async def test_the_returned_tab_pages_like_the_others(live):
    rt = live.runtime
    now = utcnow()
    numbers = [await _held(rt, f"12345-20261124-{i:06d}", WATER) for i in range(1, 53)]
    for i, number in enumerate(numbers):  # 52 returns, a minute apart
        await _logged_return(rt, number, now - dt.timedelta(minutes=i), "退单（诉求不明确）：地址不清，无法核实")
    token = await live.user("jfl", Role.DEPARTMENT, department=STREET.code)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        first = (await client.get("/tracker/inbox", params={"tab": "returned"})).text
        second = (await client.get("/tracker/inbox", params={"tab": "returned", "page": 2})).text
    assert "第 1 / 2 页，共 52 件" in first and '<a href="?tab=returned&kind=&q=&page=2" rel="next">' in first
    assert "第 2 / 2 页，共 52 件" in second
    assert numbers[0] in _rows(first) and numbers[-1] in _rows(second) and numbers[-1] not in _rows(first)

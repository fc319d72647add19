"""A co-handling unit's (协办) workbench counts under 待签收, 即将到期 and 已超期, and in its badge, only the tickets it
leads: it neither signs for the others nor answers to their deadlines. It finds those under 协办, a tab of its own.
The supervision office's workbench is as it was. On SQLite and PostgreSQL; the page over the real system.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import httpx
from sqlalchemy import update

from jiesu.identity import User
from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, UnitRef, utcnow
from services.tracker import handlers, queries
from services.tracker.store import tickets
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime

CGW = UnitRef(code="M-CGW", name="市城市管理委员会")
STREET = UnitRef(code="S-01-03", name="解放路街道")
STREET_STAFF = User(id=1, username="jfl", display_name="解放路街道", role=Role.DEPARTMENT, department=STREET.code)
CGW_STAFF = User(id=2, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=CGW.code)
OFFICE = User(id=3, username="sup", display_name="督查室", role=Role.SUPERVISOR)


def _id(number: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, number)


async def _assigned(rt, number: str, lead: UnitRef, co: list[UnitRef] = ()) -> str:
    p = TicketAssigned(number=number, kind="complaint", lead=lead, co_handlers=list(co),
                       reason=RoutingReason(method="rule", rule_id="R-noise"))
    async with rt.store("tracker").transaction() as tx:
        await handlers.assigned_many(tx, [(Envelope.wrap(p, ticket_id=_id(number), producer="router"), p)],
                                     rt.state["tracker.clocks"])
    return number


async def _tickets(rt) -> dict[str, str]:
    """Street-led: one new, one overdue; CGW-led with the street co-handling: one new, one overdue, one due soon."""
    numbers = {name: f"12345-20261124-{i:06d}" for i, name in enumerate(
        ("own_new", "own_late", "co_new", "co_late", "co_soon"), start=1)}
    await _assigned(rt, numbers["own_new"], STREET)
    await _assigned(rt, numbers["own_late"], STREET)
    for name in ("co_new", "co_late", "co_soon"):
        await _assigned(rt, numbers[name], CGW, [STREET])
    now = utcnow()
    async with rt.store("tracker").db.session() as s:
        for name, due in (("own_late", now - dt.timedelta(hours=3)), ("co_late", now - dt.timedelta(hours=3)),
                          ("co_soon", now + dt.timedelta(hours=5))):
            await s.execute(update(tickets).where(tickets.c.number == numbers[name]).values(
                state="signed_for", reply_due=due, warn_at=due - dt.timedelta(hours=8)))
    return numbers


async def _inbox(rt, user: User, tab: str) -> tuple[list[str], int, dict[str, int]]:
    async with rt.store("tracker").db.session() as s:
        rows, total, counts = await queries.inbox(s, user, tab=tab, now=utcnow())
    return sorted(r.number for r in rows), total, counts


async def test_a_co_handler_counts_only_what_it_leads_under_the_clock_tabs_and_finds_the_rest_under_co(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        n = await _tickets(rt)
        _, _, counts = await _inbox(rt, STREET_STAFF, "open")
        assert counts == {"open": 5, "new": 1, "soon": 0, "overdue": 1, "co": 3, "paused": 0, "replied": 0, "done": 0}
        assert (await _inbox(rt, STREET_STAFF, "new"))[:2] == ([n["own_new"]], 1)
        assert (await _inbox(rt, STREET_STAFF, "overdue"))[:2] == ([n["own_late"]], 1)
        assert (await _inbox(rt, STREET_STAFF, "soon"))[:2] == ([], 0)
        assert (await _inbox(rt, STREET_STAFF, "co"))[:2] == (sorted([n["co_new"], n["co_late"], n["co_soon"]]), 3)

        # The lead counts its own, as before.
        _, _, counts = await _inbox(rt, CGW_STAFF, "open")
        assert (counts["new"], counts["soon"], counts["overdue"], counts["co"]) == (1, 1, 1, 0)
    finally:
        await _dispose(rt)


async def test_the_office_workbench_counts_every_unit_s_tickets_and_has_no_co_tab(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        await _tickets(rt)
        assert list(queries.inbox_tabs(OFFICE)) == ["open", "new", "soon", "overdue", "paused", "replied", "done"]
        _, _, counts = await _inbox(rt, OFFICE, "open")
        assert counts == {"open": 5, "new": 2, "soon": 1, "overdue": 2, "paused": 0, "replied": 0, "done": 0}
    finally:
        await _dispose(rt)


def _count(html: str, label: str) -> int:
    return int(re.search(rf'>{label}<span class="count[^"]*">(\d+)</span>', html).group(1))


async def test_the_co_handler_s_page_and_badge_count_what_it_leads_and_its_co_tab_lists_the_rest(live):
    n = await _tickets(live.runtime)
    token = await live.user("jfl", Role.DEPARTMENT, department=STREET.code)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        page = (await client.get("/tracker/inbox")).text
        assert [_count(page, label) for label in ("待签收", "即将到期", "已超期", "协办")] == [1, 0, 1, 3]
        badge = (await client.get("/tracker/badge")).text
        co = (await client.get("/tracker/inbox", params={"tab": "co"})).text
    assert re.sub(r"<[^>]+>|\s", "", badge).startswith("超期1通知")  # its own overdue ticket, not the co-handled
    assert '<a href="?tab=co" aria-current="page">协办' in co
    rows = co[co.index("<tbody>"):co.index("</tbody>")]
    assert all(n[name] in rows for name in ("co_new", "co_late", "co_soon")) and n["own_new"] not in rows
    assert rows.count('<span class="tag">协办</span>') == 3

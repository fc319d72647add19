"""在办 is one figure: the wall (大屏) and the monthly bulletin (月通报) count it alike, by `stats.IN_PROGRESS`.

One ticket in every state of the lifecycle, all received this month: 在办 are the ten received and not yet
answered — waiting for a dispatcher (待派单) and returned awaiting re-dispatch (退回待改派) included; a ticket
replied and awaiting its return visit, closed, merged or answered directly is not.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx

from schemas.enums import Role, TicketState
from schemas.events import utcnow
from services.tracker import stats
from services.tracker.store import tickets
from tests.unit.tracker import sup_month as m

NOT_IN_PROGRESS = {TicketState.REPLIED, TicketState.CLOSED, TicketState.MERGED, TicketState.ANSWERED_DIRECTLY}
# Units hold a ticket from its dispatch on; the returned one still names the unit that returned it.
WITHOUT_UNIT = {TicketState.RECEIVED, TicketState.DISPATCHING, TicketState.ANSWERED_DIRECTLY}
REPLIED = {TicketState.REPLIED, TicketState.CLOSED, TicketState.ANSWERED_DIRECTLY, TicketState.REOPENED}


def every_state(at: dt.datetime) -> list[dict]:
    return [m._ticket(f"open-{state.value}", None if state in WITHOUT_UNIT else "A", state.value, at=at,
                      replied_h=1 if state in REPLIED else None, reopens=int(state == TicketState.REOPENED),
                      outcome="satisfied" if state == TicketState.CLOSED else None)
            for state in TicketState]


async def test_the_wall_and_the_bulletin_give_the_same_在办_when_tickets_wait_for_dispatch_or_were_returned(live):
    at = utcnow() - dt.timedelta(minutes=5)
    async with live.runtime.store("tracker").db.session() as s:
        await s.execute(tickets.insert(), every_state(at))
    local = (at - dt.timedelta(minutes=10)).astimezone(ZoneInfo(live.runtime.settings.timezone))
    month = f"{local.year}-{local.month:02d}"  # the month the tickets were received in
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}, timeout=20) as c:
        wall = (await c.get("/api/v1/tracker/supervision/overview")).json()
        wall_page = (await c.get("/tracker/sup/wall")).text
        bulletin = (await c.get("/tracker/sup/reports/monthly.json", params={"period": month})).json()
    overview = {row[0]: row[1:] for row in next(t for t in bulletin["tables"] if t["key"] == "overview")["rows"]}

    expected = len(TicketState) - len(NOT_IN_PROGRESS)
    assert expected == 10
    assert wall["open"] == expected and f'data-k="open">{expected}<' in wall_page
    assert overview["在办"][0] == expected
    assert overview["受理诉求"][0] == len(TicketState) and overview["重复件合并"][0] == 1
    # The rest of the 13 that are not duplicates, each counted once: 直接办结 1, 已答复待回访 1, 已办结（回访后）1.
    assert [overview[k][0] for k in ("直接办结（话务员当场答复）", "已答复待回访", "已办结（回访后）")] == [1, 1, 1]


def test_every_state_is_either_在办_or_named_as_not():
    assert set(stats.IN_PROGRESS) == {s.value for s in TicketState} - {s.value for s in NOT_IN_PROGRESS}
    assert len(set(stats.IN_PROGRESS)) == len(stats.IN_PROGRESS)

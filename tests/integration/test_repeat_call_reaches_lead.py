"""A repeat call (重复件) merged into a unit's ticket reaches that unit: it may read the repeat (as it reads its own
tickets, contact masked the same way, and nothing to act on), and it is told of it. On SQLite and PostgreSQL through
the tracker's handlers, and through the pages over the real broker.

Before, the lead's ticket linked the repeat in its timeline and the repeat's page answered 404, and nothing told
the unit: what the caller added on the second call reached nobody.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from jiesu.errors import ApiError
from jiesu.identity import User
from schemas.enums import Role
from schemas.events import (Citizen, Envelope, RoutingReason, TicketAssigned, TicketMerged, TicketReceived, UnitRef,
                            utcnow)
from services.tracker import handlers, queries
from services.tracker.store import notifications
from tests.integration.test_tracker_escalation import UNIT, _dispose, _migrated_runtime
from tests.integration.test_tracker_workflow import CALL, Desk, bearer

LEAD = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=UNIT)
CO = User(id=2, username="jfl", display_name="解放路街道", role=Role.DEPARTMENT, department="S-01-03")
OTHER = User(id=3, username="sw", display_name="水务局", role=Role.DEPARTMENT, department="M-SW")
FIRST, REPEAT = "12345-20261124-000001", "12345-20261124-000002"


def _id(number: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, number)


async def _received(rt, number: str, *, confidential: bool = False, description: str = "楼下工地夜间打桩") -> None:
    p = TicketReceived(number=number, channel="hotline", kind="complaint", subject="夜间施工噪音",
                       description=description, source_ref=number, received_at=utcnow(),
                       citizen=Citizen(name="张伟", phone="13800138000", confidential=confidential))
    async with rt.store("tracker").transaction() as tx:
        await handlers.on_received(tx, Envelope.wrap(p, ticket_id=_id(number), producer="intake"), p)


async def _assigned(rt, number: str) -> None:
    p = TicketAssigned(number=number, kind="complaint", lead=UnitRef(code=UNIT, name="市城市管理委员会"),
                       co_handlers=[UnitRef(code=CO.department, name="解放路街道")],
                       reason=RoutingReason(method="rule", rule_id="R-noise"))
    async with rt.store("tracker").transaction() as tx:
        await handlers.assigned_many(tx, [(Envelope.wrap(p, ticket_id=_id(number), producer="router"), p)],
                                     rt.state["tracker.clocks"])


async def _merged(rt, number: str, into: str) -> None:
    p = TicketMerged(number=number, into_ticket_id=_id(into), into_number=into, similarity=0.9)
    async with rt.store("tracker").transaction() as tx:
        await handlers.on_merged(tx, Envelope.wrap(p, ticket_id=_id(number), producer="router"), p,
                                 rt.state["tracker.clocks"])


async def _read(rt, user: User, number: str):
    async with rt.store("tracker").db.session() as s:
        return await queries.visible_ticket(s, user, number)


async def test_the_lead_reads_a_repeat_merged_into_its_ticket_and_is_told_of_it(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        await _received(rt, FIRST)
        await _assigned(rt, FIRST)
        await _received(rt, REPEAT, description="又打桩到凌晨两点，联系电话13800138000")
        await _merged(rt, REPEAT, FIRST)

        repeat = await _read(rt, LEAD, REPEAT)
        assert (repeat.number, repeat.state) == (REPEAT, "merged")
        shown = queries.ticket_view(repeat, LEAD, utcnow())
        mine = queries.ticket_view(await _read(rt, LEAD, FIRST), LEAD, utcnow())
        assert shown["citizen"] == mine["citizen"] and "13800138000" in shown["description"]  # as its own tickets
        for stranger in (CO, OTHER):  # the co-handler and any other unit: no more than before
            with pytest.raises(ApiError) as refused:
                await _read(rt, stranger, REPEAT)
            assert refused.value.status == 404

        async with rt.store("tracker").db.session() as s:
            told = (await s.execute(select(notifications))).all()
            assert [(n.unit_code, n.kind, n.number, n.ticket_id) for n in told if n.kind == "repeat"] == [
                (UNIT, "repeat", REPEAT, _id(REPEAT))]
            message = next(n.message for n in told if n.kind == "repeat")
            assert FIRST in message and REPEAT in message and "13800138000" not in message

            # Read only: the repeat is in no list of the unit's, and takes no action from it.
            rows, total = await queries.list_tickets(s, LEAD)
            assert [r.number for r in rows] == [FIRST] and total == 1
        with pytest.raises(ApiError) as refused:
            await rt.state["tracker"].note(LEAD, REPEAT, "已核实")
        assert refused.value.status in (404, 409)
    finally:
        await _dispose(rt)


async def test_a_confidential_repeat_is_masked_for_the_lead_as_its_own_tickets_are(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        await _received(rt, FIRST)
        await _assigned(rt, FIRST)
        await _received(rt, REPEAT, confidential=True, description="再次反映，电话13800138000")
        await _merged(rt, REPEAT, FIRST)
        shown = queries.ticket_view(await _read(rt, LEAD, REPEAT), LEAD, utcnow())
        assert shown["citizen"]["masked"] and shown["citizen"]["phone"] == "138****8000"
        assert "13800138000" not in shown["description"]
    finally:
        await _dispose(rt)


async def test_a_repeat_of_a_ticket_awaiting_its_dispatch_tells_nobody_and_its_next_lead_reads_it(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        await _received(rt, FIRST)  # not yet dispatched: no unit to tell
        await _received(rt, REPEAT)
        await _merged(rt, REPEAT, FIRST)
        async with rt.store("tracker").db.session() as s:
            assert (await s.execute(select(notifications).where(notifications.c.kind == "repeat"))).all() == []
        with pytest.raises(ApiError):
            await _read(rt, LEAD, REPEAT)
        await _assigned(rt, FIRST)
        assert (await _read(rt, LEAD, REPEAT)).number == REPEAT
    finally:
        await _dispose(rt)


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


async def test_the_lead_opens_the_repeat_its_timeline_links_and_its_inbox_tells_of_it(desk, live):
    op = await desk.as_("op", Role.OPERATOR)
    first = await desk.post_ticket()
    unit = await desk.as_("unit", Role.DEPARTMENT, department=first["lead"]["code"])
    r = await desk.client.post("/api/v1/intake/tickets", json={
        **CALL, "description": "昨晚又打桩到两点，比上次更严重。", "duplicate_of_number": first["number"]},
        headers=bearer(op))
    assert r.status_code == 201, r.text
    repeat = (await desk.wait(r.json()["number"], "merged"))["number"]

    page = (await desk.client.get(f"/tracker/tickets/{first['number']}", headers=bearer(unit))).text
    assert f'<a href="/tracker/tickets/{repeat}">{repeat}</a> 已并入本工单' in page
    r = await desk.client.get(f"/tracker/tickets/{repeat}", headers=bearer(unit))
    assert r.status_code == 200
    assert "昨晚又打桩到两点" in r.text and "当前状态下您无需办理" in r.text  # read only
    r = await desk.client.get(f"/api/v1/tracker/tickets/{repeat}", headers=bearer(unit))
    assert r.status_code == 200 and r.json()["state"] == "merged"

    told = (await desk.client.get("/api/v1/tracker/notifications", headers=bearer(unit))).json()["items"]
    assert [(n["kind"], n["number"]) for n in told if n["kind"] == "repeat"] == [("repeat", repeat)]
    inbox = (await desk.client.get("/tracker/inbox", headers=bearer(unit))).text
    assert f'<a href="/tracker/tickets/{repeat}">重复件：市民就工单 {first["number"]} 再次来电' in inbox

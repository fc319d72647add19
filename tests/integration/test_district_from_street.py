"""A citizen who names only the street is counted in the street's district: the router sends the district it
placed the ticket in with the assignment, and the tracker's district tables, ledger and charts read it. A district
the citizen gave is never replaced."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import func, select, update

from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, TicketReceived, UnitRef, utcnow
from services.tracker import handlers
from services.tracker.store import tickets
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_workflow import bearer, desk  # noqa: F401 (desk is a fixture)


def _received(ticket_id, number: str, location: dict) -> tuple[Envelope, TicketReceived]:
    p = TicketReceived.model_validate({
        "number": number, "channel": "hotline", "kind": "complaint", "subject": "小区垃圾三天没人清运",
        "description": "垃圾桶满了，气味很大。", "citizen": {"name": "李娜", "phone": "13912345678"},
        "location": location, "received_at": utcnow().isoformat(), "source_ref": str(uuid.uuid4())})
    return Envelope.wrap(p, ticket_id=ticket_id, producer="intake"), p


def _assigned(ticket_id, number: str, district: str | None) -> tuple[Envelope, TicketAssigned]:
    p = TicketAssigned(number=number, kind="complaint", lead=UnitRef(code="S-01-03", name="解放路街道"),
                       reason=RoutingReason(method="directory"), district=district)
    return Envelope.wrap(p, ticket_id=ticket_id, producer="router"), p


async def test_the_tracker_takes_the_routed_district_only_where_the_citizen_gave_none_whichever_event_comes_first(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    store, clocks = rt.store("tracker"), rt.state["tracker.clocks"]
    street_first, assigned_first, citizens, older = (uuid.uuid4() for _ in range(4))
    try:
        async with store.transaction() as tx:
            await handlers.on_received(tx, *_received(street_first, "12345-20261124-000001", {"street": "S-01-03"}))
            await handlers.on_received(tx, *_received(citizens, "12345-20261124-000003", {"district": "D-02"}))
            await handlers.on_received(tx, *_received(older, "12345-20261124-000004", {"street": "S-01-03"}))
            await handlers.on_assigned(tx, *_assigned(assigned_first, "12345-20261124-000002", "D-01"), clocks)
        async with store.transaction() as tx:
            await handlers.assigned_many(tx, [_assigned(street_first, "12345-20261124-000001", "D-01"),
                                              _assigned(citizens, "12345-20261124-000003", "D-01"),
                                              _assigned(older, "12345-20261124-000004", None)], clocks)
            # The assignment overtook the ticket's TicketReceived, which names only the street.
            await handlers.on_received(tx, *_received(assigned_first, "12345-20261124-000002", {"street": "S-01-03"}))
        async with store.db.session() as s:
            districts = dict((await s.execute(select(tickets.c.ticket_id, tickets.c.district))).all())
        assert districts == {street_first: "D-01", assigned_first: "D-01", citizens: "D-02", older: None}
    finally:
        await _dispose(rt)


async def test_a_street_only_call_is_counted_in_its_district_and_a_given_district_is_kept(desk, live):
    garbage = {"category": "CM.SANITATION.GARBAGE", "subject": "小区垃圾三天没人清运",
               "description": "幸福里小区垃圾桶满了，气味很大。"}
    street_only = await desk.post_ticket(**garbage, location={"street": "S-01-03", "address": "幸福里"})
    given = await desk.post_ticket(**garbage, citizen={"name": "王芳", "phone": "13700001111"},
                                   location={"district": "D-02", "address": "东湖路1号"})
    assert street_only["location"]["district"] == "D-01" and given["location"]["district"] == "D-02"
    store = live.runtime.store("tracker")
    for _ in range(300):  # TicketReceived travels on another topic: the reports count tickets once it is here
        async with store.db.session() as s:
            if await s.scalar(select(func.count()).where(tickets.c.received_at.is_not(None))) == 2:
                break
        await asyncio.sleep(0.05)

    staff = bearer(await desk.as_("sup", Role.SUPERVISOR))
    report = (await desk.client.get("/tracker/sup/reports/monthly.json", headers=staff)).json()
    table = next(t for t in report["tables"] if t["key"] == "district")
    assert {row[0]: row[1] for row in table["rows"]} == {"临江区": 1, "东湖区": 1}
    trend = (await desk.client.get("/api/v1/tracker/supervision/trends?dimension=district", headers=staff)).json()
    assert {s["name"]: s["total"] for s in trend["series"]} == {"临江区": 1, "东湖区": 1}

    async with store.db.session() as s:  # both overdue: the ledger holds them
        await s.execute(update(tickets).values(reply_due=utcnow() - dt.timedelta(hours=1)))
    rows = await desk.client.get("/tracker/sup/ledger/rows?district=D-01", headers=staff)
    assert rows.status_code == 200 and street_only["number"] in rows.text and given["number"] not in rows.text
    ledger = await desk.client.get("/tracker/sup/ledger", headers=staff)
    assert 'value="D-01"' in ledger.text and "临江区" in ledger.text

"""A citizen often names only the street: the assignment carries the district routing placed the ticket in
(TicketAssigned.district), so the tracker can count the ticket there and not under 未注明."""

from __future__ import annotations

from sqlalchemy import select

from schemas.events import parse
from services.router import service
from services.router.domain.directory import Directory
from services.router.store import messaging
from tests.unit.router.test_routing_service import give_back, route, state, store  # noqa: F401 (fixtures)

FLYING_WIRE = "楼道里有人飞线充电，物业不管，很危险。"  # rule R-005 leads; the street office owns HC.PROPERTY


def test_the_placed_district_is_the_citizens_else_the_one_the_street_lies_in():
    d = Directory.default()
    assert service.placed_district(d, None, "S-01-03") == "D-01"
    assert service.placed_district(d, "D-02", None) == "D-02"
    assert service.placed_district(d, "D-02", "S-01-03") == "D-02"  # what the citizen said is never replaced
    assert service.placed_district(d, None, "S-99-99") is None
    assert service.placed_district(d, None, None) is None


async def test_a_street_only_ticket_is_assigned_in_the_streets_district_first_time_and_after_a_return(store, state):
    envelope, first = await route(store, state, FLYING_WIRE, category="HC.PROPERTY", location={"street": "S-01-03"})
    assert first[0].event_type == "TicketAssigned" and first[0].payload["district"] == "D-01"
    again = await give_back(store, state, envelope, first[0].payload["lead"]["code"], 1)
    assert again[0].event_type == "TicketAssigned" and again[0].payload["reason"]["method"] == "reroute"
    assert again[0].payload["district"] == "D-01"


async def test_a_street_only_ticket_a_dispatcher_places_is_assigned_in_the_streets_district(store, state):
    envelope, emitted = await route(store, state, "有个事情想反映一下，具体说不清楚。", location={"street": "S-02-01"})
    assert emitted[0].event_type == "DispatchNeeded"
    await service.dispatch(store, state, envelope.ticket_id, unit_code="M-CGW", co_handlers=[], category=None,
                           by="dispatcher1")
    async with store.db.session() as s:
        outbox = (await s.execute(select(messaging.outbox.c.value).order_by(messaging.outbox.c.id))).scalars().all()
    last, payload = parse(outbox[-1])
    assert last.event_type == "TicketAssigned" and payload.district == "D-02"


async def test_the_citizens_district_travels_as_given_and_no_place_travels_as_none(store, state):
    _, given = await route(store, state, FLYING_WIRE, category="HC.PROPERTY", phone="13800002222",
                           location={"district": "D-03"})
    assert given[0].event_type == "TicketAssigned" and given[0].payload["district"] == "D-03"
    _, nowhere = await route(store, state, "社保卡补办需要带什么材料？", category="LS", phone="13800003333")
    assert nowhere[0].event_type == "TicketAssigned" and nowhere[0].payload["district"] is None

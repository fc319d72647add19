"""A return (退单) whose reason names the unit responsible goes to a dispatcher with that unit as suggestion 1.

"应由市住建委督促物业处理": re-routing on its own, the router would have sent the ticket elsewhere and ignored what
the returning unit said. A dispatcher now sees the named unit first, and why, and takes it with one key. A reason
naming no other unit is re-routed as before; one naming the unit the router picks anyway goes there at once.
The router's use case, database and pages, without the broker: the demo city and no model, so the rules and the
directory alone decide.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select

from schemas.events import Envelope, TicketReceived, TicketReturned, UnitRef, utcnow
from services.router import service
from services.router.store import decisions
from tests.integration import test_router_dispatch_form as dispatch_form
from tests.integration.test_router_dispatch_form import card, decision, logged_in

app = dispatch_form.app  # the fixture: the router's pages and database, the demo city, no model

POWER = UnitRef(code="U-GD", name="国网江城供电公司")
HOUSING = UnitRef(code="M-ZJW", name="市住房和城乡建设委员会")
STREET = "S-02-02"  # 湖滨街道, whose 物业服务 (a local matter) it is by the directory


async def outage(app) -> uuid.UUID:
    """停电 at 东湖区湖滨街道, the operator's category 物业服务: rule R-008 sends it to the power company; without
    it, the directory sends it to the street office."""
    payload = TicketReceived.model_validate({
        "number": f"12345-20261122-{uuid.uuid4().int % 999999 + 1:06d}", "channel": "hotline", "kind": "complaint",
        "subject": "小区停电", "description": "小区停电两天了，物业不管不问。",
        "citizen": {"name": "周先生", "phone": f"136{uuid.uuid4().int % 10**8:08d}"},
        "received_at": utcnow().isoformat(), "source_ref": str(uuid.uuid4()), "category": "HC.PROPERTY.SERVICE",
        "location": {"district": "D-02", "street": STREET},
    })
    envelope = Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="intake")
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.route_received(tx, envelope, payload, rt.state["router"])
        first = list(tx.emitted)
    assert first[0].event_type == "TicketAssigned" and first[0].payload["lead"]["code"] == POWER.code
    return envelope.ticket_id


async def returned(app, ticket_id: uuid.UUID, unit: UnitRef, reason: str, so_far: int = 1) -> dict:
    back = TicketReturned(number="x", unit=unit, reason_code="other_unit", reason=reason, by="dept",
                          returns_so_far=so_far)
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.reroute_after_return(tx, Envelope.wrap(back, ticket_id=ticket_id, producer="tracker"), back,
                                           rt.state["router"])
        (event,) = tx.emitted
    return event


def codes(event) -> list[str]:
    return [s["unit"]["code"] for s in event.payload["suggestions"]]


async def test_a_return_naming_another_unit_goes_to_the_dispatcher_with_that_unit_first(app):
    ticket = await outage(app)

    event = await returned(app, ticket, POWER, "小区内部线路归物业管理，应由市住建委督促物业处理")

    assert event.event_type == "DispatchNeeded"
    assert codes(event) == [HOUSING.code, STREET]  # then where the router would have sent it
    first = event.payload["suggestions"][0]
    assert first["reason"] == "退单理由指明“市住建委”" and first["unit"]["name"] == HOUSING.name
    assert event.payload["why"].startswith(
        "国网江城供电公司退单（属于其他单位职责：小区内部线路归物业管理，应由市住建委督促物业处理）；"
        "退单理由指明：市住房和城乡建设委员会；原拟改派：属地事项“物业服务”，交东湖区湖滨街道")
    async with app.state.runtime.store("router").db.session() as s:
        row = (await s.execute(select(decisions).where(decisions.c.ticket_id == ticket))).one()
    assert (row.status, row.excluded, row.returns, row.reason["method"]) == ("dispatch", [POWER.code], 1, "reroute")


async def test_a_return_naming_no_unit_or_only_itself_is_rerouted_as_before(app):
    for reason in ("表后线路不属于本单位维护范围", "国网江城供电公司负责到表前，表后线路请物业维修"):
        ticket = await outage(app)
        event = await returned(app, ticket, POWER, reason)
        assert event.event_type == "TicketAssigned", reason
        assert event.payload["lead"]["code"] == STREET and event.payload["reason"]["method"] == "reroute"
        assert "退单理由指明" not in event.payload["reason"]["note"]


async def test_a_return_naming_the_unit_the_router_picks_anyway_goes_there_at_once(app):
    ticket = await outage(app)
    event = await returned(app, ticket, POWER, "属于湖滨街道辖区的物业管理问题，请转湖滨街道办事处")
    assert event.event_type == "TicketAssigned" and event.payload["lead"]["code"] == STREET
    assert event.payload["reason"]["note"].endswith("；退单理由指明：湖滨街道")


async def test_the_dispatch_card_shows_the_named_unit_as_suggestion_1_and_takes_it_with_one_key(app):
    ticket = await outage(app)
    await returned(app, ticket, POWER, "小区内部线路归物业管理，应由市住建委督促物业处理")
    async with logged_in(app) as dispatcher:
        here = card((await dispatcher.client.get("/router/dispatch")).text, ticket)
        assert "转人工原因：国网江城供电公司退单（属于其他单位职责：" in here
        assert "；退单理由指明：市住房和城乡建设委员会；" in here
        key_1 = re.search(r'<button type="submit" name="unit" value="([^"]+)" data-key="1" class="suggestion">'
                          r'(.*?)</button>', here, re.S)
        assert key_1 and key_1.group(1) == HOUSING.code
        assert f'<span class="unit">{HOUSING.name}</span>' in key_1.group(2)
        # Where a score stands, who named the unit and in what words: a returning unit's word is no one's 100 %.
        assert '<span class="score named">退单理由指明</span> <span class="muted">“市住建委”</span>' in key_1.group(2)
        assert "%" not in key_1.group(2)

        r = await dispatcher.send(ticket, unit=key_1.group(1))  # key 1 presses that button
        assert r.status_code == 303, r.text
    assert await decision(app, ticket) == ("assigned", HOUSING.code)


async def test_a_second_return_still_goes_to_the_dispatcher_with_the_unit_it_names_first(app):
    ticket = await outage(app)
    await returned(app, ticket, POWER, "小区内部线路归物业管理，应由市住建委督促物业处理")
    async with logged_in(app) as dispatcher:
        assert (await dispatcher.send(ticket, unit=HOUSING.code)).status_code == 303

    event = await returned(app, ticket, HOUSING, "物业服务属地管理，应由湖滨街道办事处督促整改；不属于市住建委职责",
                           so_far=2)

    assert event.event_type == "DispatchNeeded"
    assert codes(event)[0] == STREET and event.payload["suggestions"][0]["reason"] == "退单理由指明“湖滨街道”"
    assert event.payload["why"].startswith("第 2 次退单：市住房和城乡建设委员会退单（")
    assert "，转人工派单；退单理由指明：湖滨街道" in event.payload["why"]

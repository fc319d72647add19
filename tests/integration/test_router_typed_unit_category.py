"""A unit a dispatcher types into the unit box (none of the card's suggestions): the category its assignment carries.

The dispatcher's decision is published with its category (TicketAssigned) and kept as training data
(router_training_examples). The ticket's own category stays when the typed unit handles it (another street office,
the same matter); else the category is one the directory gives the typed unit, the best the classifier ranks of
them, or none: never the category that sent the ticket to another unit, or to the one that returned it. The
router's use case, database, pages and JSON API, without the broker: the demo city, and a model the test sets.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from schemas.events import Envelope, TicketReturned, UnitRef
from services.router import service
from services.router.store import decisions, messaging
from tests.integration import test_router_dispatch_form as dispatch_form
from tests.integration.test_router_dispatch_form import card, logged_in
from tests.integration.test_router_named_suggestion import example, received, returned, with_model

app = dispatch_form.app  # the fixture: the router's pages and database, the demo city, no model

POWER = UnitRef(code="U-GD", name="国网江城供电公司")
HUBIN = UnitRef(code="S-02-02", name="湖滨街道")
ENVIRONMENT = "M-STHJ"  # 市生态环境局
PROPERTY = "HC.PROPERTY.SERVICE"  # 物业服务: a local matter, the street office's where the ticket is
GARBAGE = "CM.SANITATION.GARBAGE"  # 垃圾清运与分类: a local matter too
# For the power cut: three units on the card (应急局, 市场监管局, 城管委: the power company's and the street office's
# categories are passed over, both sent it back), then 市生态环境局's, sixth and seventh.
RANKING = (("PU.POWER.OUTAGE", 0.55), (PROPERTY, 0.2), ("PS.SAFETY", 0.08), ("MK.PRICE", 0.05),
           ("CM.FACILITY.LIGHT", 0.04), ("EN.AIR.EMISSION", 0.03), ("EN.NOISE.INDUSTRIAL", 0.02))


async def power_cut_back_twice(app) -> uuid.UUID:
    """小区停电 at 湖滨街道, the operator's category 物业服务: rule R-008 sends it to the power company, which returns
    it; the directory then sends it to 湖滨街道, which returns it too. A second return waits for a dispatcher, with
    the operator's 物业服务 as the ticket's category."""
    ticket, first = await received(app, "小区停电", "小区停电两天了，物业不管不问，旁边厂子也停工了。", category=PROPERTY,
                                   location={"district": "D-02", "street": HUBIN.code})
    assert first["lead"]["code"] == POWER.code
    rt = app.state.runtime
    back = TicketReturned(number="x", unit=POWER, reason_code="other_unit", reason="表后线路不属于本单位维护范围",
                          by="dept", returns_so_far=1)
    async with rt.store("router").transaction() as tx:
        await service.reroute_after_return(tx, Envelope.wrap(back, ticket_id=ticket, producer="tracker"), back,
                                           rt.state["router"])
        (event,) = tx.emitted
    assert event.event_type == "TicketAssigned" and event.payload["lead"]["code"] == HUBIN.code
    await returned(app, ticket, HUBIN, "经核实，系小区旁企业违规排污被查封断电所致，非物业服务问题")
    assert await category_of(app, ticket) == PROPERTY
    return ticket


async def category_of(app, ticket_id: uuid.UUID) -> str | None:
    async with app.state.runtime.store("router").db.session() as s:
        return await s.scalar(select(decisions.c.category).where(decisions.c.ticket_id == ticket_id))


async def typed(app, ticket_id: uuid.UUID, words: str, not_on_the_card: str) -> dict:
    """The dispatcher types `words` into the unit box of the ticket's card, whose keys do not offer that unit."""
    async with logged_in(app) as dispatcher:
        here = card((await dispatcher.client.get("/router/dispatch")).text, ticket_id)
        assert f'value="{not_on_the_card}"' not in here
        r = await dispatcher.send(ticket_id, search_unit=words)
        assert r.status_code == 303 and "done" in r.headers["location"], r.text
    return await recorded(app, ticket_id)


async def recorded(app, ticket_id: uuid.UUID) -> dict:
    """Where the decision row, the published TicketAssigned and the training example leave the ticket."""
    async with app.state.runtime.store("router").db.session() as s:
        row = (await s.execute(select(decisions.c.lead_code, decisions.c.category, decisions.c.reason)
                               .where(decisions.c.ticket_id == ticket_id))).one()
        outbox = messaging.outbox
        sent = (await s.execute(select(outbox.c.value).where(outbox.c.ticket_id == ticket_id,
                                                             outbox.c.event_type == "TicketAssigned")
                                .order_by(outbox.c.id.desc()).limit(1))).scalar_one()
    assigned = Envelope.from_bytes(sent).payload
    unit, category = await example(app, ticket_id)
    assert assigned["lead"]["code"] == row.lead_code == unit
    assert row.reason["method"] == "dispatcher"
    return {"lead": row.lead_code, "decision": row.category, "reason": row.reason["category"],
            "published": assigned["category"], "example": category}


def everywhere(lead: str, category: str | None) -> dict:
    return {"lead": lead, "decision": category, "reason": category, "published": category, "example": category}


async def test_a_typed_unit_that_handles_none_of_the_tickets_categories_teaches_the_model_nothing(app):
    ticket = await power_cut_back_twice(app)  # no model: 物业服务 is the only category known

    # Not 物业服务, the category that sent the ticket to 湖滨街道 and is no category of 市生态环境局.
    assert await typed(app, ticket, "环保局", ENVIRONMENT) == everywhere(ENVIRONMENT, None)


async def test_a_typed_unit_takes_the_best_ranked_of_its_own_categories(app):
    with_model(app, RANKING)
    ticket = await power_cut_back_twice(app)

    # 企业废气 before 工业与商业噪声, and not 物业服务, 湖滨街道's.
    assert await typed(app, ticket, "市生态环境局", ENVIRONMENT) == everywhere(ENVIRONMENT, "EN.AIR.EMISSION")


async def test_another_street_office_typed_for_the_same_local_matter_keeps_the_tickets_category(app):
    # The model ranks 占道经营 first, a category 东湖街道 handles too: the operator's 垃圾清运 is still the one kept.
    with_model(app, (("CM.ORDER.STALL", 0.4), ("EN.AIR.FUMES", 0.3), (GARBAGE, 0.2)))
    ticket, first = await received(app, "垃圾没人清运", "路口垃圾桶满了好几天没人清运，臭气熏天。", category=GARBAGE,
                                   location={"district": "D-02", "street": HUBIN.code})
    assert first["lead"]["code"] == HUBIN.code
    await returned(app, ticket, HUBIN, "经现场核实，该路口不在本街道辖区范围内")  # names no unit

    assert await typed(app, ticket, "东湖街道", "S-02-01") == everywhere("S-02-01", GARBAGE)


async def test_the_json_api_records_the_same_category_for_a_unit_not_suggested(app):
    with_model(app, RANKING)
    ticket = await power_cut_back_twice(app)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.client.post(f"/api/v1/router/tickets/{ticket}/dispatch", json={"unit": ENVIRONMENT},
                                         headers={"X-CSRF-Token": dispatcher.csrf})
        assert r.status_code == 200, r.text
    assert await recorded(app, ticket) == everywhere(ENVIRONMENT, "EN.AIR.EMISSION")


async def test_a_category_the_dispatcher_chose_is_kept_whatever_the_unit(app):
    ticket = await power_cut_back_twice(app)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.client.post(f"/api/v1/router/tickets/{ticket}/dispatch",
                                         json={"unit": ENVIRONMENT, "category": PROPERTY},
                                         headers={"X-CSRF-Token": dispatcher.csrf})
        assert r.status_code == 200, r.text
    assert await recorded(app, ticket) == everywhere(ENVIRONMENT, PROPERTY)


async def test_taking_the_rules_unit_the_model_disagreed_with_takes_a_category_that_unit_handles(app):
    # R-008 sends 停电 to the power company; the model is sure it is 物业服务 (湖滨街道's): a dispatcher decides,
    # the ticket waiting with the model's category. The rule's unit is on the card without a category of its own.
    with_model(app, ((PROPERTY, 0.9), ("PU.POWER.OUTAGE", 0.06), ("PU.POWER.FACILITY", 0.04)))
    ticket, first = await received(app, "小区停电", "小区停电两天了，物业不管不问。",
                                   location={"district": "D-02", "street": HUBIN.code})
    assert [(s["unit"]["code"], s["category"]) for s in first["suggestions"]] == [(POWER.code, None),
                                                                                  (HUBIN.code, PROPERTY)]
    assert await category_of(app, ticket) == PROPERTY

    async with logged_in(app) as dispatcher:
        r = await dispatcher.send(ticket, unit=POWER.code)  # key 1
        assert r.status_code == 303 and "done" in r.headers["location"], r.text

    assert await recorded(app, ticket) == everywhere(POWER.code, "PU.POWER.OUTAGE")

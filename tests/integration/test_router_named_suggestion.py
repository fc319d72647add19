"""Taking the unit a return reason names (退单理由指明) with one key: the category it carries, and how its card reads.

The dispatcher's decision is kept as training data (router_training_examples) and published with its category. For
a named unit that category must be one the directory gives that unit, the one the classifier ranks highest of them
(or the operator's, when the unit handles it); with none, no category at all: never the ticket's earlier category,
the one that sent it to the unit that returned it. On the card a named unit shows who named it, not a score: a
returning unit's word is no one's 100 %. The router's use case, database and pages, without the broker: the demo
city, and a model whose ranking the test sets.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Sequence

from sqlalchemy import select

from schemas.events import Envelope, TicketReceived, TicketReturned, UnitRef, utcnow
from services.router import service
from services.router.domain.classifier import Prediction
from services.router.store import decisions, training_examples
from tests.integration import test_router_dispatch_form as dispatch_form
from tests.integration.test_router_dispatch_form import card, logged_in

app = dispatch_form.app  # the fixture: the router's pages and database, the demo city, no model

HOUSING = UnitRef(code="M-ZJW", name="市住房和城乡建设委员会")
ENVIRONMENT = UnitRef(code="M-STHJ", name="市生态环境局")
POWER = UnitRef(code="U-GD", name="国网江城供电公司")
# The model reads 工地扬尘 (市住建委's) first; 市生态环境局's categories come fifth and sixth, after the units it
# suggests after a return: 东湖街道 (垃圾清运, a local matter there), the water and the bus company.
RANKING = (("HC.CONSTRUCTION.DUST", 0.81), ("CM.SANITATION.GARBAGE", 0.06), ("PU.WATER.LEAK", 0.04),
           ("TR.BUS", 0.03), ("EN.AIR.EMISSION", 0.02), ("EN.WATER", 0.015))


class Model:
    """A classifier that ranks every text as the test says, and keeps the texts it was asked about."""

    version = "test-ranking"

    def __init__(self, top: Sequence[tuple[str, float]]) -> None:
        self.top = tuple(top)
        self.asked: list[str] = []

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.asked += texts
        return [Prediction(label=self.top[0][0], score=self.top[0][1], top=self.top) for _ in texts]

    def explain(self, text: str, label: str | None = None, k: int = 5) -> list[tuple[str, float]]:
        return []


def with_model(app, top: Sequence[tuple[str, float]]) -> None:
    rt = app.state.runtime
    rt.state["router"] = dataclasses.replace(rt.state["router"], classifier=Model(top))


async def received(app, subject: str, description: str, **extra) -> tuple[uuid.UUID, dict]:
    payload = TicketReceived.model_validate({
        "number": f"12345-20261122-{uuid.uuid4().int % 999999 + 1:06d}", "channel": "hotline", "kind": "complaint",
        "subject": subject, "description": description,
        "citizen": {"name": "周先生", "phone": f"136{uuid.uuid4().int % 10**8:08d}"},
        "received_at": utcnow().isoformat(), "source_ref": str(uuid.uuid4()), **extra,
    })
    envelope = Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="intake")
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.route_received(tx, envelope, payload, rt.state["router"])
        (event,) = tx.emitted
    return envelope.ticket_id, event.payload


async def returned(app, ticket_id: uuid.UUID, unit: UnitRef, reason: str) -> dict:
    back = TicketReturned(number="x", unit=unit, reason_code="other_unit", reason=reason, by="dept", returns_so_far=1)
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.reroute_after_return(tx, Envelope.wrap(back, ticket_id=ticket_id, producer="tracker"), back,
                                           rt.state["router"])
        (event,) = tx.emitted
    assert event.event_type == "DispatchNeeded"
    return event.payload


async def key_1(app, ticket_id: uuid.UUID) -> tuple[str, dict]:
    """The card's suggestion 1 as shown, then pressed: the TicketAssigned the dispatcher's one key published."""
    rt = app.state.runtime
    async with logged_in(app) as dispatcher:
        here = card((await dispatcher.client.get("/router/dispatch")).text, ticket_id)
        button = re.search(r'data-key="1" class="suggestion">(.*?)</button>', here, re.S).group(1)
        r = await dispatcher.send(ticket_id, unit=re.search(r'value="([^"]+)" data-key="1"', here).group(1))
        assert r.status_code == 303, r.text
    async with rt.store("router").db.session() as s:
        row = (await s.execute(select(decisions.c.lead_code, decisions.c.category, decisions.c.reason)
                               .where(decisions.c.ticket_id == ticket_id))).one()
    return button, {"lead": row.lead_code, "category": row.category, "reason_category": row.reason["category"]}


async def example(app, ticket_id: uuid.UUID) -> tuple[str, str | None]:
    async with app.state.runtime.store("router").db.session() as s:
        row = (await s.execute(select(training_examples.c.unit_code, training_examples.c.category)
                               .where(training_examples.c.ticket_id == ticket_id))).one()
    return row.unit_code, row.category


async def test_taking_the_named_unit_records_the_category_the_model_ranks_highest_among_that_units(app):
    with_model(app, RANKING)
    ticket, first = await received(app, "工地附近气味刺鼻", "东湖街道一带有股刺鼻的气味，像是附近工地和厂子排出来的。",
                                   location={"district": "D-02", "street": "S-02-01"})
    assert (first["lead"]["code"], first["category"]) == (HOUSING.code, "HC.CONSTRUCTION.DUST")

    queued = await returned(app, ticket, HOUSING, "经现场核实，系企业生产废气，非工地扬尘，此事应由市生态环境局办理")
    named = queued["suggestions"][0]
    assert (named["unit"]["code"], named["category"]) == (ENVIRONMENT.code, "EN.AIR.EMISSION")  # its best-ranked
    assert [s["unit"]["code"] for s in queued["suggestions"]] == [ENVIRONMENT.code, "S-02-01", "U-ZLS"]

    _, assigned = await key_1(app, ticket)

    emission = "EN.AIR.EMISSION"
    assert assigned == {"lead": ENVIRONMENT.code, "category": emission, "reason_category": emission}
    assert await example(app, ticket) == (ENVIRONMENT.code, emission)


async def test_a_named_unit_handling_none_of_the_ranked_categories_teaches_the_model_nothing(app):
    # The operator chose 物业服务 (湖滨街道's); R-008 sends 停电 to the power company, which names 市生态环境局.
    with_model(app, (("PU.POWER.OUTAGE", 0.7), ("HC.PROPERTY.SERVICE", 0.2), ("PU.WATER.OUTAGE", 0.1)))
    ticket, first = await received(app, "小区停电", "小区停电两天了，物业不管不问。", category="HC.PROPERTY.SERVICE",
                                   location={"district": "D-02", "street": "S-02-02"})
    assert first["lead"]["code"] == POWER.code

    queued = await returned(app, ticket, POWER, "停电系配电房旁企业违规排污被查封断电所致，此事应由市生态环境局办理")
    assert (queued["suggestions"][0]["unit"]["code"], queued["suggestions"][0]["category"]) == (ENVIRONMENT.code, None)

    _, assigned = await key_1(app, ticket)

    # Not 物业服务, the category that sent the ticket to the power company and is no category of 市生态环境局.
    assert assigned == {"lead": ENVIRONMENT.code, "category": None, "reason_category": None}
    assert await example(app, ticket) == (ENVIRONMENT.code, None)  # kept, but never trained on (category NULL)


async def test_the_operators_category_goes_with_a_named_unit_that_handles_it(app):
    # No model: 物业服务 is 市住建委's to supervise, and the operator chose it on the call.
    ticket, _ = await received(app, "小区停电", "小区停电两天了，物业不管不问。", category="HC.PROPERTY.SERVICE",
                               location={"district": "D-02", "street": "S-02-02"})
    queued = await returned(app, ticket, POWER, "小区内部线路归物业管理，应由市住建委督促物业处理")
    assert queued["suggestions"][0]["category"] == "HC.PROPERTY.SERVICE"

    _, assigned = await key_1(app, ticket)

    assert assigned["category"] == "HC.PROPERTY.SERVICE"
    assert await example(app, ticket) == (HOUSING.code, "HC.PROPERTY.SERVICE")


async def test_the_card_shows_who_named_the_unit_where_the_models_units_show_their_score(app):
    with_model(app, RANKING)
    ticket, _ = await received(app, "工地附近气味刺鼻", "东湖街道一带有股刺鼻的气味，像是附近工地和厂子排出来的。",
                               location={"district": "D-02", "street": "S-02-01"})
    await returned(app, ticket, HOUSING, "此事应由环保局办理")

    async with logged_in(app, "sup") as supervisor:  # the read-only card a supervisor sees reads the same
        watched = card((await supervisor.client.get("/router/dispatch")).text, ticket)
    async with logged_in(app) as dispatcher:
        here = card((await dispatcher.client.get("/router/dispatch")).text, ticket)
    buttons = re.findall(r'data-key="\d" class="suggestion">(.*?)</button>', here, re.S)

    assert '<span class="score named">退单理由指明</span> <span class="muted">“环保局”</span>' in buttons[0]
    assert "%" not in buttons[0] and "100" not in buttons[0]
    assert '<span class="score">6%</span>' in buttons[1]  # 垃圾清运, the model's, as before
    assert re.search(r'<li class="suggestion"><span class="unit">市生态环境局</span> <span class="score named">'
                     r'退单理由指明</span> <span class="muted">“环保局”</span></li>', watched)


async def test_a_return_naming_a_unit_asks_the_classifier_about_the_ticket_once(app):
    # The re-routing and the named unit's category read one prediction: a model's call is most of a return's time.
    with_model(app, RANKING)
    model = app.state.runtime.state["router"].classifier
    ticket, _ = await received(app, "工地附近气味刺鼻", "东湖街道一带有股刺鼻的气味，像是附近工地和厂子排出来的。",
                               location={"district": "D-02", "street": "S-02-01"})
    model.asked.clear()

    await returned(app, ticket, HOUSING, "经现场核实，系企业生产废气，非工地扬尘，此事应由市生态环境局办理")

    assert model.asked == ["工地附近气味刺鼻 东湖街道一带有股刺鼻的气味，像是附近工地和厂子排出来的。"]


async def test_a_second_return_naming_a_unit_asks_the_classifier_once_for_the_card_and_the_named_units_category(app):
    # The operator's 物业服务 went to 湖滨街道 after the power company's return; 湖滨街道 returns it too, naming
    # 市生态环境局: the model is asked for the card's guesses and for the named unit's category, once.
    with_model(app, (("PU.POWER.OUTAGE", 0.7), ("HC.PROPERTY.SERVICE", 0.2), ("EN.AIR.EMISSION", 0.1)))
    model = app.state.runtime.state["router"].classifier
    ticket, _ = await received(app, "小区停电", "小区停电两天了，物业不管不问。", category="HC.PROPERTY.SERVICE",
                               location={"district": "D-02", "street": "S-02-02"})
    back = TicketReturned(number="x", unit=POWER, reason_code="other_unit", reason="表后线路不属于本单位维护范围",
                          by="dept", returns_so_far=1)
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.reroute_after_return(tx, Envelope.wrap(back, ticket_id=ticket, producer="tracker"), back,
                                           rt.state["router"])
    assert model.asked == []  # the operator's category placed it, the rule's unit having sent it back

    queued = await returned(app, ticket, UnitRef(code="S-02-02", name="湖滨街道"),
                            "经核实，系小区旁企业违规排污被查封断电所致，应由市生态环境局处理")

    assert (queued["suggestions"][0]["unit"]["code"], queued["suggestions"][0]["category"]) == (
        ENVIRONMENT.code, "EN.AIR.EMISSION")
    assert model.asked == ["小区停电 小区停电两天了，物业不管不问。"]

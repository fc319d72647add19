"""GET /api/v1/router/queue says which suggestion a return reason named (退单理由指明), beside its score.

A unit the reason named carries score 1.0 in the event (the schema wants one), as a rule or the directory's
certain placement does: a client of the API could not tell them apart, where the dispatch card shows
"退单理由指明" instead of a percentage. The queue's JSON now adds `named_by_return` to each suggestion; the
event's Suggestion and the rest of the item stay as they were. The router's API and database without the broker,
the demo city and no model (the setup of test_router_return_reason_names_unit).
"""

from __future__ import annotations

from sqlalchemy import select

from schemas.events import Suggestion
from services.router.store import decisions
from tests.integration import test_router_dispatch_form as dispatch_form
from tests.integration.test_router_dispatch_form import logged_in
from tests.integration.test_router_return_reason_names_unit import HOUSING, POWER, STREET, outage, returned

app = dispatch_form.app  # the fixture: the router's pages and database, the demo city, no model

NAMING = "小区内部线路归物业管理，应由市住建委督促物业处理"  # names 市住房和城乡建设委员会


async def queue_item(app, ticket) -> dict:
    async with logged_in(app) as dispatcher:
        r = await dispatcher.client.get("/api/v1/router/queue", headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return next(i for i in r.json()["items"] if i["ticket_id"] == str(ticket))


async def test_the_queue_api_marks_the_unit_a_return_reason_named_and_not_the_routers_own_suggestion(app):
    ticket = await outage(app)
    await returned(app, ticket, POWER, NAMING)

    suggestions = (await queue_item(app, ticket))["suggestions"]

    # Both score 1.0: the named unit's fills the field, the directory's placement is certain. The flag tells them apart.
    assert [(s["unit"]["code"], s["score"], s["named_by_return"]) for s in suggestions] == [
        (HOUSING.code, 1.0, True), (STREET, 1.0, False)]
    assert suggestions[0]["reason"] == "退单理由指明“市住建委”"


async def test_the_flag_is_the_only_thing_the_queue_api_adds_and_the_event_stays_as_it_was(app):
    ticket = await outage(app)
    await returned(app, ticket, POWER, NAMING)

    item = await queue_item(app, ticket)

    async with app.state.runtime.store("router").db.session() as s:
        stored = (await s.execute(select(decisions.c.suggestions).where(decisions.c.ticket_id == ticket))).scalar_one()
    assert [{k: v for k, v in s.items() if k != "named_by_return"} for s in item["suggestions"]] == stored
    assert set(item) >= {"ticket_id", "number", "returned", "suggestions", "why"}
    assert item["returned"][0]["unit"] == POWER.code
    assert set(Suggestion.model_fields) == {"unit", "category", "score", "reason"}  # the event has no flag


async def test_the_queue_endpoints_description_documents_the_flag(app):
    described = app.openapi()["paths"]["/api/v1/router/queue"]["get"]["description"]
    assert "`named_by_return`" in described and "退单理由指明" in described

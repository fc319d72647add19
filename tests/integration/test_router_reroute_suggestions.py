"""A returned ticket (退单) reaches the dispatcher with the model's other suggestions and the true reason.

The model placed the ticket's category, and that category's only unit sent it back: kept, the stored category
stopped the classifier, so the card said "未命中派单规则，且无法确定类别" and "没有可用建议". The router's pages and
database without the broker, with the starter model a fresh system routes with.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid

import httpx
import pytest
from sqlalchemy import select

from schemas.enums import Role
from schemas.events import Envelope, TicketReceived, TicketReturned, UnitRef, utcnow
from services.router import service
from services.router.domain.classifier import train
from services.router.domain.directory import Directory
from services.router.models import DEMO_EXAMPLES
from services.router.store import decisions
from services.router.training import read_labelled_csv
from tests.conftest import copy_migrated

PASSWORD = "reroute-suggestions-1"
FUMES = "工厂排放废气，味道很大"  # the model: 企业废气与异味, 市生态环境局's alone
UNIT = UnitRef(code="M-STHJ", name="市生态环境局")


@pytest.fixture(scope="module")
def starter():
    city = Directory.default()
    texts, labels = read_labelled_csv(DEMO_EXAMPLES)
    known = {c.code for c in city.categories}
    pairs = [(t, label) for t, label in zip(texts, labels, strict=True) if label in known]
    return train([t for t, _ in pairs], [label for _, label in pairs])


@pytest.fixture
async def app(sqlite_settings, migrated_sqlite, starter):
    from jiesu.migrate import upgrade_all
    from jiesu.runtime import Runtime, load_spec
    from jiesu.web import create_app

    copy_migrated(sqlite_settings, migrated_sqlite)
    await asyncio.to_thread(upgrade_all, sqlite_settings)
    rt = Runtime.create(sqlite_settings, ["router"], bootstrap="unused:9092")
    rt.state["router"] = service.RouterState(directory=Directory.default(), phone_key=b"test-key", classifier=starter)
    application = create_app(lambda: rt, list(load_spec("router").routers), start=False)
    async with application.router.lifespan_context(application):
        await rt.identity.create_user("disp", PASSWORD, Role.DISPATCHER, display_name="派单员")
        yield application
    for store in rt.stores.values():
        await store.db.dispose()
    await rt.identity.db.dispose()


async def routed(app, text: str, **extra) -> tuple[uuid.UUID, list]:
    payload = TicketReceived.model_validate({
        "number": f"12345-20261122-{uuid.uuid4().int % 999999 + 1:06d}", "channel": "hotline", "kind": "complaint",
        "subject": text[:10], "description": text, "citizen": {"name": "周先生", "phone": "13600002222"},
        "received_at": utcnow().isoformat(), "source_ref": str(uuid.uuid4()), **extra,
    })
    envelope = Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="intake")
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.route_received(tx, envelope, payload, rt.state["router"])
        return envelope.ticket_id, list(tx.emitted)


async def returned(app, ticket_id: uuid.UUID, unit: UnitRef, code: str, reason: str, so_far: int = 1) -> list:
    back = TicketReturned(number="x", unit=unit, reason_code=code, reason=reason, by="dept", returns_so_far=so_far)
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.reroute_after_return(tx, Envelope.wrap(back, ticket_id=ticket_id, producer="tracker"), back,
                                           rt.state["router"])
        return list(tx.emitted)


@contextlib.asynccontextmanager
async def dispatcher(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jiesu.test") as client:
        r = await client.post("/login", data={"username": "disp", "password": PASSWORD, "next": "/router/dispatch"})
        assert r.status_code == 303, r.text
        yield client


def card(html: str, ticket_id: uuid.UUID) -> str:
    match = re.search(rf'<article class="[^"]*"[^>]*data-ticket="{ticket_id}">(.*?)</article>', html, re.S)
    assert match, f"no card for {ticket_id}"
    return match.group(1)


async def test_a_ticket_returned_by_the_models_unit_is_queued_with_the_other_suggestions(app):
    ticket, first = await routed(app, FUMES)
    assert first[0].event_type == "TicketAssigned" and first[0].payload["lead"]["code"] == UNIT.code
    assert first[0].payload["reason"]["method"] == "model"

    emitted = await returned(app, ticket, UNIT, "unclear", "诉求不明确，未说明排放企业的名称和位置")

    event = emitted[0]
    assert event.event_type == "DispatchNeeded"
    codes = [s["unit"]["code"] for s in event.payload["suggestions"]]
    assert codes and UNIT.code not in codes  # the model ran again; the unit that returned it is left out
    assert event.payload["why"].startswith("市生态环境局退单（诉求不明确：诉求不明确，未说明排放企业的名称和位置）")
    assert "未命中派单规则" not in event.payload["why"]
    async with app.state.runtime.store("router").db.session() as s:
        row = (await s.execute(select(decisions).where(decisions.c.ticket_id == ticket))).one()
    assert row.status == "dispatch" and row.excluded == [UNIT.code] and row.reason["method"] == "reroute"
    assert [s["unit"]["code"] for s in row.suggestions] == codes


async def test_the_dispatch_card_says_who_returned_the_ticket_and_why(app):
    ticket, _ = await routed(app, FUMES)
    await returned(app, ticket, UNIT, "unclear", "未说明排放企业的名称和位置，请联系市民 13912345678 核实")
    async with dispatcher(app) as client:
        here = card((await client.get("/router/dispatch")).text, ticket)
    assert "转人工原因：市生态环境局退单（诉求不明确：" in here
    assert "市生态环境局退单：<strong>诉求不明确</strong> — 未说明排放企业的名称和位置" in here
    assert "13912345678" not in here  # a number in the unit's words is masked like the citizen's text
    assert "没有可用建议" not in here and 'class="suggestion"' in here
    assert 'value="M-STHJ"' not in here


async def test_the_queue_api_lists_each_return_with_its_label(app):
    ticket, _ = await routed(app, FUMES)
    await returned(app, ticket, UNIT, "other_unit", "应由燃气公司处理")
    async with dispatcher(app) as client:
        items = (await client.get("/api/v1/router/queue", headers={"Accept": "application/json"})).json()["items"]
    item = next(i for i in items if i["ticket_id"] == str(ticket))
    assert item["returned"] == [{"unit": "M-STHJ", "reason_code": "other_unit", "label": "属于其他单位职责",
                                 "reason": "应由燃气公司处理"}]


async def test_a_second_return_names_both_units_and_reasons_on_the_card(app):
    ticket, _ = await routed(app, FUMES)
    first = await returned(app, ticket, UNIT, "unclear", "未说明企业名称")
    other = first[0].payload["suggestions"][0]["unit"]
    async with dispatcher(app) as client:  # the dispatcher sends it to the first suggestion, which returns it too
        html = (await client.get("/router/dispatch")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        r = await client.post(f"/router/dispatch/{ticket}", data={"csrf_token": token, "unit": other["code"]})
        assert r.status_code == 303
        second = await returned(app, ticket, UnitRef(**other), "not_our_duty", "本单位不负责废气", so_far=2)
        assert second[0].event_type == "DispatchNeeded"
        assert "第 2 次退单" in second[0].payload["why"] and "不属于本单位职责" in second[0].payload["why"]
        here = card((await client.get("/router/dispatch")).text, ticket)
    assert "市生态环境局退单：<strong>诉求不明确</strong> — 未说明企业名称" in here
    assert f"{other['name']}退单：<strong>不属于本单位职责</strong> — 本单位不负责废气" in here


async def test_the_operators_category_stays_and_the_model_still_suggests_when_its_unit_returns_the_ticket(app):
    ticket, first = await routed(app, FUMES, category="EN.AIR.EMISSION")  # chosen on the call
    assert first[0].payload["lead"]["code"] == UNIT.code and first[0].payload["reason"]["method"] == "directory"
    emitted = await returned(app, ticket, UNIT, "other_unit", "应由燃气公司处理")
    assert emitted[0].event_type == "DispatchNeeded"
    assert emitted[0].payload["why"].startswith("市生态环境局退单（属于其他单位职责：应由燃气公司处理）")
    codes = [s["unit"]["code"] for s in emitted[0].payload["suggestions"]]
    assert codes and UNIT.code not in codes
    async with app.state.runtime.store("router").db.session() as s:
        row = (await s.execute(select(decisions).where(decisions.c.ticket_id == ticket))).one()
    assert row.category == "EN.AIR.EMISSION"


MURKY = "自来水水质浑浊"  # the model's first three categories are all 市水务局's
WATER = UnitRef(code="M-SWJ", name="市水务局")


async def test_a_ticket_returned_by_the_unit_of_all_three_top_categories_still_has_suggestions(app):
    prediction = app.state.runtime.state["router"].classifier.predict([f"{MURKY[:10]} {MURKY}"])[0]
    city = Directory.default()
    assert {city.responsible_unit(label).unit.code for label, _ in prediction.top[:3]} == {WATER.code}
    ticket, first = await routed(app, MURKY)
    assert first[0].event_type == "TicketAssigned" and first[0].payload["lead"]["code"] == WATER.code

    emitted = await returned(app, ticket, WATER, "not_our_duty", "停水由供水企业负责")

    assert emitted[0].event_type == "DispatchNeeded"
    codes = [s["unit"]["code"] for s in emitted[0].payload["suggestions"]]
    assert len(codes) == 3 and WATER.code not in codes and len(set(codes)) == 3
    async with dispatcher(app) as client:
        here = card((await client.get("/router/dispatch")).text, ticket)
    assert here.count('class="suggestion"') == 3 and "没有可用建议" not in here


class OnlyWater:
    """A model whose every category is 市水务局's: once it returns a ticket, no unit is left to suggest."""

    version = "only-water-1"

    def predict(self, texts):
        from services.router.domain.classifier import Prediction

        top = (("PU.WATER.QUALITY", 0.7), ("PU.WATER.MURKY", 0.2), ("PU.WATER.BILL", 0.1))
        return [Prediction(label=top[0][0], score=top[0][1], top=top) for _ in texts]

    def explain(self, text, label=None, k=5):
        return []


async def test_when_no_other_unit_is_left_the_card_says_so_and_why(app):
    app.state.runtime.state["router"].classifier = OnlyWater()
    ticket, first = await routed(app, MURKY)
    assert first[0].payload["lead"]["code"] == WATER.code
    emitted = await returned(app, ticket, WATER, "not_our_duty", "停水由供水企业负责")
    assert emitted[0].event_type == "DispatchNeeded" and emitted[0].payload["suggestions"] == []
    async with dispatcher(app) as client:
        here = card((await client.get("/router/dispatch")).text, ticket)
    assert "改派：分类模型排名前 3 的类别都归已退单的市水务局承办，没有其他单位可建议" in here
    assert "没有可用建议：除已退单的单位外，路由器没有可建议的承办单位，请搜索承办单位" in here


async def test_the_reason_stays_on_the_card_after_a_second_return_and_with_the_operators_category(app):
    app.state.runtime.state["router"].classifier = OnlyWater()
    ticket, first = await routed(app, MURKY, category="PU.WATER.QUALITY")  # chosen on the call
    assert first[0].payload["reason"]["method"] == "directory"
    emitted = await returned(app, ticket, WATER, "not_our_duty", "停水由供水企业负责")
    assert emitted[0].payload["why"].endswith("改派：“水质异常”的承办单位市水务局已退单，请另选单位；"
                                              "分类模型排名前 3 的类别都归已退单的市水务局承办，没有其他单位可建议")
    async with dispatcher(app) as client:
        html = (await client.get("/router/dispatch")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        r = await client.post(f"/router/dispatch/{ticket}", data={"csrf_token": token, "search_unit": "M-STHJ"})
        assert r.status_code == 303
        second = await returned(app, ticket, UnitRef(code="M-STHJ", name="市生态环境局"), "not_our_duty", "非环保事项",
                                so_far=2)
        assert second[0].event_type == "DispatchNeeded" and second[0].payload["suggestions"] == []
        assert second[0].payload["why"].startswith("第 2 次退单：")
        assert second[0].payload["why"].endswith("；分类模型排名前 3 的类别都归已退单的市水务局承办，没有其他单位可建议")
        here = card((await client.get("/router/dispatch")).text, ticket)
    assert "没有可用建议：除已退单的单位外" in here

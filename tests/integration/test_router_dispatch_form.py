"""The dispatch queue's form (派单队列): what a dispatcher types into the unit box, and how a refusal looks.

The router's pages and database, without the broker: tickets are queued by the router's own use case,
then dispatched through the page's form, logged in as a dispatcher, with the page's CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from schemas.enums import Role
from schemas.events import Envelope, TicketReceived, utcnow
from services.router import service
from services.router.domain.directory import Directory
from services.router.store import decisions
from tests.conftest import copy_migrated

PASSWORD = "dispatch-form-1"


@pytest.fixture
async def app(sqlite_settings, migrated_sqlite):
    from jiesu.migrate import upgrade_all
    from jiesu.runtime import Runtime, load_spec
    from jiesu.web import create_app

    copy_migrated(sqlite_settings, migrated_sqlite)
    await asyncio.to_thread(upgrade_all, sqlite_settings)
    rt = Runtime.create(sqlite_settings, ["router"], bootstrap="unused:9092")
    # The demo city and no model: a ticket no rule places waits for a dispatcher.
    rt.state["router"] = service.RouterState(directory=Directory.default(), phone_key=b"test-key")
    application = create_app(lambda: rt, list(load_spec("router").routers), start=False)
    async with application.router.lifespan_context(application):
        await rt.identity.create_user("disp", PASSWORD, Role.DISPATCHER, display_name="派单员")
        await rt.identity.create_user("sup", PASSWORD, Role.SUPERVISOR, display_name="督查室")
        yield application
    for store in rt.stores.values():
        await store.db.dispose()
    await rt.identity.db.dispose()


async def queued(app, subject: str = "反映个情况", phone: str = "13600002222") -> uuid.UUID:
    """A ticket the router was unsure of, waiting in the dispatch queue."""
    payload = TicketReceived.model_validate({
        "number": f"12345-20261122-{uuid.uuid4().int % 999999 + 1:06d}", "channel": "hotline", "kind": "complaint",
        "subject": subject, "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
        "citizen": {"name": "周先生", "phone": phone}, "received_at": utcnow().isoformat(),
        "source_ref": str(uuid.uuid4()),
    })
    envelope = Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="intake")
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.route_received(tx, envelope, payload, rt.state["router"])
    assert await decision(app, envelope.ticket_id) == ("dispatch", None)
    return envelope.ticket_id


async def decision(app, ticket_id: uuid.UUID) -> tuple[str, str | None]:
    async with app.state.runtime.store("router").db.session() as s:
        row = (await s.execute(select(decisions.c.status, decisions.c.lead_code)
                               .where(decisions.c.ticket_id == ticket_id))).one()
    return row.status, row.lead_code


class Browser:
    """A logged-in browser without a script: posts the queue page's form as the browser would."""

    def __init__(self, client: httpx.AsyncClient, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    async def send(self, ticket_id: uuid.UUID, **fields: str) -> httpx.Response:
        return await self.client.post(f"/router/dispatch/{ticket_id}", data={"csrf_token": self.csrf, **fields})

    async def refused(self, ticket_id: uuid.UUID, **fields: str) -> httpx.Response:
        """The queue page a refused form leads back to: sent back (303) to the queue's own address, which says why."""
        r = await self.send(ticket_id, **fields)
        assert r.status_code == 303 and "refused" in httpx.URL(r.headers["location"]).params, r.text
        return await self.client.get(r.headers["location"])


@contextlib.asynccontextmanager
async def logged_in(app, username: str = "disp"):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jiesu.test") as client:
        r = await client.post("/login", data={"username": username, "password": PASSWORD,
                                              "next": "/router/dispatch"})
        assert r.status_code == 303, r.text
        queue = await client.get("/router/dispatch")
        yield Browser(client, re.search(r'name="csrf_token" value="([^"]+)"', queue.text).group(1))


def card(html: str, ticket_id: uuid.UUID) -> str:
    """The queue page's card of one ticket."""
    match = re.search(rf'<article class="([^"]*)"[^>]*data-ticket="{ticket_id}">(.*?)</article>', html, re.S)
    assert match, f"no card for {ticket_id}"
    return f'<article class="{match.group(1)}">{match.group(2)}'


def unit_box(html: str) -> str:
    return re.search(r'<input type="search" name="search_unit"[^>]*>', html, re.S).group(0)


# -- what the unit box understands -------------------------------------------------------------


@pytest.mark.parametrize("typed", ["m-cgw", "Ｍ－ＣＧＷ", "市城市管理委员会", "城管", " 城管委 ", "城市管理", "市城管委"])
async def test_the_unit_box_takes_a_code_a_name_an_alias_or_a_unique_part_of_one(app, typed):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.send(ticket, search_unit=typed)
        assert r.status_code == 303 and httpx.URL(r.headers["location"]).path == "/router/dispatch", r.text
        assert httpx.URL(r.headers["location"]).params["done"].endswith("已派至 市城市管理委员会")
    assert await decision(app, ticket) == ("assigned", "M-CGW")


async def test_the_search_box_lists_the_unit_an_abbreviation_stands_for_first(app):
    async with logged_in(app) as dispatcher:
        r = await dispatcher.client.get("/api/v1/router/units", params={"q": "市城管委"},
                                        headers={"Accept": "application/json"})
        assert r.status_code == 200
        assert r.json()[0] == {"code": "M-CGW", "name": "市城市管理委员会", "type": "municipal"}
        r = await dispatcher.client.get("/api/v1/router/units", params={"q": "城管委"},
                                        headers={"Accept": "application/json"})
        assert [u["code"] for u in r.json()] == ["M-CGW", "M-GXQ"]  # the alias before letters in order


def test_an_exact_name_or_alias_wins_over_units_that_only_contain_it() -> None:
    city = Directory.default()
    assert [u.code for u in city.resolve_unit("公安局")] == ["M-GAJ"]  # though 市公安局交通管理局 contains it
    assert [u.code for u in city.resolve_unit("公安")] == ["M-GAJ", "M-JGJ"]  # both contain it: ask
    assert [u.code for u in city.resolve_unit("东湖")] == ["D-02", "S-02-01"]
    assert city.resolve_unit("火星办事处") == () and city.resolve_unit("  ") == ()


async def test_the_json_api_still_takes_unit_codes_only_and_answers_in_json(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        headers = {"X-CSRF-Token": dispatcher.csrf}
        r = await dispatcher.client.post(f"/api/v1/router/tickets/{ticket}/dispatch", json={"unit": "城管"},
                                         headers=headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_unit"
        assert "没有代码为 城管 的承办单位" in r.json()["error"]["message"]
        # the same words through the page's form are understood
        assert (await dispatcher.send(ticket, search_unit="城管")).status_code == 303
    assert await decision(app, ticket) == ("assigned", "M-CGW")


# -- refusals come back as the queue page -------------------------------------------------------


async def test_an_ambiguous_name_brings_the_queue_back_with_the_candidates_beside_the_card(app):
    first = await queued(app, "第一件")
    ticket = await queued(app, "第二件", phone="13600004444")  # another caller: not a duplicate (重复件)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.refused(ticket, search_unit="公安")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    here = card(r.text, ticket)
    assert "selected" in here.split(">")[0] and "selected" not in card(r.text, first).split(">")[0]
    assert "“公安”对应多个承办单位：市公安局（M-GAJ）、市公安局交通管理局（M-JGJ）" in here
    assert "fits several units: M-GAJ, M-JGJ" in here
    box = unit_box(here)
    assert 'value="公安"' in box and 'aria-invalid="true"' in box
    assert "aria-invalid" not in unit_box(card(r.text, first))
    assert await decision(app, ticket) == ("dispatch", None)


async def test_a_street_among_the_candidates_is_named_with_its_district(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.refused(ticket, search_unit="东湖")
    assert "东湖区（D-02）、东湖区东湖街道（S-02-01）" in card(r.text, ticket)


async def test_an_unknown_unit_brings_the_queue_back_with_the_reason_and_what_was_typed(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.refused(ticket, search_unit="火星办事处")
    here = card(r.text, ticket)
    assert "没有名称或代码为“火星办事处”的承办单位" in here and 'value="火星办事处"' in unit_box(here)
    assert await decision(app, ticket) == ("dispatch", None)


async def test_dispatch_with_nothing_chosen_asks_for_a_unit_on_the_page(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        r = await dispatcher.refused(ticket)
    assert "请采纳一条建议，或输入承办单位的名称或代码" in card(r.text, ticket)
    assert await decision(app, ticket) == ("dispatch", None)


async def test_a_ticket_dispatched_meanwhile_is_reported_above_the_queue(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        assert (await dispatcher.send(ticket, unit="M-CGW")).status_code == 303
        r = await dispatcher.refused(ticket, search_unit="供电公司")  # a second tab, or a colleague, was quicker
    assert "该工单已派出，无需再派" in r.text and f'data-ticket="{ticket}"' not in r.text
    assert await decision(app, ticket) == ("assigned", "M-CGW")


async def test_a_supervisor_posting_the_form_is_refused_with_a_page_that_says_why(app):
    ticket = await queued(app)
    async with logged_in(app, "sup") as supervisor:
        r = await supervisor.client.post(f"/router/dispatch/{ticket}", headers={"Accept": "text/html"},
                                         data={"csrf_token": supervisor.csrf, "search_unit": "城管"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")  # the error page, as anywhere
    assert "只有派单员可以派单" in r.text
    assert await decision(app, ticket) == ("dispatch", None)


async def test_each_card_says_how_long_its_ticket_has_waited_in_red_after_half_a_day(app):
    from services.router.api import waited

    fresh, old = await queued(app), await queued(app, phone="13600003333")
    async with app.state.runtime.store("router").db.session() as s:
        await s.execute(decisions.update().where(decisions.c.ticket_id == old)
                        .values(decided_at=utcnow() - timedelta(hours=5, minutes=1)))
    async with logged_in(app) as dispatcher:
        html = (await dispatcher.client.get("/router/dispatch")).text
    assert '<span class="tag" title="进入人工派单队列至今">待派 0 分钟</span>' in card(html, fresh)
    assert '<span class="tag overdue" title="进入人工派单队列至今">待派 5 小时</span>' in card(html, old)
    now = utcnow()
    assert [waited(now - timedelta(minutes=m), now) for m in (59, 60, 24 * 60 - 1, 24 * 60, 3 * 24 * 60)] == [
        "59 分钟", "1 小时", "23 小时", "1 天", "3 天"]

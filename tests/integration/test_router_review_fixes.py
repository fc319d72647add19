"""The dispatch queue (派单队列) after a review: the button pressed is the unit sent, the card says where the matter
is, a supervisor's queue has nothing to press, a returned ticket's reason is true, and after a dispatch the queue
goes on from the next card.

The router's pages and database without the broker, with the demo city and no model (dispatch_form's fixtures).
"""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import select

from schemas.events import Envelope, TicketReceived, TicketReturned, UnitRef, utcnow
from services.router import service
from services.router.store import decisions
from tests.integration import test_router_dispatch_form as dispatch_form
from tests.integration.test_router_dispatch_form import card, decision, logged_in, queued

app = dispatch_form.app  # the fixture: the router's pages and database, the demo city, no model


async def routed(app, *, category: str | None = None, district: str | None = None, street: str | None = None,
                 subject: str = "反映个情况") -> tuple[uuid.UUID, list]:
    """A ticket routed by the router's own use case, with the events it owed."""
    payload = TicketReceived.model_validate({
        "number": f"12345-20261122-{uuid.uuid4().int % 999999 + 1:06d}", "channel": "hotline", "kind": "complaint",
        "subject": subject, "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
        "citizen": {"name": "周先生", "phone": f"136{uuid.uuid4().int % 10**8:08d}"},
        "received_at": utcnow().isoformat(), "source_ref": str(uuid.uuid4()), "category": category,
        "location": {"district": district, "street": street},
    })
    envelope = Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="intake")
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.route_received(tx, envelope, payload, rt.state["router"])
        return envelope.ticket_id, list(tx.emitted)


def selected(html: str) -> list[str]:
    return re.findall(r'<article class="card ticket selected"[^>]*data-ticket="([^"]+)"', html)


# -- 1. the button pressed is the unit sent ------------------------------------------------------


async def test_a_suggestions_button_sends_its_unit_whatever_the_unit_box_holds(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        # Typed into the box, then back to the card (Esc) and suggestion 2 taken: the form sends both.
        r = await dispatcher.send(ticket, unit="U-ZLS", search_unit="市城管委")
        assert r.status_code == 303, r.text
        assert httpx.URL(r.headers["location"]).params["done"].endswith("已派至 江城自来水集团")
    assert await decision(app, ticket) == ("assigned", "U-ZLS")


async def test_enter_in_the_unit_box_or_dispatch_sends_what_was_typed(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        # The form's hidden first button (Enter in the box) and 派出 send no unit: the box is meant.
        r = await dispatcher.send(ticket, search_unit="市城管委")
        assert r.status_code == 303 and "已派至 市城市管理委员会" in httpx.URL(r.headers["location"]).params["done"]
    assert await decision(app, ticket) == ("assigned", "M-CGW")


async def test_the_hidden_default_button_comes_before_the_suggestions_and_sends_no_unit(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        here = card((await dispatcher.client.get("/router/dispatch")).text, ticket)
    buttons = re.findall(r"<button [^>]*>", here)
    assert 'class="implicit-submit" tabindex="-1" aria-hidden="true"' in buttons[0] and "name=" not in buttons[0]


# -- 2. where the matter is -----------------------------------------------------------------------


async def test_the_card_names_the_district_and_street_of_the_matter(app):
    placed, _ = await routed(app, district="D-02", street="S-02-01")
    district_only, _ = await routed(app, district="D-04", subject="再反映个情况")
    unknown, _ = await routed(app, district="D-99", subject="又反映个情况")
    nowhere = await queued(app, "第四件", phone="13600004444")
    async with logged_in(app) as dispatcher:
        html = (await dispatcher.client.get("/router/dispatch")).text
    assert '<p class="muted place">地点：东湖区 · 东湖街道</p>' in card(html, placed)
    assert '<p class="muted place">地点：北城区</p>' in card(html, district_only)
    assert '<p class="muted place">地点：D-99</p>' in card(html, unknown)  # a code the directory does not know
    assert '<p class="muted place">地点：未注明区、街道</p>' in card(html, nowhere)


# -- 3. a supervisor's queue is read-only -----------------------------------------------------------


async def test_a_supervisor_sees_the_queue_without_anything_to_press(app):
    ticket = await queued(app)
    async with logged_in(app, "sup") as supervisor:
        html = (await supervisor.client.get("/router/dispatch")).text
    here = card(html, ticket)
    assert "反映个情况" in here
    assert "<form" not in here and "<button" not in here and "data-units" not in here
    assert 'class="muted keys"' not in html and "dispatch.js" not in html
    assert "只读：派单由派单员操作。" in html


async def test_a_dispatcher_sees_the_forms(app):
    ticket = await queued(app)
    async with logged_in(app) as dispatcher:
        html = (await dispatcher.client.get("/router/dispatch")).text
    here = card(html, ticket)
    assert f'<form method="post" action="/router/dispatch/{ticket}"' in here and "data-units" in here
    assert 'class="muted keys"' in html and "dispatch.js" in html


# -- 4. a returned ticket of a known category ----------------------------------------------------------


async def test_a_ticket_of_a_known_category_returned_by_its_unit_says_so(app):
    ticket, first = await routed(app, category="CM.FACILITY.LIGHT", subject="路灯不亮")
    assert first[0].payload["lead"]["code"] == "M-CGW"
    back = TicketReturned(number="x", unit=UnitRef(code="M-CGW", name="市城市管理委员会"), reason_code="not_our_duty",
                          reason="路灯归供电公司", by="dept", returns_so_far=1)
    rt = app.state.runtime
    async with rt.store("router").transaction() as tx:
        await service.reroute_after_return(tx, Envelope.wrap(back, ticket_id=ticket, producer="tracker"), back,
                                           rt.state["router"])
        emitted = list(tx.emitted)
    why = emitted[0].payload["why"]
    assert emitted[0].event_type == "DispatchNeeded"
    assert why.endswith("改派：“路灯照明”的承办单位市城市管理委员会已退单，请另选单位"), why
    assert "无法确定类别" not in why
    async with rt.store("router").db.session() as s:
        assert (await s.scalar(select(decisions.c.why).where(decisions.c.ticket_id == ticket))) == why


# -- 6. after a dispatch the queue goes on from the next card --------------------------------------------


async def test_after_a_dispatch_the_card_that_followed_it_is_selected(app):
    first, second, third = [await queued(app, f"第{n}件", phone=f"1360000{n}000") for n in range(1, 4)]
    async with logged_in(app) as dispatcher:
        html = (await dispatcher.client.get("/router/dispatch")).text
        assert selected(html) == [str(first)]
        following = re.search(r'name="following" value="([^"]+)"', card(html, second)).group(1)
        assert following == str(third)
        r = await dispatcher.send(second, search_unit="M-CGW", following=following)
        assert r.status_code == 303 and httpx.URL(r.headers["location"]).params["selected"] == str(third)
        html = (await dispatcher.client.get(r.headers["location"])).text
        assert selected(html) == [str(third)]

        # The last card names the one before it; a ticket that has left the queue selects the first again.
        assert re.search(r'name="following" value="([^"]+)"', card(html, third)).group(1) == str(first)
        r = await dispatcher.send(third, search_unit="M-CGW", following=str(second))
        assert selected((await dispatcher.client.get(r.headers["location"])).text) == [str(first)]

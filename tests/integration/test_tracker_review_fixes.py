"""The tracker's pages say things as people say them: districts, streets and categories by name on the ledger and
the hotspots, who answered an order by display name, every unread notification the badge counts, and a refused
督办回复 comes back on the ticket page with the reason and what was typed."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from schemas.enums import Role
from services.tracker.store import code_names, notifications, ticket_units, tickets
from tests.browser.test_tracker_polish import _person
from tests.browser.test_tracker_sup_live import _seed
from tests.unit.tracker import sup_month as m

# The directory's names of the codes the seeded tickets carry (the router sends them with each assignment).
NAMES = {"D-01": "临江区", "D-02": "东湖区", "D-03": "西山区", "S-01-01": "滨江街道", "S-01-03": "解放路街道",
         "S-02-01": "东湖街道", "S-03-02": "枫林街道", "C-NOISE": "噪声扰民", "C-ROAD": "道路设施", "C-BUILD": "房屋建筑"}


async def seeded(live) -> dict[str, str]:
    """The hand-made October (sup_month: a6 and a7 overdue with unit A; order DB-a6-1 unanswered, DB-a7-1 answered
    by `cgw`) and this week's clusters of complaints, each seen by its lead unit, with the directory's names of
    their codes; the office's 陈刚 (`sup`) and unit A's 王敏 (`cgw`). Their tokens by user name."""
    await _seed(live)
    async with live.runtime.store("tracker").db.session() as s:
        await s.execute(code_names.insert(), [{"code": c, "name": n} for c, n in NAMES.items()])
        leads = (await s.execute(select(tickets.c.ticket_id, tickets.c.lead_code)
                                 .where(tickets.c.lead_code.is_not(None)))).all()
        await s.execute(ticket_units.insert(), [{"ticket_id": t, "unit_code": u, "role": "lead"} for t, u in leads])
    return {"sup": await _person(live, "sup", Role.SUPERVISOR, "督查室 陈刚"),
            "cgw": await _person(live, "cgw", Role.DEPARTMENT, "城管委 王敏", m.A)}


def _as(live, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=20)


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


async def test_the_ledger_and_the_hotspots_name_places_and_categories_with_the_code_on_hover(live):
    tokens = await seeded(live)
    async with _as(live, tokens["sup"]) as office:
        for path in ("/tracker/sup/ledger", "/tracker/sup/ledger/rows"):  # the page, and the rows the stream fetches
            rows = (await office.get(path)).text
            rows = rows[rows.index('data-number="'):]
            assert '<span title="D-01">临江区</span>' in rows and '<span title="C-NOISE">噪声扰民</span>' in rows, path
            assert "D-01" not in _text(rows) and "C-NOISE" not in _text(rows), path
        hot = (await office.get("/tracker/sup/trends")).text
        hot = _text(hot[hot.index('class="hot-list"'):])
        assert "地点 解放路街道（临江区）" in hot and "分类 噪声扰民" in hot
        assert "S-01-03" not in hot and "D-01" not in hot


async def test_the_orders_name_who_answered_and_who_ordered_by_their_display_names(live):
    tokens = await seeded(live)
    await _person(live, "zhao", Role.SUPERVISOR, "督查室 赵敏")
    async with _as(live, tokens["sup"]) as office:
        zhao = await live.runtime.identity.create_token("zhao", "test")
        r = await office.post(f"/api/v1/tracker/tickets/{m.number_of('b2')}/supervise", headers={
            "Authorization": f"Bearer {zhao}"}, json={"level": "normal", "reason": "挂起已久，请说明进展"})
        assert r.status_code == 200, r.text
        html = (await office.get("/tracker/sup/orders", params={"tab": "all"})).text
    answered = _text(html[html.index("DB-a7-1"):].split("</tr>")[0])
    assert "城管委 王敏" in answered and "cgw" not in answered
    assert "督查室 赵敏" in _text(html) and "· zhao" not in _text(html)
    # The office's fields have names (a screen reader says more than a placeholder), and the answer the rule.
    assert 'aria-label="督办单 DB-a7-1 的销号意见（可不填）"' in html and 'aria-label="代录 ' in html
    assert 'minlength="5"' in html


async def test_the_inbox_lists_every_unread_notification_the_badge_counts(live):
    tokens = await seeded(live)
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        await s.execute(notifications.insert(), [
            {"unit_code": m.A, "ticket_id": None, "number": None, "kind": "reminder", "message": f"催办通知 第{i}条",
             "created_at": m.NOW} for i in range(1, 10)])
    async with _as(live, tokens["cgw"]) as unit:
        notes = (await unit.get("/tracker/inbox")).text
        notes = notes[notes.index('id="notes"'):]
        assert notes.count('class="unread"') == 9 and all(f"催办通知 第{i}条" in notes for i in range(1, 10))
        assert "另有" not in notes

        async with store.db.session() as s:  # more than the panel lists: it says how many it leaves out
            await s.execute(notifications.insert(), [
                {"unit_code": m.A, "ticket_id": None, "number": None, "kind": "reminder", "message": "再催",
                 "created_at": m.NOW} for _ in range(30)])
        notes = (await unit.get("/tracker/inbox")).text
        notes = notes[notes.index('id="notes"'):]
        assert notes.count('class="unread"') == 30 and "另有 9 条较早的未读通知未在此列出" in notes


async def test_a_refused_order_answer_comes_back_on_the_ticket_page_with_what_was_typed(live):
    tokens = await seeded(live)
    number = m.number_of("a6")
    async with _as(live, tokens["cgw"]) as unit:
        form = {"response": "已处理", "back": f"/tracker/tickets/{number}"}
        r = await unit.post("/tracker/sup/orders/DB-a6-1/respond", data=form)
        assert r.status_code == 422
        assert "未能回复督办单：</b>请写明督办回复内容（至少 5 个字）" in r.text and 'role="alert"' in r.text
        assert ">已处理</textarea>" in r.text and f'data-page-url="/tracker/tickets/{number}"' in r.text

        r = await unit.post("/tracker/sup/orders/DB-a6-1/respond", follow_redirects=True,
                            data={**form, "response": "已约谈施工单位并整改完毕"})
        assert r.url.path == f"/tracker/tickets/{number}"
        assert '<div class="msg ok" role="status">督办单 DB-a6-1 已回复</div>' in r.text
        r = await unit.get(f"/tracker/tickets/{number}", params={"done": "sign_for"})
        assert '<div class="msg ok" role="status">已签收。</div>' in r.text  # an action's key, as before

"""The scorecard page, its JSON and the monthly bulletin rank the same units by the same rule (stats.MIN_SAMPLE).

The hand-made October (sup_month.py) has two small units — A with 9 tickets and 6 rated visits, B with 2
tickets due for sign-for and 1 rated visit — and here a third, C, with twelve of each: only C is ranked.
"""

from __future__ import annotations

import re

import httpx

from schemas.enums import Role
from services.tracker import stats
from services.tracker.store import return_visits, tickets
from tests.unit.tracker import sup_month as m

C, C_NAME = "M-SWJ", "市水务局"


async def _seeded(live):
    c_tickets = [{**m._ticket(f"c{i}", "A", "closed", replied_h=20, outcome="satisfied"), "lead_code": C,
                  "lead_name": C_NAME} for i in range(12)]
    c_visits = [m._visit(f"c{i}", "satisfied", m.T0 + 3 * m.D, unit=C) for i in range(12)]
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
        await s.execute(tickets.insert(), c_tickets)
        await s.execute(return_visits.insert(), c_visits)
    sup = await live.user("sup", Role.SUPERVISOR)
    return httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}, timeout=20)


A_WHY = f"样本不足：应签收 9 件、参评回访 6 件，须各不少于 {stats.MIN_SAMPLE} 件"
B_WHY = f"样本不足：应签收 2 件、参评回访 1 件，须各不少于 {stats.MIN_SAMPLE} 件"


async def test_small_units_are_listed_after_the_ranked_one_marked_不参与排名_on_every_page(live):
    async with await _seeded(live) as client:
        card = (await client.get("/api/v1/tracker/supervision/scorecard", params={"period": "2026-10"})).json()
        html = (await client.get("/tracker/sup/scorecard", params={"period": "2026-10"})).text
        bulletin = (await client.get("/tracker/sup/reports/monthly.json", params={"period": "2026-10"})).json()
        csv_text = (await client.get("/tracker/sup/reports/monthly.csv",
                                     params={"period": "2026-10"})).content.decode("utf-8-sig")

    units = [(u["unit_code"], u["rank"], u["score"], u["unranked_reason"]) for u in card["units"]]
    assert units == [(C, 1, 100.0, None), (m.A, None, None, A_WHY), (m.B, None, None, B_WHY)]
    a = next(u for u in card["units"] if u["unit_code"] == m.A)
    assert a["rates"]["satisfaction"]["rate"] == 0.6667  # its rates are still given

    assert html.index(C_NAME) < html.index("以下单位不参与排名") < html.index(m.A_NAME) < html.index(m.B_NAME)
    assert html.count(">不参与排名<") == 2 and A_WHY in html and B_WHY in html
    assert f"各不少于 {stats.MIN_SAMPLE} 件" in html  # the rule is on the page

    rows = next(t for t in bulletin["tables"] if t["key"] == "units")["rows"]
    assert [(r[0], r[1], r[-2], r[-1]) for r in rows] == [
        (1, C_NAME, 100.0, ""), ("不参与排名", m.A_NAME, "—", A_WHY), ("不参与排名", m.B_NAME, "—", B_WHY)]
    assert f"不参与排名,{m.A_NAME},9,77.8%" in csv_text


async def test_the_city_total_says_why_it_is_not_ranked_and_why_it_has_no_score_on_the_page_and_in_the_json(live):
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)  # A and B alone: 11 tickets due for sign-for city-wide, but 7 rated visits
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}, timeout=20) as client:
        card = (await client.get("/api/v1/tracker/supervision/scorecard", params={"period": "2026-10"})).json()
        html = (await client.get("/tracker/sup/scorecard", params={"period": "2026-10"})).text

    why = f"合计行不参与排名；样本不足：参评回访 7 件，须各不少于 {stats.MIN_SAMPLE} 件"
    total = card["total"]
    assert (total["unit_name"], total["rank"], total["score"], total["unranked_reason"]) == ("全市合计", None, None, why)
    [row] = re.findall(r'<tr class="total">.*?</tr>', html, re.S)
    assert f'<td class="num score">—<span class="sub unranked-reason">{why}</span></td>' in row

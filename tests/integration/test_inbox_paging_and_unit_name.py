"""The workbench's pages say where one is (第 N / M 页, the total) and go back as well as on (上一页, 下一页); and its
header names the unit by the directory's name whatever the page lists: a search, an empty tab, or tickets the unit
only co-handles first (before, the unit's code stood there, S-01-03, unless the first row was the unit's own).
"""

from __future__ import annotations

import re

import httpx

from schemas.enums import Role
from schemas.events import Envelope, RoutingReason, TicketAssigned, UnitRef
from services.tracker import handlers
from tests.integration.test_co_handler_inbox import CGW, STREET, _id


async def _assign_many(rt, count: int, lead: UnitRef, co: list[UnitRef] = (), first: int = 1) -> list[str]:
    numbers = [f"12345-20261124-{i:06d}" for i in range(first, first + count)]
    items = []
    for number in numbers:
        p = TicketAssigned(number=number, kind="complaint", lead=lead, co_handlers=list(co),
                           reason=RoutingReason(method="rule", rule_id="R-noise"))
        items.append((Envelope.wrap(p, ticket_id=_id(number), producer="router"), p))
    async with rt.store("tracker").transaction() as tx:
        await handlers.assigned_many(tx, items, rt.state["tracker.clocks"])
    return numbers


def _pager(html: str) -> str:
    found = re.search(r'<nav class="pager".*?</nav>', html, re.S)
    return re.sub(r"\s+", " ", found.group(0)) if found else ""


async def test_the_second_page_goes_back_and_both_say_which_page_of_how_many_and_the_total(live):
    await _assign_many(live.runtime, 57, CGW)
    token = await live.user("cgw", Role.DEPARTMENT, department=CGW.code)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        first = _pager((await client.get("/tracker/inbox", params={"tab": "new"})).text)
        second = _pager((await client.get("/tracker/inbox", params={"tab": "new", "page": 2})).text)
        only = (await client.get("/tracker/inbox", params={"tab": "soon"})).text
    assert "第 1 / 2 页，共 57 件" in first and "上一页" not in first
    assert '<a href="?tab=new&kind=&q=&page=2" rel="next">下一页 →</a>' in first
    assert "第 2 / 2 页，共 57 件" in second and "下一页" not in second
    assert '<a href="?tab=new&kind=&q=&page=1" rel="prev">← 上一页</a>' in second
    assert _pager(only) == ""  # one page (here none at all): its tab's count says it


async def test_the_pages_keep_the_search_and_the_kind(live):
    await _assign_many(live.runtime, 51, CGW)
    token = await live.user("cgw", Role.DEPARTMENT, department=CGW.code)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        second = _pager((await client.get("/tracker/inbox", params={
            "tab": "open", "kind": "complaint", "q": "12345-2026", "page": 2})).text)
    assert "第 2 / 2 页，共 51 件" in second
    assert 'href="?tab=open&kind=complaint&q=12345-2026&page=1"' in second


def _header(html: str) -> str:
    return re.search(r'<div class="bar">\s*<h1>([^<]*)</h1>\s*<span class="muted">([^<]*)</span>', html).groups()


async def test_the_header_names_the_unit_whatever_the_page_lists(live):
    await _assign_many(live.runtime, 2, CGW, [STREET])  # the street co-handles these, and leads none
    token = await live.user("jfl", Role.DEPARTMENT, department=STREET.code)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        for params in ({}, {"q": "没有这样的工单"}, {"tab": "done"}, {"tab": "co"}):
            html = (await client.get("/tracker/inbox", params=params)).text
            assert _header(html) == ("本单位工单", "解放路街道"), params

"""重复件 on the ticket page: who decided the merge, no clocks on the merged ticket, both numbers linked.

The operator attaches a second call to the caller's open ticket (duplicate_of_number, as Alt+M in the console
does); a third, the same matter again, the router merges by itself. Over the real broker, through the pages.
"""

from __future__ import annotations

import httpx
import pytest

from schemas.enums import Role
from tests.conftest import DEMO_PASSWORD
from tests.integration.test_tracker_workflow import CALL, Desk, bearer


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


def link(number: str) -> str:
    return f'<a href="/tracker/tickets/{number}">{number}</a>'


async def test_a_repeat_the_operator_marked_names_them_runs_no_clock_and_links_both_tickets(desk, live):
    await live.runtime.identity.create_user("lina", DEMO_PASSWORD, Role.OPERATOR, display_name="李娜")
    op = await desk.as_("lina", Role.OPERATOR)
    sup = await desk.as_("sup", Role.SUPERVISOR)
    first = (await desk.post_ticket())["number"]
    r = await desk.client.post("/api/v1/intake/tickets", json={**CALL, "duplicate_of_number": first},
                               headers=bearer(op))
    assert r.status_code == 201, r.text
    marked = (await desk.wait(r.json()["number"], "merged"))["number"]
    r = await desk.client.post("/api/v1/intake/tickets", json=CALL, headers=bearer(op))  # the router finds it
    assert r.status_code == 201, r.text
    found = (await desk.wait(r.json()["number"], "merged"))["number"]

    page = (await desk.client.get(f"/tracker/tickets/{marked}", headers=bearer(sup))).text
    assert f'>话务员 李娜</span><span>作为重复件合并至 {link(first)}</span>' in page
    assert "签收期限" not in page and "尚未签收" not in page and "答复期限" not in page
    assert f"已合并至 {link(first)}" in page

    page = (await desk.client.get(f"/tracker/tickets/{found}", headers=bearer(sup))).text
    assert f'>智能派单</span><span>作为重复件合并至 {link(first)}</span>' in page

    page = (await desk.client.get(f"/tracker/tickets/{first}", headers=bearer(sup))).text
    assert f'>话务员 李娜</span><span>重复件 {link(marked)} 已并入本工单</span>' in page
    assert f'>智能派单</span><span>重复件 {link(found)} 已并入本工单</span>' in page
    assert "签收期限" in page  # the earlier ticket keeps its clocks

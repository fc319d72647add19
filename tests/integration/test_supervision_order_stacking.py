"""A supervision order (督办单) from the ticket page stacks no second order on one still awaiting its unit's answer.

The ledger's bulk 督办 passes over such tickets (`supervision.order_many`); the ticket page's single order, through
the page or the API (`Tracker.supervise`), is refused the same way, with the same predicate (`awaiting_answer`), but
the office may still press harder: 重点督办 over orders that are all 一般督办. Once the unit has answered, or the office
has closed the order, another may follow.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select, update

from jiesu.errors import ApiError
from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.store import supervision_orders
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import OFFICE, STAFF, _assigned, _id

NORMAL_OVER_NORMAL = "工单已有待回复的一般督办单，不再重复下达一般督办：请等待承办单位回复，或改为重点督办"
ANY_OVER_KEY = "工单已有待回复的重点督办单，不再重复下达：请等待承办单位回复，逾期未回复的系统将升级催办"


async def _orders(rt, number: str) -> list[tuple[str, str]]:
    """The ticket's orders, oldest first: (order number, level)."""
    o = supervision_orders.c
    async with rt.store("tracker").db.session() as s:
        return [tuple(r) for r in (await s.execute(select(o.order_no, o.level).where(o.ticket_id == _id(number))
                                                   .order_by(o.created_at, o.order_no))).all()]


async def _refused(tracker, number: str, level: str) -> ApiError:
    with pytest.raises(ApiError) as refused:
        await tracker.supervise(OFFICE, number, level, "群众多次来电催问")
    return refused.value


async def test_the_ticket_page_order_stacks_no_second_order_of_the_same_weight_on_one_awaiting_its_answer(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 1)
        await tracker.sign_for(STAFF, number)
        await tracker.supervise(OFFICE, number, "normal", "超期风险较大")

        refusal = await _refused(tracker, number, "normal")
        assert (refusal.status, refusal.code, refusal.zh) == (409, "order_awaiting_answer", NORMAL_OVER_NORMAL)
        assert "awaits the unit's response" in refusal.en and "key supervision" in refusal.en
        assert len(await _orders(rt, number)) == 1  # nothing was made

        await tracker.supervise(OFFICE, number, "key", "群众反映强烈")  # pressing harder is the office's to do
        for level in ("normal", "key"):  # but not again over the key order, whatever the level
            refusal = await _refused(tracker, number, level)
            assert (refusal.status, refusal.code, refusal.zh) == (409, "order_awaiting_answer", ANY_OVER_KEY)
        orders = await _orders(rt, number)
        assert [level for _, level in orders] == ["normal", "key"]

        # Answered, or closed by the office, an order no longer stands in the way of another.
        first, second = (order_no for order_no, _ in orders)
        now = utcnow()
        async with rt.store("tracker").db.session() as s:
            await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == second).values(
                response="已约谈施工单位并限期整改", responded_at=now, responded_by="cgw"))
        assert (await _refused(tracker, number, "normal")).zh == NORMAL_OVER_NORMAL  # the first still waits
        async with rt.store("tracker").db.session() as s:
            await s.execute(update(supervision_orders).where(supervision_orders.c.order_no == first).values(
                closed_at=now, closed_by="sup", closing_note="并入重点督办"))
        await tracker.supervise(OFFICE, number, "normal", "整改后又有反映")
        assert [level for _, level in await _orders(rt, number)] == ["normal", "key", "normal"]
    finally:
        await _dispose(rt)


async def test_the_office_is_told_why_over_the_api_and_the_ticket_page_offers_only_what_it_would_accept(live):
    rt = live.runtime
    tracker = rt.state["tracker"]
    number = await _assigned(rt, 2)
    await tracker.sign_for(STAFF, number)
    office = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        def order(level: str) -> dict:
            return {"level": level, "reason": "群众多次来电催问"}

        shown = (await client.get(f"/tracker/tickets/{number}")).text
        assert 'value="normal" checked' in shown and 'value="key"' in shown and 'id="no-order"' not in shown

        assert (await client.post(f"/api/v1/tracker/tickets/{number}/supervise", json=order("normal"))
                ).status_code == 200
        r = await client.post(f"/api/v1/tracker/tickets/{number}/supervise", json=order("normal"))
        assert r.status_code == 409
        error = r.json()["error"]
        assert (error["code"], error["zh"]) == ("order_awaiting_answer", NORMAL_OVER_NORMAL) and error["en"]

        # The page offers 重点督办 alone, saying why; posted anyway, 一般督办 comes back refused with the reason kept.
        shown = (await client.get(f"/tracker/tickets/{number}")).text
        assert 'value="normal"' not in shown and 'value="key" checked' in shown
        assert f'<p class="muted" id="no-order"><small>{NORMAL_OVER_NORMAL}</small></p>' in shown
        r = await client.post(f"/tracker/tickets/{number}/do/supervise", data=order("normal"))
        assert r.status_code == 409
        assert f"未能下达督办单：</b>{NORMAL_OVER_NORMAL}" in r.text and ">群众多次来电催问</textarea>" in r.text

        r = await client.post(f"/tracker/tickets/{number}/do/supervise", data=order("key"), follow_redirects=False)
        assert r.status_code == 303
        shown = (await client.get(f"/tracker/tickets/{number}")).text
        assert 'action="/tracker/tickets/{}/do/supervise"'.format(number) not in shown  # nothing it would accept
        assert f'<p class="muted" id="no-order"><small>{ANY_OVER_KEY}</small></p>' in shown
    async with rt.store("tracker").db.session() as s:
        assert await s.scalar(select(func.count()).select_from(supervision_orders).where(
            supervision_orders.c.ticket_id == _id(number))) == 2

    unit = await live.user("cgw", Role.DEPARTMENT, department=STAFF.department)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {unit}"}) as client:
        shown = (await client.get(f"/tracker/tickets/{number}")).text
    assert 'id="no-order"' not in shown  # the unit orders nothing: nothing to explain

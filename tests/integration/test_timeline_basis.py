"""Who decided a dispatch, on the ticket page: the timeline is read once, a dispatch line's routing method and
dispatcher come from its data (RoutingReason), and a line written before the data kept them still says its method
from its basis (依据). The API's timeline keeps its four fields, and the citizen's number stays masked."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import event

from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.store import timeline
from tests.conftest import DEMO_PASSWORD

VAGUE = {"kind": "complaint", "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
         "citizen": {"name": "张伟", "phone": "13800138000"}, "location": {"address": "滨江路18号"}}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def _state(client: httpx.AsyncClient, token: str, number: str, state: str) -> dict:
    for _ in range(300):
        r = await client.get(f"/api/v1/tracker/tickets/{number}", headers=bearer(token))
        if r.status_code == 200 and r.json()["state"] == state:
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{number} not {state}: {r.text[:300]}")


async def test_a_hand_dispatch_names_its_dispatcher_and_an_old_line_its_method_from_one_read_of_the_timeline(live):
    await live.runtime.identity.create_user("wangli", DEMO_PASSWORD, Role.DISPATCHER, display_name="王丽")
    disp = await live.runtime.identity.create_token("wangli", "test")
    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    store = live.runtime.store("tracker")
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        r = await client.post("/api/v1/intake/tickets", json=VAGUE, headers=bearer(op))
        assert r.status_code == 201, r.text
        queued = await _state(client, sup, r.json()["number"], "dispatching")
        r = await client.post(f"/api/v1/router/tickets/{queued['ticket_id']}/dispatch", json={"unit": "M-CGW"},
                              headers=bearer(disp))
        assert r.status_code == 200, r.text
        await _state(client, sup, queued["number"], "assigned")
        async with store.db.session() as s:  # as the tracker wrote a hand dispatch before its data kept the reason
            await s.execute(timeline.insert().values(
                ticket_id=queued["ticket_id"], event_id=uuid.uuid4(), event_type="TicketAssigned", at=utcnow(),
                actor="router", summary="派单至 市城市管理委员会（依据：dispatcher）", data={"lead": "M-CGW"}))
            await s.execute(timeline.insert().values(
                ticket_id=queued["ticket_id"], event_id=uuid.uuid4(), event_type="CoHandlerNoted", at=utcnow(),
                actor="王丽（M-CGW）", summary="已电话联系张伟 13800138000 核实", data={}))

        reads: list[str] = []

        def count(_conn, _cursor, statement, *_):
            if "FROM tracker_timeline" in statement:
                reads.append(statement)

        engines = [e.sync_engine for e in (store.db.engine, store.db.reading_engine) if e is not None]
        for engine in engines:
            event.listen(engine, "before_cursor_execute", count)
        try:
            page = (await client.get(f"/tracker/tickets/{queued['number']}", headers=bearer(sup))).text
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", count)
        assert len(reads) == 1, reads
        assert '>派单员 王丽</span><span>派单至 市城市管理委员会（依据：人工派单）</span>' in page  # from its data
        assert '>派单员</span><span>派单至 市城市管理委员会（依据：人工派单）</span>' in page  # from its words

        dispatcher_page = (await client.get(f"/tracker/tickets/{queued['number']}", headers=bearer(disp))).text
        assert '>派单员 王丽</span>' in dispatcher_page and "13800138000" not in dispatcher_page  # masked for them

        api = (await client.get(f"/api/v1/tracker/tickets/{queued['number']}", headers=bearer(sup))).json()
        assert {frozenset(line) for line in api["timeline"]} == {frozenset({"at", "event_type", "actor", "summary"})}
        assert "派单至 市城市管理委员会（依据：dispatcher）" in [line["summary"] for line in api["timeline"]]  # as stored

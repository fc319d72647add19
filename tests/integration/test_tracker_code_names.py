"""The tracker keeps codes; its bulletins, ledger filters and charts show the directory's names, which the
router sends with each assignment (TicketAssigned.names) and each ticket it leaves to a dispatcher
(DispatchNeeded.names)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from schemas.enums import Role
from services.router.domain.directory import Directory
from services.router.service import place_names
from services.tracker.store import code_names


def test_place_names_name_what_the_directory_knows_and_the_district_a_street_lies_in():
    d = Directory.default()
    assert place_names(d, "CM.SANITATION.GARBAGE", None, "S-01-03") == {
        "CM.SANITATION.GARBAGE": "垃圾清运与分类", "S-01-03": "解放路街道", "D-01": "临江区"}
    assert place_names(d, "NO.SUCH", "D-01", "S-99-99") == {"D-01": "临江区"}
    assert place_names(d, None, None, None) == {}


async def test_the_bulletin_ledger_and_charts_name_districts_and_categories(live):
    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {op}"}, json={
            "kind": "complaint", "subject": "小区垃圾三天没人清运", "description": "幸福里小区垃圾桶满了，气味很大。",
            "category": "CM.SANITATION.GARBAGE", "citizen": {"name": "李娜", "phone": "13912345678"},
            "location": {"district": "D-01", "street": "S-01-03", "address": "幸福里"}})
        assert r.status_code == 201, r.text
        store = live.runtime.store("tracker")
        for _ in range(300):
            async with store.db.session() as s:
                names = dict((await s.execute(select(code_names.c.code, code_names.c.name))).all())
            if len(names) == 3:
                break
            await asyncio.sleep(0.05)
        assert names == {"CM.SANITATION.GARBAGE": "垃圾清运与分类", "S-01-03": "解放路街道", "D-01": "临江区"}

        staff = {"Authorization": f"Bearer {sup}"}
        report = (await client.get("/tracker/sup/reports/monthly.json", headers=staff)).json()
        cells = [str(c) for t in report["tables"] for row in t["rows"] for c in row]
        assert "临江区" in cells and "垃圾清运与分类" in cells
        assert "D-01" not in cells and "CM.SANITATION.GARBAGE" not in cells
        trend = (await client.get("/api/v1/tracker/supervision/trends?dimension=category", headers=staff)).json()
        assert [s["name"] for s in trend["series"]] == ["垃圾清运与分类"]


async def test_a_ticket_waiting_for_a_dispatcher_is_named_by_its_district_in_the_bulletin(live):
    live.runtime.state["router"].threshold = 1.01  # nothing is certain enough: the ticket waits for a dispatcher
    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {op}"}, json={
            "kind": "complaint", "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。",
            "citizen": {"name": "周先生", "phone": "13600002222"}, "location": {"district": "D-02"}})
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        staff = {"Authorization": f"Bearer {sup}"}
        store = live.runtime.store("tracker")
        for _ in range(300):
            ticket = (await client.get(f"/api/v1/tracker/tickets/{number}", headers=staff)).json()
            async with store.db.session() as s:
                names = dict((await s.execute(select(code_names.c.code, code_names.c.name))).all())
            if ticket.get("state") == "dispatching" and names:
                break
            await asyncio.sleep(0.05)
        assert ticket["state"] == "dispatching" and names == {"D-02": "东湖区"}

        report = (await client.get("/tracker/sup/reports/monthly.json", headers=staff)).json()
        areas = next(t for t in report["tables"] if "按区域" in t["title"])
        cells = [str(c) for row in areas["rows"] for c in row]
        assert "东湖区" in cells and "D-02" not in cells


async def test_a_renamed_code_takes_its_new_name_and_a_known_one_costs_no_statement(any_settings):
    from services.tracker import handlers
    from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime

    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        async def written():
            async with store.db.session() as s:
                return dict((await s.execute(select(code_names.c.code, code_names.c.name))).all())

        async with store.transaction() as tx:
            await handlers._remember_names(tx, {"D-01": "临江区", "D-02": "望海区"})
        async with store.transaction() as tx:  # the directory renamed one district
            await handlers._remember_names(tx, {"D-01": "临江新区"})
        assert await written() == {"D-01": "临江新区", "D-02": "望海区"}
        async with store.db.session() as s:  # behind this process's back: a known name is not written again
            await s.execute(code_names.update().values(name="x"))
        async with store.transaction() as tx:
            await handlers._remember_names(tx, {"D-01": "临江新区", "D-02": "望海区"})
        assert await written() == {"D-01": "x", "D-02": "x"}
    finally:
        await _dispose(rt)


async def test_a_name_written_by_a_run_that_rolled_back_is_written_again(any_settings):
    from services.tracker import handlers
    from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime

    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await handlers._remember_names(tx, {"D-03": "清河区"})
                raise RuntimeError("the run failed after writing the name")
        async with store.transaction() as tx:  # the run again, or the code's next assignment
            await handlers._remember_names(tx, {"D-03": "清河区"})
        async with store.db.session() as s:
            assert dict((await s.execute(select(code_names.c.code, code_names.c.name))).all()) == {"D-03": "清河区"}
    finally:
        await _dispose(rt)

"""Lists and files of tickets that leave the system: contacts masked for whoever may not see them, and every
list that does show a citizen's name and number recorded in the audit trail (who, from where, which tickets),
the chain still verifying afterwards. Aggregate reports carry no personal data at all."""

from __future__ import annotations

import asyncio
import csv
import io
from argparse import Namespace
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from jiesu.audit import seal, seals_of
from jiesu.cli import cmd_audit
from schemas.enums import Role
from services.tracker.store import messaging

PHONE, NAME = "13800138000", "张伟"
SECRET_PHONE = "13900001111"  # another caller (the same caller's second call would be merged as a repeat)
CALL = {
    "kind": "complaint", "subject": "楼下工地夜间施工噪音扰民",
    "description": f"每天晚上十一点以后工地还在打桩，噪音很大。{NAME}说联系电话 138 0013 8000",
    "citizen": {"name": NAME, "phone": PHONE}, "location": {"address": "滨江路18号"},
}
REPLY = "经现场核实，该工地夜间施工未取得夜间施工许可。我委已责令施工单位停止22时后作业，并安排执法队连续三晚巡查，未再发现夜间施工。"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def _audit(live, action: str) -> list:
    async with live.runtime.store("tracker").db.session() as s:
        return (await s.execute(select(messaging.audit).where(messaging.audit.c.action == action)
                                .order_by(messaging.audit.c.id))).all()


async def _tracked(client, token: str, number: str) -> dict:
    for _ in range(300):
        r = await client.get(f"/api/v1/tracker/tickets/{number}", headers=bearer(token))
        if r.status_code == 200 and r.json()["state"] == "assigned":
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{number} never assigned")


async def test_ticket_lists_mask_contacts_for_who_may_not_see_them_and_audit_every_one_that_shows_them(live):
    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    dispatcher = await live.user("disp", Role.DISPATCHER)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        numbers = []
        for phone, confidential in ((PHONE, False), (SECRET_PHONE, True)):
            r = await client.post("/api/v1/intake/tickets", headers=bearer(op), json={
                **CALL, "citizen": {"name": NAME, "phone": phone, "confidential": confidential}})
            assert r.status_code == 201, r.text
            numbers.append(r.json()["number"])
        open_no, secret_no = numbers
        t = await _tracked(client, dispatcher, open_no)  # a dispatcher's look is masked: nothing to audit
        await _tracked(client, dispatcher, secret_no)
        lead = t["lead"]["code"]
        dept = await live.user("dept", Role.DEPARTMENT, department=lead)
        visitor = await live.user("vis", Role.VISITOR)

        by_sup = (await client.get("/api/v1/tracker/tickets", params={"limit": 100}, headers=bearer(sup))).json()
        by_dispatcher = (await client.get("/api/v1/tracker/tickets", headers=bearer(dispatcher))).json()
        by_dept = (await client.get("/api/v1/tracker/tickets", headers=bearer(dept))).json()

        # The department works the open ticket; the answer to each action shows the contact, so it is a view.
        for path, body in (("sign-for", {}), ("reply", {"reply": REPLY})):
            r = await client.post(f"/api/v1/tracker/tickets/{open_no}/{path}", json=body, headers=bearer(dept))
            assert r.status_code == 200, r.text
        visits = (await client.get("/api/v1/tracker/return-visits", headers=bearer(visitor))).json()

    assert {i["citizen"]["phone"] for i in by_sup["items"]} == {PHONE, SECRET_PHONE}  # the office sees them all
    assert by_dispatcher["total"] == 2
    for item in by_dispatcher["items"]:  # a dispatcher never needs the citizen's number or name
        assert item["citizen"]["name"] == "张*" and item["citizen"]["masked"]
        assert item["citizen"]["phone"] in ("138****8000", "139****1111")
        assert PHONE not in str(item) and SECRET_PHONE not in str(item) and NAME not in str(item)
        assert item["description"].endswith("张*说联系电话 138****8000")  # the number typed into the text too
    dept_items = {i["number"]: i for i in by_dept["items"]}
    assert dept_items[open_no]["citizen"]["phone"] == PHONE
    secret = dept_items[secret_no]  # confidential: the department sees no contact, not even in the text
    assert secret["citizen"] == {"name": "张*", "phone": "139****1111", "confidential": True, "masked": True}
    assert SECRET_PHONE not in str(secret) and NAME not in str(secret) and "0013 8000" not in str(secret)
    assert [i["citizen"]["phone"] for i in visits["items"]] == [PHONE]

    exports = await _audit(live, "export_contact")
    assert [(e.actor, e.details["export"]) for e in exports] == [
        ("sup", "api.tickets"), ("dept", "api.tickets"), ("vis", "api.return_visits")]  # none for the dispatcher
    sup_row, dept_row, visit_row = exports
    assert sup_row.address == "127.0.0.1" and sup_row.details["role"] == "supervisor"
    assert sup_row.details["filter"] == {"limit": 100, "offset": 0}
    assert sup_row.details["tickets"] == 2 and set(sup_row.details["numbers"]) == {open_no, secret_no}
    assert dept_row.details["numbers"] == [open_no]  # the confidential one was masked for the department
    assert visit_row.details["numbers"] == [open_no]
    assert all(p not in str(e.details) for e in exports for p in (PHONE, SECRET_PHONE, NAME))
    views = await _audit(live, "view_contact")
    assert [(v.actor, str(v.ticket_id)) for v in views] == [("dept", t["ticket_id"])] * 2  # sign-for, reply

    # `jiesu audit verify` chains the new rows and finds the trail intact.
    store = live.runtime.store("tracker")
    await seal(store.db, messaging.audit, settle=timedelta(0))
    assert await asyncio.to_thread(cmd_audit, Namespace(action="verify", services=["tracker"]), live.settings) == 0
    async with store.db.session() as s:  # the rows the chain covers now, none of them changed
        covered = await s.scalar(select(func.max(seals_of(messaging.audit).c.last_id)))
    assert all(e.id <= covered for e in await _audit(live, "export_contact"))


async def test_a_phone_search_records_the_search_and_the_contacts_it_showed_with_the_number_masked(live):
    op = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        r = await client.post("/api/v1/intake/tickets", headers=bearer(op), json=CALL)
        number = r.json()["number"]
        await _tracked(client, op, number)
        found = (await client.get("/api/v1/tracker/tickets", params={"phone": PHONE}, headers=bearer(op))).json()
    assert [i["number"] for i in found["items"]] == [number]
    (search,), (export,) = await _audit(live, "search_by_phone"), await _audit(live, "export_contact")
    assert search.details["phone"] == export.details["filter"]["phone"] == "138****8000"
    assert export.actor == "op" and export.details["numbers"] == [number]


async def test_the_bulletin_files_hold_no_personal_data_and_are_not_audited(live):
    from openpyxl import load_workbook

    op = await live.user("op", Role.OPERATOR)
    sup = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        r = await client.post("/api/v1/intake/tickets", headers=bearer(op), json=CALL)
        await _tracked(client, op, r.json()["number"])
        files = {}
        for kind in ("monthly", "annual"):
            for ext in ("xlsx", "csv"):
                got = await client.get(f"/tracker/sup/reports/{kind}.{ext}", headers=bearer(sup))
                assert got.status_code == 200, got.text
                files[kind, ext] = got.content
    for (kind, ext), body in files.items():
        if ext == "xlsx":
            cells = [c for ws in load_workbook(io.BytesIO(body)) for row in ws.iter_rows(values_only=True)
                     for c in row if c is not None]
        else:
            cells = [c for row in csv.reader(io.StringIO(body.decode("utf-8-sig"))) for c in row]
        text = " ".join(str(c) for c in cells)
        assert "受理诉求" in text, kind  # the counts are there …
        assert PHONE not in text and "8000" not in text and NAME not in text and "滨江路" not in text, (kind, ext)
    assert await _audit(live, "export_contact") == []  # … and nothing personal, so nothing to audit

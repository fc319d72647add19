"""Answering a supervision order (督办回复) and closing it (办结销号) are changes of state like issuing and
escalating it: each leaves a row in the append-only audit trail, saying who did it, from where, to which
order and what changed, over the real pages.

The texts themselves (often naming the citizen) stay on the order and the ticket's timeline; the trail,
which nobody may ever alter or delete, keeps their SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import httpx
from sqlalchemy import select

from jiesu.audit import verify
from schemas.enums import Role
from schemas.events import utcnow
from tests.integration.test_tracker_escalation import UNIT, _order, _order_row

FIRST = "已派人修复路灯，市民张伟（13800138000）确认"
SECOND = "路灯已全部修复并加装防护罩"
NOTE = "经核实属实，予以销号"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_answering_again_and_closing_an_order_are_audited_with_who_from_where_and_what_changed(live):
    rt = live.runtime
    store = rt.store("tracker")
    now = utcnow()
    _, order_no = await _order(rt, 1, now - dt.timedelta(days=10), day=f"{now:%Y%m%d}")  # overdue: answered late
    staff = await live.user("cgw", Role.DEPARTMENT, department=UNIT)
    office = await live.user("sup", Role.SUPERVISOR)
    due = (await _order_row(rt, order_no)).due_at

    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {staff}"}) as dept:
        for text in (FIRST, SECOND):
            r = await dept.post(f"/tracker/sup/orders/{order_no}/respond", data={"response": text},
                                follow_redirects=False)
            assert r.status_code == 303 and "已回复" in httpx.URL(r.headers["location"]).params["done"]
    answered = await _order_row(rt, order_no)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        r = await client.post(f"/tracker/sup/orders/{order_no}/close", data={"note": NOTE}, follow_redirects=False)
        assert "已销号" in httpx.URL(r.headers["location"]).params["done"]
    order = await _order_row(rt, order_no)

    audit = store.tables.audit
    async with store.db.session() as s:
        rows = (await s.execute(select(audit).where(audit.c.action.in_(("SupervisionResponded", "SupervisionClosed")))
                                .order_by(audit.c.id))).all()
    assert [(a.action, a.actor, a.address, a.ticket_id) for a in rows] == [
        ("SupervisionResponded", "cgw", "127.0.0.1", order.ticket_id),
        ("SupervisionResponded", "cgw", "127.0.0.1", order.ticket_id),
        ("SupervisionClosed", "sup", "127.0.0.1", order.ticket_id)]
    first, second, closed = (a.details for a in rows)
    assert first == {"order_no": order_no, "by": "cgw", "unit_code": UNIT, "level": "normal",
                     "due_at": due.isoformat(), "late": True, "response_sha256": _sha(FIRST)}
    # Answered again before the closure: the row names the answer it replaced, and who gave it when.
    assert second == {**first, "response_sha256": _sha(SECOND), "replaced_sha256": _sha(FIRST),
                      "replaced_by": "cgw", "replaced_at": second["replaced_at"]}
    assert dt.datetime.fromisoformat(second["replaced_at"]) < answered.responded_at
    assert closed == {"order_no": order_no, "by": "sup", "unit_code": UNIT, "level": "normal",
                      "responded_by": "cgw", "responded_at": answered.responded_at.isoformat(),
                      "response_sha256": _sha(SECOND), "note_sha256": _sha(NOTE)}
    assert (order.response, order.closing_note) == (SECOND, NOTE)
    kept = json.dumps([a.details for a in rows], ensure_ascii=False)
    assert "13800138000" not in kept and "张伟" not in kept and NOTE not in kept

    # The new rows chain like every other (the live system's sealer may or may not have passed yet).
    assert (await verify(store.db, audit)).ok


async def test_issuing_an_order_is_audited_with_the_order_its_level_unit_and_date_but_not_the_reason(live):
    rt = live.runtime
    store = rt.store("tracker")
    number, _ = await _order(rt, 2, utcnow() - dt.timedelta(days=3))  # a ticket of UNIT, already under one order
    office = await live.user("sup", Role.SUPERVISOR)
    reason = "市民张伟（13800138000）多次来电反映仍未修复"
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {office}"}) as client:
        r = await client.post(f"/api/v1/tracker/tickets/{number}/supervise", json={"level": "key", "reason": reason})
        assert r.status_code == 200, r.text
    audit = store.tables.audit
    async with store.db.session() as s:
        rows = (await s.execute(select(audit).where(audit.c.action == "SupervisionOrdered")
                                .order_by(audit.c.id))).all()
    issued = rows[-1]
    order = await _order_row(rt, f"DB-{number[6:]}-2")
    assert (issued.actor, issued.address, issued.ticket_id) == ("sup", "127.0.0.1", order.ticket_id)
    assert issued.details == {"order_no": order.order_no, "number": number, "level": "key", "unit_code": UNIT,
                              "due_at": order.due_at.isoformat(), "by": "sup"}
    assert rows[0].details["by"] == "system" and rows[0].details["level"] == "normal"  # the timer's, alike
    kept = json.dumps(issued.details, ensure_ascii=False)
    assert "13800138000" not in kept and "张伟" not in kept

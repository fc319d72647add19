"""A hand-made month (October 2026, Asia/Shanghai) of tickets with known outcomes, for the
supervision office's rates and reports. The expected figures are worked out by hand in
test_sup_rates.py and test_sup_reports.py; change a ticket here and they must change there.

Unit A (M-CGW) and unit B (M-ZJW). Edge cases: a ticket reopened (重办) and then
satisfied, one closed as unreachable, one dissatisfied for reasons outside the
department, one paused, one merged, one answered directly, one returned by A and
re-assigned to B, one visited in October but assigned in September, a citizen's online
"dissatisfied" still waiting for the visitor's call, and one whose sign-for time has not
come yet.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib

from services.tracker.store import return_visits, supervision_orders, tickets, unit_log

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 5, 2, 0, tzinfo=UTC)  # the instant the figures are computed at
T0 = dt.datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # Monday 12 October, 10:00 in Beijing
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
A, A_NAME = "M-CGW", "市城市管理委员会"
B, B_NAME = "M-ZJW", "市住房和城乡建设委员会"


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.sup-month.jiesu")


# One ticket row: assigned at `at` (received ten minutes before), signed for in time ("ok"), late ("late") or
# not at all (None), replied `replied_h` hours after assignment (late=True puts the deadline just before it).
def _ticket(name, unit, state, *, channel="hotline", kind="complaint", district="D-01", street="S-01-01",
            category="C-NOISE", at=T0, signed="ok", replied_h=None, late=False, reopens=0, outcome=None,
            sign_due=None, reply_due=None, subject="夜间施工噪音扰民", address="解放路18号"):
    lead = {"A": (A, A_NAME), "B": (B, B_NAME)}.get(unit, (None, None))
    sign_for_due = sign_due or at + 2 * H
    reply_due_ = reply_due or at + 7 * D
    replied_at = at + replied_h * H if replied_h is not None else None
    if replied_at is not None and late:
        reply_due_ = replied_at - H
    return {
        "ticket_id": _id(name), "number": f"12345-20261012-{zlib.crc32(name.encode()) % 900000 + 100000:06d}",
        "state": state, "channel": channel, "kind": kind, "urgency": "normal", "subject": subject,
        "description": subject + "，请尽快处理。", "citizen_name": "张三", "citizen_phone": "13800138000",
        "confidential": False, "district": district, "street": street, "address": address, "category": category,
        "lead_code": lead[0], "lead_name": lead[1], "co_handlers": [],
        "received_at": at - dt.timedelta(minutes=10),
        "assigned_at": at if lead[0] else None, "sign_for_due": sign_for_due if lead[0] else None,
        "reply_due": reply_due_ if lead[0] else None, "warn_at": (reply_due_ - D) if lead[0] else None,
        "signed_for_at": (at + H if signed == "ok" else at + 3 * H if signed == "late" else None) if lead[0] else None,
        "replied_at": replied_at, "reply": "经核实已处理完毕，已告知市民。" if replied_at else None,
        "reopen_count": reopens, "reopened": bool(reopens), "outcome": outcome,
        "closed_at": (replied_at + D) if state == "closed" else replied_at if state == "answered_directly" else None, "updated_at": NOW,
        "returns_count": 0, "dissatisfied_count": reopens, "supervised": False,
    }


TICKETS = [
    _ticket("a1", "A", "closed", replied_h=24, outcome="satisfied"),
    _ticket("a2", "A", "closed", signed="late", replied_h=200, late=True, outcome="basically_satisfied",
            channel="mailbox", kind="help", district="D-02", street="S-02-01", category="C-ROAD",
            subject="人行道破损多处", address="人民路5号"),
    _ticket("a3", "A", "closed", replied_h=48, reopens=1, outcome="satisfied", channel="online"),
    _ticket("a4", "A", "closed", replied_h=10, outcome="unreachable", channel="email", kind="consultation"),
    _ticket("a5", "A", "closed", replied_h=30, outcome="dissatisfied", channel="in_person", kind="report",
            district="D-02", street="S-02-01", category="C-ROAD", subject="占道经营"),
    _ticket("a6", "A", "signed_for", reply_due=NOW - 2 * D),
    _ticket("a7", "A", "assigned", signed=None, reply_due=NOW - 3 * D, channel="open311"),
    _ticket("a8", "A", "waiting_citizen", reply_due=NOW - D, channel="other", kind="suggestion"),
    _ticket("a9", "A", "merged", channel="hotline"),
    _ticket("a10", None, "answered_directly", replied_h=0, kind="consultation", category="C-POLICY", subject="社保卡如何补办"),
    _ticket("a11", "A", "replied", replied_h=8, channel="online"),
    _ticket("r1", "B", "closed", at=T0 + 2 * D, replied_h=20, outcome="satisfied", channel="hotline",
            district="D-03", street="S-03-02", category="C-BUILD", subject="小区电梯故障"),
    _ticket("b2", "B", "contacted", at=T0 + 3 * D, reply_due=NOW + 60 * D, kind="help", district="D-03",
            street="S-03-02", category="C-BUILD", subject="楼道漏水"),
    _ticket("b3", "B", "assigned", at=dt.datetime(2026, 10, 30, 2, 0, tzinfo=UTC), signed=None,
            sign_due=NOW + 60 * D, reply_due=NOW + 70 * D, district="D-03", street="S-03-02", category="C-BUILD",
            subject="楼道漏水严重"),
    # Assigned in September, visited in October: counts in October's visits, not in its cohort.
    _ticket("s1", "A", "closed", at=dt.datetime(2026, 9, 25, 2, 0, tzinfo=UTC), replied_h=30, outcome="satisfied"),
]


def _visit(name, outcome, at, unit=A, caused=None, by="visitor"):
    return {"ticket_id": _id(name), "outcome": outcome, "department_caused": caused, "unit_code": unit,
            "comment": "", "by": by, "at": at}


VISITS = [
    _visit("a1", "satisfied", T0 + 8 * D),
    _visit("a2", "basically_satisfied", T0 + 10 * D),
    _visit("a3", "dissatisfied", T0 + 4 * D, caused=True),
    _visit("a3", "satisfied", T0 + 10 * D),
    *(_visit("a4", "unreachable", T0 + (2 + i) * D) for i in range(3)),
    _visit("a5", "dissatisfied", T0 + 5 * D, caused=False),
    _visit("a11", "dissatisfied", T0 + 2 * D, by="citizen"),  # the citizen's link; the visitor has not called yet
    _visit("r1", "satisfied", T0 + 5 * D, unit=B),
    _visit("s1", "satisfied", dt.datetime(2026, 10, 8, 2, 0, tzinfo=UTC)),
]

LOG = [
    *({"ticket_id": _id(n), "unit_code": A, "kind": "assigned", "at": T0}
      for n in ("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a11", "r1")),
    {"ticket_id": _id("r1"), "unit_code": A, "kind": "returned", "at": T0 + D},
    {"ticket_id": _id("r1"), "unit_code": B, "kind": "assigned", "at": T0 + 2 * D},
    {"ticket_id": _id("b2"), "unit_code": B, "kind": "assigned", "at": T0 + 3 * D},
    {"ticket_id": _id("b3"), "unit_code": B, "kind": "assigned", "at": dt.datetime(2026, 10, 30, 2, 0, tzinfo=UTC)},
    {"ticket_id": _id("s1"), "unit_code": A, "kind": "assigned", "at": dt.datetime(2026, 9, 25, 2, 0, tzinfo=UTC)},
]

ORDERS = [
    {"order_no": "DB-a6-1", "ticket_id": _id("a6"), "level": "normal", "unit_code": A, "reason": "超期未答复",
     "due_at": T0 + 12 * D, "created_at": T0 + 9 * D, "by": "system", "response": None, "responded_at": None,
     # Marked escalated so that the live system's escalation job leaves this October history as it is.
     "responded_by": None, "escalated_at": T0 + 12 * D},
    {"order_no": "DB-a7-1", "ticket_id": _id("a7"), "level": "key", "unit_code": A, "reason": "超期未签收",
     "due_at": T0 + 13 * D, "created_at": T0 + 10 * D, "by": "sup", "response": "已安排专人办理",
     "responded_at": T0 + 11 * D, "responded_by": "cgw", "escalated_at": None},
]


def number_of(name: str) -> str:
    return next(t["number"] for t in TICKETS if t["ticket_id"] == _id(name))


async def seed(session) -> None:
    await session.execute(tickets.insert(), TICKETS)
    await session.execute(return_visits.insert(), VISITS)
    await session.execute(unit_log.insert(), LOG)
    await session.execute(supervision_orders.insert(), ORDERS)

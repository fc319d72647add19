"""The department's and the return-visit operator's work through the HTTP API, over the real broker.

A hotline call is routed to a department, which signs for it, pauses the clock while
waiting on the citizen, asks for an extension, replies; the return visit reopens it and
a second dissatisfaction puts it under supervision. Refused actions answer 409 / 422
with Chinese and English, and change nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from sqlalchemy import select, update

from schemas.enums import Role
from schemas.events import Envelope
from tests.conftest import DEMO_PASSWORD
from services.tracker.actions import UNREACHABLE_CALL_GAP
from services.tracker.domain.sla import compute_deadlines
from services.tracker.store import return_visits, tickets

CALL = {
    "kind": "complaint",
    "subject": "楼下工地夜间施工噪音扰民",
    "description": "每天晚上十一点以后工地还在打桩，噪音很大，孩子睡不着。联系电话13800138000",
    "citizen": {"name": "张伟", "phone": "13800138000"},
    "location": {"address": "滨江路18号"},
}
REPLY = "经现场核实，该工地夜间施工未取得夜间施工许可。我委已责令施工单位停止22时后作业，并安排执法队连续三晚巡查，未再发现夜间施工。"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Desk:
    """The people of one test and a client to act as them."""

    def __init__(self, live, client: httpx.AsyncClient) -> None:
        self.live = live
        self.client = client
        self.tokens: dict[str, str] = {}

    async def as_(self, name: str, role: Role, department: str | None = None) -> str:
        if name not in self.tokens:
            self.tokens[name] = await self.live.user(name, role, department=department)
        return self.tokens[name]

    async def post_ticket(self, **changes) -> dict:
        op = await self.as_("op", Role.OPERATOR)
        r = await self.client.post("/api/v1/intake/tickets", json={**CALL, **changes}, headers=bearer(op))
        assert r.status_code == 201, r.text
        return await self.wait(r.json()["number"], "assigned")

    async def wait(self, number: str, state: str, timeout: float = 15) -> dict:
        sup = await self.as_("sup", Role.SUPERVISOR)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            r = await self.client.get(f"/api/v1/tracker/tickets/{number}", headers=bearer(sup))
            if r.status_code == 200 and r.json()["state"] == state:
                return r.json()
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{number} not {state}: {r.text[:300]}")
            await asyncio.sleep(0.05)

    async def act(self, who: str, number: str, path: str, body: dict | None = None, status: int = 200) -> dict:
        r = await self.client.post(f"/api/v1/tracker/tickets/{number}/{path}", json=body or {},
                                   headers=bearer(self.tokens[who]))
        assert r.status_code == status, r.text
        return r.json()


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


async def outbox_events(live, ticket_id: str | None = None) -> list[Envelope]:
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        stmt = select(store.tables.outbox.c.value).order_by(store.tables.outbox.c.id)
        rows = (await s.execute(stmt)).scalars().all()
    envelopes = [Envelope.from_bytes(v) for v in rows]
    return [e for e in envelopes if ticket_id is None or str(e.ticket_id) == ticket_id]


async def test_department_signs_for_pauses_and_replies_and_the_clock_moves_by_the_pause(desk, live):
    t = await desk.post_ticket()
    lead = t["lead"]["code"]
    await desk.as_("dept", Role.DEPARTMENT, department=lead)
    signed = await desk.act("dept", t["number"], "sign-for")
    assert signed["state"] == "signed_for" and signed["signed_for_at"]
    assert signed["timeline"][-1]["event_type"] == "TicketAccepted"

    # Waiting on the citizen: put the start of the clock and of the pause in the past, on working time,
    # so that the pause certainly swallowed working time whatever hour the test runs.
    calendar = live.runtime.state["tracker.clocks"].calendar
    policy = live.runtime.state["tracker.clocks"].policy
    paused = await desk.act("dept", t["number"], "wait-citizen", {"note": "请市民补充施工地点照片"})
    assert paused["state"] == "waiting_citizen"
    start = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
    pause_start = dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.UTC)  # Tuesday 10:00
    before = compute_deadlines(policy, calendar, start, "complaint", "normal")
    async with live.runtime.store("tracker").db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == t["number"]).values(
            clock_started_at=start, paused_at=pause_start, reply_due=before.reply_due, warn_at=before.warn_at))
    refused = await desk.act("dept", t["number"], "reply", {"reply": REPLY}, status=409)
    assert "待补充材料" in refused["error"]["zh"] and refused["error"]["en"]

    resumed = await desk.act("dept", t["number"], "resume")
    # Back to where it paused from: signed for, the citizen not yet contacted.
    assert resumed["state"] == "signed_for" and resumed["paused_since"] is None and resumed["contacted_at"] is None
    async with live.runtime.store("tracker").db.session() as s:
        row = (await s.execute(select(tickets).where(tickets.c.number == t["number"]))).first()
    (stored_start, resumed_at), = row.pauses
    assert dt.datetime.fromisoformat(stored_start) == pause_start
    left = calendar.working_seconds_between(pause_start, before.reply_due)
    expected = calendar.add_working_seconds(dt.datetime.fromisoformat(resumed_at), left)
    assert dt.datetime.fromisoformat(resumed["reply_due"]) == expected > before.reply_due
    assert any(e.event_type == "ClockPaused" for e in await outbox_events(live, t["ticket_id"]))
    assert any(e.event_type == "ClockResumed" for e in await outbox_events(live, t["ticket_id"]))


async def test_extension_is_approved_once_and_a_second_beyond_the_limit_is_refused(desk, live):
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.as_("sup", Role.SUPERVISOR)
    await desk.act("dept", t["number"], "sign-for")
    calendar = live.runtime.state["tracker.clocks"].calendar
    due = dt.datetime.fromisoformat(t["reply_due"])
    new_day = calendar.add_working_days(due, 3).astimezone(calendar.timezone).date()

    # Only the supervision office decides; the department cannot approve its own request.
    asked = await desk.act("dept", t["number"], "extension", {"reason": "需协调住建部门联合执法", "new_due": new_day.isoformat()})
    assert asked["state"] == "extension_requested"
    again = await desk.act("dept", t["number"], "extension", {"reason": "再申请", "new_due": new_day.isoformat()},
                           status=409)
    assert again["error"]["code"] == "transition_refused"
    await desk.act("dept", t["number"], "extension/decision", {"approved": True}, status=403)
    decided = await desk.act("sup", t["number"], "extension/decision", {"approved": True, "note": "同意"})
    assert decided["state"] == "signed_for" and decided["extensions"] == [3]  # as it was when it asked
    assert dt.datetime.fromisoformat(decided["reply_due"]) == calendar.end_of_working_day(new_day)

    # A complaint may take 15 working days in all: one extension, and it has been used.
    later = calendar.add_working_days(dt.datetime.fromisoformat(decided["reply_due"]), 2)
    second = await desk.act("dept", t["number"], "extension",
                            {"reason": "还需时间", "new_due": later.astimezone(calendar.timezone).date().isoformat()},
                            status=422)
    assert (second["error"]["code"], second["error"]["zh"], second["error"]["en"]) == (
        "extension_not_allowed", "该事项最多延期 1 次，已用完。",
        "This matter can be extended at most 1 time(s); none is left.")
    types = [e.event_type for e in await outbox_events(live, t["ticket_id"])]
    assert types.count("ExtensionRequested") == 1 and types.count("ExtensionDecided") == 1


async def test_return_sends_the_ticket_back_to_the_router_with_reason_and_text(desk, live):
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    bad = await desk.act("dept", t["number"], "return", {"reason_code": "whatever", "reason": "不归我们管辖的事项"},
                         status=422)
    assert bad["error"]["zh"]
    returned = await desk.act("dept", t["number"], "return",
                              {"reason_code": "other_unit", "reason": "该工地位于开发区，应由开发区管委会处理"})
    assert returned["timeline"][-1]["event_type"] == "TicketReturned"
    sent = [e for e in await outbox_events(live, t["ticket_id"]) if e.event_type == "TicketReturned"]
    assert len(sent) == 1
    payload = sent[0].parsed()
    assert payload.reason_code == "other_unit" and payload.returns_so_far == 1
    assert payload.subject == CALL["subject"] and payload.unit.code == t["lead"]["code"]
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        topic = (await s.execute(select(store.tables.outbox.c.topic).where(
            store.tables.outbox.c.event_id == sent[0].event_id))).scalar_one()
    assert topic == "tickets.returned"


async def test_empty_or_boilerplate_replies_are_refused(desk):
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.act("dept", t["number"], "sign-for")
    for text in ("已处理", "已收到，已处理。已办理！", "   好的 谢谢   "):
        r = await desk.act("dept", t["number"], "reply", {"reply": text}, status=422)
        assert r["error"]["code"] == "reply_too_thin" and "套话" in r["error"]["zh"]
    assert (await desk.wait(t["number"], "signed_for"))["reply"] is None


async def test_dissatisfied_visit_reopens_with_three_working_days_and_a_second_orders_supervision(desk, live):
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.as_("visitor", Role.VISITOR)
    calendar = live.runtime.state["tracker.clocks"].calendar
    await desk.act("dept", t["number"], "sign-for")
    replied = await desk.act("dept", t["number"], "reply", {"reply": REPLY})
    assert replied["state"] == "replied" and replied["visit_method"] == "phone"
    queue = (await desk.client.get("/api/v1/tracker/return-visits", headers=bearer(desk.tokens["visitor"]))).json()
    assert t["number"] in [i["number"] for i in queue["items"]]
    # The department cannot record a visit about itself.
    await desk.act("dept", t["number"], "return-visit", {"outcome": "satisfied"}, status=403)
    cause_missing = await desk.act("visitor", t["number"], "return-visit", {"outcome": "dissatisfied"}, status=422)
    assert cause_missing["error"]["code"] == "cause_required"

    reopened = await desk.act("visitor", t["number"], "return-visit",
                              {"outcome": "dissatisfied", "department_caused": True, "comment": "晚上仍在施工"})
    assert reopened["state"] == "reopened" and reopened["reopened"]
    reopen_event = [e for e in await outbox_events(live, t["ticket_id"]) if e.event_type == "TicketReopened"][0]
    assert dt.datetime.fromisoformat(reopened["reply_due"]) == calendar.add_working_days(reopen_event.occurred_at, 3)
    assert not reopened["supervised"]
    assert reopened["message"].startswith(f"工单 {t['number']} 已登记：不满意（承办单位原因），已退回")
    assert "重办" in reopened["message"] and "重点督办" not in reopened["message"]

    await desk.act("dept", t["number"], "reply", {"reply": REPLY + "重办：已对施工单位立案处罚。"})
    # Reopened once and replied again: the pages that list or show it tag it 重办 beside its state (已答复).
    redo = '<span class="tag">重办</span>'
    for who, path in (("dept", f"/tracker/tickets/{t['number']}"), ("dept", "/tracker/inbox?tab=replied"),
                      ("visitor", "/tracker/visits")):
        page = await desk.client.get(path, headers=bearer(desk.tokens[who]))
        assert page.status_code == 200 and redo in page.text, path
    second = await desk.act("visitor", t["number"], "return-visit",
                            {"outcome": "dissatisfied", "department_caused": True, "comment": "还是有噪音"})
    assert second["state"] == "reopened" and second["supervised"]
    assert second["message"].endswith("这是第 2 次不满意，已下达重点督办单。")  # as the visit page says it
    orders = [e.parsed() for e in await outbox_events(live, t["ticket_id"]) if e.event_type == "SupervisionOrdered"]
    assert len(orders) == 1 and orders[0].level == "key" and orders[0].order_no.startswith("DB-")

    await desk.act("dept", t["number"], "reply", {"reply": REPLY + "第三次：施工单位已撤场，现场恢复安静。"})
    closed = await desk.act("visitor", t["number"], "return-visit", {"outcome": "satisfied"})
    assert closed["state"] == "closed" and closed["outcome"] == "satisfied"
    assert redo in (await desk.client.get(f"/tracker/tickets/{t['number']}", headers=bearer(desk.tokens["dept"]))).text
    assert closed["message"] == f"工单 {t['number']} 已登记：满意，工单已办结。"
    assert [e.parsed().outcome for e in await outbox_events(live, t["ticket_id"]) if e.event_type == "TicketClosed"] \
        == ["satisfied"]


async def test_a_dispatch_made_by_hand_names_its_dispatcher_in_the_tickets_timeline(desk, live):
    """派单员 王丽, not only 派单员: the router notes who dispatched it; the page shows their display name."""
    await live.runtime.identity.create_user("wangli", DEMO_PASSWORD, Role.DISPATCHER, display_name="王丽")
    disp = await desk.as_("wangli", Role.DISPATCHER)
    op = await desk.as_("op", Role.OPERATOR)
    vague = {**CALL, "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。"}
    r = await desk.client.post("/api/v1/intake/tickets", json=vague, headers=bearer(op))
    assert r.status_code == 201, r.text
    queued = await desk.wait(r.json()["number"], "dispatching")
    r = await desk.client.post(f"/api/v1/router/tickets/{queued['ticket_id']}/dispatch", json={"unit": "M-CGW"},
                               headers=bearer(disp))
    assert r.status_code == 200, r.text
    await desk.wait(queued["number"], "assigned")
    page = (await desk.client.get(f"/tracker/tickets/{queued['number']}", headers=bearer(desk.tokens["sup"]))).text
    assert '>派单员 王丽</span><span>派单至 市城市管理委员会（依据：人工派单）</span>' in page


async def wait_out_the_call_gap(live, number: str) -> None:
    """The ticket's unanswered calls moved back by the gap unanswered calls must keep (UNREACHABLE_CALL_GAP), as if
    the visitor had waited it out before calling again."""
    async with live.runtime.store("tracker").db.session() as s:
        ticket_id = await s.scalar(select(tickets.c.ticket_id).where(tickets.c.number == number))
        for visit in (await s.execute(select(return_visits).where(return_visits.c.ticket_id == ticket_id))).all():
            await s.execute(update(return_visits).where(return_visits.c.id == visit.id)
                            .values(at=visit.at - UNREACHABLE_CALL_GAP))


async def test_three_unreachable_attempts_close_the_ticket_as_unreachable(desk):
    t = await desk.post_ticket()
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.as_("visitor", Role.VISITOR)
    await desk.act("dept", t["number"], "sign-for")
    await desk.act("dept", t["number"], "reply", {"reply": REPLY})
    for attempt in (1, 2):
        r = await desk.act("visitor", t["number"], "return-visit", {"outcome": "unreachable"})
        assert r["state"] == "replied" and r["visit_attempts"] == attempt
        assert f"（第 {attempt} 次，共 3 次后按联系不上办结），请另选时间再拨。" in r["message"]
        await wait_out_the_call_gap(desk.live, t["number"])
    r = await desk.act("visitor", t["number"], "return-visit", {"outcome": "unreachable"})
    assert r["state"] == "closed" and r["outcome"] == "unreachable"
    assert r["message"].endswith("（第 3 次），已按联系不上办结，不计入满意率。")
    assert (await desk.act("visitor", t["number"], "return-visit", {"outcome": "satisfied"}, status=409))["error"]


async def test_online_citizen_rates_the_reply_once_through_a_signed_link(desk, live):
    t = await desk.post_ticket()
    # Intake decides the channel; make this one an online message for the tracker.
    async with live.runtime.store("tracker").db.session() as s:
        await s.execute(update(tickets).where(tickets.c.number == t["number"]).values(channel="online"))
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.act("dept", t["number"], "sign-for")
    replied = await desk.act("dept", t["number"], "reply", {"reply": REPLY})
    assert replied["visit_method"] == "link"
    due = [e.parsed() for e in await outbox_events(live, t["ticket_id"]) if e.event_type == "ReturnVisitDue"][0]
    assert due.method == "link" and "/tracker/rate/" in due.link
    path = "/tracker/rate/" + due.link.rsplit("/tracker/rate/", 1)[1]

    forged = await desk.client.get(path[:-3] + "abc")
    assert forged.status_code == 404
    page = await desk.client.get(path)
    assert page.status_code == 200 and "承办单位答复" in page.text and "13800138000" not in page.text
    rated = await desk.client.post(path, data={"outcome": "satisfied", "comment": "谢谢"})
    assert rated.status_code == 200 and "感谢您的评价" in rated.text
    again = await desk.client.post(path, data={"outcome": "dissatisfied"})
    assert again.status_code == 410
    closed = await desk.wait(t["number"], "closed")
    assert closed["outcome"] == "satisfied"


async def test_department_loses_access_once_the_returned_ticket_is_reassigned(desk, live):
    t = await desk.post_ticket()
    lead = t["lead"]["code"]
    await desk.as_("dept", Role.DEPARTMENT, department=lead)
    await desk.act("dept", t["number"], "return", {"reason_code": "other_unit", "reason": "应由开发区管委会处理此事"})
    # The router's re-dispatch arrives as a new assignment to another unit.
    from schemas.events import RoutingReason, TicketAssigned, UnitRef
    from services.tracker import handlers

    store = live.runtime.store("tracker")
    other = UnitRef(code="D-02", name="另一单位")
    envelope = Envelope.wrap(TicketAssigned(number=t["number"], kind="complaint", lead=other,
                                            reason=RoutingReason(method="reroute")),
                             ticket_id=t["ticket_id"], producer="router")
    async with store.transaction() as tx:
        await handlers.on_assigned(tx, envelope, envelope.parsed(), live.runtime.state["tracker.clocks"])
    gone = await desk.client.get(f"/api/v1/tracker/tickets/{t['number']}", headers=bearer(desk.tokens["dept"]))
    assert gone.status_code == 404
    await desk.act("dept", t["number"], "sign-for", status=404)


@pytest.mark.postgres
async def test_the_whole_department_path_on_postgresql(pg_settings):
    """The same actions with row locks (SELECT … FOR UPDATE) on PostgreSQL, in-process."""
    from jiesu.app import build_app
    from jiesu.config import SERVICES
    from jiesu.embedded_broker import EmbeddedBroker
    from jiesu.migrate import upgrade_all

    await asyncio.to_thread(upgrade_all, pg_settings)
    broker = EmbeddedBroker()
    await broker.start(partitions=3)
    app = build_app(pg_settings, list(SERVICES), bootstrap=broker.bootstrap)
    try:
        async with app.router.lifespan_context(app):
            identity = app.state.runtime.identity
            for name, role, unit in (("op", Role.OPERATOR, None), ("dept", Role.DEPARTMENT, "M-CGW"),
                                     ("visitor", Role.VISITOR, None)):
                await identity.create_user(name, "password-123", role, department=unit)
            tokens = {n: await identity.create_token(n, "t") for n in ("op", "dept", "visitor")}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://jiesu.test") as client:
                r = await client.post("/api/v1/intake/tickets", json=CALL, headers=bearer(tokens["op"]))
                number = r.json()["number"]
                for _ in range(300):
                    t = await client.get(f"/api/v1/tracker/tickets/{number}", headers=bearer(tokens["dept"]))
                    if t.status_code == 200 and t.json()["state"] == "assigned":
                        break
                    await asyncio.sleep(0.05)

                async def act(who, path, body=None, status=200):
                    r = await client.post(f"/api/v1/tracker/tickets/{number}/{path}", json=body or {},
                                          headers=bearer(tokens[who]))
                    assert r.status_code == status, r.text
                    return r.json()

                results = await asyncio.gather(*(client.post(f"/api/v1/tracker/tickets/{number}/sign-for",
                                                             headers=bearer(tokens["dept"])) for _ in range(5)))
                # Five clicks at once: one signs for it, the others are told it is already signed for.
                assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409]
                await act("dept", "wait-citizen", {"note": "请补充照片"})
                await act("dept", "resume")
                await act("dept", "reply", {"reply": REPLY})
                closed = await act("visitor", "return-visit", {"outcome": "basically_satisfied"})
                assert closed["state"] == "closed" and closed["outcome"] == "basically_satisfied"
                kinds = [e["event_type"] for e in closed["timeline"]]
                assert kinds.count("TicketAccepted") == 1 and kinds[-1] == "TicketClosed"
    finally:
        broker.stop()

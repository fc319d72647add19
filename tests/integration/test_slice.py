"""The vertical slice in one process over the real embedded broker, on SQLite and PostgreSQL.

An operator logs a hotline call over HTTP; the ticket is routed by a rule and the tracker
shows it assigned with a working-day deadline; retries are idempotent; department staff
see only their own unit's tickets.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import text

from bench.tickets import generate
from jiesu.app import build_app
from jiesu.config import SERVICES
from jiesu.consumer import RUNS
from jiesu.db import Database
from jiesu.embedded_broker import EmbeddedBroker
from jiesu.identity import IdentityStore
from jiesu.migrate import upgrade_all
from schemas.enums import Role
from services.router.domain.directory import Directory

CALL = {
    "kind": "complaint",
    "subject": "楼下工地夜间施工噪音扰民",
    "description": "每天晚上十一点以后工地还在打桩，噪音很大，孩子睡不着。",
    "citizen": {"name": "张伟", "phone": "13800138000"},
    "location": {"address": "滨江路18号"},
}


@asynccontextmanager
async def running_system(settings):
    await asyncio.to_thread(upgrade_all, settings)
    broker = EmbeddedBroker()
    await broker.start(partitions=3)
    app = build_app(settings, list(SERVICES), bootstrap=broker.bootstrap)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://jiesu.test") as client:
                yield app, client
    finally:
        broker.stop()


async def make_token(settings, username: str, role: Role, department: str | None = None) -> str:
    await asyncio.to_thread(upgrade_all, settings)
    store = IdentityStore(Database(settings.database_url("identity")))
    try:
        await store.create_user(username, "password-123", role, department=department)
        return await store.create_token(username, "test")
    finally:
        await store.db.dispose()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(client, token, ticket_id, state="assigned", timeout=15.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(f"/api/v1/tracker/tickets/{ticket_id}", headers=bearer(token))
        if r.status_code == 200 and r.json()["state"] == state:
            return r.json()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"ticket not {state} in {timeout}s: {r.status_code} {r.text[:300]}")
        await asyncio.sleep(0.05)


async def test_hotline_call_reaches_the_tracker_assigned_with_a_deadline(any_settings):
    operator = await make_token(any_settings, "op", Role.OPERATOR)
    async with running_system(any_settings) as (app, client):
        started = asyncio.get_running_loop().time()
        r = await client.post("/api/v1/intake/tickets", json=CALL,
                              headers={**bearer(operator), "Idempotency-Key": "call-0001"})
        assert r.status_code == 201, r.text
        receipt = r.json()
        assert re.fullmatch(r"12345-\d{8}-\d{6}", receipt["number"])

        ticket = await wait_for(client, operator, receipt["ticket_id"])
        elapsed = asyncio.get_running_loop().time() - started
        assert ticket["number"] == receipt["number"]
        assert ticket["lead"]["code"]
        assert ticket["routing"]["method"] == "rule" and ticket["routing"]["rule_id"]
        assert ticket["reply_due"] > ticket["assigned_at"]
        assert ticket["sign_for_due"] < ticket["reply_due"]
        assert [e["event_type"] for e in ticket["timeline"]][-1] in ("TicketAssigned", "TicketReceived")
        print(f"intake → tracker visible in {elapsed * 1000:.0f} ms")

        again = await client.post("/api/v1/intake/tickets", json=CALL,
                                  headers={**bearer(operator), "Idempotency-Key": "call-0001"})
        assert again.status_code == 200 and again.json()["number"] == receipt["number"]
        listing = await client.get("/api/v1/tracker/tickets", headers=bearer(operator))
        assert listing.json()["total"] == 1

        if any_settings.database_url("tracker").startswith("sqlite"):  # each service checkpoints its WAL itself
            for name in SERVICES:
                assert await _autocheckpoint_once_taken_over(app.state.runtime.store(name).db) == 0, name


async def _autocheckpoint_once_taken_over(db: Database) -> int:
    for _ in range(40):  # the runtime's first checkpoint comes a second after it started
        async with db.session() as s:
            pages = (await s.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        if pages == 0:
            break
        await asyncio.sleep(0.1)
    return pages


async def test_concurrent_retries_with_one_key_create_one_ticket(sqlite_settings):
    operator = await make_token(sqlite_settings, "op", Role.OPERATOR)
    async with running_system(sqlite_settings) as (app, client):
        replies = await asyncio.gather(*(
            client.post("/api/v1/intake/tickets", json=CALL, headers={**bearer(operator), "Idempotency-Key": "dup"})
            for _ in range(10)))
        assert {r.status_code for r in replies} <= {200, 201}
        assert len({r.json()["number"] for r in replies}) == 1
        assert sum(r.status_code == 201 for r in replies) == 1


async def test_department_staff_see_only_their_own_units_tickets(sqlite_settings):
    operator = await make_token(sqlite_settings, "op", Role.OPERATOR)
    async with running_system(sqlite_settings) as (app, client):
        r = await client.post("/api/v1/intake/tickets", json=CALL, headers=bearer(operator))
        ticket = await wait_for(client, operator, r.json()["ticket_id"])
        lead = ticket["lead"]["code"]
        directory = app.state.runtime.state["router"].directory
        other = next(u.code for u in directory.units if u.code != lead)
        mine = await make_token(sqlite_settings, "dept-mine", Role.DEPARTMENT, department=lead)
        theirs = await make_token(sqlite_settings, "dept-other", Role.DEPARTMENT, department=other)

        seen = await client.get(f"/api/v1/tracker/tickets/{ticket['number']}", headers=bearer(mine))
        assert seen.status_code == 200
        hidden = await client.get(f"/api/v1/tracker/tickets/{ticket['number']}", headers=bearer(theirs))
        assert hidden.status_code == 404
        assert (await client.get("/api/v1/tracker/tickets", headers=bearer(theirs))).json()["total"] == 0
        by_phone = await client.get("/api/v1/tracker/tickets?phone=13800138000", headers=bearer(theirs))
        assert by_phone.status_code == 403
        # Department staff may not log calls.
        assert (await client.post("/api/v1/intake/tickets", json=CALL, headers=bearer(mine))).status_code == 403


async def test_bad_input_is_refused_in_chinese_and_english_and_changes_nothing(sqlite_settings):
    operator = await make_token(sqlite_settings, "op", Role.OPERATOR)
    async with running_system(sqlite_settings) as (app, client):
        bad = {**CALL, "kind": "rant", "subject": "   "}
        r = await client.post("/api/v1/intake/tickets", json=bad, headers=bearer(operator))
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "invalid_input"
        fields = {f["field"] for f in error["fields"]}
        assert {"kind", "subject"} <= fields
        assert all(f["zh"] and f["en"] for f in error["fields"])
        assert (await client.get("/api/v1/tracker/tickets", headers=bearer(operator))).json()["total"] == 0
        anonymous = await client.post("/api/v1/intake/tickets", json=CALL)
        assert anonymous.status_code == 401 and "请先登录" in anonymous.json()["error"]["message"]


def _runs(service: str, event_type: str) -> tuple[float, float]:
    """(handler calls, calls that applied one event) so far, from the consumers' histogram."""
    samples = {(sample.name, sample.labels.get("le")): sample.value for metric in RUNS.collect()
               for sample in metric.samples
               if sample.labels.get("service") == service and sample.labels.get("event_type") == event_type}
    return samples.get(("jiesu_consumer_run_events_count", None), 0.0), \
        samples.get(("jiesu_consumer_run_events_bucket", "1.0"), 0.0)


async def _count(db: Database, sql: str) -> int:
    async with db.session() as s:
        return (await s.execute(text(sql))).scalar_one()


BATCHED = [("router", "TicketReceived"), ("tracker", "TicketReceived"), ("tracker", "TicketAssigned"),
           ("intake", "TicketTracked")]


async def test_a_burst_of_calls_is_applied_in_runs_of_many_events_and_no_batch_falls_back(any_settings):
    """Sixty calls at once: each batched handler gets runs of several events, one statement per table
    for each run. The autouse guard (tests/conftest.py) fails the test if any batch failed and was
    applied record by record, which every ticket would survive at a fraction of the speed."""
    operator = await make_token(any_settings, "op", Role.OPERATOR)
    calls = generate(Directory.default(), 60, prefix="burst")
    before = {key: _runs(*key) for key in BATCHED}
    async with running_system(any_settings) as (app, client):
        replies = await asyncio.gather(*(
            client.post("/api/v1/intake/tickets", json=call,
                        headers={**bearer(operator), "Idempotency-Key": call["source_ref"]}) for call in calls))
        assert [r.status_code for r in replies] == [201] * len(calls), replies[0].text
        intake = app.state.runtime.store("intake").db
        deadline = asyncio.get_running_loop().time() + 30
        while await _count(intake, "SELECT count(*) FROM intake_tickets WHERE tracked_at IS NOT NULL") < len(calls):
            assert asyncio.get_running_loop().time() < deadline, "the burst did not come back acknowledged"
            await asyncio.sleep(0.05)
        tracker = app.state.runtime.store("tracker").db
        assert await _count(tracker, "SELECT count(*) FROM tracker_tickets WHERE received_at IS NOT NULL") \
            == len(calls)
    for key in BATCHED:
        calls_made, single = (now - then for now, then in zip(_runs(*key), before[key], strict=True))
        assert calls_made > single, f"{key}: {calls_made:.0f} handler calls, every one of a single event"

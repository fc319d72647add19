"""Kill the router, then the tracker, with SIGKILL while 500 tickets are in flight.

Afterwards every ticket must have been received once, assigned once and tracked once:
nothing lost, nothing done twice. Runs on SQLite and on PostgreSQL, one process per
service, over the embedded broker — the production topology.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.tickets import generate
from bench.topology import Topology
from services.router.domain.directory import Directory

pytestmark = pytest.mark.slow
TICKETS = 500


async def _scalar(url: str, sql: str):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


def scalar(url: str, sql: str):
    return asyncio.run(_scalar(url, sql))


async def _post_all(url: str, token: str, items: list[dict], on_progress) -> list[dict]:
    receipts: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            item = queue.get_nowait()
            for attempt in range(20):  # intake itself stays up; retries are harmless (idempotency key)
                try:
                    r = await client.post(f"{url}/api/v1/intake/tickets", json=item,
                                          headers={"Authorization": f"Bearer {token}",
                                                   "Idempotency-Key": item["source_ref"]})
                    r.raise_for_status()
                    receipts.append(r.json())
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2 * (attempt + 1))
            await on_progress(len(receipts))

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return receipts


def _run_crash_scenario(topo: Topology, urls: dict[str, str]) -> None:
    assert topo.jiesu("migrate").returncode == 0
    topo.jiesu("user", "crash-operator", "operator", "--password", "crash-test-pw")
    token = topo.jiesu("token", "crash-operator", "crash").stdout.strip()
    topo.start_broker()
    intake = topo.start("intake")
    topo.start("router")
    topo.start("tracker")

    kills: list[str] = []

    async def chaos(count: int) -> None:
        if count >= 120 and "router" not in kills:
            kills.append("router")
            await asyncio.to_thread(topo.kill, "router")
            await asyncio.to_thread(topo.restart, "router")
        elif count >= 320 and "tracker" not in kills:
            kills.append("tracker")
            await asyncio.to_thread(topo.kill, "tracker")
            await asyncio.to_thread(topo.restart, "tracker")

    items = generate(Directory.default(), TICKETS, prefix="crash")
    receipts = asyncio.run(_post_all(intake.url, token, items, chaos))
    assert kills == ["router", "tracker"]
    assert len({r["ticket_id"] for r in receipts}) == TICKETS

    deadline = time.monotonic() + 180
    tracked = 0
    while time.monotonic() < deadline:
        tracked = scalar(urls["tracker"], "SELECT count(*) FROM tracker_tickets WHERE tracked_at IS NOT NULL")
        if tracked == TICKETS:
            break
        time.sleep(0.5)
    assert tracked == TICKETS, f"only {tracked} of {TICKETS} tickets reached the tracker"

    # Received once: one intake row and one TicketReceived in the tracker's timeline per ticket.
    assert scalar(urls["intake"], "SELECT count(*) FROM intake_tickets") == TICKETS
    assert scalar(urls["tracker"], "SELECT count(*) FROM tracker_timeline WHERE event_type = 'TicketReceived'") \
        == TICKETS
    # Assigned once: one decision per ticket in the router, one decision event owed, one applied.
    assert scalar(urls["router"], "SELECT count(*) FROM router_decisions") == TICKETS
    assert scalar(urls["router"], "SELECT count(DISTINCT ticket_id) FROM router_outbox") == TICKETS
    assert scalar(urls["router"], "SELECT count(*) FROM router_outbox WHERE event_type IN "
                                  "('TicketAssigned', 'DispatchNeeded')") == TICKETS
    assert scalar(urls["tracker"], "SELECT count(*) FROM tracker_timeline WHERE event_type IN "
                                   "('TicketAssigned', 'DispatchNeeded')") == TICKETS
    # Tracked once: one acknowledgement per ticket, and intake heard it.
    assert scalar(urls["tracker"], "SELECT count(*) FROM tracker_outbox WHERE event_type = 'TicketTracked'") \
        == TICKETS
    deadline = time.monotonic() + 30
    while scalar(urls["intake"], "SELECT count(*) FROM intake_tickets WHERE tracked_at IS NULL") and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert scalar(urls["intake"], "SELECT count(*) FROM intake_tickets WHERE tracked_at IS NULL") == 0
    # Nothing poisoned on the way.
    for svc in ("intake", "router", "tracker"):
        assert scalar(urls[svc], f"SELECT count(*) FROM {svc}_dead_letters") == 0


def test_sigkill_router_then_tracker_loses_and_duplicates_nothing_on_sqlite(tmp_path):
    topo = Topology(tmp_path)
    urls = {svc: f"sqlite+aiosqlite:///{tmp_path / f'{svc}.db'}" for svc in ("intake", "router", "tracker")}
    try:
        _run_crash_scenario(topo, urls)
    finally:
        topo.stop()


@pytest.mark.postgres
def test_sigkill_router_then_tracker_loses_and_duplicates_nothing_on_postgres(tmp_path, pg_url):
    urls = {svc: pg_url for svc in ("intake", "router", "tracker", "identity")}
    topo = Topology(tmp_path, database_urls=urls)
    try:
        _run_crash_scenario(topo, urls)
    finally:
        topo.stop()

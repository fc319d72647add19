"""Kill the router, then the tracker, with SIGKILL while 500 tickets are in flight.

Afterwards every ticket must have been received once, assigned once and tracked once:
nothing lost, nothing done twice. Runs on SQLite and on PostgreSQL, one process per
service, over the embedded broker — the production topology.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.tickets import generate
from bench.topology import Topology
from bench.verify import dead_letters, settled_report, post_all, wait_intake_acknowledged, wait_tracked
from services.router.domain.directory import Directory

pytestmark = pytest.mark.slow
TICKETS = 500


def _run_crash_scenario(topo: Topology, urls: dict[str, str]) -> None:
    token = topo.prepare("crash-operator")
    topo.start_broker()
    intake, _, _ = topo.start_all("intake", "router", "tracker")

    kills: list[str] = []

    async def chaos(count: int) -> None:
        if count >= 120 and "router" not in kills:
            kills.append("router")
            await asyncio.to_thread(topo.kill, "router")
            await asyncio.to_thread(topo.restart, "router")
        elif count >= 220 and "intake" not in kills:  # requests in flight fail; the client retries them
            kills.append("intake")
            await asyncio.to_thread(topo.kill, "intake")
            await asyncio.to_thread(topo.restart, "intake")
        elif count >= 320 and "tracker" not in kills:
            kills.append("tracker")
            await asyncio.to_thread(topo.kill, "tracker")
            await asyncio.to_thread(topo.restart, "tracker")

    items = generate(Directory.default(), TICKETS, prefix="crash")
    receipts = asyncio.run(post_all(intake.url, token, items, chaos))
    assert kills == ["router", "intake", "tracker"]
    assert len({r["ticket_id"] for r in receipts}) == TICKETS

    tracked = wait_tracked(urls["tracker"], TICKETS)
    assert tracked == TICKETS, f"only {tracked} of {TICKETS} tickets reached the tracker"
    report = settled_report(urls, TICKETS)
    print("\n".join(f"{k}: {v}" for k, v in report.items()))
    assert report == {k: TICKETS for k in report}
    assert wait_intake_acknowledged(urls["intake"]) == 0
    assert dead_letters(urls) == {"intake": 0, "router": 0, "tracker": 0}


def test_sigkill_each_service_in_turn_loses_and_duplicates_nothing_on_sqlite(tmp_path):
    topo = Topology(tmp_path)
    urls = {svc: f"sqlite+aiosqlite:///{tmp_path / f'{svc}.db'}" for svc in ("intake", "router", "tracker")}
    try:
        _run_crash_scenario(topo, urls)
    finally:
        topo.stop()


@pytest.mark.postgres
def test_sigkill_each_service_in_turn_loses_and_duplicates_nothing_on_postgres(tmp_path, pg_url):
    urls = {svc: pg_url for svc in ("intake", "router", "tracker", "identity")}
    topo = Topology(tmp_path, database_urls=urls)
    try:
        _run_crash_scenario(topo, urls)
    finally:
        topo.stop()

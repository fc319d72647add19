"""Two routers and two trackers in their consumer groups on the embedded broker.

Every ticket is processed once between them; one router is killed mid-stream, its
partitions move to the other, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bench.tickets import generate
from bench.topology import Topology
from bench.verify import batches_split, counted, dead_letters, post_all, settled_report, wait_tracked
from services.router.domain.directory import Directory

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TICKETS = 400
SETTLE_ROUND = 20  # tickets posted at a time until every instance has taken a share


def _handled_by(log_path) -> int:
    """How many routing decisions one router process logged (JSON lines)."""
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "routed":
            count += 1
    return count


def _settle(topo: Topology, intake_url: str, token: str, pg_url: str) -> int:
    """Post tickets until both routers and both trackers have applied some: the groups have shared out their
    partitions. While a joining instance takes partitions over, the one that held them may still be applying
    a batch of them, and the two transactions can deadlock on PostgreSQL (the batch is then applied record
    by record, nothing lost). That is the join, not what the test is about: it happens before the count
    starts. Answers how many tickets it posted."""
    posted = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        items = generate(Directory.default(), SETTLE_ROUND, seed=posted, prefix=f"settle-{posted}")
        asyncio.run(post_all(intake_url, token, items))
        posted += SETTLE_ROUND
        assert wait_tracked(pg_url, posted) == posted
        if all(counted(topo.services[key].url, "jiesu_events_consumed_total", event_type="TicketReceived")
               for key in ("router", "router1", "tracker", "tracker1")):
            return posted
    raise AssertionError("the second router or tracker never got partitions: the groups did not share the work")


def test_two_routers_and_two_trackers_share_the_work_and_survive_losing_one(tmp_path, pg_url):
    urls = {svc: pg_url for svc in ("intake", "router", "tracker", "identity")}
    topo = Topology(tmp_path, database_urls=urls)
    try:
        token = topo.prepare("scale-op")
        topo.start_broker()
        intake, _, _ = topo.start_all("intake", "router", "tracker")
        topo.start_all("router", "tracker", instance=1)  # after the first ones did the first-start set-up

        settled = _settle(topo, intake.url, token, pg_url)
        split_before = {key: batches_split(topo.services[key].url) for key in ("intake", "router", "tracker", "tracker1")}
        killed = []

        async def chaos(count: int) -> None:
            if count >= 150 and not killed:
                killed.append("router1")
                await asyncio.to_thread(topo.kill, "router1")

        items = generate(Directory.default(), TICKETS, prefix="scale")
        asyncio.run(post_all(intake.url, token, items, chaos))
        total = settled + TICKETS
        assert wait_tracked(pg_url, total) == total
        report = settled_report(urls, total)
        assert report == {k: total for k in report}, report
        assert dead_letters(urls) == {"intake": 0, "router": 0, "tracker": 0}
        # Redelivery after the kill is skipped by the inboxes, never a failing batch.
        assert {key: batches_split(topo.services[key].url) for key in split_before} == split_before
        survivor = _handled_by(topo.services["router"].log)
        victim = _handled_by(topo.services["router1"].log)
        print(f"router0 decided {survivor}, router1 decided {victim} before it was killed")
        assert victim > 0, "the second router never got partitions: the group did not share the work"
        assert survivor > 0
    finally:
        topo.stop()

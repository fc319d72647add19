"""Two routers and two trackers in their consumer groups on the embedded broker.

Every ticket is processed once between them; one router is killed mid-stream, its
partitions move to the other, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.tickets import generate
from bench.topology import Topology
from bench.verify import batches_split, dead_letters, post_all, settled_report, wait_tracked
from services.router.domain.directory import Directory

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TICKETS = 400


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


def test_two_routers_and_two_trackers_share_the_work_and_survive_losing_one(tmp_path, pg_url):
    urls = {svc: pg_url for svc in ("intake", "router", "tracker", "identity")}
    topo = Topology(tmp_path, database_urls=urls)
    try:
        token = topo.prepare("scale-op")
        topo.start_broker()
        intake, _, _ = topo.start_all("intake", "router", "tracker")
        topo.start_all("router", "tracker", instance=1)  # after the first ones did the first-start set-up

        killed = []

        async def chaos(count: int) -> None:
            if count >= 150 and not killed:
                killed.append("router1")
                await asyncio.to_thread(topo.kill, "router1")

        items = generate(Directory.default(), TICKETS, prefix="scale")
        asyncio.run(post_all(intake.url, token, items, chaos))
        assert wait_tracked(pg_url, TICKETS) == TICKETS
        report = settled_report(urls, TICKETS)
        assert report == {k: TICKETS for k in report}, report
        assert dead_letters(urls) == {"intake": 0, "router": 0, "tracker": 0}
        # Redelivery after the kill is skipped by the inboxes, never a failing batch.
        assert {key: batches_split(topo.services[key].url) for key in ("intake", "router", "tracker", "tracker1")} \
            == {"intake": 0, "router": 0, "tracker": 0, "tracker1": 0}
        survivor = _handled_by(topo.services["router"].log)
        victim = _handled_by(topo.services["router1"].log)
        print(f"router0 decided {survivor}, router1 decided {victim} before it was killed")
        assert victim > 0, "the second router never got partitions: the group did not share the work"
        assert survivor > 0
    finally:
        topo.stop()

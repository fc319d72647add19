"""Drive tickets through a running topology and check the delivery invariants afterwards.

Shared by the crash, scale-out and fault tests: post tickets (retrying, idempotently), wait
until the tracker holds them all, then count that each was received, decided and tracked
exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def rows(url: str, sql: str) -> list:
    """Read a service's database directly (a benchmark or test looking in, never a service)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).all()
    finally:
        await engine.dispose()


def scalar(url: str, sql: str):
    return asyncio.run(rows(url, sql))[0][0]


def counted(base: str, name: str, **labels: str) -> int:
    """A counter of a running process (its /metrics), summed over the samples carrying `labels`."""
    families = text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text)
    return round(sum(sample.value for family in families for sample in family.samples
                     if sample.name == name and labels.items() <= sample.labels.items()))


def batches_split(base: str) -> int:
    """How many consumer batches a running process applied one record at a time (from its /metrics).

    Nonzero without poison messages means a handler fails on every batch and the service
    crawls through its records one by one while every ticket still arrives.
    """
    return counted(base, "jiesu_consumer_batches_split_total")


async def post_all(url: str, token: str, items: list[dict], on_progress: Callable[[int], Awaitable[None]] | None = None,
                   concurrency: int = 16) -> list[dict]:
    """Post every item to intake; each is retried with its Idempotency-Key until accepted."""
    receipts: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            item = queue.get_nowait()
            for attempt in range(50):
                try:
                    r = await client.post(f"{url}/api/v1/intake/tickets", json=item,
                                          headers={"Authorization": f"Bearer {token}",
                                                   "Idempotency-Key": item["source_ref"]})
                    r.raise_for_status()
                    receipts.append(r.json())
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
            if on_progress:
                await on_progress(len(receipts))

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return receipts


def wait_tracked(tracker_url: str, count: int, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    tracked = 0
    while time.monotonic() < deadline:
        tracked = scalar(tracker_url, "SELECT count(*) FROM tracker_tickets WHERE tracked_at IS NOT NULL")
        if tracked >= count:
            break
        time.sleep(0.5)
    return tracked


def exactly_once_report(urls: dict[str, str]) -> dict[str, int]:
    """The counts that must all equal the number of tickets accepted."""
    return {
        "received (intake rows)": scalar(urls["intake"], "SELECT count(*) FROM intake_tickets"),
        "received (tracker timeline)": scalar(
            urls["tracker"], "SELECT count(*) FROM tracker_timeline WHERE event_type = 'TicketReceived'"),
        "decided (router rows)": scalar(urls["router"], "SELECT count(*) FROM router_decisions"),
        "decisions owed (router outbox)": scalar(
            urls["router"], "SELECT count(*) FROM router_outbox WHERE event_type IN ('TicketAssigned', 'DispatchNeeded', 'TicketMerged')"),
        "decisions applied (tracker timeline)": scalar(
            urls["tracker"], "SELECT count(*) FROM tracker_timeline WHERE event_type IN ('TicketAssigned', 'DispatchNeeded', 'TicketMerged')"),
        "tracked (tracker rows)": scalar(urls["tracker"], "SELECT count(*) FROM tracker_tickets WHERE tracked_at IS NOT NULL"),
        "acknowledged (tracker outbox)": scalar(
            urls["tracker"], "SELECT count(*) FROM tracker_outbox WHERE event_type = 'TicketTracked'"),
    }


def dead_letters(urls: dict[str, str]) -> dict[str, int]:
    return {svc: scalar(urls[svc], f"SELECT count(*) FROM {svc}_dead_letters") for svc in ("intake", "router", "tracker")}


def wait_intake_acknowledged(intake_url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    waiting = 1
    while time.monotonic() < deadline:
        waiting = scalar(intake_url, "SELECT count(*) FROM intake_tickets WHERE tracked_at IS NULL")
        if waiting == 0:
            break
        time.sleep(0.5)
    return waiting


def settled_report(urls: dict[str, str], expected: int, timeout: float = 120) -> dict[str, int]:
    """Poll until every exactly-once count reaches `expected` (events on different topics arrive
    at different times), or the timeout passes; returns the last counts either way."""
    deadline = time.monotonic() + timeout
    while True:
        report = exactly_once_report(urls)
        if all(v >= expected for v in report.values()) or time.monotonic() > deadline:
            return report
        time.sleep(0.5)

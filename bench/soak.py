"""Soak run: the production topology at a steady rate for a long while, watched as it goes.

`python -m bench.soak --postgres URL --rate 100 --minutes 10` starts the embedded broker and
one process per service on PostgreSQL (jiesu's tables there are dropped first), posts tickets
to intake at a fixed rate (open loop: a stall shows as latency, not as a slower client), and
every `--every` seconds samples each process's resident memory, each service's outbox
backlog and each consumer group's lag. At the end it prints a row per minute (tickets sent
and tracked, latency percentiles from intake's acceptance to the tracker holding the
ticket, memory, backlog, lag) and how the first minute compares with the last: a system
that sustains the rate keeps memory, queues and latency flat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url

from bench import load
from bench.cpu import CpuMeter
from bench.e2e import percentile
from bench.pace import paced
from bench.tickets import ticket
from bench.topology import AutovacuumStandIn, Topology, drop_jiesu_tables
from bench.verify import rows
from jiesu.config import Settings
from schemas import topics
from services.router.domain.directory import Directory

SERVICES = ("intake", "router", "tracker")
DRAIN_SECONDS = 120  # after the last request, how long the tracker may take to catch up
PARTITIONS = Settings(_env_file=None).topic_partitions


class Tickets(Sequence):
    """The run's requests, each built when the client asks for it (memory stays flat over an hour)."""

    def __init__(self, base: str, token: str, count: int) -> None:
        self.host = urlsplit(base).netloc
        self.token = token
        self.count = count
        self.streets = list(Directory.default().streets)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):  # noqa: ANN001 - Sequence's signature
        return load.request(self.host, "/api/v1/intake/tickets", self.token,
                            ticket(self.streets, i, prefix=f"soak{os.getpid()}"))


@dataclass
class Sample:
    at: float  # seconds since the start
    rss_mb: dict[str, float]
    backlog: dict[str, int]
    lag: dict[str, int]
    cpu_s: dict[str, float]  # CPU seconds each component used since the run began


@dataclass
class Watch:
    started: float
    samples: list[Sample] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the broker command runs the Tansu binary)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return total / 1024 + sum(rss_mb(int(child)) for child in children)


class Lag:
    """Messages each service's consumer group has yet to commit, over all partitions of its topics.

    A consumer per group reads the committed offsets without joining the group (so it never
    takes partitions from the service it watches).
    """

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.consumers = {s: AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"jiesu-{s}",
                                              enable_auto_commit=False) for s in SERVICES}
        self.partitions = [TopicPartition(t, p) for t in topics.ALL for p in range(partitions)]

    async def __aenter__(self) -> Lag:
        for consumer in self.consumers.values():
            await consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        for consumer in self.consumers.values():
            await consumer.stop()

    async def read(self) -> dict[str, int]:
        lag = {}
        for service, consumer in self.consumers.items():
            ends = await consumer.end_offsets(self.partitions)
            behind = 0
            for tp in self.partitions:
                committed = await consumer.committed(tp)
                if committed is not None:  # None: a topic this service does not consume
                    behind += max(0, ends[tp] - committed)
            lag[service] = behind
        return lag


async def outbox_backlog(url: str) -> dict[str, int]:
    out = {}
    for service in SERVICES:
        (count,) = (await rows(url, f"SELECT count(*) FROM {service}_outbox WHERE sent_at IS NULL"))[0]
        out[service] = count
    return out


async def watch(topo: Topology, url: str, every: float, watch: Watch, stop: asyncio.Event) -> None:
    pids = {"broker": topo.broker.pid, **{s: topo.services[s].process.pid for s in SERVICES}}
    cpu = CpuMeter(pids, postgres=make_url(url).database)
    cpu.start()
    async with Lag(f"127.0.0.1:{topo.broker_port}", PARTITIONS) as lag:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
            watch.samples.append(Sample(
                at=time.monotonic() - watch.started,
                rss_mb={name: rss_mb(pid) for name, pid in pids.items()},
                backlog=await outbox_backlog(url),
                lag=await lag.read(),
                cpu_s=cpu.used(),
            ))
    cpu.stop()


async def latencies_by_minute(url: str) -> dict[int, list[float]]:
    """Acceptance → tracked, in ms, by the minute (from the first acceptance) the ticket was accepted."""
    data = await rows(url, """
        SELECT extract(epoch FROM i.received_at - min(i.received_at) OVER ()),
               extract(epoch FROM t.tracked_at - i.received_at) * 1000
        FROM intake_tickets i LEFT JOIN tracker_tickets t ON t.ticket_id = i.ticket_id""")
    minutes: dict[int, list[float]] = {}
    for since, latency in data:
        minutes.setdefault(int(since // 60), []).append(float(latency) if latency is not None else float("inf"))
    return minutes


# Where a ticket's time goes, from the rows' own timestamps: (step, from, to). An inbox row's time is
# when the consumer claimed the event, as its transaction began to apply it.
STEPS = (
    ("intake commit", "i.received_at", "io.created_at"),
    ("intake outbox", "io.created_at", "io.sent_at"),
    ("broker → router", "io.sent_at", "ri.processed_at"),
    ("router apply, commit + outbox", "ri.processed_at", "ro.sent_at"),
    ("broker → tracker", "ro.sent_at", "ti.processed_at"),
)


async def latency_steps(url: str, skip_seconds: float = 60) -> tuple[int, list[tuple[str, float, float]]]:
    """p50 and p95 (ms) of each step, over the tickets accepted after the first minute (the warm-up), if any."""
    columns = ", ".join(f"extract(epoch FROM {end} - {start}) * 1000" for _, start, end in STEPS)
    data = await rows(url, f"""
        SELECT extract(epoch FROM i.received_at - min(i.received_at) OVER ()), {columns}
        FROM intake_tickets i
        JOIN intake_outbox io ON io.ticket_id = i.ticket_id AND io.event_type = 'TicketReceived'
        JOIN router_inbox ri ON ri.event_id = io.event_id
        JOIN router_outbox ro ON ro.ticket_id = i.ticket_id AND ro.event_type IN ('TicketAssigned', 'DispatchNeeded')
        JOIN tracker_inbox ti ON ti.event_id = ro.event_id""")
    kept = [r[1:] for r in data if r[0] >= skip_seconds] or [r[1:] for r in data]
    columns_ms = list(zip(*kept, strict=True)) if kept else []
    return len(kept), [(name, percentile([float(v) for v in values], 50), percentile([float(v) for v in values], 95))
                       for (name, _, _), values in zip(STEPS, columns_ms)]


def cpu_percent(samples: list[Sample], minute: int) -> str:
    """Each component's CPU over the samples of this minute, in % of one core: whether one of them
    grows while the rate stays the same."""
    inside = [s for s in samples if minute * 60 <= s.at <= (minute + 1) * 60]
    before = [s for s in samples if s.at < minute * 60]
    first = before[-1] if before else (inside[0] if inside else None)
    if first is None or not inside or inside[-1].at <= first.at:
        return "-"
    last, seconds = inside[-1], inside[-1].at - first.at
    return "/".join(f"{(last.cpu_s[k] - first.cpu_s[k]) * 100 / seconds:.0f}"
                    for k in ("broker", *SERVICES, "PostgreSQL"))


def print_report(rate: float, minutes: dict[int, list[float]], samples: list[Sample], sent: int, seconds: float,
                 statuses: dict[int, int], steps: tuple[int, list[tuple[str, float, float]]]) -> None:
    print(f"\n== soak: {rate:.0f} tickets/s for {seconds / 60:.1f} min, {os.cpu_count()} cores, "
          f"one process per service, embedded broker, PostgreSQL")
    print(f"  sent {sent} (replies {statuses}); tracked {sum(1 for v in minutes.values() for x in v if x != float('inf'))}"
          f" ('open': accepted by intake, not yet tracked {DRAIN_SECONDS} s after the last request)")
    head = (f"  {'min':>3} {'sent':>6} {'open':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} | "
            f"{'RSS MB broker/intake/router/tracker':>36} | {'outbox i/r/t':>14} | {'lag i/r/t':>14} | "
            f"{'CPU % broker/intake/router/tracker/PostgreSQL':>45}")
    print(head)
    for minute in sorted(minutes):
        values = minutes[minute]
        finite = [v for v in values if v != float("inf")]
        done = finite or [float("nan")]
        end = [s for s in samples if s.at <= (minute + 1) * 60] or samples[:1]
        s = end[-1]
        rss = "/".join(f"{s.rss_mb[k]:.0f}" for k in ("broker", *SERVICES))
        backlog = "/".join(str(s.backlog[k]) for k in SERVICES)
        lag = "/".join(str(s.lag[k]) for k in SERVICES)
        print(f"  {minute:>3} {len(values):>6} {len(values) - len(finite):>5} {percentile(done, 50):>7.0f} "
              f"{percentile(done, 95):>7.0f} {percentile(done, 99):>7.0f} {max(done):>7.0f} | {rss:>36} | "
              f"{backlog:>14} | {lag:>14} | {cpu_percent(samples, minute):>45}")
    if len(samples) >= 2:
        first, last = samples[0], samples[-1]
        print("  memory, first sample → last: " + ", ".join(
            f"{k} {first.rss_mb[k]:.0f} → {last.rss_mb[k]:.0f} MB" for k in first.rss_mb))
        print("  largest outbox backlog seen: " + ", ".join(
            f"{k} {max(x.backlog[k] for x in samples)}" for k in SERVICES)
              + "; largest consumer lag: " + ", ".join(f"{k} {max(x.lag[k] for x in samples)}" for k in SERVICES))
    counted, timed = steps
    if timed:
        print(f"  where the time goes, p50 / p95 ms over {counted} tickets (after the first minute, if the run "
              "was longer): " + ", ".join(f"{name} {p50:.0f} / {p95:.0f}" for name, p50, p95 in timed))


def run(postgres: str, rate: float, minutes: float, every: float, concurrency: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="jiesu-soak-"))
    asyncio.run(drop_jiesu_tables(postgres))
    urls = {s: postgres for s in (*SERVICES, "identity")}
    topo = Topology(workdir, database_urls=urls, extra_env={"JIESU_LOG_LEVEL": "WARNING"})
    try:
        token = topo.prepare("soak")
        topo.start_broker()
        topo.start_all(*SERVICES)
        count = int(rate * minutes * 60)
        requests = Tickets(topo.services["intake"].url, token, count)

        async def drive():
            state = Watch(started=time.monotonic())
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(topo, postgres, every, state, stop))
            result = await load.run(topo.services["intake"].url, requests, concurrency=concurrency, rate=rate)
            deadline = time.monotonic() + DRAIN_SECONDS  # the last tickets through, or the backlog shows
            while time.monotonic() < deadline and (await rows(
                    postgres, "SELECT count(*) FROM tracker_tickets WHERE tracked_at IS NOT NULL"))[0][0] < count:
                await asyncio.sleep(1)
            stop.set()
            await watcher
            return result, state

        print(f"soak: {count} tickets at {rate:.0f}/s over {minutes:g} min (sampling every {every:g} s) …", flush=True)
        with AutovacuumStandIn(postgres):
            result, state = asyncio.run(drive())
        print_report(rate, asyncio.run(latencies_by_minute(postgres)), state.samples, result.sent, result.seconds,
                     result.statuses, asyncio.run(latency_steps(postgres)))
    finally:
        topo.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="PostgreSQL URL (postgresql+asyncpg://…)")
    parser.add_argument("--rate", type=float, default=100, help="tickets per second")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--concurrency", type=int, default=64, help="client connections")
    args = parser.parse_args(argv)
    with paced():
        run(args.postgres, args.rate, args.minutes, args.every, args.concurrency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

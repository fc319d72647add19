"""One service's consumer applying batches in this process: the CPU an event costs, and where it goes.

    .venv/bin/python -m bench.hop --service tracker --events 4000 \
        --postgres postgresql+asyncpg://postgres@127.0.0.1/jiesu_bench [--profile]

`jiesu bench` tells what a ticket costs each process, broker and HTTP included. This takes
one service's real consumer (its handlers, inbox, outbox and audit rows, as `jiesu run`
wires them) and feeds it batches of realistic events straight from memory, without the
broker or the network, so that its own cost per event is measured alone, repeatably, and
can be profiled: `--profile` prints the functions it spent the most time in (cProfile, which
slows it down; the CPU figures come from a run without it). The router gets TicketReceived;
the tracker TicketReceived, then the router's decisions for the same tickets (TicketAssigned,
one in ten DispatchNeeded), as the broker brings them. The first batch is not counted
(caches and prepared statements), and the tables are analysed after it, as `jiesu bench`
does after its warm-up. jiesu's tables in the database are dropped first: give it a
scratch database. It prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.cpu import CpuMeter
from bench.pace import paced
from bench import tickets
from bench.records import records_of
from bench.topology import analyze, drop_jiesu_tables
from jiesu.app import settle_heap
from jiesu.config import Settings
from jiesu.consumer import EventConsumer
from jiesu.logging import configure
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas import topics
from schemas.events import DispatchNeeded, Envelope, RoutingReason, TicketAssigned, UnitRef
from services.router.domain.directory import Directory


DISPATCHED_EVERY = 10  # about one ticket in ten waits for a dispatcher (jiesu bench: 8-9 %)


def events(n: int) -> tuple[list[Envelope], list[Envelope]]:
    """N tickets' TicketReceived as intake writes them, and the router's decision for each, as the broker
    interleaves them: a TicketAssigned (to the street office of the ticket's street), and for one
    ticket in `DISPATCHED_EVERY` a DispatchNeeded instead."""
    received = tickets.received(n, prefix=f"hop-{uuid.uuid4().hex[:6]}")
    offices = {street.code: street for street in Directory.default().streets}
    decided = []
    for i, e in enumerate(received):
        p = e.parsed()
        if i % DISPATCHED_EVERY == DISPATCHED_EVERY - 1:
            payload = DispatchNeeded(number=p.number, why="没有规则命中，模型把握不足")
        else:
            office = offices[p.location.street]
            payload = TicketAssigned(number=p.number, kind=p.kind, urgency=p.urgency,
                                     lead=UnitRef(code=office.code, name=office.name),
                                     reason=RoutingReason(method="rule", rule_id="R-012"))
        decided.append(Envelope.wrap(payload, ticket_id=e.ticket_id, producer="router"))
    return received, decided


async def run(service: str, n: int, batch: int, postgres: str, profile: bool) -> dict:
    await drop_jiesu_tables(postgres)
    workdir = Path(tempfile.mkdtemp(prefix="jiesu-hop-"))
    settings = Settings(data_dir=workdir, secret_key="bench", _env_file=None,
                        **{f"{name}_database_url": postgres for name in ("intake", "router", "tracker", "identity")})
    await asyncio.to_thread(upgrade, service, postgres)
    rt = Runtime.create(settings, [service], bootstrap="unused:9092")
    try:
        await rt.specs[service].setup(rt)
        settle_heap()  # as `jiesu run` does once started
        handlers = rt.specs[service].subscriptions(rt)[0].handlers
        consumer = EventConsumer(rt.store(service), handlers)
        received, decided = events(n + batch)
        partitions = settings.topic_partitions
        feeds = [records_of(received, topics.RECEIVED, partitions)]
        if service == "tracker":
            feeds.append(records_of(decided, topics.ASSIGNED, partitions))
        batches = [feed[i:i + batch] for i in range(0, n + batch, batch) for feed in feeds]
        warm = len(feeds)  # the first batch of each feed
        for chunk in batches[:warm]:
            await consumer.process(chunk)
        await analyze(postgres)  # as on a system that has been running (autovacuum analyses new tables)
        meter = CpuMeter({}, postgres=make_url(postgres).database, own="this process")
        profiler = cProfile.Profile() if profile else None
        meter.start()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        for chunk in batches[warm:]:
            await consumer.process(chunk)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        used = meter.stop()
        counted = sum(len(chunk) for chunk in batches[warm:])
        return {"service": service, "events": counted, "seconds": seconds, "profiler": profiler,
                "cpu_ms": {name: s * 1000 / counted for name, s in used.items()}}
    finally:
        await rt.close()
        shutil.rmtree(workdir, ignore_errors=True)


def report(figures: dict, batch: int) -> None:
    cpu = figures["cpu_ms"]
    total = sum(cpu.values())
    print(f"\n== {figures['service']}'s consumer in process: {figures['events']:,} events in batches of {batch}, "
          f"{os.cpu_count()} cores")
    print(f"  {figures['events'] / figures['seconds']:,.0f} events/s; CPU per event (ms): "
          + ", ".join(f"{name} {ms:.3f}" for name, ms in cpu.items()) + f"; {total:.3f} in all")
    if figures["profiler"]:
        out = io.StringIO()
        pstats.Stats(figures["profiler"], stream=out).sort_stats("tottime").print_stats(25)
        print("  (profiled: the figures above include cProfile's own cost)")
        print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=("router", "tracker"), action="append",
                        help="the consumer to measure (repeatable; default both)")
    parser.add_argument("--events", type=int, default=4000, help="tickets to feed after the first batch")
    parser.add_argument("--batch", type=int, default=Settings.model_fields["consumer_batch"].default)
    parser.add_argument("--postgres", required=True,
                        help="a scratch PostgreSQL database URL (postgresql+asyncpg://…); jiesu's tables are dropped")
    parser.add_argument("--profile", action="store_true", help="print the 25 functions with the most own time")
    args = parser.parse_args(argv)
    configure(level="WARNING")  # as the benchmarks run the services: the log is not what is measured
    with paced():
        for service in args.service or ["router", "tracker"]:
            report(asyncio.run(run(service, args.events, args.batch, args.postgres, args.profile)), args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())

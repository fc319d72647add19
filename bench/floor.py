"""The floor to compare jiesu against: messages through the broker into PostgreSQL, with no logic at all.

    .venv/bin/python -m bench.floor --messages 20000 \
        --postgres postgresql+asyncpg://postgres@127.0.0.1/jiesu_bench_floor

Issue #8 asks how far the end-to-end figures (`jiesu bench`, bench/e2e.py) are from what
the broker and the database allow on the same machine. This measures only that part: the
embedded broker in its own process (`jiesu broker`, as bench/topology.py starts it), N
TicketReceived envelopes (~1 kB) produced to `tickets.received` with acks=all in batches
the size of the outbox relay's, and one consumer process in a consumer group that inserts
each batch it polls into a plain table in one transaction and commits the offsets after
the database commit: jiesu's delivery discipline without parsing, inbox, handlers or outbox.

Throughput runs from the first produce to the last row committed; latency from the
produce call (carried in a header) to the commit of the row's batch, with the producer
going flat out, as the end-to-end benchmark does. The clients are set up as jiesu's are
(aiokafka's defaults otherwise, fetch wait included). A benchmark: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, Table, Text, select
from sqlalchemy.engine import make_url

from bench.cpu import CpuMeter
from bench.e2e import percentile
from bench.tickets import received
from bench.topology import Topology
from jiesu.config import Settings
from jiesu.db import Database
from schemas import topics

TOPIC = topics.RECEIVED
GROUP = "jiesu-floor"
PRODUCED_AT = "produced_at"  # header: the producer's wall clock (epoch seconds) when it handed the message over
# The project's own defaults: topic partitions, the consumer's poll size and the relay's batch.
DEFAULTS = Settings.model_fields
PARTITIONS = DEFAULTS["topic_partitions"].default
CONSUMER_BATCH = DEFAULTS["consumer_batch"].default
PRODUCER_BATCH = DEFAULTS["outbox_batch"].default

sink = Table(
    "floor_sink",
    MetaData(),
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
)


def envelopes(n: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of N TicketReceived envelopes as intake writes them: the realistic message size."""
    return [(str(e.ticket_id).encode(), e.to_bytes()) for e in received(n, prefix="floor")]


async def produce(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """Send every message; answers the wall-clock instants of the first send and of the last acknowledgement.

    Like the outbox relay: enqueue a batch, then wait for all its acknowledgements.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, enable_idempotence=False,
                                client_id="jiesu-floor")
    await producer.start()
    try:
        started = time.time()
        for i in range(0, len(messages), PRODUCER_BATCH):
            futures = [await producer.send(TOPIC, key=key, value=value,
                                           headers=[(PRODUCED_AT, repr(time.time()).encode())])
                       for key, value in messages[i:i + PRODUCER_BATCH]]
            await asyncio.gather(*futures)
        return started, time.time()
    finally:
        await producer.stop()


def _produced_at(record) -> float:
    return next(float(value) for key, value in record.headers if key == PRODUCED_AT)


async def consume(bootstrap: str, postgres_url: str, n: int, partitions: int, ready) -> tuple[list[float], float]:
    """Insert what arrives, a polled batch per transaction, until N rows are in.

    Calls `ready()` once the group has given this consumer every partition, so that the
    producer does not start while the group is still forming. Answers each message's
    latency (ms) and the wall-clock instant of the last database commit.
    """
    db = Database(postgres_url, pool_size=1)
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="jiesu-floor")
    await consumer.start()
    try:
        while len(consumer.assignment()) < partitions:
            await consumer.getmany(timeout_ms=100)
        async with db.session() as session:  # connected before the clock starts, as a running service is
            await session.execute(select(1))
        ready()
        latencies: list[float] = []
        committed = 0.0
        while len(latencies) < n:
            polled = await consumer.getmany(timeout_ms=100, max_records=CONSUMER_BATCH)
            records = [record for batch in polled.values() for record in batch]
            if not records:
                continue
            async with db.session() as session:
                await session.execute(sink.insert(), [{"key": r.key.decode(), "value": r.value} for r in records])
            committed = time.time()
            await consumer.commit()  # after the database, as jiesu's consumers do
            latencies.extend((committed - _produced_at(r)) * 1000 for r in records)
        return latencies, committed
    finally:
        await consumer.stop()
        await db.dispose()


def _consumer_process(bootstrap: str, postgres_url: str, n: int, partitions: int, conn) -> None:
    """Body of the consumer process: its own interpreter, as each jiesu service has."""
    conn.send(asyncio.run(consume(bootstrap, postgres_url, n, partitions, lambda: conn.send("ready"))))


async def _reset_sink(postgres_url: str, *, create: bool) -> None:
    db = Database(postgres_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(sink.drop, checkfirst=True)
            if create:
                await conn.run_sync(sink.create)
    finally:
        await db.dispose()


async def _receive(conn, timeout: float):
    if not await asyncio.to_thread(conn.poll, timeout):
        raise TimeoutError(f"the consumer process did not answer within {timeout:.0f} s")
    return conn.recv()


async def run_floor(n: int, postgres_url: str, *, partitions: int = PARTITIONS, timeout: float = 600) -> dict:
    """Produce N messages and consume them into PostgreSQL; figures in ms and messages/s.

    Leaves nothing behind: the table is dropped, the broker and consumer processes stopped.
    """
    messages = envelopes(n)
    workdir = Path(tempfile.mkdtemp(prefix="jiesu-floor-"))
    topology = Topology(workdir, extra_env={"JIESU_TOPIC_PARTITIONS": str(partitions), "JIESU_LOG_LEVEL": "WARNING"})
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    consumer = None
    try:
        await _reset_sink(postgres_url, create=True)
        await asyncio.to_thread(topology.start_broker)
        bootstrap = f"127.0.0.1:{topology.broker_port}"
        consumer = spawn.Process(target=_consumer_process, args=(bootstrap, postgres_url, n, partitions, theirs),
                                 daemon=True)
        consumer.start()
        theirs.close()  # so that a consumer process that dies is an EOF here, not a long wait
        await _receive(ours, 60)
        meter = CpuMeter({"consumer": consumer.pid, "broker": topology.broker.pid},
                         postgres=make_url(postgres_url).database, own="producer")  # it stands for the relay
        meter.start()
        started, acknowledged = await produce(bootstrap, messages)
        latencies, finished = await _receive(ours, timeout)
        cpu = meter.stop()
    finally:
        if consumer is not None:
            consumer.terminate()
            consumer.join(10)
        topology.stop()
        await _reset_sink(postgres_url, create=False)
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = finished - started
    return {"messages": len(latencies), "seconds": seconds, "throughput": len(latencies) / seconds,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99),
            "produce_seconds": acknowledged - started,
            "cpu_ms": {name: seconds * 1000 / len(latencies) for name, seconds in cpu.items()}}


def report(figures: dict, partitions: int) -> None:
    print(f"\n== floor: broker → PostgreSQL, no logic ({partitions} partitions, acks=all, "
          f"one consumer process), {os.cpu_count()} cores")
    print(f"  {figures['messages']:,} messages in {figures['seconds']:.2f} s → {figures['throughput']:,.0f} messages/s "
          f"(all acknowledged by the broker after {figures['produce_seconds']:.2f} s)")
    print(f"  latency produce → row committed: p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms, "
          f"p99 {figures['p99']:.0f} ms")
    cpu = figures["cpu_ms"]
    per_message = sum(cpu.values())
    print("  CPU per message (ms): " + ", ".join(f"{name} {ms:.3f}" for name, ms in cpu.items())
          + f"; {per_message:.3f} in all")
    # A ticket crosses the broker three times (TicketReceived, TicketAssigned, TicketTracked) and is
    # consumed four times (router and tracker both read TicketReceived): at the floor's cost per
    # message that much alone bounds what any logic on top can reach on this machine.
    hops = 3 * per_message + (cpu.get("consumer", 0) + cpu.get("PostgreSQL", 0))
    cores = os.cpu_count() or 1
    print(f"  a ticket's 3 messages and 4 consumptions at this cost: {hops:.2f} ms → about "
          f"{cores / hops * 1000:,.0f} tickets/s on {cores} cores before HTTP, classification or any state")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--postgres", required=True,
                        help="a PostgreSQL database URL (postgresql+asyncpg://…); table floor_sink is created there")
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    args = parser.parse_args(argv)
    report(asyncio.run(run_floor(args.messages, args.postgres, partitions=args.partitions)), args.partitions)
    return 0


if __name__ == "__main__":
    sys.exit(main())

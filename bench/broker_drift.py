"""Does the embedded broker slow down as it runs? Latency at a steady rate, 20 s at a time.

    .venv/bin/python -m bench.broker_drift [--rate 1400] [--seconds 180]

At a steady rate through the production topology (`bench.soak`) every hop through the
broker slows down minute by minute while the services' CPU stays flat or falls and the
broker's grows. This takes the broker alone, as `jiesu broker` runs it (memory storage): a
producer sends ~1.4 kB records
with acks=all, in the outbox relay's way (a batch of sends, then all the acknowledgements),
at `--rate` records a second (the soak's 350 tickets/s make about 1,400 messages), and a
consumer in a group reads them and commits its offsets after every batch, as jiesu's
consumers do. Every 20 s it prints the acknowledgement and commit times, the time from
the produce call to the consumer holding the record, and the broker's CPU. A benchmark: it
prints, it asserts nothing.

On 24 November at 1,400 records/s the broker's CPU grew from 12 to 44 % of a core in 100 s;
producing alone it stayed at 4–5 %, and with no offset commits it grew as before: each
fetch costs more as the broker holds more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.cpu import CpuMeter
from bench.e2e import percentile
from jiesu.embedded_broker import EmbeddedBroker
from schemas import topics

SEND_BATCH = 70  # records per burst of sends; at 1,400 a second, 20 bursts a second
REPORT_EVERY = 20.0  # seconds


def ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1000 if values else float("nan")


async def drift(rate: float, seconds: float) -> None:
    broker = EmbeddedBroker()
    await broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=2)
    consumer = AIOKafkaConsumer(topics.RECEIVED, bootstrap_servers=broker.bootstrap, group_id="drift",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100)
    await producer.start()
    await consumer.start()
    acks: list[float] = []
    commits: list[float] = []
    transit: list[float] = []

    async def consume() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=200)
            now = time.time()
            transit.extend(now - float(dict(r.headers)["sent"].decode())
                           for records in batch.values() for r in records)
            if batch:
                started = time.monotonic()
                await consumer.commit()
                commits.append(time.monotonic() - started)

    reader = asyncio.create_task(consume())
    meter = CpuMeter({"broker": broker.process.pid})
    meter.start()
    cpu_before = 0.0
    value = os.urandom(700).hex().encode()
    print(f"== the embedded broker alone: {rate:.0f} records/s (acks=all), one consumer committing after each "
          f"batch, {os.cpu_count()} cores")
    print(f"  {'s':>4} {'records':>8} | {'ack p50/p95 ms':>15} | {'commit p50/p95 ms':>18} | "
          f"{'produce→consumed p50/p95 ms':>28} | broker CPU (% of a core)")
    begun = time.monotonic()
    sent, report_at = 0, REPORT_EVERY
    try:
        while time.monotonic() - begun < seconds:
            burst = time.monotonic()
            futures = [await producer.send(topics.RECEIVED, value=value, key=str(sent + i).encode(),
                                           headers=[("sent", str(time.time()).encode())])
                       for i in range(SEND_BATCH)]
            await asyncio.gather(*futures)
            acks.append(time.monotonic() - burst)
            sent += SEND_BATCH
            if time.monotonic() - begun >= report_at:
                cpu = meter.used()["broker"]
                print(f"  {time.monotonic() - begun:4.0f} {sent:8,} | "
                      f"{ms(acks, 50):6.1f} / {ms(acks, 95):6.1f} | "
                      f"{ms(commits, 50):8.1f} / {ms(commits, 95):7.1f} | "
                      f"{ms(transit, 50):13.0f} / {ms(transit, 95):12.0f} | "
                      f"{(cpu - cpu_before) * 100 / REPORT_EVERY:6.0f}", flush=True)
                cpu_before = cpu
                for figures in (acks, commits, transit):
                    figures.clear()
                report_at += REPORT_EVERY
            await asyncio.sleep(max(0.0, burst + SEND_BATCH / rate - time.monotonic()))
    finally:
        meter.stop()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1400, help="records a second")
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args(argv)
    asyncio.run(drift(args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`jiesu bench`: post realistic tickets to intake over HTTP and wait until the tracker has them all.

Prints throughput and the latency from intake's acceptance to the tracker making the
ticket visible (p50 / p95 / p99), measured from the services' own timestamps: intake's
`received_at` and the tracker's `tracked_at`. Modes:

- embedded: `jiesu up` (one process, embedded broker, SQLite), as `make run` starts it;
- services: one process per service (`jiesu run …`, `--routers N --trackers N` for more)
  over the embedded broker, on SQLite or on PostgreSQL (`--postgres URL`; jiesu's tables
  there are dropped first).

Given `--postgres`, the same run then measures the floor (bench/floor.py: as many messages
through the broker into PostgreSQL with no logic at all) and prints our throughput as a
fraction of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bench import load
from bench.cpu import CpuMeter
from bench.cpu import report as report_cpu
from bench.pace import paced
from bench.tickets import generate
from bench.topology import AutovacuumStandIn, Topology, analyze, drop_jiesu_tables
from bench.verify import batches_split, rows
from jiesu.embedded_broker import free_port
from services.router.domain.directory import Directory

WARM_UP = 300  # tickets run through before measuring


def post_all(base: str, token: str, items: list[dict], concurrency: int, quiet: bool = False) -> float:
    """Post every item to intake; every reply must be 201 (a new ticket)."""
    requests = load.prepare(base, "/api/v1/intake/tickets", token, items)
    step = max(1, len(items) // 10)

    def progress(sent: int) -> None:
        if sent % step == 0 and not quiet:
            print(f"  posted {sent}/{len(items)}", flush=True)

    result = asyncio.run(load.run(base, requests, concurrency=concurrency, on_progress=progress))
    if result.statuses != {201: len(items)}:
        raise RuntimeError(f"intake answered {result.statuses}, expected 201 for each of {len(items)}")
    return result.seconds


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def wait_tracked(tracker_url: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        (count,) = (await rows(tracker_url, "SELECT count(*) FROM tracker_tickets WHERE tracked_at IS NOT NULL"))[0]
        if count >= n or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.25)


def ts(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def measure(intake_url: str, tracker_url: str, n: int, since: datetime, timeout: float = 600) -> dict:
    """Throughput and latency of the tickets intake received since `since` (after the warm-up)."""
    await wait_tracked(tracker_url, n, timeout)
    received = {k: ts(v) for k, v in await rows(intake_url, "SELECT ticket_id, received_at FROM intake_tickets")}
    received = {k: v for k, v in received.items() if v >= since}
    tracked = dict(await rows(tracker_url, "SELECT ticket_id, tracked_at FROM tracker_tickets "
                                            "WHERE tracked_at IS NOT NULL"))
    tracked = {k: ts(v) for k, v in tracked.items() if k in received}
    latencies = [(tracked[k] - received[k]).total_seconds() * 1000 for k in tracked]
    first = min(received.values())
    last = max(tracked.values())
    span = (last - first).total_seconds()
    return {"tracked": len(latencies), "span_s": span, "throughput": len(latencies) / span if span else 0,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99),
            "mean": statistics.fmean(latencies)}


def warm_up(base: str, token: str, tracker_url: str, postgres: str | None, concurrency: int) -> datetime:
    """Run tickets through first, as a live system has, and let PostgreSQL learn its tables' sizes.

    A fresh database plans its first queries for empty tables, and the plans a connection
    caches stay until statistics change: autovacuum analyses within its first minute on a
    live system, so the benchmark does the same before it measures. Answers the instant
    the measured tickets start.
    """
    items = generate(Directory.default(), WARM_UP, seed=1, prefix="warm-up")
    post_all(base, token, items, concurrency, quiet=True)
    asyncio.run(wait_tracked(tracker_url, WARM_UP))
    if postgres:
        asyncio.run(analyze(postgres))
    print(f"  warmed up with {WARM_UP} tickets" + (" and analysed the tables" if postgres else ""), flush=True)
    return datetime.now(UTC)


def report(title: str, n: int, post_s: float, m: dict, split: dict[str, int]) -> None:
    print(f"\n== {title}: {n} tickets, {os.cpu_count()} cores")
    print(f"  posted in {post_s:.2f} s ({n / post_s:.0f} req/s accepted by intake)")
    print(f"  tracked {m['tracked']}/{n} in {m['span_s']:.2f} s → {m['throughput']:.0f} tickets/s end to end")
    print(f"  latency intake accept → tracker visible: p50 {m['p50']:.0f} ms, p95 {m['p95']:.0f} ms, "
          f"p99 {m['p99']:.0f} ms (mean {m['mean']:.0f} ms)")
    # Without poison messages this must be 0: a batch applied record by record is a handler failing.
    print("  consumer batches applied one record at a time: "
          + ", ".join(f"{name} {count}" for name, count in split.items()))


def _cli(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "jiesu.cli", *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def run_embedded(n: int, concurrency: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="jiesu-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIESU_")}
    env.update({"JIESU_DATA_DIR": str(workdir), "JIESU_SECRET_KEY": "bench", "JIESU_LOG_LEVEL": "WARNING"})
    _cli(env, "migrate")
    _cli(env, "user", "bench", "operator", "--password", "bench-password")
    token = _cli(env, "token", "bench", "bench")
    log = open(workdir / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "jiesu.cli", "up", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        urls = {s: f"sqlite+aiosqlite:///{workdir / f'{s}.db'}" for s in ("intake", "tracker")}
        since = warm_up(base, token, urls["tracker"], None, concurrency)
        items = generate(Directory.default(), n)
        meter = CpuMeter({"jiesu up (services and broker)": proc.pid})
        meter.start()
        post_s = post_all(base, token, items, concurrency)
        m = asyncio.run(measure(urls["intake"], urls["tracker"], WARM_UP + n, since))
        report("embedded (jiesu up: one process, embedded broker, SQLite)", n, post_s, m,
               {"jiesu up": batches_split(base)})
        report_cpu(meter.stop(), n)
        return m
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def run_services(n: int, concurrency: int, postgres: str | None, routers: int = 1, trackers: int = 1) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="jiesu-bench-"))
    urls = {}
    if postgres:
        asyncio.run(drop_jiesu_tables(postgres))
        urls = {s: postgres for s in ("intake", "router", "tracker", "identity")}
    topo = Topology(workdir, database_urls=urls, extra_env={"JIESU_LOG_LEVEL": "WARNING"})
    try:
        token = topo.prepare("bench")
        topo.start_broker()
        intake, _, _ = topo.start_all("intake", "router", "tracker")
        for i in range(1, routers):
            topo.start("router", i)
        for i in range(1, trackers):
            topo.start("tracker", i)
        db = {s: urls.get(s) or f"sqlite+aiosqlite:///{workdir / f'{s}.db'}" for s in ("intake", "tracker")}
        with AutovacuumStandIn(postgres):
            since = warm_up(intake.url, token, db["tracker"], postgres, concurrency)
            items = generate(Directory.default(), n)
            meter = CpuMeter({key: proc.process.pid for key, proc in topo.services.items()}
                             | {"broker": topo.broker.pid}, postgres=make_url(postgres).database if postgres else None)
            meter.start()
            post_s = post_all(intake.url, token, items, concurrency)
            m = asyncio.run(measure(db["intake"], db["tracker"], WARM_UP + n, since))
        store = "PostgreSQL" if postgres else "SQLite"
        report(f"services (intake, {routers} router and {trackers} tracker processes, embedded broker, {store})",
               n, post_s, m, {key: batches_split(proc.url) for key, proc in topo.services.items()})
        report_cpu(meter.stop(), n)
        return m
    finally:
        topo.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(args, settings) -> int:
    with paced():
        return _main(args, settings)


def _main(args, settings) -> int:
    if args.mode == "embedded":
        results = {"embedded": run_embedded(args.tickets, args.concurrency)}
    else:
        results = {"services": run_services(args.tickets, args.concurrency, args.postgres, args.routers,
                                            args.trackers)}
    if args.postgres and not args.no_floor:
        from bench.floor import report as report_floor
        from bench.floor import run_floor

        floor = asyncio.run(run_floor(args.tickets, args.postgres))
        report_floor(floor, settings.topic_partitions)
        for mode, m in results.items():
            print(f"  {mode}: {m['throughput']:.0f} tickets/s is {m['throughput'] / floor['throughput']:.1%} of the "
                  f"floor's {floor['throughput']:,.0f} messages/s")
    return 0

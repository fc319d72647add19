"""How far behind their due time the tracker's timers fire with a million open (issue #8: under 1 s).

    .venv/bin/python -m bench.timer_lag --postgres postgresql+asyncpg://postgres@127.0.0.1/jiesu_bench_timers

Builds the tracker's schema with its own migrations in the given PostgreSQL database (jiesu's
tables there are dropped first and afterwards), loads the open timers with INSERT … SELECT
generate_series: most of them, with the tickets they belong to, due over the next month, and
a stream of `--rate` per second falling due during the measurement, each on a ticket in the
state its kind fires in, so that every firing does its real work (events into the outbox,
timeline, notifications, supervision orders). Then runs the tracker's own `TimerLoop`, wired
as services/tracker/bootstrap.py wires it, for `--seconds`, and prints the open timers, how
many fired, the lag of each behind its due time, and the plan of the claim query.

Two lags: from due to `fired_at` (the instant the round claimed the timer) and from due to
the commit of that round (when the warning, the reminder or the order exists for anyone).
A benchmark: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from bench.e2e import percentile
from bench.topology import drop_jiesu_tables
from bench.verify import rows
from jiesu.config import Settings
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas.events import utcnow
from services.tracker.supervision import hub
from services.tracker.timers import TimerLoop, claim

FUTURE_FROM = timedelta(days=1)  # far enough that a slow load never brings one due during the measurement
FUTURE_SPREAD = timedelta(days=30)
STREAM_DELAY = timedelta(seconds=2)  # the loop is running before the first streamed timer falls due
GRACE = timedelta(seconds=3)  # after the last one falls due, before the loop is stopped

# Ticket i (from the source query: i, ticket_id, state, due) as the tracker's read model holds it.
TICKETS = """
INSERT INTO tracker_tickets (ticket_id, number, state, channel, kind, urgency, subject, citizen_phone, confidential,
    district, street, lead_code, lead_name, co_handlers, received_at, assigned_at, clock_started_at, sign_for_due,
    warn_at, reply_due, replied_at, visit_due, calendar_unconfirmed, updated_at)
SELECT t.ticket_id,
       '12345-' || to_char(DATE '2026-01-01' + t.i / 1000000, 'YYYYMMDD') || '-' || lpad((t.i % 1000000)::text, 6, '0'),
       t.state, 'hotline', 'complaint', 'normal', '路灯不亮，晚上出行很不安全', '13800138000', false, 'D-01', 'S-01-01',
       'U-' || lpad((t.i % 45 + 1)::text, 2, '0'), '第' || (t.i % 45 + 1) || '承办单位', '[]'::json,
       t.due - interval '2 hours', t.due - interval '2 hours', t.due - interval '2 hours', t.due,
       t.due + interval '4 days', t.due + interval '5 days',
       CASE WHEN t.state = 'replied' THEN t.due - interval '1 day' END,
       CASE WHEN t.state = 'replied' THEN t.due END, false, t.due - interval '2 hours'
FROM ({source}) AS t
"""

# Most tickets: 4 in 10 waiting to be signed for (5 timers), 5 signed for (3), 1 replied (its return visit).
FUTURE_SOURCE = """
SELECT i, md5('timer-lag-' || i)::uuid::text AS ticket_id,
       CASE WHEN i % 10 < 4 THEN 'assigned' WHEN i % 10 < 9 THEN 'signed_for' ELSE 'replied' END AS state,
       CAST(:start AS timestamptz) + (i - 1) * CAST(:gap AS interval) AS due
FROM generate_series(1, :tickets) AS i
"""
TIMERS_PER_TEN_TICKETS = 4 * 5 + 5 * 3 + 1
FUTURE_TIMERS = f"""
INSERT INTO tracker_timers (ticket_id, kind, due_at)
SELECT t.ticket_id, k.kind, t.due + k.after
FROM ({FUTURE_SOURCE}) AS t
JOIN (VALUES ('assigned', 'sign_for_warning', interval '-24 minutes'), ('assigned', 'sign_for_due', interval '0'),
             ('assigned', 'reply_warning', interval '4 days'), ('assigned', 'reply_due', interval '5 days'),
             ('assigned', 'overdue_supervision', interval '6 days'),
             ('signed_for', 'reply_warning', interval '4 days'), ('signed_for', 'reply_due', interval '5 days'),
             ('signed_for', 'overdue_supervision', interval '6 days'),
             ('replied', 'return_visit_due', interval '0')) AS k (state, kind, after) ON k.state = t.state
LIMIT :count
"""

# The stream: one timer per ticket, the six kinds in turn, `gap` apart from `start`.
STREAM_SOURCE = """
SELECT :first + j AS i, md5('timer-lag-stream-' || j)::uuid::text AS ticket_id,
       (ARRAY['assigned', 'assigned', 'signed_for', 'signed_for', 'signed_for', 'replied'])[j % 6 + 1] AS state,
       (ARRAY['sign_for_warning', 'sign_for_due', 'reply_warning', 'reply_due', 'overdue_supervision',
              'return_visit_due'])[j % 6 + 1] AS kind,
       CAST(:start AS timestamptz) + j * CAST(:gap AS interval) AS due
FROM generate_series(0, :count - 1) AS j
"""
STREAM_TIMERS = f"""
INSERT INTO tracker_timers (ticket_id, kind, due_at) SELECT ticket_id, kind, due FROM ({STREAM_SOURCE}) AS s
"""


async def load_future(engine, count: int) -> None:
    """`count` open timers due over the next month, on the tickets that own them."""
    tickets = -(-count * 10 // TIMERS_PER_TEN_TICKETS)
    params = {"start": utcnow() + FUTURE_FROM, "gap": FUTURE_SPREAD / tickets, "tickets": tickets, "count": count}
    async with engine.begin() as conn:
        await conn.execute(text(TICKETS.format(source=FUTURE_SOURCE)), params)
        await conn.execute(text(FUTURE_TIMERS), params)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE tracker_tickets"))
        await conn.execute(text("ANALYZE tracker_timers"))


async def load_stream(engine, count: int, start: datetime, rate: float, first: int) -> None:
    params = {"start": start, "gap": timedelta(seconds=1 / rate), "count": count, "first": first}
    async with engine.begin() as conn:
        await conn.execute(text(TICKETS.format(source=STREAM_SOURCE)), params)
        await conn.execute(text(STREAM_TIMERS), params)


async def explain(engine, now: datetime, batch: int) -> list[str]:
    """EXPLAIN ANALYZE of the loop's own claim when a full round is due; rolled back, so nothing is claimed."""
    statement = claim(now, "explain", batch, postgres=True)
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        plan = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))).scalars().all()
        await conn.rollback()
    return plan


def wired_loop(rt: Runtime, commits: list[datetime]) -> TimerLoop:
    """The loop as bootstrap.py builds it, also noting when each round that fired has committed."""
    ledger = hub(rt)

    def fired() -> None:
        commits.append(utcnow())
        ledger.notify()

    return TimerLoop(rt.store("tracker"), rt.state["tracker.clocks"], on_fired=fired)


async def run_until(loop: TimerLoop, poll_seconds: float, until: datetime) -> None:
    """Run the loop as the tracker's background task runs it, and stop it at `until`."""
    task = asyncio.create_task(loop.run(poll_seconds))
    await asyncio.sleep((until - utcnow()).total_seconds())
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def lags(fired: list[tuple[datetime, datetime]], commits: list[datetime]) -> dict[str, list[float] | None]:
    """Lag behind due (ms) to the claim and to the round's commit, and how long each round took.

    Every round that fires stamps its timers with one `fired_at` and then reports once, so
    the n-th distinct `fired_at` belongs to the n-th commit (None if they do not pair up).
    """
    claimed = [(at - due).total_seconds() * 1000 for due, at in fired]
    rounds = sorted({at for _, at in fired})
    if len(rounds) != len(commits):
        return {"claimed": claimed, "committed": None, "rounds": None}
    commit_of = dict(zip(rounds, commits, strict=True))
    return {"claimed": claimed,
            "committed": [(commit_of[at] - due).total_seconds() * 1000 for due, at in fired],
            "rounds": [(commit - at).total_seconds() * 1000 for at, commit in commit_of.items()]}


def summary(values: list[float] | None) -> dict | None:
    if not values:
        return None
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "max": max(values)}


async def run_timer_lag(postgres_url: str, *, open_timers: int = 1_000_000, seconds: float = 60,
                        rate: float = 200) -> dict:
    """Load `open_timers` open timers, `rate` per second of them falling due for `seconds`; run the loop; measure.

    jiesu's tables in the database are dropped before and after.
    """
    stream = round(rate * seconds)
    workdir = Path(tempfile.mkdtemp(prefix="jiesu-timers-"))
    settings = Settings(data_dir=workdir, secret_key="bench", tracker_database_url=postgres_url, _env_file=None)
    await drop_jiesu_tables(postgres_url)
    await asyncio.to_thread(upgrade, "tracker", postgres_url)
    rt = Runtime.create(settings, ["tracker"], bootstrap="unused:9092")
    engine = rt.store("tracker").db.engine
    try:
        await rt.specs["tracker"].setup(rt)  # the calendar, SLA policy and settings the timers fire with
        began = utcnow()
        await load_future(engine, open_timers - stream)
        load_seconds = (utcnow() - began).total_seconds()
        start = utcnow() + STREAM_DELAY
        await load_stream(engine, stream, start, rate, first=open_timers)
        end = start + timedelta(seconds=seconds)
        commits: list[datetime] = []
        loop = wired_loop(rt, commits)
        plan = await explain(engine, end, loop.batch)
        ((open_at_start,),) = await rows(postgres_url, "SELECT count(*) FROM tracker_timers WHERE fired_at IS NULL")
        await run_until(loop, settings.timer_poll_seconds, end + GRACE)
        fired = await rows(postgres_url, "SELECT due_at, fired_at FROM tracker_timers WHERE fired_at IS NOT NULL")
    finally:
        await rt.close()
        await drop_jiesu_tables(postgres_url)
        shutil.rmtree(workdir, ignore_errors=True)
    measured = lags(fired, commits)
    return {"open_timers": open_at_start, "load_seconds": load_seconds, "seconds": seconds, "due": stream,
            "fired": len(fired), "fire_rate": len(fired) / seconds, "rounds": len(commits),
            "lag_fired_at": summary(measured["claimed"]), "lag_committed": summary(measured["committed"]),
            "round_ms": summary(measured["rounds"]), "load_average": os.getloadavg()[0], "plan": plan}


def _lag_line(title: str, lag: dict | None) -> str:
    if lag is None:
        return f"  {title}: —"
    return (f"  {title}: p50 {lag['p50']:.0f} ms, p95 {lag['p95']:.0f} ms, p99 {lag['p99']:.0f} ms, "
            f"max {lag['max']:.0f} ms")


def report(figures: dict) -> None:
    print(f"\n== tracker timers on PostgreSQL, {os.cpu_count()} cores")
    print(f"  {figures['open_timers']:,} open timers (loaded in {figures['load_seconds']:.0f} s); "
          f"{figures['due']:,} of them fell due over {figures['seconds']:.0f} s")
    print(f"  fired {figures['fired']:,} in {figures['rounds']:,} rounds ({figures['fire_rate']:.0f}/s); "
          f"due but not fired {GRACE.seconds} s after the last fell due: {figures['due'] - figures['fired']:,}")
    print(_lag_line("lag due → fired_at (claimed)", figures["lag_fired_at"]))
    print(_lag_line("lag due → round committed  ", figures["lag_committed"]))
    print(_lag_line("round, claim → commit      ", figures["round_ms"]))
    print(f"  load average (1 min) at the end, every process on the machine: {figures['load_average']:.1f}")
    print("  claim query plan (a full batch due, EXPLAIN ANALYZE):")
    for line in figures["plan"]:
        print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True,
                        help="a PostgreSQL database URL (postgresql+asyncpg://…); jiesu's tables there are dropped")
    parser.add_argument("--open", type=int, default=1_000_000, help="open timers (default 1,000,000)")
    parser.add_argument("--seconds", type=float, default=60, help="how long timers fall due (default 60)")
    parser.add_argument("--rate", type=float, default=200, help="timers falling due per second (default 200)")
    args = parser.parse_args(argv)
    report(asyncio.run(run_timer_lag(args.postgres, open_timers=args.open, seconds=args.seconds, rate=args.rate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

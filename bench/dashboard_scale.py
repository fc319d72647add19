"""How fast the supervision office's pages answer with N tickets in the tracker (a benchmark, never a test).

    .venv/bin/python bench/dashboard_scale.py --tickets 200000
    .venv/bin/python bench/dashboard_scale.py --tickets 1000000 --postgres postgresql+asyncpg://postgres@127.0.0.1/bench

Loads N synthetic tickets spread over the last 365 days straight into the tracker's tables
(sqlite3 executemany on SQLite, COPY on PostgreSQL; the schema comes from the real
migrations), with their return visits, unit log and supervision orders, then requests every
dashboard page and endpoint through the real FastAPI app as a supervisor and prints the
time of each (median of --repeat runs after one warm-up), and the longest a small write of
the tracker (what its consumers, timers and actions do) waited while that page was served.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UNITS = [(f"U-{i:02d}", f"第{i}承办单位") for i in range(1, 46)]
DISTRICTS = [f"D-0{i}" for i in range(1, 7)]
STREETS = [f"S-0{d}-{s:02d}" for d in range(1, 7) for s in range(1, 11)]
CATEGORIES = [f"C-{i:03d}" for i in range(1, 100)]
CHANNELS = ["hotline"] * 70 + ["online"] * 12 + ["mailbox"] * 6 + ["email"] * 4 + ["open311"] * 3 + \
    ["in_person"] * 3 + ["other"] * 2
KINDS = ["complaint"] * 40 + ["help"] * 25 + ["consultation"] * 20 + ["report"] * 7 + ["suggestion"] * 6 + \
    ["praise"] * 1 + ["information_request"] * 1
SUBJECTS = ["夜间施工噪音扰民", "人行道破损", "小区电梯故障", "路灯不亮", "占道经营", "垃圾清运不及时", "楼道漏水",
            "供暖温度不达标", "违章停车堵路", "餐馆油烟扰民"]
TICKET_COLUMNS = ["ticket_id", "number", "state", "channel", "kind", "urgency", "subject", "description", "confidential",
                  "district", "street", "address", "category", "lead_code", "lead_name", "co_handlers", "received_at",
                  "assigned_at", "sign_for_due", "reply_due", "warn_at", "signed_for_at", "replied_at", "updated_at",
                  "reopen_count", "reopened", "outcome", "closed_at", "supervised", "calendar_unconfirmed",
                  "returns_count", "dissatisfied_count", "visit_attempts"]


def generate(n: int, now: dt.datetime, seed: int = 12345):
    """Tickets, visits, unit-log rows and orders as plain Python values (datetimes aware, UTC)."""
    rnd = random.Random(seed)
    H = dt.timedelta(hours=1)
    tickets, visits, log, orders = [], [], [], []
    for i in range(n):
        at = now - dt.timedelta(seconds=rnd.random() * 365 * 86400)
        age_days = (now - at).total_seconds() / 86400
        unit = rnd.choice(UNITS)
        street = rnd.choice(STREETS)
        subject = rnd.choice(SUBJECTS)
        state, outcome, replied, closed, signed, reopens = "closed", None, None, None, at + rnd.random() * 3 * H, 0
        r = rnd.random()
        if r < 0.03:
            state, unit = "answered_directly", (None, None)
            replied = closed = at
        elif r < 0.05:
            state = "merged"
        elif age_days < 10 and r < 0.30:
            state = rnd.choice(["assigned", "signed_for", "contacted", "waiting_citizen", "extension_requested",
                                "replied", "deferred"])
        if state in ("closed", "replied"):
            replied = at + rnd.random() * 150 * H
            if replied > now:
                replied, state = None, "contacted"
        if state == "closed":
            closed = replied + rnd.random() * 48 * H
            if closed > now:
                closed, state = None, "replied"
            else:
                outcome = rnd.choices(["satisfied", "basically_satisfied", "dissatisfied", "unreachable"],
                                      [70, 15, 8, 7])[0]
                reopens = 1 if rnd.random() < 0.05 else 0
        ticket_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        lead_code, lead_name = unit
        reply_due = at + 7 * 24 * H
        tickets.append({
            "ticket_id": ticket_id, "number": f"12345-{at:%Y%m%d}-{i:06d}"[:21], "state": state,
            "channel": rnd.choice(CHANNELS), "kind": rnd.choice(KINDS), "urgency": "normal", "subject": subject,
            "description": subject + "，请尽快处理。" + street, "confidential": False,
            "district": "D-" + street[2:4], "street": street, "address": "某路1号", "category": rnd.choice(CATEGORIES),
            "lead_code": lead_code, "lead_name": lead_name, "co_handlers": "[]", "received_at": at - 0.1 * H,
            "assigned_at": at if lead_code else None, "sign_for_due": at + 2 * H if lead_code else None,
            "reply_due": reply_due if lead_code else None, "warn_at": reply_due - 24 * H if lead_code else None,
            "signed_for_at": signed if lead_code and state not in ("assigned", "merged") else None,
            "replied_at": replied, "updated_at": now, "reopen_count": reopens, "reopened": bool(reopens),
            "outcome": outcome, "closed_at": closed, "supervised": False, "calendar_unconfirmed": False,
            "returns_count": 0, "dissatisfied_count": reopens, "visit_attempts": 0})
        if lead_code and state != "merged":
            log.append((ticket_id, lead_code, "assigned", at))
            if rnd.random() < 0.04:
                log.append((ticket_id, lead_code, "returned", at + H))
        if outcome:
            visits.append((ticket_id, outcome, outcome == "dissatisfied" and rnd.random() < 0.4 or None, lead_code,
                           "", "visitor", closed))
        if lead_code and rnd.random() < 0.01:
            orders.append((f"DB-{i:08d}-1", ticket_id, rnd.choice(["normal", "key"]), lead_code, "超期未答复",
                           at + 10 * 24 * H, at + 8 * 24 * H, "system"))
    return tickets, visits, log, orders


def _sqlite_value(v):
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, bool):
        return int(v)
    return v


def load_sqlite(path: Path, data) -> None:
    import sqlite3

    tickets, visits, log, orders = data
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA journal_mode=WAL")
    cols = ",".join(TICKET_COLUMNS)
    marks = ",".join("?" * len(TICKET_COLUMNS))
    con.executemany(f"INSERT INTO tracker_tickets ({cols}) VALUES ({marks})",
                    ([_sqlite_value(t[c]) for c in TICKET_COLUMNS] for t in tickets))
    con.executemany("INSERT INTO tracker_return_visits (ticket_id, outcome, department_caused, unit_code, comment, "
                    "by, at) VALUES (?,?,?,?,?,?,?)", ([_sqlite_value(x) for x in v] for v in visits))
    con.executemany("INSERT INTO tracker_unit_log (ticket_id, unit_code, kind, at) VALUES (?,?,?,?)",
                    ([_sqlite_value(x) for x in r] for r in log))
    con.executemany("INSERT INTO tracker_supervision_orders (order_no, ticket_id, level, unit_code, reason, due_at, "
                    "created_at, by) VALUES (?,?,?,?,?,?,?,?)", ([_sqlite_value(x) for x in o] for o in orders))
    con.commit()
    con.execute("ANALYZE")
    con.close()


async def load_postgres(url: str, data) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    tickets, visits, log, orders = data
    u = make_url(url)
    con = await asyncpg.connect(user=u.username, password=u.password, host=u.host or "127.0.0.1",
                                port=u.port or 5432, database=u.database)
    try:
        await con.copy_records_to_table("tracker_tickets", columns=TICKET_COLUMNS,
                                        records=[tuple(t[c] for c in TICKET_COLUMNS) for t in tickets])
        await con.copy_records_to_table("tracker_return_visits", records=visits, columns=[
            "ticket_id", "outcome", "department_caused", "unit_code", "comment", "by", "at"])
        await con.copy_records_to_table("tracker_unit_log", records=log, columns=["ticket_id", "unit_code", "kind", "at"])
        await con.copy_records_to_table("tracker_supervision_orders", records=orders, columns=[
            "order_no", "ticket_id", "level", "unit_code", "reason", "due_at", "created_at", "by"])
        await con.execute("ANALYZE")
    finally:
        await con.close()


async def measure(settings, repeat: int, now: dt.datetime) -> list[tuple[str, float, int]]:
    import httpx

    from jiesu.runtime import Runtime
    from jiesu.web import create_app
    from schemas.enums import Role

    rt = Runtime.create(settings, ["tracker"], bootstrap="unused:9092")
    spec = rt.specs["tracker"]
    await spec.setup(rt)
    app = create_app(lambda: rt, [*spec.routers], start=False, static_dirs=[("tracker", spec.static_dir)])
    app.state.runtime = rt
    if await rt.identity.get_user("bench-sup") is None:
        await rt.identity.create_user("bench-sup", "bench-password-1", Role.SUPERVISOR, display_name="督查室")
    token = await rt.identity.create_token("bench-sup", "bench")
    tz = rt.state["tracker"].clocks.calendar.timezone
    month = now.astimezone(tz).strftime("%Y-%m")
    last_month = (now.astimezone(tz).replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    year = now.astimezone(tz).strftime("%Y")
    paths = [
        "/tracker/sup/ledger", "/tracker/sup/ledger/rows", "/tracker/sup/ledger?unit=U-07&late=overdue",
        "/tracker/sup/orders", "/tracker/sup/orders?tab=all",
        f"/tracker/sup/scorecard?period={month}", f"/tracker/sup/scorecard?period={last_month}",
        f"/api/v1/tracker/supervision/scorecard?period={year}",
        f"/tracker/sup/tickets?period={last_month}&measure=response&part=denominator&unit=U-07",
        f"/tracker/sup/tickets?period={last_month}&measure=satisfaction&part=numerator&unit=U-07",
        "/tracker/sup/trends", "/api/v1/tracker/supervision/trends?dimension=channel&days=30",
        "/api/v1/tracker/supervision/trends?dimension=category&days=90",
        "/api/v1/tracker/supervision/trends?dimension=district&days=365",
        "/api/v1/tracker/supervision/hotspots", "/tracker/sup/wall", "/api/v1/tracker/supervision/overview",
        f"/tracker/sup/reports?period={last_month}", f"/tracker/sup/reports/monthly.xlsx?period={last_month}",
        f"/tracker/sup/reports?kind=annual&period={year}",
    ]
    out = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
        from services.tracker.ledger import signature

        for path in paths:
            times, held = [], []
            status = 0
            for _ in range(repeat + 1):
                done = asyncio.Event()
                writer = asyncio.create_task(_longest_write_wait(rt.store("tracker").db, done))
                t0 = time.perf_counter()
                r = await client.get(path)
                times.append(time.perf_counter() - t0)
                done.set()
                held.append(await writer)
                status = r.status_code
            out.append((path, statistics.median(times[1:]), status, times[0], max(held)))
        times = []
        for _ in range(repeat + 1):
            t0 = time.perf_counter()
            async with rt.store("tracker").db.reading() as s:  # as LedgerHub polls it
                await signature(s, now)
            times.append(time.perf_counter() - t0)
        out.append(("(live ledger signature poll)", statistics.median(times[1:]), 200, times[0], 0.0))
    await rt.store("tracker").db.dispose()
    await rt.identity.db.dispose()
    return out


async def _longest_write_wait(db, done: asyncio.Event) -> float:
    """While a page is served, the tracker's writes (consumers, timers, actions) go on: the longest
    a small write transaction took meanwhile, from asking for the database to its commit."""
    from sqlalchemy import text

    longest = 0.0
    while not done.is_set():
        t0 = time.perf_counter()
        async with db.session() as s:
            await s.execute(text("SELECT 1"))
        longest = max(longest, time.perf_counter() - t0)
        await asyncio.sleep(0.005)
    return longest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL (postgresql+asyncpg://…); default SQLite")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="measure the SQLite database already in --dir")
    args = parser.parse_args()

    from jiesu.config import Settings
    from jiesu.migrate import upgrade

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="jiesu-dash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tracker_url = args.postgres or f"sqlite+aiosqlite:///{workdir / 'tracker.db'}"
    settings = Settings(data_dir=workdir, secret_key="bench", tracker_database_url=tracker_url, _env_file=None)
    if args.postgres:
        from bench.topology import drop_jiesu_tables

        asyncio.run(drop_jiesu_tables(args.postgres))
    now = dt.datetime.now(dt.UTC)
    if args.reuse:
        upgrade("tracker", tracker_url)
        results = asyncio.run(measure(settings, args.repeat, now))
        return report(results, args.repeat)
    upgrade("tracker", tracker_url)
    upgrade("identity", settings.database_url("identity"))
    t0 = time.perf_counter()
    data = generate(args.tickets, now)
    t1 = time.perf_counter()
    if args.postgres:
        asyncio.run(load_postgres(args.postgres, data))
    else:
        load_sqlite(workdir / "tracker.db", data)
    t2 = time.perf_counter()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{args.tickets:,} tickets ({len(data[1]):,} visits, {len(data[2]):,} unit-log rows, "
          f"{len(data[3]):,} orders) on {backend}: generated in {t1 - t0:.1f}s, loaded in {t2 - t1:.1f}s")
    del data
    results = asyncio.run(measure(settings, args.repeat, now))
    return report(results, args.repeat)


def report(results, repeat: int) -> int:
    width = max(len(p) for p, *_ in results)
    slow = 0
    print(f"{'page / endpoint':<{width}}  {'median':>8}     {'first':>8}            {'writes held':>11}")
    for path, seconds, status, first, held in results:
        flag = "" if seconds < 1 else "  ≥ 1 s"
        slow += seconds >= 1
        print(f"{path:<{width}}  {seconds * 1000:8.0f} ms  {first * 1000:8.0f} ms  HTTP {status}  "
              f"{held * 1000:8.0f} ms{flag}")
    print(f"{len(results) - slow} of {len(results)} under one second (median of {repeat} after the first request); "
          "writes held: the longest a small tracker write waited while the page was served")
    return 0


if __name__ == "__main__":
    sys.exit(main())

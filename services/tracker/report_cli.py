"""`jiesu report monthly --month 2026-11 [--out FILE]` and `jiesu report annual --year 2026 [--out FILE]`.

Builds the same tables as the 通报与报告 page from the tracker's database and writes them
as .xlsx (or .csv when the file name ends in .csv); without --out it prints them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from jiesu.db import Database
from services.tracker import reports, stats


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="the supervision office's monthly bulletin or annual report (.xlsx / .csv)")
    kinds = p.add_subparsers(dest="report_kind", required=True)
    monthly = kinds.add_parser("monthly", help="月通报 of one month")
    monthly.add_argument("--month", required=True, help="YYYY-MM")
    monthly.add_argument("--out", type=Path, help="FILE.xlsx or FILE.csv (default: print the tables)")
    monthly.set_defaults(func=cmd_report)
    annual = kinds.add_parser("annual", help="年度报告 of one year")
    annual.add_argument("--year", required=True, help="YYYY")
    annual.add_argument("--out", type=Path, help="FILE.xlsx or FILE.csv (default: print the tables)")
    annual.set_defaults(func=cmd_report)


async def build(settings, kind: str, key: str) -> reports.Report:
    tz = ZoneInfo(settings.timezone)
    period = stats.period_of(key, tz)
    db = Database(settings.database_url("tracker"))
    try:
        return await reports.build(db, kind, period, dt.datetime.now(dt.UTC), tz)
    finally:
        await db.dispose()


def cmd_report(args, settings) -> int:
    kind = args.report_kind
    key = args.month if kind == "monthly" else args.year
    if (kind == "monthly" and len(key) != 7) or (kind == "annual" and len(key) != 4):
        print("期间格式：--month YYYY-MM 或 --year YYYY / use --month YYYY-MM or --year YYYY")
        return 2
    try:
        report = asyncio.run(build(settings, kind, key))
    except ValueError as exc:
        print(f"期间有误 / bad period: {exc}")
        return 2
    if args.out:
        body = reports.to_csv(report) if args.out.suffix.lower() == ".csv" else reports.to_xlsx(report)
        args.out.write_bytes(body)
        print(f"已写入 / written: {args.out}（{report.title}）")
        return 0
    print(report.title)
    for table in report.tables:
        print(f"\n{table.title}")
        print("\t".join(table.header))
        for row in table.rows:
            print("\t".join(str(c) for c in row))
    return 0

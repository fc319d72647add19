"""`jiesu calendar`: see a year's holidays and make-up working days, import next year's schedule.

The import file is the State Council notice typed as plain lines, one day or range each::

    # 2027 年部分节假日安排
    2027-01-01 休
    2027-02-06~2027-02-12 休      # a range: every day off
    2027-02-14 班                 # a weekend day worked (调休上班)

Weekend days inside a holiday range are harmless. The result is written into the
override YAML the tracker reads (settings.calendar_file), other years left as they were.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from services.tracker.domain.calendar import CalendarOverrideError, WorkingCalendar, parse_overrides

DEFAULT_FILE = Path(__file__).parent / "calendar_overrides.yaml"
HEADER = ("# Local working-calendar overrides (本地工作日历调整), written by `jiesu calendar import`.\n"
          "# Format and meaning: see services/tracker/calendar_overrides.yaml in the source.\n")


def parse_schedule(text: str) -> dict[int, dict[str, set[dt.date]]]:
    """Days off and make-up working days per year, from the plain-text notice format above."""
    years: dict[int, dict[str, set[dt.date]]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("休", "班"):
            raise CalendarOverrideError(
                f"第 {number} 行应为“日期 休”或“日期 班”：{raw.strip()} / "
                f"Line {number} must read 'DATE 休' or 'DATE 班': {raw.strip()}")
        first, _, last = parts[0].partition("~")
        try:
            start = dt.date.fromisoformat(first)
            end = dt.date.fromisoformat(last) if last else start
        except ValueError:
            raise CalendarOverrideError(
                f"第 {number} 行的日期应写成 YYYY-MM-DD：{parts[0]} / Line {number}: write dates as YYYY-MM-DD"
            ) from None
        if end < start or (end - start).days > 31:
            raise CalendarOverrideError(f"第 {number} 行的日期范围不正确 / Line {number}: bad date range")
        field = "holidays" if parts[1] == "休" else "workdays"
        day = start
        while day <= end:
            if field == "holidays" and day.weekday() >= 5:
                day += dt.timedelta(days=1)
                continue  # a weekend is off anyway
            years.setdefault(day.year, {"holidays": set(), "workdays": set()})[field].add(day)
            day += dt.timedelta(days=1)
    return years


def import_schedule(path: Path, text: str, *, confirm: bool) -> list[int]:
    """Merge the schedule into the override file; answers the years written."""
    current = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    current = dict(current or {})
    schedule = parse_schedule(text)
    for year, days in schedule.items():
        current[year] = {
            "confirmed": confirm,
            "holidays": sorted(d.isoformat() for d in days["holidays"]),
            "workdays": sorted(d.isoformat() for d in days["workdays"]),
        }
    parse_overrides(current)  # refuse to write a file the tracker could not read
    path.write_text(HEADER + yaml.safe_dump({int(k): v for k, v in sorted(current.items())}, allow_unicode=True,
                                            sort_keys=True), encoding="utf-8")
    return sorted(schedule)


def year_summary(calendar: WorkingCalendar, year: int) -> dict:
    """Weekdays off and weekend days worked in `year`, and whether the year is confirmed."""
    holidays, workdays = [], []
    day = dt.date(year, 1, 1)
    while day.year == year:
        working = calendar.is_working_day(day)
        if day.weekday() < 5 and not working:
            holidays.append(day)
        elif day.weekday() >= 5 and working:
            workdays.append(day)
        day += dt.timedelta(days=1)
    return {"year": year, "confirmed": calendar.is_confirmed(year), "holidays": holidays, "workdays": workdays}


WEEKDAYS = "一二三四五六日"


def add_commands(sub) -> None:
    p = sub.add_parser("calendar", help="working calendar: show a year, or import next year's official schedule")
    actions = p.add_subparsers(dest="calendar_action", required=True)
    show = actions.add_parser("show", help="holidays and make-up working days of a year, and whether confirmed")
    show.add_argument("year", type=int, nargs="?")
    show.set_defaults(func=cmd_show)
    imp = actions.add_parser("import", help="import a schedule file ('YYYY-MM-DD 休|班' lines) into the overrides")
    imp.add_argument("file", type=Path)
    imp.add_argument("--draft", action="store_true", help="keep the year flagged as unconfirmed")
    imp.set_defaults(func=cmd_import)


def _file(settings) -> Path:
    return Path(settings.calendar_file) if settings.calendar_file else DEFAULT_FILE


def cmd_show(args, settings) -> int:
    calendar = WorkingCalendar.from_file(_file(settings), timezone=settings.timezone) if _file(settings).exists() \
        else WorkingCalendar(timezone=settings.timezone)
    year = args.year or dt.date.today().year
    s = year_summary(calendar, year)
    state = "已确认 / confirmed" if s["confirmed"] else "未确认，按周末推算 / NOT confirmed (weekends only)"
    print(f"{year} 年工作日历：{state}")
    print(f"放假（工作日休息）{len(s['holidays'])} 天 / weekdays off:")
    for d in s["holidays"]:
        print(f"  {d.isoformat()} 周{WEEKDAYS[d.weekday()]}")
    print(f"调休上班 {len(s['workdays'])} 天 / weekend days worked:")
    for d in s["workdays"]:
        print(f"  {d.isoformat()} 周{WEEKDAYS[d.weekday()]}")
    return 0 if s["confirmed"] else 2


def cmd_import(args, settings) -> int:
    path = _file(settings)
    try:
        years = import_schedule(path, args.file.read_text(encoding="utf-8"), confirm=not args.draft)
    except CalendarOverrideError as exc:
        print(f"导入失败 / import failed: {exc}")
        return 1
    print(f"已写入 {path}：{', '.join(map(str, years))} 年" + ("（草稿，未确认）" if args.draft else "（已确认）"))
    print("重启 tracker 后生效 / restart the tracker to use it")
    return 0

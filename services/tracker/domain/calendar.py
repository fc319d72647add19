"""The working calendar (工作日历) every SLA clock runs on.

China's statutory holidays and make-up working days (调休) come from the
`chinese_calendar` package; the supervision office adds what the package does not know
yet (next year's schedule, a local holiday) in an override file. A year that neither
source confirms falls back to Monday–Friday and is reported through `is_confirmed` and
`spans_unconfirmed`, so a deadline computed on a guess is always flagged, never silent.

All arithmetic happens in the calendar's local zone; results are returned in UTC, the
way they are stored. Naive datetimes are rejected because a wrong zone shifts a deadline
by eight hours without anyone noticing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import yaml

UTC = dt.timezone.utc
DEFAULT_TIMEZONE = "Asia/Shanghai"

WorkingPeriod = tuple[dt.time, dt.time]
# Usual office hours of municipal government departments in Beijing and Shanghai:
# morning 09:00–12:00, lunch break, afternoon 13:30–17:30 — seven working hours a day.
DEFAULT_WORKING_PERIODS: tuple[WorkingPeriod, ...] = (
    (dt.time(9, 0), dt.time(12, 0)),
    (dt.time(13, 30), dt.time(17, 30)),
)

# An override that turns every day into a holiday would otherwise loop forever.
_MAX_SCAN_DAYS = 3660


class CalendarOverrideError(ValueError):
    """The override data is wrong; the message says where, in Chinese and English."""


@dataclass(frozen=True)
class YearOverride:
    """Local corrections for one year.

    `confirmed` says the supervision office has entered the official schedule for that
    year; `holidays` and `workdays` (make-up working days, 调休上班) apply either way, so a
    draft schedule is used but the year stays flagged until it is confirmed.
    """

    confirmed: bool = False
    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()


def parse_overrides(raw: Mapping[object, object] | None) -> dict[int, YearOverride]:
    """Validate override data shaped like the YAML file: {year: {confirmed, holidays, workdays}}."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CalendarOverrideError(
            "日历调整文件的顶层应为“年份: 设置”的映射。/ "
            "The calendar override file must map years to settings at the top level."
        )
    overrides: dict[int, YearOverride] = {}
    for key, value in raw.items():
        year = _parse_year(key)
        if isinstance(value, YearOverride):
            entry = value
        else:
            entry = _parse_year_entry(year, value)
        _check_year_entry(year, entry)
        overrides[year] = entry
    return overrides


def _parse_year(key: object) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise CalendarOverrideError(
        f"“{key}”不是年份，请写成四位数字，如 2027。/ "
        f"'{key}' is not a year; write it as four digits, e.g. 2027."
    )


def _parse_year_entry(year: int, value: object) -> YearOverride:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise CalendarOverrideError(
            f"{year} 年的设置应为映射（confirmed、holidays、workdays）。/ "
            f"The settings for {year} must be a mapping (confirmed, holidays, workdays)."
        )
    unknown = set(value) - {"confirmed", "holidays", "workdays"}
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise CalendarOverrideError(
            f"{year} 年的设置中有未知字段：{names}；只允许 confirmed、holidays、workdays。/ "
            f"Unknown fields for {year}: {names}; only confirmed, holidays, workdays are allowed."
        )
    confirmed = value.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise CalendarOverrideError(
            f"{year} 年的 confirmed 应为 true 或 false。/ "
            f"'confirmed' for {year} must be true or false."
        )
    return YearOverride(
        confirmed=confirmed,
        holidays=_parse_dates(year, "holidays", value.get("holidays")),
        workdays=_parse_dates(year, "workdays", value.get("workdays")),
    )


def _parse_dates(year: int, field: str, value: object) -> frozenset[dt.date]:
    if value is None:
        return frozenset()
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise CalendarOverrideError(
            f"{year} 年的 {field} 应为日期列表。/ '{field}' for {year} must be a list of dates."
        )
    dates: set[dt.date] = set()
    for item in value:
        if isinstance(item, dt.datetime) or not isinstance(item, (dt.date, str)):
            raise CalendarOverrideError(
                f"{year} 年 {field} 中的“{item}”不是日期，请写成 YYYY-MM-DD。/ "
                f"'{item}' in {field} for {year} is not a date; write YYYY-MM-DD."
            )
        if isinstance(item, str):
            try:
                item = dt.date.fromisoformat(item)
            except ValueError:
                raise CalendarOverrideError(
                    f"{year} 年 {field} 中的“{item}”不是日期，请写成 YYYY-MM-DD。/ "
                    f"'{item}' in {field} for {year} is not a date; write YYYY-MM-DD."
                ) from None
        dates.add(item)
    return frozenset(dates)


def _check_year_entry(year: int, entry: YearOverride) -> None:
    for field, dates in (("holidays", entry.holidays), ("workdays", entry.workdays)):
        strays = sorted(d for d in dates if d.year != year)
        if strays:
            raise CalendarOverrideError(
                f"{strays[0]} 写在了 {year} 年的 {field} 下，请移到对应年份。/ "
                f"{strays[0]} is listed under {field} of {year}; move it to its own year."
            )
    both = sorted(entry.holidays & entry.workdays)
    if both:
        raise CalendarOverrideError(
            f"{both[0]} 同时是节假日和调休工作日，请只保留一处。/ "
            f"{both[0]} is both a holiday and a make-up working day; keep only one."
        )


def require_aware(value: dt.datetime, name: str = "datetime") -> None:
    """Reject naive datetimes: guessing their zone would shift deadlines by hours."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} {value.isoformat()} has no timezone; pass an aware datetime "
            "(stored values are UTC), e.g. datetime(..., tzinfo=timezone.utc)."
        )


class WorkingCalendar:
    """Answers "is this a working day?" and does deadline arithmetic in working time.

    Day rules, first match wins: an override workday or holiday; the package's statutory
    calendar for the years it knows (2004–2026 in chinese_calendar 1.11); otherwise
    Monday–Friday, with the year reported as unconfirmed. Per-day answers are cached
    because SLA sweeps ask about the same days over and over.
    """

    def __init__(
        self,
        overrides: Mapping[object, object] | None = None,
        *,
        working_periods: Sequence[WorkingPeriod] = DEFAULT_WORKING_PERIODS,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> None:
        self._overrides = parse_overrides(overrides)
        self._periods = _check_periods(working_periods)
        self._tz = ZoneInfo(timezone)
        self._package_years: dict[int, bool] = {}
        self._working_days: dict[dt.date, bool] = {}
        self._day_periods: dict[dt.date, tuple[tuple[dt.datetime, dt.datetime], ...]] = {}

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        working_periods: Sequence[WorkingPeriod] = DEFAULT_WORKING_PERIODS,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> WorkingCalendar:
        """Load the override YAML file the supervision office edits (see calendar_overrides.yaml)."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CalendarOverrideError(
                f"日历调整文件 {path} 不是有效的 YAML：{error} / "
                f"The calendar override file {path} is not valid YAML: {error}"
            ) from error
        return cls(raw, working_periods=working_periods, timezone=timezone)

    @property
    def timezone(self) -> ZoneInfo:
        return self._tz

    @property
    def working_periods(self) -> tuple[WorkingPeriod, ...]:
        return self._periods

    # --- which days work -------------------------------------------------------------

    def is_confirmed(self, year: int) -> bool:
        """True when the official schedule of `year` is known (package or confirmed override).

        An override entry's `confirmed` wins over the package, so the office can also
        withdraw a year it doubts.
        """
        entry = self._overrides.get(year)
        if entry is not None:
            return entry.confirmed
        return self._package_knows(year)

    def unconfirmed_years(self, a: dt.datetime, b: dt.datetime) -> list[int]:
        """Years between the local dates of `a` and `b` whose schedule was guessed."""
        first, last = sorted((self._local_date(a), self._local_date(b)))
        return [y for y in range(first.year, last.year + 1) if not self.is_confirmed(y)]

    def spans_unconfirmed(self, a: dt.datetime, b: dt.datetime) -> bool:
        """Whether arithmetic between `a` and `b` relied on a guessed year."""
        return bool(self.unconfirmed_years(a, b))

    def is_working_day(self, day: dt.date) -> bool:
        cached = self._working_days.get(day)
        if cached is None:
            cached = self._classify(day)
            self._working_days[day] = cached
        return cached

    def next_working_day(self, day: dt.date) -> dt.date:
        """The first working day strictly after `day`."""
        candidate = day
        for _ in range(_MAX_SCAN_DAYS):
            candidate += dt.timedelta(days=1)
            if self.is_working_day(candidate):
                return candidate
        raise ValueError(f"no working day within {_MAX_SCAN_DAYS} days after {day}")

    def _classify(self, day: dt.date) -> bool:
        entry = self._overrides.get(day.year)
        if entry is not None:
            if day in entry.workdays:
                return True
            if day in entry.holidays:
                return False
        if self._package_knows(day.year):
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5

    def _package_knows(self, year: int) -> bool:
        known = self._package_years.get(year)
        if known is None:
            try:
                chinese_calendar.is_workday(dt.date(year, 6, 1))
                known = True
            except NotImplementedError:
                known = False
            self._package_years[year] = known
        return known

    # --- deadline arithmetic -----------------------------------------------------------

    def end_of_working_day(self, day: dt.date) -> dt.datetime:
        """The end of the last working period of `day` (in UTC), whether or not it works."""
        return self._to_utc(day, self._periods[-1][1])

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The end of working hours on the `days`-th working day after the day of `start`.

        This is how "reply within N working days" (N个工作日内) is counted in Beijing and
        Shanghai: the day of receipt never counts, whatever the hour and whether or not it
        is a working day, and the deadline is the close of business of the last day.
        Received Friday 15:00, 1 working day → next working day 17:30 (a make-up Saturday
        counts); received on a holiday, 1 working day → first working day after it, 17:30.
        """
        require_aware(start, "start")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"days must be a positive whole number, got {days!r}")
        day = self._local_date(start)
        for _ in range(days):
            day = self.next_working_day(day)
        return self.end_of_working_day(day)

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The instant when `hours` of working time have passed since `start`.

        Only time inside working periods of working days counts, so a request received at
        night, at lunch or on a holiday starts counting at the next working period. When
        the time runs out exactly at the end of a period, that end is the answer.
        """
        return self.add_working_seconds(start, hours * 3600)

    def add_working_seconds(self, start: dt.datetime, seconds: float) -> dt.datetime:
        """Like `add_working_hours`, in seconds; the primitive the SLA code builds on."""
        require_aware(start, "start")
        if seconds < 0:
            raise ValueError(f"working time to add must not be negative, got {seconds!r}")
        cursor = start.astimezone(UTC)
        remaining = float(seconds)
        if remaining == 0:
            return cursor
        day = self._local_date(start)
        for _ in range(_MAX_SCAN_DAYS):
            for period_start, period_end in self._working_periods_of(day):
                if period_end <= cursor:
                    continue
                begin = max(period_start, cursor)
                available = (period_end - begin).total_seconds()
                if remaining <= available:
                    return begin + dt.timedelta(seconds=remaining)
                remaining -= available
            day += dt.timedelta(days=1)
        raise ValueError(f"no working time found within {_MAX_SCAN_DAYS} days after {start}")

    def working_seconds_between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Working time from `a` to `b` in seconds; negative when `b` is before `a`."""
        require_aware(a, "a")
        require_aware(b, "b")
        if b < a:
            return -self.working_seconds_between(b, a)
        lo, hi = a.astimezone(UTC), b.astimezone(UTC)
        total = 0.0
        for day in _date_range(self._local_date(a), self._local_date(b)):
            for period_start, period_end in self._working_periods_of(day):
                overlap = (min(period_end, hi) - max(period_start, lo)).total_seconds()
                if overlap > 0:
                    total += overlap
        return total

    def working_days_between(self, a: dt.datetime, b: dt.datetime) -> int:
        """Working days after the local date of `a` up to and including that of `b`.

        The inverse of `add_working_days`: working_days_between(s, add_working_days(s, n))
        is n. Negative when `b` is before `a`.
        """
        require_aware(a, "a")
        require_aware(b, "b")
        if b < a:
            return -self.working_days_between(b, a)
        first, last = self._local_date(a), self._local_date(b)
        days = _date_range(first + dt.timedelta(days=1), last)
        return sum(1 for day in days if self.is_working_day(day))

    # --- helpers -----------------------------------------------------------------------

    def _local_date(self, value: dt.datetime) -> dt.date:
        require_aware(value)
        return value.astimezone(self._tz).date()

    def _to_utc(self, day: dt.date, at: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, at, tzinfo=self._tz).astimezone(UTC)

    def _working_periods_of(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        # UTC bounds, so that subtraction is exact even in a zone with DST.
        cached = self._day_periods.get(day)
        if cached is None:
            cached = (
                tuple((self._to_utc(day, s), self._to_utc(day, e)) for s, e in self._periods)
                if self.is_working_day(day)
                else ()
            )
            self._day_periods[day] = cached
        return cached


def _check_periods(periods: Sequence[WorkingPeriod]) -> tuple[WorkingPeriod, ...]:
    checked = tuple((start, end) for start, end in periods)
    if not checked:
        raise ValueError("at least one working period is needed")
    previous_end: dt.time | None = None
    for start, end in checked:
        if not start < end:
            raise ValueError(f"working period {start}–{end} must start before it ends")
        if previous_end is not None and start < previous_end:
            raise ValueError("working periods must be in order and must not overlap")
        previous_end = end
    return checked


def _date_range(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)

"""The working calendar: statutory holidays, make-up days, unconfirmed years, working hours.

Expected instants are worked out by hand from the published schedules (working hours
09:00–12:00 and 13:30–17:30, Beijing time), not by calling the code under test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from services.tracker.domain.calendar import (
    CalendarOverrideError,
    WorkingCalendar,
    YearOverride,
)

BEIJING = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
SHIPPED_OVERRIDES = Path(__file__).parents[3] / "services/tracker/calendar_overrides.yaml"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A Beijing wall-clock instant."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=BEIJING)


@pytest.fixture
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


def write_overrides(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar_overrides.yaml"
    path.write_text(text, encoding="utf-8")
    return path


CONFIRMED_2027 = """
2027:
  confirmed: true
  holidays: [2027-01-01]
  workdays: []
"""


# --- which days work -------------------------------------------------------------------


def test_national_day_2025_holidays_and_make_up_days(calendar: WorkingCalendar) -> None:
    # 2025: Oct 1–8 off; Sunday Sep 28 and Saturday Oct 11 worked in exchange.
    assert calendar.is_working_day(dt.date(2025, 9, 28))
    assert not calendar.is_working_day(dt.date(2025, 10, 1))
    assert not calendar.is_working_day(dt.date(2025, 10, 8))
    assert calendar.is_working_day(dt.date(2025, 10, 9))
    assert calendar.is_working_day(dt.date(2025, 10, 11))
    assert not calendar.is_working_day(dt.date(2025, 10, 12))


def test_spring_festival_2026_holidays_and_make_up_saturdays(calendar: WorkingCalendar) -> None:
    # 2026: Feb 15–23 off; Saturdays Feb 14 and Feb 28 worked in exchange.
    assert calendar.is_working_day(dt.date(2026, 2, 14))
    assert not calendar.is_working_day(dt.date(2026, 2, 16))
    assert not calendar.is_working_day(dt.date(2026, 2, 23))
    assert calendar.is_working_day(dt.date(2026, 2, 24))
    assert calendar.is_working_day(dt.date(2026, 2, 28))


def test_next_working_day_skips_the_national_day_week(calendar: WorkingCalendar) -> None:
    assert calendar.next_working_day(dt.date(2025, 9, 30)) == dt.date(2025, 10, 9)
    assert calendar.next_working_day(dt.date(2025, 10, 10)) == dt.date(2025, 10, 11)


def test_years_known_to_the_package_are_confirmed(calendar: WorkingCalendar) -> None:
    assert calendar.is_confirmed(2025)
    assert calendar.is_confirmed(2026)


def test_2027_is_unconfirmed_and_falls_back_to_monday_to_friday(calendar: WorkingCalendar) -> None:
    assert not calendar.is_confirmed(2027)
    # New Year's Day 2027 is a Friday: surely a holiday, but nothing official says so yet,
    # so it counts as a working day and the year is reported as unconfirmed.
    assert calendar.is_working_day(dt.date(2027, 1, 1))
    assert not calendar.is_working_day(dt.date(2027, 1, 2))


def test_shipped_override_file_confirms_nothing_beyond_the_package() -> None:
    calendar = WorkingCalendar.from_file(SHIPPED_OVERRIDES)
    assert calendar.is_confirmed(2026)
    assert not calendar.is_confirmed(2027)


def test_override_file_confirming_2027_applies_its_holidays(tmp_path: Path) -> None:
    calendar = WorkingCalendar.from_file(write_overrides(tmp_path, CONFIRMED_2027))
    assert calendar.is_confirmed(2027)
    assert not calendar.is_working_day(dt.date(2027, 1, 1))


def test_unconfirmed_draft_is_used_but_stays_flagged() -> None:
    calendar = WorkingCalendar(
        {2027: YearOverride(confirmed=False, workdays=frozenset({dt.date(2027, 2, 20)}))}
    )
    assert calendar.is_working_day(dt.date(2027, 2, 20))  # a Saturday
    assert not calendar.is_confirmed(2027)


def test_override_can_add_a_local_holiday_to_a_known_year() -> None:
    calendar = WorkingCalendar(
        {2026: {"confirmed": True, "holidays": ["2026-03-02"], "workdays": []}}
    )
    assert not calendar.is_working_day(dt.date(2026, 3, 2))
    assert calendar.is_confirmed(2026)


@pytest.mark.parametrize(
    "text",
    [
        "2027: {confirmed: yes-please}",
        "2027: {holidays: [2028-01-01]}",
        "2027: {holidays: [2027-01-01], workdays: [2027-01-01]}",
        "2027: {holidays: [not-a-date]}",
        "2027: {holiday: [2027-01-01]}",
        "twenty-seven: {}",
        "- 2027",
    ],
)
def test_malformed_override_file_is_rejected_with_a_bilingual_message(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(CalendarOverrideError, match="/"):
        WorkingCalendar.from_file(write_overrides(tmp_path, text))


def test_day_lookups_are_cached(calendar: WorkingCalendar, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dt.date] = []
    real = chinese_calendar.is_workday

    def counting(day: dt.date) -> bool:
        calls.append(day)
        return real(day)

    calendar.is_confirmed(2025)  # the per-year check is cached separately
    monkeypatch.setattr(chinese_calendar, "is_workday", counting)
    for _ in range(5):
        calendar.add_working_days(at(2025, 9, 30, 10), 5)
    assert calls.count(dt.date(2025, 10, 9)) == 1


# --- working days ----------------------------------------------------------------------


def test_one_working_day_from_friday_afternoon_is_monday_close_of_business(
    calendar: WorkingCalendar,
) -> None:
    assert calendar.add_working_days(at(2025, 11, 7, 15), 1) == at(2025, 11, 10, 17, 30)


def test_day_of_receipt_does_not_count_even_before_office_hours(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_days(at(2025, 11, 3, 7), 1) == at(2025, 11, 4, 17, 30)


def test_five_working_days_across_national_day_2025_count_the_make_up_saturday(
    calendar: WorkingCalendar,
) -> None:
    # Oct 9 (1), Oct 10 (2), Saturday Oct 11 (3), Oct 13 (4), Oct 14 (5).
    assert calendar.add_working_days(at(2025, 9, 30, 10), 5) == at(2025, 10, 14, 17, 30)


def test_one_working_day_before_a_make_up_sunday_lands_on_that_sunday(
    calendar: WorkingCalendar,
) -> None:
    # Friday Sep 26 2025 → Saturday Sep 27 rests → Sunday Sep 28 is worked.
    assert calendar.add_working_days(at(2025, 9, 26, 16), 1) == at(2025, 9, 28, 17, 30)


def test_five_working_days_across_national_day_2026(calendar: WorkingCalendar) -> None:
    # 2026: Oct 1–7 off; Oct 8 (1), Oct 9 (2), Saturday Oct 10 (3), Oct 12 (4), Oct 13 (5).
    assert calendar.add_working_days(at(2026, 9, 30, 20), 5) == at(2026, 10, 13, 17, 30)


def test_received_on_a_holiday_counts_from_the_first_working_day_after(
    calendar: WorkingCalendar,
) -> None:
    assert calendar.add_working_days(at(2025, 10, 3, 11), 1) == at(2025, 10, 9, 17, 30)


def test_the_local_date_of_receipt_is_used_not_the_utc_date(calendar: WorkingCalendar) -> None:
    # 17:00 UTC on Monday Nov 3 is 01:00 Tuesday in Beijing: Tuesday is the day of receipt.
    received = dt.datetime(2025, 11, 3, 17, 0, tzinfo=UTC)
    assert calendar.add_working_days(received, 1) == at(2025, 11, 5, 17, 30)


def test_results_are_returned_in_utc(calendar: WorkingCalendar) -> None:
    due = calendar.add_working_days(at(2025, 11, 7, 15), 1)
    assert due.utcoffset() == dt.timedelta(0)
    assert due == dt.datetime(2025, 11, 10, 9, 30, tzinfo=UTC)


def test_five_working_days_from_new_years_eve_2026_reach_into_unconfirmed_2027(
    calendar: WorkingCalendar,
) -> None:
    received = at(2026, 12, 31, 10)
    due = calendar.add_working_days(received, 5)
    # Fallback counts Friday Jan 1 2027: Jan 1 (1), Jan 4 (2), 5 (3), 6 (4), 7 (5).
    assert due == at(2027, 1, 7, 17, 30)
    assert calendar.spans_unconfirmed(received, due)
    assert calendar.unconfirmed_years(received, due) == [2027]


def test_working_days_between_inverts_add_working_days(calendar: WorkingCalendar) -> None:
    assert calendar.working_days_between(at(2025, 9, 30, 10), at(2025, 10, 14, 17, 30)) == 5
    assert calendar.working_days_between(at(2025, 10, 14, 17, 30), at(2025, 9, 30, 10)) == -5
    assert calendar.working_days_between(at(2025, 10, 9, 9), at(2025, 10, 9, 17)) == 0


@pytest.mark.parametrize("days", [0, -1, 1.5])
def test_working_days_must_be_a_positive_whole_number(calendar: WorkingCalendar, days: object) -> None:
    with pytest.raises(ValueError):
        calendar.add_working_days(at(2025, 11, 3, 9), days)  # type: ignore[arg-type]


# --- working hours ---------------------------------------------------------------------


def test_two_working_hours_from_late_morning_skip_the_lunch_break(calendar: WorkingCalendar) -> None:
    # 11:00–12:00 is one hour, the second runs 13:30–14:30.
    assert calendar.add_working_hours(at(2025, 11, 3, 11), 2) == at(2025, 11, 3, 14, 30)


def test_working_hours_carry_over_to_the_next_morning(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_hours(at(2025, 11, 3, 16, 30), 2) == at(2025, 11, 4, 10)


def test_a_request_received_at_night_starts_counting_next_morning(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_hours(at(2025, 11, 3, 22), 2) == at(2025, 11, 4, 11)


def test_received_at_lunch_starts_counting_at_half_past_one(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_hours(at(2025, 11, 3, 12, 15), 1) == at(2025, 11, 3, 14, 30)


def test_working_hours_running_out_at_close_of_business_end_there(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_hours(at(2025, 11, 3, 9), 7) == at(2025, 11, 3, 17, 30)


def test_working_hours_skip_the_national_day_week(calendar: WorkingCalendar) -> None:
    # Sep 30 16:00–17:30 is 1.5 h; the last half hour is on Oct 9.
    assert calendar.add_working_hours(at(2025, 9, 30, 16), 2) == at(2025, 10, 9, 9, 30)


def test_working_seconds_between_counts_only_working_periods(calendar: WorkingCalendar) -> None:
    # Mon 11:00–12:00 (1 h) + 13:30–17:30 (4 h) + Tue 09:00–10:00 (1 h).
    assert calendar.working_seconds_between(at(2025, 11, 3, 11), at(2025, 11, 4, 10)) == 6 * 3600
    assert calendar.working_seconds_between(at(2025, 11, 4, 10), at(2025, 11, 3, 11)) == -6 * 3600
    # A whole weekend has no working time.
    assert calendar.working_seconds_between(at(2025, 11, 8, 0), at(2025, 11, 10, 0)) == 0


def test_working_periods_are_configurable() -> None:
    calendar = WorkingCalendar(working_periods=[(dt.time(8, 30), dt.time(17, 0))])
    assert calendar.add_working_hours(at(2025, 11, 3, 16), 2) == at(2025, 11, 4, 9, 30)
    assert calendar.add_working_days(at(2025, 11, 3, 16), 1) == at(2025, 11, 4, 17)


def test_overlapping_working_periods_are_rejected() -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(
            working_periods=[(dt.time(9), dt.time(12)), (dt.time(11), dt.time(17))]
        )


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.add_working_days(dt.datetime(2025, 11, 3, 9), 1),
        lambda c: c.add_working_hours(dt.datetime(2025, 11, 3, 9), 1),
        lambda c: c.working_seconds_between(dt.datetime(2025, 11, 3, 9), at(2025, 11, 4)),
        lambda c: c.working_days_between(at(2025, 11, 3), dt.datetime(2025, 11, 4)),
    ],
)
def test_naive_datetimes_are_rejected(calendar: WorkingCalendar, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no timezone"):
        call(calendar)

"""Escalating an overdue supervision order (督办单逾期升级): the new answer date on the working calendar,
and what the unit and the timeline are told.

Expected instants are worked out by hand from the published 2026 schedule (National Day 1–7 October off,
Saturday 10 October a make-up working day; close of business 17:30 Beijing time), not by calling the
calendar.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.escalation import Escalation, escalated_due

BEIJING = ZoneInfo("Asia/Shanghai")


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A Beijing wall-clock instant of 2026."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BEIJING)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


def test_an_order_escalated_on_friday_evening_is_due_on_tuesday_at_close_of_business(calendar):
    # Due Friday 20 November 17:30, escalated a minute later: Monday is the first working day, Tuesday the second.
    assert escalated_due(calendar, at(11, 20, 17, 31), 2) == at(11, 24, 17, 30)


def test_an_order_escalated_before_national_day_skips_the_holiday_week(calendar):
    # Wednesday 30 September: 1–7 October are off, so Thursday 8 and Friday 9 October are the two working days.
    assert escalated_due(calendar, at(9, 30, 17, 31), 2) == at(10, 9, 17, 30)


def test_a_make_up_saturday_counts_as_a_working_day(calendar):
    # The third working day after 30 September is Saturday 10 October (调休上班), not Monday 12 October.
    assert escalated_due(calendar, at(9, 30, 17, 31), 3) == at(10, 10, 17, 30)


def test_an_order_escalated_during_the_holiday_counts_from_the_first_working_day_after_it(calendar):
    assert escalated_due(calendar, at(10, 3, 12), 1) == at(10, 8, 17, 30)


def test_the_day_of_the_escalation_never_counts_even_in_the_morning_of_a_working_day(calendar):
    # Escalated Monday 09:00 (a tracker that was down over the weekend): Tuesday and Wednesday.
    assert escalated_due(calendar, at(11, 23, 9), 2) == at(11, 25, 17, 30)


def test_a_normal_order_is_promoted_to_key_and_the_unit_is_told_the_new_date_in_local_time():
    e = Escalation(order_no="DB-20261118-000001-1", from_level="normal", previous_due=at(11, 20, 17, 30),
                   due_at=at(11, 24, 17, 30).astimezone(dt.UTC))
    assert e.level == "key" and e.promoted
    assert e.describe(BEIJING) == "督办单 DB-20261118-000001-1 逾期未回复，已升级为重点督办，请于 2026-11-24 17:30 前回复"
    assert e.details() == {"order_no": "DB-20261118-000001-1", "from_level": "normal", "level": "key",
                           "previous_due": "2026-11-20T17:30:00+08:00", "due_at": "2026-11-24T09:30:00+00:00"}


def test_a_key_order_stays_key_and_is_chased_again_rather_than_promoted():
    e = Escalation(order_no="DB-x-2", from_level="key", previous_due=at(11, 20, 17, 30), due_at=at(11, 24, 17, 30))
    assert e.level == "key" and not e.promoted
    assert "重点督办再次催办" in e.describe(BEIJING) and "已升级为重点督办" not in e.describe(BEIJING)


"""SLA deadlines: the default policy, warnings, pauses, extensions, reopening, flags.

Expected instants are worked out by hand from the published schedules (working hours
09:00–12:00 and 13:30–17:30, Beijing time, 7 working hours a day), not by calling the
code under test.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import (
    KINDS,
    Deadlines,
    ExtensionNotAllowed,
    Pause,
    SlaPolicy,
    SlaPolicyError,
    SlaRule,
    Unit,
    add_pause,
    compute_deadlines,
    extend,
    reopen_deadlines,
    shift_for_pauses,
    working_days,
)

BEIJING = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A Beijing wall-clock instant."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=BEIJING)


@pytest.fixture
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


@pytest.fixture
def policy() -> SlaPolicy:
    return SlaPolicy.default()


def deadlines_for(
    policy: SlaPolicy, calendar: WorkingCalendar, received: dt.datetime, kind: str, urgency: str = "normal"
) -> Deadlines:
    return compute_deadlines(policy, calendar, received, kind, urgency)


# --- the default policy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reply_days"),
    [
        ("consultation", 1),
        ("suggestion", 1),
        ("help", 5),
        ("complaint", 5),
        ("report", 5),
        ("praise", 5),
        ("information_request", 20),
    ],
)
def test_default_reply_times_per_kind(policy: SlaPolicy, kind: str, reply_days: int) -> None:
    rule = policy.rule_for(kind, "normal")
    assert rule.reply == working_days(reply_days)
    assert (rule.sign_for.amount, rule.sign_for.unit) == (2, Unit.WORKING_HOURS)
    assert rule.contact is None


@pytest.mark.parametrize("kind", KINDS)
def test_urgent_matters_of_any_kind_run_on_clock_hours(policy: SlaPolicy, kind: str) -> None:
    rule = policy.rule_for(kind, "urgent")
    assert (rule.contact and rule.contact.amount, rule.contact and rule.contact.unit) == (
        2,
        Unit.CLOCK_HOURS,
    )
    assert (rule.reply.amount, rule.reply.unit) == (24, Unit.CLOCK_HOURS)


def test_default_warning_is_at_eighty_percent_and_reopen_is_three_working_days(
    policy: SlaPolicy,
) -> None:
    assert policy.warn_ratio == 0.8
    assert policy.reopen == working_days(3)


# --- working-day deadlines -------------------------------------------------------------


def test_complaint_due_five_working_days_after_national_day_2025(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 9, 30, 16), "complaint")
    # Sign-for: 16:00–17:30 on Sep 30 (1.5 h), the last half hour on Oct 9.
    assert d.sign_for_due == at(2025, 10, 9, 9, 30)
    assert d.contact_due is None
    # Oct 9 (1), Oct 10 (2), make-up Saturday Oct 11 (3), Oct 13 (4), Oct 14 (5).
    assert d.reply_due == at(2025, 10, 14, 17, 30)
    # 1.5 h + 5 × 7 h = 36.5 h; 80 % = 29.2 h: 1.5 + 7 + 7 + 7 → 6.7 h left on Oct 13:
    # 09:00–12:00 (3 h), then 3.7 h from 13:30 → 17:12.
    assert d.warn_at == at(2025, 10, 13, 17, 12)
    assert not d.calendar_unconfirmed


def test_complaint_received_at_night_before_national_day_2026(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2026, 9, 30, 20), "complaint")
    # Oct 1–7 off; sign-for counts from 09:00 on Thursday Oct 8.
    assert d.sign_for_due == at(2026, 10, 8, 11)
    # Oct 8 (1), Oct 9 (2), make-up Saturday Oct 10 (3), Oct 12 (4), Oct 13 (5).
    assert d.reply_due == at(2026, 10, 13, 17, 30)


def test_help_request_before_spring_festival_2026_counts_the_make_up_saturday(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2026, 2, 13, 15), "help")
    assert d.sign_for_due == at(2026, 2, 13, 17)
    # Saturday Feb 14 (1), Feb 15–23 off, Feb 24 (2), 25 (3), 26 (4), 27 (5).
    assert d.reply_due == at(2026, 2, 27, 17, 30)


def test_report_after_spring_festival_2026_counts_the_make_up_saturday(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2026, 2, 25, 10), "report")
    # Feb 26 (1), Feb 27 (2), Saturday Feb 28 (3), Mar 2 (4), Mar 3 (5).
    assert d.reply_due == at(2026, 3, 3, 17, 30)


@pytest.mark.parametrize("kind", ["consultation", "suggestion"])
def test_consultation_on_friday_before_a_make_up_saturday_is_due_that_saturday(
    policy: SlaPolicy, calendar: WorkingCalendar, kind: str
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 10, 10, 14), kind)
    assert d.reply_due == at(2025, 10, 11, 17, 30)


def test_consultation_received_on_a_holiday_is_due_on_the_first_working_day_after(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 10, 3, 11), "consultation")
    assert d.sign_for_due == at(2025, 10, 9, 11)
    assert d.reply_due == at(2025, 10, 9, 17, 30)


def test_praise_gets_the_ordinary_five_working_days(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), "praise")
    assert d.reply_due == at(2025, 11, 10, 17, 30)


def test_warning_falls_at_eighty_percent_of_working_time_not_wall_time(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), "complaint")
    assert d.reply_due == at(2025, 11, 10, 17, 30)
    # 6 × 7 h = 42 h; 80 % = 33.6 h: Mon–Thu 28 h, Fri 09:00–12:00 3 h, 2.6 h from 13:30.
    assert d.warn_at == at(2025, 11, 7, 16, 6)


def test_deadlines_are_stored_in_utc(policy: SlaPolicy, calendar: WorkingCalendar) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), "complaint")
    assert d.received_at.utcoffset() == dt.timedelta(0)
    assert d.reply_due == dt.datetime(2025, 11, 10, 9, 30, tzinfo=dt.timezone.utc)


# --- unconfirmed years -----------------------------------------------------------------


def test_complaint_on_new_years_eve_2026_lands_in_unconfirmed_2027_and_is_flagged(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2026, 12, 31, 10), "complaint")
    assert d.sign_for_due == at(2026, 12, 31, 12)
    # Monday–Friday fallback: Jan 1 (1), Jan 4 (2), 5 (3), 6 (4), 7 (5).
    assert d.reply_due == at(2027, 1, 7, 17, 30)
    assert d.calendar_unconfirmed


def test_override_file_confirming_2027_clears_the_flag(
    policy: SlaPolicy, tmp_path: Path
) -> None:
    path = tmp_path / "calendar_overrides.yaml"
    path.write_text("2027:\n  confirmed: true\n  holidays: [2027-01-01]\n", encoding="utf-8")
    calendar = WorkingCalendar.from_file(path)
    d = deadlines_for(policy, calendar, at(2026, 12, 31, 10), "complaint")
    # Jan 1 is now a holiday: Jan 4 (1) … Jan 8 (5).
    assert d.reply_due == at(2027, 1, 8, 17, 30)
    assert not d.calendar_unconfirmed


def test_urgent_matter_on_new_years_eve_2026_is_not_flagged_because_it_uses_no_calendar(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2026, 12, 31, 22), "complaint", "urgent")
    assert d.reply_due == at(2027, 1, 1, 22)
    assert not d.calendar_unconfirmed


# --- urgent matters --------------------------------------------------------------------


def test_urgent_matter_on_saturday_night_does_not_wait_for_monday(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 8, 23), "help", "urgent")
    assert d.sign_for_due == at(2025, 11, 9, 1)
    assert d.contact_due == at(2025, 11, 9, 1)
    assert d.reply_due == at(2025, 11, 9, 23)
    # 80 % of 24 clock hours = 19 h 12 min.
    assert d.warn_at == at(2025, 11, 9, 18, 12)


def test_urgent_matter_cannot_be_extended(policy: SlaPolicy, calendar: WorkingCalendar) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 8, 23), "help", "urgent")
    with pytest.raises(ExtensionNotAllowed):
        extend(policy, calendar, d, 1)


# --- extensions ------------------------------------------------------------------------


def test_information_request_twenty_working_days_extendable_once_by_twenty(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 10), "information_request")
    # Nov 4–7 (4), 10–14 (9), 17–21 (14), 24–28 (19), Dec 1 (20).
    assert d.reply_due == at(2025, 12, 1, 17, 30)
    extended = extend(policy, calendar, d, 20)
    # Dec 2–5 (4), 8–12 (9), 15–19 (14), 22–26 (19), Dec 29 (20).
    assert extended.reply_due == at(2025, 12, 29, 17, 30)
    assert extended.extensions == (20,)
    with pytest.raises(ExtensionNotAllowed, match="at most 1 time"):
        extend(policy, calendar, extended, 1)


def test_information_request_extension_is_at_most_twenty_working_days(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 10), "information_request")
    with pytest.raises(ExtensionNotAllowed, match="at most 20 working days"):
        extend(policy, calendar, d, 21)


def test_complex_complaint_may_be_extended_to_fifteen_working_days_in_all(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), "complaint")
    extended = extend(policy, calendar, d, 10)
    # 15 working days after Monday Nov 3: Nov 4–7 (4), 10–14 (9), 17–21 (14), Nov 24 (15).
    assert extended.reply_due == at(2025, 11, 24, 17, 30)
    with pytest.raises(ExtensionNotAllowed, match="15 working days"):
        extend(policy, calendar, d, 11)
    with pytest.raises(ExtensionNotAllowed):
        extend(policy, calendar, extend(policy, calendar, d, 5), 5)


def test_extension_keeps_earlier_pauses(policy: SlaPolicy, calendar: WorkingCalendar) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), "complaint")
    paused = add_pause(policy, calendar, d, at(2025, 11, 5, 10), at(2025, 11, 10, 10))
    # The pause moved the due date three working days (Nov 13); extension adds two more.
    assert extend(policy, calendar, paused, 2).reply_due == at(2025, 11, 17, 17, 30)


# --- pauses (补充材料) ------------------------------------------------------------------


def test_pause_restores_the_working_time_left_from_the_resume_instant(
    calendar: WorkingCalendar,
) -> None:
    # Paused Wed 10:00 with 27 h left (6 + 7 + 7 + 7); resumed Mon 10:00:
    # Mon 6 h, Tue 7, Wed 7, Thu 7 → Thu 17:30.
    due = shift_for_pauses(
        calendar,
        at(2025, 11, 3, 9),
        at(2025, 11, 10, 17, 30),
        [Pause(at(2025, 11, 5, 10), at(2025, 11, 10, 10))],
    )
    assert due == at(2025, 11, 13, 17, 30)


def test_citizen_answering_at_night_resumes_the_clock_next_morning(
    calendar: WorkingCalendar,
) -> None:
    # Paused Wed 10:00, answered Wed 20:00: only Wed 10:00–17:30 (6 h) was lost,
    # so the due date moves 6 working hours past Mon 17:30 → Tue 16:30.
    due = shift_for_pauses(
        calendar,
        at(2025, 11, 3, 9),
        at(2025, 11, 10, 17, 30),
        [Pause(at(2025, 11, 5, 10), at(2025, 11, 5, 20))],
    )
    assert due == at(2025, 11, 11, 16, 30)


def test_pause_starting_after_the_due_date_restores_nothing(calendar: WorkingCalendar) -> None:
    due = shift_for_pauses(
        calendar,
        at(2025, 11, 3, 9),
        at(2025, 11, 10, 17, 30),
        [Pause(at(2025, 11, 11, 9), at(2025, 11, 12, 9))],
    )
    assert due == at(2025, 11, 10, 17, 30)


def test_overlapping_pauses_count_once(calendar: WorkingCalendar) -> None:
    # Together they stop the clock Wed 10:00 → Fri 10:00: 6 + 7 + 1 = 14 h, two working days.
    due = shift_for_pauses(
        calendar,
        at(2025, 11, 3, 9),
        at(2025, 11, 10, 17, 30),
        [
            Pause(at(2025, 11, 5, 15), at(2025, 11, 7, 10)),
            Pause(at(2025, 11, 5, 10), at(2025, 11, 6, 10)),
        ],
    )
    assert due == at(2025, 11, 12, 17, 30)


def test_pause_shifts_reply_and_warning_but_not_sign_for(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), "complaint")
    paused = add_pause(policy, calendar, d, at(2025, 11, 5, 10), at(2025, 11, 10, 10))
    assert paused.sign_for_due == d.sign_for_due == at(2025, 11, 3, 11)
    assert paused.reply_due == at(2025, 11, 13, 17, 30)
    # The warning (Fri 16:06) moves by the same three working days.
    assert paused.warn_at == at(2025, 11, 12, 16, 6)


def test_pause_of_an_urgent_matter_shifts_by_clock_time(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = deadlines_for(policy, calendar, at(2025, 11, 8, 23), "help", "urgent")
    paused = add_pause(policy, calendar, d, at(2025, 11, 9, 10), at(2025, 11, 9, 14))
    assert paused.reply_due == at(2025, 11, 10, 3)


def test_pause_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError):
        Pause(at(2025, 11, 5, 10), at(2025, 11, 5, 10))


# --- reopening (重办) -------------------------------------------------------------------


def test_reopened_ticket_gets_three_working_days_counting_a_make_up_sunday(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    d = reopen_deadlines(policy, calendar, at(2025, 9, 25, 15), "complaint", "normal")
    # Fri Sep 26 (1), make-up Sunday Sep 28 (2), Mon Sep 29 (3).
    assert d.reply_due == at(2025, 9, 29, 17, 30)
    assert d.reopened
    with pytest.raises(ExtensionNotAllowed):
        extend(policy, calendar, d, 1)


# --- configuration ---------------------------------------------------------------------


def test_policy_from_mapping_changes_only_what_it_names() -> None:
    policy = SlaPolicy.from_mapping(
        {
            "warn_ratio": 0.75,
            "reopen": {"working_days": 2},
            "rules": {"complaint": {"normal": {"reply": {"working_days": 7}, "max_total_working_days": 20}}},
        }
    )
    complaint = policy.rule_for("complaint", "normal")
    assert complaint.reply == working_days(7)
    assert complaint.max_extensions == 1
    assert complaint.max_total_working_days == 20
    assert policy.rule_for("help", "normal") == SlaPolicy.default().rule_for("help", "normal")
    assert policy.warn_ratio == 0.75
    assert policy.reopen == working_days(2)


def test_policy_from_empty_mapping_is_the_default() -> None:
    assert SlaPolicy.from_mapping({}) == SlaPolicy.default()
    assert SlaPolicy.from_mapping(None) == SlaPolicy.default()


@pytest.mark.parametrize(
    "raw",
    [
        {"rules": {"complain": {"normal": {}}}},
        {"rules": {"complaint": {"critical": {}}}},
        {"rules": {"complaint": {"normal": {"answer": {"working_days": 5}}}}},
        {"rules": {"complaint": {"normal": {"reply": {"weeks": 1}}}}},
        {"rules": {"complaint": {"normal": {"reply": {"working_days": 0}}}}},
        {"rules": {"complaint": {"normal": {"reply": {"working_days": 1.5}}}}},
        {"rules": {"complaint": {"normal": {"reply": {"working_days": 5, "clock_hours": 2}}}}},
        {"rules": {"complaint": {"normal": {"max_total_working_days": 3}}}},
        {"rules": {"complaint": {"urgent": {"max_extensions": 1}}}},
        {"warn_ratio": 1.5},
        {"warn_ratio": "80%"},
        {"deadlines": {}},
    ],
)
def test_policy_from_mapping_rejects_invalid_configuration(raw: dict[str, Any]) -> None:
    with pytest.raises(SlaPolicyError, match="/"):
        SlaPolicy.from_mapping(raw)


def test_policy_must_cover_every_kind_and_urgency() -> None:
    with pytest.raises(SlaPolicyError):
        SlaPolicy(rules={("complaint", "normal"): SlaRule(reply=working_days(5))})


def test_unknown_kind_is_rejected(policy: SlaPolicy, calendar: WorkingCalendar) -> None:
    with pytest.raises(SlaPolicyError):
        deadlines_for(policy, calendar, at(2025, 11, 3, 9), "compliment")


def test_string_enum_kinds_work_like_plain_strings(
    policy: SlaPolicy, calendar: WorkingCalendar
) -> None:
    class Kind(StrEnum):
        COMPLAINT = "complaint"

    d = deadlines_for(policy, calendar, at(2025, 11, 3, 9), Kind.COMPLAINT)
    assert d.reply_due == at(2025, 11, 10, 17, 30)


def test_naive_received_at_is_rejected(policy: SlaPolicy, calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        deadlines_for(policy, calendar, dt.datetime(2025, 11, 3, 9), "complaint")

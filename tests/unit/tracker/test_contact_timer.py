"""Urgent matters: the department must call the citizen within 2 hours, and a timer holds it to that."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import SlaPolicy, compute_deadlines
from services.tracker.timers import wanted_timers

BEIJING = ZoneInfo("Asia/Shanghai")
SATURDAY_NIGHT = dt.datetime(2025, 11, 8, 23, 0, tzinfo=BEIJING)
CALENDAR = WorkingCalendar()


def _deadlines(urgency: str):
    return compute_deadlines(SlaPolicy.default(), CALENDAR, SATURDAY_NIGHT, "help", urgency)


def test_an_urgent_ticket_waits_for_contact_two_clock_hours_even_on_a_saturday_night():
    d = _deadlines("urgent")
    for state in ("assigned", "signed_for"):
        assert ("contact_due", dt.datetime(2025, 11, 9, 1, 0, tzinfo=BEIJING)) in wanted_timers(state, d, CALENDAR)


def test_once_the_citizen_was_contacted_or_the_clock_paused_no_contact_timer_is_owed():
    d = _deadlines("urgent")
    for state in ("contacted", "waiting_citizen", "replied", "reopened"):
        assert "contact_due" not in {kind for kind, _ in wanted_timers(state, d, CALENDAR)}, state


def test_an_ordinary_ticket_has_no_contact_clock():
    assert "contact_due" not in {kind for kind, _ in wanted_timers("assigned", _deadlines("normal"), CALENDAR)}

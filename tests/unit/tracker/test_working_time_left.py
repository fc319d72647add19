"""The time a unit has left to reply, as its lists and the ticket page say it, counts what the deadline counts.

A reply due in working days runs on the working calendar (9:00-12:00 and 13:30-17:30 on working days): across a
weekend or the National Day holiday the unit has only the working time before it, not the calendar days, and a
ticket late over a holiday is late by the working time since. Urgent matters run on the clock and keep the
clock's text. The tooltip names the deadline's own date, so nothing is hidden.

Also here: the contact deadline (联系市民时限) of an urgent matter is overdue on every page exactly while its timer
chases the call (`timers.awaiting_contact`), and the date 待补充材料 waits until may not be in the past.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from jiesu.identity import User
from schemas.enums import Role
from services.tracker.actions import supply_date_refused
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import SlaPolicy
from services.tracker.handlers import Clocks
from services.tracker.queries import ticket_view, time_left, time_left_note, working_time_left

BEIJING = ZoneInfo("Asia/Shanghai")
# A fixed calendar: the weekends as ever, and the 2026 National Day holiday of 1-8 October and the Saturday worked
# after it (调休, 10 October) written out, whatever the chinese_calendar package says of them.
NATIONAL_DAY = [dt.date(2026, 10, d) for d in range(1, 9)]
CALENDAR = WorkingCalendar({2026: {"confirmed": True, "holidays": NATIONAL_DAY, "workdays": [dt.date(2026, 10, 10)]}})
CLOCKS = Clocks(calendar=CALENDAR, policy=SlaPolicy.default())
UNIT = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A Beijing wall-clock instant of 2026, in UTC as the tracker stores it."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BEIJING).astimezone(dt.UTC)


def ticket(due: dt.datetime, *, urgency: str = "normal", state: str = "signed_for", reopened: bool = False,
           **more) -> SimpleNamespace:
    fields = dict(
        ticket_id="t1", number="12345-20261120-000001", state=state, channel="hotline", kind="complaint",
        urgency=urgency, subject="夜间施工噪音", description="", citizen_name="王芳", citizen_phone="13800138000",
        confidential=False, district=None, street=None, address=None, category=None, lead_code="M-CGW",
        lead_name="市城市管理委员会", co_handlers=[], routing=None, received_at=None, assigned_at=None,
        sign_for_due=None, contact_due=None, reply_due=due, warn_at=None, calendar_unconfirmed=False, reply=None,
        replied_at=None, reopened=reopened, resume_to=None, contacted_at=None)
    return SimpleNamespace(**(fields | more))


# --- across a weekend ----------------------------------------------------------------------------------------


def test_a_complaint_due_on_monday_has_the_working_time_left_not_the_weekend():
    friday, due_monday = at(11, 20, 15), at(11, 23, 17, 30)
    row = ticket(due_monday)
    assert time_left(row, friday, CLOCKS) == "剩余 1 个工作日 2 小时"  # Friday 2½ h and Monday's 7 h
    assert time_left(row, friday) == "剩余 3 天 2 小时"  # the calendar's count, which the unit used to see


def test_under_one_working_day_left_it_is_working_hours_and_minutes():
    assert time_left(ticket(at(11, 23, 17, 30)), at(11, 23, 10, 40), CLOCKS) == "剩余 5 小时 20 分"  # lunch left out
    assert time_left(ticket(at(11, 23, 12)), at(11, 20, 16), CLOCKS) == "剩余 4 小时 30 分"  # over the weekend
    assert time_left(ticket(at(11, 23, 12)), at(11, 23, 11, 45), CLOCKS) == "剩余 15 分"


def test_a_deadline_passed_on_friday_evening_is_late_by_no_working_time_until_monday():
    due_friday = at(11, 20, 17, 30)
    assert time_left(ticket(due_friday), at(11, 21, 20), CLOCKS) == "已超期"
    assert time_left(ticket(due_friday), at(11, 23, 10, 30), CLOCKS) == "超期 1 小时 30 分"


# --- across the National Day holiday -------------------------------------------------------------------------


def test_before_national_day_a_unit_sees_the_working_time_left_not_nine_calendar_days():
    due = at(10, 9, 17, 30)  # the first working day after the holiday
    row = ticket(due)
    assert time_left(row, at(9, 30, 15), CLOCKS) == "剩余 1 个工作日 2 小时"  # 30 September 2½ h, 9 October 7 h
    assert time_left(row, at(9, 30, 15)) == "剩余 9 天 2 小时"


def test_a_ticket_late_over_national_day_is_late_by_the_working_time_since():
    due = at(9, 30, 17, 30)
    assert time_left(ticket(due), at(10, 9, 10), CLOCKS) == "超期 1 小时"  # not 超期 8 天 16 小时
    assert time_left(ticket(due), at(10, 9, 10)) == "超期 8 天 16 小时"


def test_a_working_day_late_reads_as_the_supervision_order_that_follows_it_says():
    due, now = at(9, 30, 17, 30), at(10, 9, 17, 30)  # when the overdue_supervision timer fires
    assert time_left(ticket(due), now, CLOCKS) == f"超期 {CALENDAR.working_days_between(due, now)} 个工作日"
    assert time_left(ticket(due), at(10, 12, 10), CLOCKS) == "超期 2 个工作日 1 小时"  # 9 and 10 October


def test_the_tooltip_gives_the_deadlines_own_date_and_what_the_time_left_counts():
    note = time_left_note(ticket(at(10, 9, 17, 30)), CLOCKS)
    assert note == "答复期限 2026-10-09 17:30（周五），按工作时间计（工作日 09:00–12:00、13:30–17:30，周末和节假日不计）"


# --- what counts on the clock --------------------------------------------------------------------------------


def test_an_urgent_matter_runs_on_the_clock_and_keeps_the_clocks_text():
    due = at(10, 1, 15)  # 24 hours after a call on 30 September: National Day does not stop it
    row = ticket(due, urgency="urgent")
    assert time_left(row, at(9, 30, 15), CLOCKS) == time_left(row, at(9, 30, 15)) == "剩余 1 天 0 小时"
    assert time_left_note(row, CLOCKS) == "答复期限 2026-10-01 15:00（周四），按自然时间计"


def test_an_urgent_matter_sent_back_for_redo_counts_its_three_working_days_in_working_time():
    row = ticket(at(11, 25, 17, 30), urgency="urgent", state="reopened", reopened=True)
    assert time_left(row, at(11, 20, 15), CLOCKS) == "剩余 3 个工作日 2 小时"


def test_a_policy_that_counts_a_kind_in_working_hours_has_its_time_left_in_working_time():
    policy = SlaPolicy.from_mapping({"rules": {"help": {"urgent": {"reply": {"working_hours": 7}}}}})
    row = ticket(at(11, 23, 12), urgency="urgent", kind="help")
    assert time_left(row, at(11, 20, 16), Clocks(calendar=CALENDAR, policy=policy)) == "剩余 4 小时 30 分"


@pytest.mark.parametrize("state", ["waiting_citizen", "deferred", "replied", "closed"])
def test_a_ticket_whose_clock_does_not_run_has_no_time_left(state):
    row = ticket(at(11, 23, 17, 30), state=state)
    assert (time_left(row, at(11, 20, 15), CLOCKS), time_left_note(row, CLOCKS)) == ("", "")


def test_working_time_left_is_symmetric_in_days_hours_and_minutes():
    assert working_time_left(CALENDAR, at(11, 27, 17, 30), at(11, 23, 9)) == "剩余 5 个工作日"
    assert working_time_left(CALENDAR, at(11, 23, 9), at(11, 27, 17, 30)) == "超期 5 个工作日"


# --- the ticket as the API and the pages read it -------------------------------------------------------------


def test_the_ticket_view_counts_time_left_on_the_working_calendar_and_keeps_overdue_and_colour():
    row, friday = ticket(at(11, 23, 17, 30), warn_at=at(11, 23, 9)), at(11, 20, 15)
    on_calendar, on_clock = ticket_view(row, UNIT, friday, CLOCKS), ticket_view(row, UNIT, friday)
    assert on_calendar["time_left"] == "剩余 1 个工作日 2 小时"
    assert on_calendar["time_left_note"].startswith("答复期限 2026-11-23 17:30（周一）")
    assert {k: on_calendar[k] for k in ("overdue", "urgency_class")} == \
        {k: on_clock[k] for k in ("overdue", "urgency_class")} == {"overdue": False, "urgency_class": "ok"}


# --- 联系市民时限: overdue exactly while the call is owed -----------------------------------------------------

CONTACT_DUE = at(11, 20, 11)


@pytest.mark.parametrize(("state", "resume_to", "contacted", "overdue"), [
    ("assigned", None, False, True),
    ("signed_for", None, False, True),
    ("extension_requested", "signed_for", False, True),  # asked before the call: still owed, and chased
    ("extension_requested", "contacted", True, False),  # asked after the call
    ("contacted", None, True, False),
    ("replied", None, True, False),
], ids=["assigned", "signed_for", "extension_before_call", "extension_after_call", "contacted", "replied"])
def test_the_contact_deadline_is_overdue_while_the_call_is_owed_and_only_then(state, resume_to, contacted, overdue):
    row = ticket(at(11, 21, 9), urgency="urgent", state=state, contact_due=CONTACT_DUE, resume_to=resume_to,
                 contacted_at=at(11, 20, 10) if contacted else None)
    shown = ticket_view(row, UNIT, CONTACT_DUE + dt.timedelta(minutes=1), CLOCKS)
    assert (shown["contact_owed"], shown["contact_overdue"]) == (overdue, overdue)
    assert ticket_view(row, UNIT, CONTACT_DUE - dt.timedelta(minutes=1), CLOCKS)["contact_overdue"] is False


def test_a_ticket_with_no_contact_clock_owes_no_call():
    shown = ticket_view(ticket(at(11, 23, 17, 30)), UNIT, at(11, 20, 15), CLOCKS)
    assert (shown["contact_owed"], shown["contact_overdue"]) == (False, False)


# --- 待补充材料: the date it waits until ---------------------------------------------------------------------

TODAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize("until", [
    dt.datetime(2026, 11, 24, 17, 30, tzinfo=BEIJING),  # yesterday
    dt.datetime(2026, 11, 24, 15, 59, tzinfo=dt.UTC),  # yesterday 23:59 in Beijing
    dt.datetime(2025, 6, 1, 9, 0),  # no zone: read as Beijing's
])
def test_waiting_on_the_citizen_until_a_past_date_is_refused_in_chinese_and_english(until):
    refusal = supply_date_refused(until, TODAY, BEIJING)
    assert (refusal.status, refusal.code) == (422, "expected_until_past")
    assert refusal.zh == "预计补充日期不能早于今天，请选择今天或以后的日期"
    assert "in the past" in refusal.en and "choose today or a later date" in refusal.en
    assert [f["field"] for f in refusal.fields] == ["expected_until"]


@pytest.mark.parametrize("until", [None, dt.datetime(2026, 11, 25, 17, 30, tzinfo=BEIJING),
                                   dt.datetime(2026, 12, 1, 17, 30, tzinfo=BEIJING)])
def test_waiting_until_today_a_later_date_or_no_date_at_all_is_taken(until):
    assert supply_date_refused(until, TODAY, BEIJING) is None

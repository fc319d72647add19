"""Replies, return reasons, notifications, timers and the calendar import: pure rules."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from types import SimpleNamespace

import pytest

from jiesu.mailer import backoff
from services.tracker.calendar_cli import import_schedule, parse_schedule, year_summary
from services.tracker.domain.calendar import CalendarOverrideError, WorkingCalendar
from schemas.enums import RETURN_REASONS
from services.tracker.domain.replies import meaningful_chars, reply_problem
from services.tracker.domain.sla import SlaPolicy, add_pause, compute_deadlines, extend
from services.tracker.notify import scrub, sign
from services.tracker.timers import wanted_timers

SH = dt.timezone(dt.timedelta(hours=8))
CAL = WorkingCalendar()
POLICY = SlaPolicy.default()


@pytest.mark.parametrize("text", ["", "   ", "已处理", "已收到。", "已处理已处理已处理已处理已处理已处理", "好的，谢谢！已办结。",
                                  "ok ok ok ok ok ok ok ok"])
def test_empty_and_boilerplate_replies_are_refused(text):
    zh, en = reply_problem(text)
    assert zh and en


def test_a_reply_that_says_what_was_done_is_accepted():
    assert reply_problem("经现场核实，工地已停止夜间施工，执法队连续三晚巡查未再发现。") is None


def test_stock_phrases_and_punctuation_do_not_count_as_meaningful():
    assert meaningful_chars("已处理！！！   ") == 0
    assert meaningful_chars("已处理：路灯已更换") == 5


def test_the_return_reasons_include_the_usual_ones():
    assert {"不属于本单位职责", "属于其他单位职责", "诉求不明确", "重复件"} <= set(RETURN_REASONS.values())


def test_phone_numbers_never_leave_in_a_notification():
    text = scrub("市民13800138000反映，座机010-62345678，工单12345-20261123-000001", "13800138000")
    assert "13800138000" not in text and "62345678" not in text
    assert "12345-20261123-000001" in text  # the ticket number stays readable


def test_webhook_signature_is_hmac_sha256_of_the_body():
    body = b'{"number":"12345-20261123-000001"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_delivery_back_off_doubles_and_is_capped():
    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 8]
    assert backoff(40).total_seconds() == 3600


def _ticket(**kw):
    d = compute_deadlines(POLICY, CAL, dt.datetime(2026, 11, 23, 10, tzinfo=SH), "complaint", "normal")
    return SimpleNamespace(received_at=d.received_at, sign_for_due=d.sign_for_due, warn_at=d.warn_at,
                           reply_due=d.reply_due, visit_due=None, **kw)


def test_an_assigned_ticket_has_sign_for_warning_due_and_supervision_timers():
    t = _ticket()
    kinds = dict(wanted_timers("assigned", t, CAL))
    assert set(kinds) == {"sign_for_warning", "sign_for_due", "reply_warning", "reply_due", "overdue_supervision"}
    assert t.received_at < kinds["sign_for_warning"] < kinds["sign_for_due"]
    assert kinds["overdue_supervision"] == CAL.add_working_days(t.reply_due, 1)


def test_a_paused_or_returned_ticket_has_no_timers_and_a_replied_one_waits_for_its_visit():
    t = _ticket()
    assert wanted_timers("waiting_citizen", t, CAL) == []
    assert wanted_timers("deferred", t, CAL) == []
    assert wanted_timers("returned", t, CAL) == []
    t.visit_due = dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)
    assert wanted_timers("replied", t, CAL) == [("return_visit_due", t.visit_due)]
    assert [k for k, _ in wanted_timers("signed_for", t, CAL)] == ["reply_warning", "reply_due", "overdue_supervision"]


# --- the working calendar across the long holidays, end to end through the SLA ---------------


def test_complaint_assigned_before_national_day_2026_is_due_after_the_holiday_counting_the_make_up_saturday():
    # 2026: National Day and Mid-Autumn off 1–7 October, Saturday 10 October worked (调休).
    d = compute_deadlines(POLICY, CAL, dt.datetime(2026, 9, 29, 15, tzinfo=SH), "complaint", "normal")
    # Working days after 29 Sep: 30 Sep, 8 Oct, 9 Oct, 10 Oct (Saturday, worked), 12 Oct.
    assert d.reply_due.astimezone(SH) == dt.datetime(2026, 10, 12, 17, 30, tzinfo=SH)
    assert not d.calendar_unconfirmed


def test_consultation_received_on_spring_festival_eve_2026_is_due_on_the_first_working_day_after():
    # 2026 Spring Festival: off 15–23 February, Saturday 14 and 28 February worked.
    d = compute_deadlines(POLICY, CAL, dt.datetime(2026, 2, 15, 11, tzinfo=SH), "consultation", "normal")
    assert d.reply_due.astimezone(SH) == dt.datetime(2026, 2, 24, 17, 30, tzinfo=SH)


def test_a_pause_over_national_day_restores_only_working_time():
    start = dt.datetime(2026, 9, 28, 10, tzinfo=SH)  # Monday
    d = compute_deadlines(POLICY, CAL, start, "complaint", "normal")
    paused = add_pause(POLICY, CAL, d, dt.datetime(2026, 9, 30, 10, tzinfo=SH), dt.datetime(2026, 10, 8, 10, tzinfo=SH))
    # Paused Wednesday 10:00 until the first working day after the holiday, at the same hour: the
    # holiday in between costs nothing: only the working time between pause and resume is added back.
    left = CAL.working_seconds_between(dt.datetime(2026, 9, 30, 10, tzinfo=SH), d.reply_due)
    assert paused.reply_due == CAL.add_working_seconds(dt.datetime(2026, 10, 8, 10, tzinfo=SH), left)
    assert paused.reply_due > d.reply_due


def test_information_request_extends_once_by_at_most_twenty_working_days():
    d = compute_deadlines(POLICY, CAL, dt.datetime(2026, 11, 23, 10, tzinfo=SH), "information_request", "normal")
    extended = extend(POLICY, CAL, d, 20)
    assert CAL.working_days_between(d.reply_due, extended.reply_due) == 20
    with pytest.raises(ValueError):
        extend(POLICY, CAL, extended, 1)
    with pytest.raises(ValueError):
        extend(POLICY, CAL, d, 21)


def test_deadlines_reaching_into_2027_are_flagged_until_the_schedule_is_imported(tmp_path):
    received = dt.datetime(2026, 12, 28, 10, tzinfo=SH)
    assert compute_deadlines(POLICY, CAL, received, "complaint", "normal").calendar_unconfirmed
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("{}\n", encoding="utf-8")
    import_schedule(overrides, "2027-01-01 休\n", confirm=True)
    confirmed = WorkingCalendar.from_file(overrides)
    d = compute_deadlines(POLICY, confirmed, received, "complaint", "normal")
    assert not d.calendar_unconfirmed
    # 29, 30, 31 Dec, then 1 Jan is off: 4 and 5 Jan.
    assert d.reply_due.astimezone(SH) == dt.datetime(2027, 1, 5, 17, 30, tzinfo=SH)


# --- jiesu calendar import / show -----------------------------------------------------------

SCHEDULE = """
# 2027 年部分节假日安排（示例）
2027-01-01 休
2027-02-06~2027-02-12 休   # 春节
2027-02-14 班
2027-02-20 班
"""


def test_a_schedule_file_gives_weekdays_off_and_weekend_days_worked():
    years = parse_schedule(SCHEDULE)
    assert set(years) == {2027}
    holidays = years[2027]["holidays"]
    assert dt.date(2027, 1, 1) in holidays and dt.date(2027, 2, 8) in holidays
    assert dt.date(2027, 2, 6) not in holidays  # a Saturday is off anyway
    assert years[2027]["workdays"] == {dt.date(2027, 2, 14), dt.date(2027, 2, 20)}


@pytest.mark.parametrize("line", ["2027-01-01", "2027-13-01 休", "2027-01-01 放假", "2027-02-10~2027-02-01 休"])
def test_a_bad_schedule_line_is_refused_with_its_line_number(line):
    with pytest.raises(CalendarOverrideError) as error:
        parse_schedule(line)
    assert "第 1 行" in str(error.value)


def test_import_writes_the_override_file_and_keeps_other_years(tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text("2026:\n  confirmed: true\n  holidays: [2026-12-31]\n", encoding="utf-8")
    assert import_schedule(path, SCHEDULE, confirm=True) == [2027]
    calendar = WorkingCalendar.from_file(path)
    assert calendar.is_confirmed(2027) and not calendar.is_working_day(dt.date(2027, 2, 8))
    assert calendar.is_working_day(dt.date(2027, 2, 14))  # a Sunday worked
    assert not calendar.is_working_day(dt.date(2026, 12, 31))
    summary = year_summary(calendar, 2027)
    assert summary["confirmed"] and dt.date(2027, 2, 20) in summary["workdays"]


def test_a_draft_import_keeps_the_year_flagged(tmp_path):
    path = tmp_path / "overrides.yaml"
    import_schedule(path, SCHEDULE, confirm=False)
    assert not WorkingCalendar.from_file(path).is_confirmed(2027)


def test_the_summary_of_2026_lists_national_day_and_its_make_up_days():
    s = year_summary(CAL, 2026)
    assert s["confirmed"]
    assert dt.date(2026, 10, 1) in s["holidays"] and dt.date(2026, 10, 10) in s["workdays"]
    assert not year_summary(CAL, 2027)["confirmed"]


def test_jiesu_calendar_import_then_show_through_the_command_line(tmp_path, monkeypatch, capsys):
    from jiesu.cli import main
    from jiesu.config import get_settings

    overrides = tmp_path / "overrides.yaml"
    schedule = tmp_path / "2027.txt"
    schedule.write_text(SCHEDULE, encoding="utf-8")
    monkeypatch.setenv("JIESU_CALENDAR_FILE", str(overrides))
    # main() would bind the process's log output to this test's captured stdout, closed afterwards.
    monkeypatch.setattr("jiesu.cli.configure", lambda *args, **kwargs: None)
    get_settings.cache_clear()
    try:
        assert main(["calendar", "show", "2027"]) == 2  # unconfirmed: a script can tell
        assert "未确认" in capsys.readouterr().out
        assert main(["calendar", "import", str(schedule)]) == 0
        assert main(["calendar", "show", "2027"]) == 0
        out = capsys.readouterr().out
        assert "已确认" in out and "2027-02-14 周日" in out and "2027-02-08 周一" in out
    finally:
        get_settings.cache_clear()

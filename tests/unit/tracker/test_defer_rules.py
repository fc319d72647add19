"""挂账 (defer) as the rules allow it: never for an urgent matter (紧急), which takes no extension either, and never
with a planned completion date before today. The ticket page offers the form only where the action would accept it,
and says in a line why not, as it does for extensions."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from jiesu.identity import User
from schemas.enums import Role, TicketState as S
from services.tracker.actions import defer_refused, planned_date_refused
from services.tracker.domain import sla
from services.tracker.web import offer

POLICY = sla.SlaPolicy.default()
BEIJING = ZoneInfo("Asia/Shanghai")
LEAD = User(id=2, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")
TODAY = dt.date(2026, 11, 25)


def ticket(state: S = S.SIGNED_FOR, *, urgency: str = "normal") -> SimpleNamespace:
    return SimpleNamespace(state=state.value, lead_code="M-CGW", kind="complaint", urgency=urgency,
                           reopened=False, extensions=[])


def test_an_urgent_matter_may_not_be_deferred_as_it_may_not_be_extended():
    refusal = defer_refused(ticket(urgency="urgent"))
    assert (refusal.status, refusal.code) == (422, "defer_not_allowed")
    assert refusal.zh == "紧急事项须按时限答复，不能挂账。" and "urgent" in refusal.en and "挂账" in refusal.en
    assert defer_refused(ticket()) is None


@pytest.mark.parametrize("state", [S.SIGNED_FOR, S.CONTACTED])
def test_the_page_leaves_out_the_defer_form_of_an_urgent_matter_and_says_why_in_a_line(state):
    urgent = offer(LEAD, ticket(state, urgency="urgent"), POLICY)
    assert "defer" not in urgent.actions and urgent.no_defer == "紧急事项须按时限答复，不能挂账。"
    assert "reply" in urgent.actions  # the rest of the work as before
    normal = offer(LEAD, ticket(state), POLICY)
    assert "defer" in normal.actions and normal.no_defer == ""


def test_no_line_about_deferring_where_the_state_would_not_offer_it_anyway():
    assert offer(LEAD, ticket(S.ASSIGNED, urgency="urgent"), POLICY).no_defer == ""


@pytest.mark.parametrize("planned", [
    dt.datetime(2026, 11, 24, 17, 30, tzinfo=BEIJING),  # yesterday
    dt.datetime(2026, 11, 24, 15, 59, tzinfo=dt.UTC),  # yesterday 23:59 in Beijing
    dt.datetime(2025, 6, 1, 9, 0),  # no zone: read as Beijing's
])
def test_a_planned_completion_date_before_today_is_refused_naming_the_field(planned):
    refusal = planned_date_refused(planned, TODAY, BEIJING)
    assert (refusal.status, refusal.code) == (422, "expected_until_past")
    assert "计划完成日期" in refusal.zh and "planned completion date" in refusal.en
    assert [f["field"] for f in refusal.fields] == ["expected_until"]


@pytest.mark.parametrize("planned", [
    None,  # none given: the date is optional
    dt.datetime(2026, 11, 25, 17, 30, tzinfo=BEIJING),  # today, even after its close of business
    dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC),  # today 00:00 in Beijing
    dt.datetime(2027, 3, 31, 17, 30, tzinfo=BEIJING),
])
def test_today_or_later_is_a_planned_date_and_none_at_all_is_fine(planned):
    assert planned_date_refused(planned, TODAY, BEIJING) is None

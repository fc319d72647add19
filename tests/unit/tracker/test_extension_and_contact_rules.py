"""Two rules the tracker's actions, timers and pages share.

An extension (延期) is offered only where the SLA rules could grant one: urgent matters and 重办 never take one, nor a
matter whose extensions are used up, so the ticket page leaves the form out there and says why in a line, while the
action still refuses with its own error. And an urgent ticket whose unit asks for an extension before it has called
the citizen is still chased for the call: the extension request stops no clock.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from jiesu.identity import User
from schemas.enums import Role, TicketState as S
from services.tracker.actions import extension_refused
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import SlaPolicy, compute_deadlines, extension_refusal
from services.tracker.timers import awaiting_contact, wanted_timers
from services.tracker.web import offer

POLICY = SlaPolicy.default()
LEAD = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")
OTHER_UNIT = User(id=2, username="sw", display_name="水务局", role=Role.DEPARTMENT, department="M-SW")
OFFICE = User(id=3, username="sup", display_name="督查室", role=Role.SUPERVISOR)


def ticket(state: S = S.SIGNED_FOR, *, kind: str = "complaint", urgency: str = "normal", reopened: bool = False,
           extensions: list[int] | None = None) -> SimpleNamespace:
    return SimpleNamespace(state=state.value, lead_code="M-CGW", kind=kind, urgency=urgency, reopened=reopened,
                           extensions=extensions)


# --- 申请延期: offered exactly where the rules could grant it ------------------------------------------------


def test_urgent_matters_and_reopened_tickets_take_no_extension_whatever_they_ask():
    assert extension_refusal(POLICY, "help", "urgent").zh == "该事项不能延期。"
    assert extension_refusal(POLICY, "complaint", "normal", reopened=True).zh == "该事项不能延期。"
    assert extension_refusal(POLICY, "complaint", "normal", extensions=(3,)).zh == "该事项最多延期 1 次，已用完。"
    assert extension_refusal(POLICY, "complaint", "normal") is None
    assert extension_refusal(POLICY, "information_request", "normal") is None


def test_whether_an_urgent_matter_may_be_extended_is_the_policys_not_the_urgencys():
    lenient = SlaPolicy.from_mapping({"rules": {"help": {"urgent": {"reply": {"working_days": 1},
                                                                    "max_extensions": 1}}}})
    assert extension_refusal(lenient, "help", "urgent") is None
    assert "request_extension" in offer(LEAD, ticket(kind="help", urgency="urgent"), lenient).actions
    # Refused by another of its limits, the page gives that reason, not the default policy's "urgent matters take none".
    capped = SlaPolicy.from_mapping({"rules": {"help": {"urgent": {"reply": {"working_days": 1}, "max_extensions": 1,
                                                                   "max_total_working_days": 1}}}})
    assert offer(LEAD, ticket(kind="help", urgency="urgent"), capped).no_extension == \
        "不能再申请延期：延期后总时限不能超过 1 个工作日。"


@pytest.mark.parametrize("row", [
    ticket(urgency="urgent"),
    ticket(S.CONTACTED, urgency="urgent"),
    ticket(S.REOPENED, reopened=True),
    ticket(S.SIGNED_FOR, reopened=True),  # a 重办 signed for again is still a 重办
    ticket(S.CONTACTED, reopened=True),
    ticket(extensions=[10]),
], ids=["urgent", "urgent_contacted", "reopened", "reopened_signed_for_again", "reopened_contacted", "used_up"])
def test_the_ticket_page_offers_no_extension_the_action_would_refuse(row):
    assert extension_refused(POLICY, row) is not None
    assert "request_extension" not in offer(LEAD, row, POLICY).actions
    assert "reply" in offer(LEAD, row, POLICY).actions  # the rest of the work is offered as before


@pytest.mark.parametrize("state", [S.SIGNED_FOR, S.CONTACTED])
def test_an_ordinary_ticket_is_offered_the_extension_form_and_no_hint(state):
    row = ticket(state)
    assert extension_refused(POLICY, row) is None
    assert "request_extension" in offer(LEAD, row, POLICY).actions
    assert offer(LEAD, row, POLICY).no_extension == ""


def test_the_page_says_in_a_line_why_there_is_no_extension_to_ask_for():
    assert offer(LEAD, ticket(urgency="urgent"), POLICY).no_extension == "紧急事项须按时限答复，不能申请延期。"
    assert offer(LEAD, ticket(S.REOPENED, reopened=True), POLICY).no_extension == "重办工单须在重办期限内答复，不能申请延期。"
    assert offer(LEAD, ticket(extensions=[10]), POLICY).no_extension == "不能再申请延期：该事项最多延期 1 次，已用完。"


@pytest.mark.parametrize("user", [OTHER_UNIT, OFFICE], ids=["another_unit", "office"])
def test_nobody_who_could_not_ask_for_an_extension_anyway_is_told_why_not(user):
    assert offer(user, ticket(urgency="urgent"), POLICY).no_extension == ""
    assert offer(LEAD, ticket(S.REPLIED, urgency="urgent"), POLICY).no_extension == ""  # nothing to extend any more


# --- the call an urgent ticket owes its citizen ----------------------------------------------------------

BEIJING = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkingCalendar()
ASSIGNED_AT = dt.datetime(2025, 11, 10, 9, 0, tzinfo=BEIJING)
CONTACT_DUE = dt.datetime(2025, 11, 10, 11, 0, tzinfo=BEIJING)


def _asked(resume_to: str | None, contacted: bool) -> SimpleNamespace:
    """An urgent ticket's row with an extension pending, asked from `resume_to` (None: before tracker_0015)."""
    d = compute_deadlines(POLICY, CALENDAR, ASSIGNED_AT, "help", "urgent")
    return SimpleNamespace(**{k: getattr(d, k) for k in ("sign_for_due", "contact_due", "reply_due", "warn_at")},
                           resume_to=resume_to, contacted_at=ASSIGNED_AT if contacted else None)


def test_a_ticket_that_asked_for_an_extension_before_calling_the_citizen_still_owes_the_call():
    row = _asked("signed_for", contacted=False)
    assert awaiting_contact(S.EXTENSION_REQUESTED, row)
    assert ("contact_due", CONTACT_DUE) in wanted_timers("extension_requested", row, CALENDAR)


@pytest.mark.parametrize(("resume_to", "contacted"), [("contacted", True), ("reopened", True), (None, True)],
                         ids=["contacted", "reopened", "before_tracker_0015_contacted"])
def test_a_ticket_that_asked_after_its_call_or_as_a_redo_is_not_chased_for_one(resume_to, contacted):
    row = _asked(resume_to, contacted)
    assert not awaiting_contact(S.EXTENSION_REQUESTED, row)
    assert "contact_due" not in {kind for kind, _ in wanted_timers("extension_requested", row, CALENDAR)}


def test_a_ticket_set_aside_before_tracker_0015_and_never_contacted_is_chased_as_signed_for():
    assert awaiting_contact(S.EXTENSION_REQUESTED, _asked(None, contacted=False))

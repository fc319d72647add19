"""The ticket lifecycle, every (state, action) pair and every (role, action) pair.

The expectations are written out by hand below, from the process as the hotline runs
it, not derived from TRANSITIONS: a change to the table that nobody meant shows up here.
"""

from __future__ import annotations

import itertools

import pytest

from schemas.enums import TicketState as S
from services.tracker.domain.lifecycle import (
    OPEN,
    TERMINAL,
    Action as A,
    ActionNotPermitted,
    TransitionRefused,
    allowed_actions,
    decide,
    may,
    next_state,
)

WORKING = (S.SIGNED_FOR, S.CONTACTED, S.REOPENED)
BACK = "back to the working state it was set aside from"

# What each state allows, and where it leads. Everything not listed is refused.
EXPECTED: dict[S, dict[A, S | str]] = {
    S.RECEIVED: {A.NEED_DISPATCH: S.DISPATCHING, A.ASSIGN: S.ASSIGNED, A.MERGE: S.MERGED,
                 A.ANSWER_DIRECTLY: S.ANSWERED_DIRECTLY},
    S.DISPATCHING: {A.ASSIGN: S.ASSIGNED, A.MERGE: S.MERGED},
    S.ASSIGNED: {A.SIGN_FOR: S.SIGNED_FOR, A.RETURN: S.RETURNED, A.ASSIGN: S.ASSIGNED, A.MERGE: S.MERGED},
    S.SIGNED_FOR: {A.RETURN: S.RETURNED, A.CONTACT: S.CONTACTED, A.WAIT_CITIZEN: S.WAITING_CITIZEN,
                   A.REQUEST_EXTENSION: S.EXTENSION_REQUESTED, A.DEFER: S.DEFERRED, A.REPLY: S.REPLIED},
    S.CONTACTED: {A.CONTACT: S.CONTACTED, A.WAIT_CITIZEN: S.WAITING_CITIZEN,
                  A.REQUEST_EXTENSION: S.EXTENSION_REQUESTED, A.DEFER: S.DEFERRED, A.REPLY: S.REPLIED},
    S.REOPENED: {A.SIGN_FOR: S.SIGNED_FOR, A.CONTACT: S.CONTACTED, A.WAIT_CITIZEN: S.WAITING_CITIZEN,
                 A.REQUEST_EXTENSION: S.EXTENSION_REQUESTED, A.DEFER: S.DEFERRED, A.REPLY: S.REPLIED},
    S.WAITING_CITIZEN: {A.RESUME: BACK},
    S.EXTENSION_REQUESTED: {A.DECIDE_EXTENSION: BACK, A.CONTACT: S.EXTENSION_REQUESTED},
    S.DEFERRED: {A.RESUME: BACK, A.REPLY: S.REPLIED},
    S.RETURNED: {A.ASSIGN: S.ASSIGNED, A.NEED_DISPATCH: S.DISPATCHING},
    S.REPLIED: {A.VISIT_CLOSE: S.CLOSED, A.REOPEN: S.REOPENED},
    S.CLOSED: {},
    S.MERGED: {},
    S.ANSWERED_DIRECTLY: {},
}

# Who does what in a city's hotline office.
ROLE_MAY: dict[str, set[A]] = {
    "department": {A.SIGN_FOR, A.CONTACT, A.WAIT_CITIZEN, A.RESUME, A.REQUEST_EXTENSION, A.DEFER, A.RETURN, A.REPLY},
    "supervisor": {A.DECIDE_EXTENSION, A.RESUME, A.VISIT_CLOSE, A.REOPEN},
    "visitor": {A.VISIT_CLOSE, A.REOPEN},
    "citizen": {A.VISIT_CLOSE},
    "system": {A.RECEIVE, A.NEED_DISPATCH, A.ASSIGN, A.MERGE, A.ANSWER_DIRECTLY},
    "operator": set(),
    "dispatcher": set(),
    "admin": set(A),
}


def test_the_expectations_cover_every_state():
    assert set(EXPECTED) == set(S)


@pytest.mark.parametrize(("state", "action"), list(itertools.product(S, A)), ids=lambda v: v.value)
def test_every_state_and_action_is_allowed_or_refused_as_the_process_says(state, action):
    expected = EXPECTED[state].get(action)
    if expected is None:
        with pytest.raises(TransitionRefused) as refused:
            next_state(state, action)
        assert refused.value.zh.startswith("工单当前状态为") and refused.value.en
        assert action not in allowed_actions(state)
    elif expected == BACK:
        assert [next_state(state, action, resume_to=w) for w in WORKING] == list(WORKING)
        assert action in allowed_actions(state)
    else:
        assert next_state(state, action) == expected
        assert action in allowed_actions(state)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROLE_MAY, A)), ids=str)
def test_every_role_may_take_only_its_own_actions(role, action):
    assert may(role, action) == (action in ROLE_MAY[role])


def test_a_role_is_checked_before_the_state():
    with pytest.raises(ActionNotPermitted) as refused:
        decide(S.REPLIED, A.REPLY, "visitor")
    assert "您的角色不能执行“答复”" == refused.value.zh
    with pytest.raises(TransitionRefused):
        decide(S.REPLIED, A.REPLY, "department")


def test_refusal_names_the_state_and_action_in_chinese():
    with pytest.raises(TransitionRefused) as refused:
        next_state(S.WAITING_CITIZEN, A.REPLY)
    assert refused.value.zh == "工单当前状态为“待补充材料”，不能执行“答复”"


def test_terminal_states_allow_nothing_and_every_other_state_allows_something():
    assert TERMINAL == {S.CLOSED, S.MERGED, S.ANSWERED_DIRECTLY}
    assert all(allowed_actions(s) == [] for s in TERMINAL)
    assert all(allowed_actions(s) for s in OPEN)


def test_the_main_path_from_received_to_closed():
    state = S.RECEIVED
    for action, role in [(A.ASSIGN, "system"), (A.SIGN_FOR, "department"), (A.CONTACT, "department"),
                         (A.REPLY, "department"), (A.VISIT_CLOSE, "visitor")]:
        state = decide(state, action, role)
    assert state == S.CLOSED


def test_returned_and_reassigned_then_reopened_and_replied_again():
    state, set_aside_from = S.ASSIGNED, None
    for action in (A.RETURN, A.ASSIGN, A.SIGN_FOR, A.REPLY, A.REOPEN, A.SIGN_FOR, A.WAIT_CITIZEN, A.RESUME,
                   A.REQUEST_EXTENSION, A.DECIDE_EXTENSION, A.DEFER, A.REPLY):
        before, state = state, next_state(state, action, resume_to=set_aside_from)
        set_aside_from = before if state in (S.WAITING_CITIZEN, S.EXTENSION_REQUESTED, S.DEFERRED) else None
    assert state == S.REPLIED


@pytest.mark.parametrize("working", WORKING, ids=str)
@pytest.mark.parametrize(("set_aside", "taken_up"), [(A.WAIT_CITIZEN, A.RESUME), (A.DEFER, A.RESUME),
                                                     (A.REQUEST_EXTENSION, A.DECIDE_EXTENSION)], ids=str)
def test_a_ticket_set_aside_goes_back_to_the_working_state_it_left_not_to_contacted(working, set_aside, taken_up):
    """待补充材料, 挂账 and 延期申请 pause the work; resuming or deciding the extension takes up where it stood: an
    urgent ticket signed for but never contacted still owes its call, a 重办 stays a 重办."""
    aside = next_state(working, set_aside)
    assert next_state(aside, taken_up, resume_to=working) == working
    assert decide(aside, taken_up, "supervisor" if taken_up == A.DECIDE_EXTENSION else "department",
                  resume_to=working) == working


@pytest.mark.parametrize("resume_to", [None, S.WAITING_CITIZEN, S.REPLIED, S.ASSIGNED], ids=str)
def test_taking_up_a_ticket_set_aside_needs_the_working_state_it_left(resume_to):
    with pytest.raises(ValueError, match="working state"):
        next_state(S.WAITING_CITIZEN, A.RESUME, resume_to=resume_to)


def test_every_other_action_ignores_where_a_ticket_would_resume():
    assert next_state(S.SIGNED_FOR, A.CONTACT, resume_to=S.REOPENED) == S.CONTACTED
    with pytest.raises(TransitionRefused):
        next_state(S.WAITING_CITIZEN, A.REPLY, resume_to=S.CONTACTED)

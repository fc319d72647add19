"""The rules the tracker's actions and its pages share: who may order supervision of a ticket or add a note
(协办意见) to it, and when a 重办 also orders key supervision (重点督办). One answer each, for the action that refuses and the page that offers.
And who a dispatch made by hand was made by, as the ticket's timeline names them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jiesu.identity import User
from schemas.enums import Role, TicketState as S
from services.tracker.actions import note_refused, orders_key_supervision, supervision_refused
from services.tracker.domain.sla import SlaPolicy
from services.tracker.queries import shows_redo
from services.tracker.web import offer, timeline_lines

OFFICE = User(id=1, username="sup", display_name="督查室", role=Role.SUPERVISOR)


def ticket(state: S, lead_code: str | None = "M-CGW") -> SimpleNamespace:
    return SimpleNamespace(state=state.value, lead_code=lead_code, kind="complaint", urgency="normal", reopened=False,
                           extensions=[])


@pytest.mark.parametrize("state", [S.ASSIGNED, S.SIGNED_FOR, S.CONTACTED, S.WAITING_CITIZEN, S.EXTENSION_REQUESTED,
                                   S.DEFERRED, S.REPLIED, S.REOPENED])
def test_the_office_may_supervise_a_ticket_a_unit_holds_until_it_is_finished(state):
    assert supervision_refused(OFFICE, ticket(state)) is None
    assert supervision_refused(User(id=2, username="root", display_name="管理员", role=Role.ADMIN),
                               ticket(state)) is None


@pytest.mark.parametrize("state", [S.CLOSED, S.MERGED, S.ANSWERED_DIRECTLY])
def test_a_finished_ticket_owes_nothing_more_so_is_not_supervised(state):
    refusal = supervision_refused(OFFICE, ticket(state))
    assert (refusal.status, refusal.code) == (409, "ticket_finished") and "无需督办" in refusal.zh
    assert "已已" not in refusal.zh  # 工单已办结, not 工单已已办结


@pytest.mark.parametrize("state", [S.RECEIVED, S.DISPATCHING, S.RETURNED])
def test_a_ticket_waiting_for_a_dispatcher_has_no_unit_to_press(state):
    refusal = supervision_refused(OFFICE, ticket(state, lead_code=None))
    assert (refusal.status, refusal.code) == (409, "no_unit") and "请派单后" in refusal.zh


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.DISPATCHER, Role.DEPARTMENT, Role.VISITOR])
def test_only_the_supervision_office_orders_supervision(role):
    refusal = supervision_refused(User(id=3, username="u", display_name="u", role=role, department="M-CGW"),
                                  ticket(S.SIGNED_FOR))
    assert (refusal.status, refusal.code) == (403, "forbidden")


LEAD = User(id=4, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")
CO_HANDLER = User(id=5, username="sw", display_name="水务局", role=Role.DEPARTMENT, department="M-SW")
HOLDING = [S.ASSIGNED, S.SIGNED_FOR, S.CONTACTED, S.WAITING_CITIZEN, S.EXTENSION_REQUESTED, S.DEFERRED, S.REOPENED]


@pytest.mark.parametrize("user", [LEAD, CO_HANDLER, OFFICE], ids=["lead", "co_handler", "office"])
@pytest.mark.parametrize("state", [*HOLDING, S.REPLIED])
def test_units_and_the_office_add_notes_while_a_unit_holds_the_ticket_and_after_the_reply_until_the_visit(
        state, user):
    assert note_refused(user, ticket(state)) is None


@pytest.mark.parametrize("state", [S.CLOSED, S.MERGED, S.ANSWERED_DIRECTLY])
def test_a_finished_ticket_takes_no_more_notes(state):
    refusal = note_refused(CO_HANDLER, ticket(state))
    assert (refusal.status, refusal.code) == (409, "ticket_closed") and refusal.zh.endswith("不能再填写意见")
    assert "已已" not in refusal.zh


@pytest.mark.parametrize("state", [S.RECEIVED, S.DISPATCHING, S.RETURNED])
def test_a_ticket_waiting_for_a_dispatcher_has_no_unit_to_note_on(state):
    refusal = note_refused(OFFICE, ticket(state, lead_code=None))
    assert (refusal.status, refusal.code) == (409, "no_unit")


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.DISPATCHER, Role.VISITOR])
def test_only_units_and_the_office_add_notes(role):
    refusal = note_refused(User(id=6, username="u", display_name="u", role=role), ticket(S.SIGNED_FOR))
    assert (refusal.status, refusal.code) == (403, "forbidden")


@pytest.mark.parametrize("user", [LEAD, CO_HANDLER, OFFICE, User(id=7, username="v", display_name="v",
                                                                     role=Role.VISITOR)],
                         ids=["lead", "co_handler", "office", "visitor"])
@pytest.mark.parametrize("state", list(S))
def test_the_ticket_page_offers_a_note_and_an_order_exactly_when_the_action_accepts_them(state, user):
    row = ticket(state, lead_code=None if state in (S.RECEIVED, S.DISPATCHING, S.RETURNED) else "M-CGW")
    offered = offer(user, row, SlaPolicy.default()).actions
    assert ("note" in offered) == (note_refused(user, row) is None)
    assert ("supervise" in offered) == (supervision_refused(user, row) is None)


def test_pages_tag_a_ticket_redo_once_reopened_and_moved_on_but_not_while_its_state_says_so():
    assert [shows_redo(SimpleNamespace(state=s.value, reopened=r))
            for s, r in ((S.REOPENED, True), (S.SIGNED_FOR, True), (S.REPLIED, True), (S.CLOSED, True),
                         (S.REPLIED, False))] == [False, True, True, True, False]


def test_the_second_dissatisfied_visit_orders_key_supervision_and_the_first_does_not():
    assert [orders_key_supervision(n) for n in (None, 0, 1, 2, 3)] == [False, False, False, True, True]


AT = "2026-11-24T09:00:00+00:00"
BY_HAND = {"at": AT, "event_type": "TicketAssigned", "actor": "router", "summary": "派单至 市水务局（依据：人工派单）",
           "method": "dispatcher"}


def test_a_dispatch_made_by_hand_names_the_dispatcher_by_display_name_else_user_name_else_the_role():
    assert timeline_lines([{**BY_HAND, "by": "wangli"}], {"wangli": "王丽"})[0]["actor"] == "派单员 王丽"
    assert timeline_lines([{**BY_HAND, "by": "wangli"}], {})[0]["actor"] == "派单员 wangli"  # no display name known
    assert timeline_lines([{**BY_HAND, "by": "lq"}], {"lq": "派单员 李强"})[0]["actor"] == "派单员 李强"  # said once
    assert timeline_lines([BY_HAND], {})[0]["actor"] == "派单员"  # a line from before the router noted who

"""What the ticket page offers, as the actions would accept it.

- 督办: an order the office gives from the ticket page stacks on no order of the same weight awaiting its unit's
  answer; the form offers what the action accepts (重点督办 alone over 一般督办 ones) and says why in a line.
- 记录联系: a unit whose extension request (延期申请) waits for the office may record its call to the citizen.
- 申请延期: where the rules refuse every extension, the line names the rule that allows none by the rule itself,
  not by the wording of its refusal.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jiesu.identity import User
from schemas.enums import Role, TicketState as S
from services.tracker.actions import order_stacks
from services.tracker.domain import sla
from services.tracker.domain.lifecycle import Action, allowed_actions, decide
from services.tracker.web import offer

POLICY = sla.SlaPolicy.default()
OFFICE = User(id=1, username="sup", display_name="督查室", role=Role.SUPERVISOR)
LEAD = User(id=2, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department="M-CGW")


def ticket(state: S = S.SIGNED_FOR, *, urgency: str = "normal", reopened: bool = False) -> SimpleNamespace:
    return SimpleNamespace(state=state.value, lead_code="M-CGW", kind="complaint", urgency=urgency,
                           reopened=reopened, extensions=[])


# --- 督办: no second order of the same weight on one awaiting its answer ------------------------------------


@pytest.mark.parametrize("level", ["normal", "key"])
def test_a_ticket_with_no_order_awaiting_its_answer_takes_an_order_of_either_level(level):
    assert order_stacks(level, set()) is None


def test_key_supervision_may_press_harder_over_normal_orders_awaiting_their_answer():
    assert order_stacks("key", {"normal"}) is None
    refusal = order_stacks("normal", {"normal"})
    assert (refusal.status, refusal.code) == (409, "order_awaiting_answer")
    assert "一般督办单" in refusal.zh and "重点督办" in refusal.zh and "key supervision" in refusal.en


@pytest.mark.parametrize("level", ["normal", "key"])
@pytest.mark.parametrize("waiting", [{"key"}, {"normal", "key"}], ids=["key", "both"])
def test_no_order_stacks_on_a_key_order_awaiting_its_answer(level, waiting):
    refusal = order_stacks(level, waiting)
    assert (refusal.status, refusal.code) == (409, "order_awaiting_answer") and "重点督办单" in refusal.zh


def test_the_order_form_offers_both_levels_and_no_line_while_no_order_awaits_its_answer():
    offered = offer(OFFICE, ticket(), POLICY)
    assert "supervise" in offered.actions and offered.order_levels == ("normal", "key") and offered.no_order == ""


def test_over_a_normal_order_awaiting_its_answer_the_form_offers_key_supervision_alone_and_says_why():
    offered = offer(OFFICE, ticket(), POLICY, {"normal"})
    assert "supervise" in offered.actions and offered.order_levels == ("key",)
    assert offered.no_order == order_stacks("normal", {"normal"}).zh


def test_over_a_key_order_awaiting_its_answer_there_is_no_form_only_the_line():
    offered = offer(OFFICE, ticket(), POLICY, {"key"})
    assert "supervise" not in offered.actions and offered.order_levels == ()
    assert offered.no_order == order_stacks("normal", {"key"}).zh
    assert "supervise" not in offer(OFFICE, ticket(), POLICY, {"key"}).actions


def test_whoever_may_not_order_supervision_is_told_nothing_about_orders():
    offered = offer(LEAD, ticket(), POLICY, {"key"})
    assert "supervise" not in offered.actions and (offered.order_levels, offered.no_order) == ((), "")


# --- 记录联系 while an extension request waits ------------------------------------------------------------


def test_a_unit_records_its_call_while_its_extension_request_waits_and_the_request_stands():
    assert Action.CONTACT in allowed_actions(S.EXTENSION_REQUESTED)
    assert decide(S.EXTENSION_REQUESTED, Action.CONTACT, "department") == S.EXTENSION_REQUESTED
    assert {"contact", "decide_extension"} & offer(LEAD, ticket(S.EXTENSION_REQUESTED), POLICY).actions == \
        {"contact"}  # the unit records its call; the office decides
    assert "decide_extension" in offer(OFFICE, ticket(S.EXTENSION_REQUESTED), POLICY).actions


@pytest.mark.parametrize("state", [S.WAITING_CITIZEN, S.DEFERRED])
def test_a_ticket_paused_or_deferred_still_takes_no_call_before_it_is_resumed(state):
    assert "contact" not in offer(LEAD, ticket(state), POLICY).actions


# --- 申请延期: the line names the rule by the rule -----------------------------------------------------------


def test_the_line_names_the_rule_that_allows_none_whatever_its_refusal_says(monkeypatch):
    monkeypatch.setattr(sla, "NONE_ALLOWED", ("按规定不予延期。", "No extension under the rules."))
    assert sla.extension_refusal(POLICY, "complaint", "urgent").zh == "按规定不予延期。"
    assert offer(LEAD, ticket(urgency="urgent"), POLICY).no_extension == "紧急事项须按时限答复，不能申请延期。"
    assert offer(LEAD, ticket(reopened=True), POLICY).no_extension == "重办工单须在重办期限内答复，不能申请延期。"
    none_at_all = sla.SlaPolicy.from_mapping({"rules": {"complaint": {"normal": {"max_extensions": 0}}}})
    assert offer(LEAD, ticket(), none_at_all).no_extension == "该事项不能申请延期。"

"""An unanswered supervision order is released (no longer escalated or nagged, and the office may close it without
the unit's answer) when its ticket is finished or when its unit no longer holds the ticket: it returned it (退单)
and the ticket waits to be dispatched again, or the ticket has gone to other units. Pure rules."""

from __future__ import annotations

import pytest

from services.tracker.domain.escalation import RELEASE_REASONS, escalates, released


@pytest.mark.parametrize("state", ["returned", "dispatching"])
def test_an_order_whose_unit_returned_the_ticket_is_released_while_the_ticket_waits_for_dispatch(state):
    # Back with the router (returned), or in the dispatch queue after a second return (dispatching).
    assert released(state, unit_holds=False) == "ticket_returned"
    assert not escalates(state, unit_holds=False)
    assert RELEASE_REASONS["ticket_returned"] == "工单已退回，待重新派单"


@pytest.mark.parametrize("state", ["assigned", "signed_for", "contacted", "replied", "reopened"])
def test_an_order_on_a_ticket_now_held_by_other_units_only_is_released(state):
    assert released(state, unit_holds=False) == "unit_left"
    assert not escalates(state, unit_holds=False)


@pytest.mark.parametrize("state", ["closed", "merged", "answered_directly"])
@pytest.mark.parametrize("unit_holds", [True, False])
def test_a_finished_ticket_releases_its_orders_whoever_holds_it(state, unit_holds):
    assert released(state, unit_holds) == "ticket_finished"
    assert RELEASE_REASONS["ticket_finished"] == "工单已结束"


@pytest.mark.parametrize("state", ["assigned", "signed_for", "contacted", "waiting_citizen", "extension_requested",
                                   "deferred", "replied", "reopened"])
def test_an_order_whose_unit_still_holds_an_open_ticket_binds_it_and_is_escalated(state):
    assert released(state, unit_holds=True) is None
    assert escalates(state, unit_holds=True)

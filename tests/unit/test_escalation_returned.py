"""An unanswered supervision order is released (no longer escalated or nagged, and the office may close it without
the unit's answer) once the transaction that finishes its ticket or takes it from its unit marks it (`released_at`).
Whether it is released is that mark alone; the ticket's state only names why: finished, returned by the unit (退单)
and waiting to be dispatched again, or gone to other units. Pure rules."""

from __future__ import annotations

import pytest

from schemas.enums import TicketState
from services.tracker.domain.escalation import released


@pytest.mark.parametrize("state", ["returned", "dispatching"])
def test_a_released_order_whose_unit_returned_the_ticket_waits_for_its_dispatch(state):
    # Back with the router (returned), or in the dispatch queue after a second return (dispatching).
    assert released(state, bound=False) == "ticket_returned"


@pytest.mark.parametrize("state", ["assigned", "signed_for", "contacted", "replied", "reopened"])
def test_a_released_order_on_a_ticket_now_held_by_other_units_says_its_unit_left(state):
    assert released(state, bound=False) == "unit_left"


@pytest.mark.parametrize("state", ["closed", "merged", "answered_directly"])
def test_a_released_order_on_a_finished_ticket_says_the_ticket_is_finished(state):
    assert released(state, bound=False) == "ticket_finished"


@pytest.mark.parametrize("state", [s.value for s in TicketState])
def test_an_order_not_marked_released_binds_its_unit_whatever_the_tickets_state_now(state):
    # One record of it: a ticket's state read beside the mark could tell escalation and the office otherwise.
    assert released(state, bound=True) is None

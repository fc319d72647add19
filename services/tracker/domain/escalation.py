"""Escalation of a supervision order (督办单逾期升级) its unit let fall due unanswered.

Every 12345 centre escalates an order the unit did not answer (督办回复) by its date: once,
to key supervision (重点督办), with a new answer date a few working days on. The date is
counted on the same working calendar as every other deadline, so a weekend or a statutory
holiday never eats the unit's time, and from the moment of the escalation (when the unit is
told), so a tracker that was down for a while still leaves the unit its full working days.
An order that was key already keeps its level and gets the same push and reminder. An order whose
ticket is finished meanwhile (办结, merged into another as a duplicate) is not escalated: pushing a unit harder on a
matter that is over helps nobody. Nor is one whose unit no longer holds the ticket (it returned it, 退单, and the
ticket waits to be dispatched again): the unit no longer handles, or even sees, it. Such an order is released: it
stays open in the office's list, for the unit to answer, the office to enter the answer, or the office to close it
(销号) without one, giving its reason. A returned ticket dispatched back to the same unit is that unit's again, and
so is its order: it binds the unit and is escalated as before.

Whether an order is released has one answer: its `released_at`, written in the transaction that finishes, returns
or merges its ticket (`handlers.release_orders`) and cleared by the one that dispatches it back to the unit
(`handlers._close_orders_of_former_units`, which closes the orders of a unit the ticket leaves for another). The
escalation's look, its claim, the office's page and its closing of an order all read that column, never the ticket
as it is now: a live derivation beside it would be a second truth that can disagree with the partial index the
escalation reads. The ticket's state now only says why, for the office to read (`released`).
Pure rules; `supervision.escalate_overdue_orders` claims the orders and applies them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from schemas.enums import TicketState
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.lifecycle import AWAITING_DISPATCH, TERMINAL

KEY = "key"  # 重点督办: what every escalated order becomes
# The ticket states in which its orders no longer bind their unit whoever holds it: the lifecycle's end states.
TICKET_FINISHED: frozenset[TicketState] = TERMINAL


# Why an unanswered order is no longer pressed on its unit, as the office's orders page says it.
RELEASE_REASONS = {
    "ticket_finished": "工单已结束",
    "ticket_returned": "工单已退回，待重新派单",
    "unit_left": "承办单位已不再办理本工单",
}


def released(ticket_state: str, bound: bool) -> str | None:
    """Why an unanswered order no longer binds its unit (a key of RELEASE_REASONS), or None while it does.

    `bound`: whether the order still binds its unit, which its `released_at` alone says (NULL: bound). The ticket's
    state only picks the reason: finished, back with the router, or else with other units now."""
    if bound:
        return None
    state = TicketState(ticket_state)
    if state in TICKET_FINISHED:
        return "ticket_finished"
    return "ticket_returned" if state in AWAITING_DISPATCH else "unit_left"


def escalated_due(calendar: WorkingCalendar, at: dt.datetime, working_days: int) -> dt.datetime:
    """The new answer date of an order escalated at `at`: close of business on the `working_days`-th
    working day after the day of `at` (the day of the escalation never counts, as for every deadline)."""
    return calendar.add_working_days(at, working_days)


@dataclass(frozen=True)
class Escalation:
    """What one overdue order became."""

    order_no: str
    from_level: str  # normal 一般 | key 重点, before the escalation
    previous_due: dt.datetime  # the date the unit missed
    due_at: dt.datetime  # the new one

    @property
    def level(self) -> str:
        return KEY

    @property
    def promoted(self) -> bool:
        """Whether the escalation raised the level (一般 → 重点), rather than chasing a key order again."""
        return self.from_level != KEY

    def describe(self, tz: ZoneInfo) -> str:
        """One sentence for the ticket's timeline and the unit's reminder, the date in local time."""
        what = "已升级为重点督办" if self.promoted else "重点督办再次催办"
        return f"督办单 {self.order_no} 逾期未回复，{what}，请于 {self.due_at.astimezone(tz):%Y-%m-%d %H:%M} 前回复"

    def details(self) -> dict[str, str]:
        """The facts kept with the timeline entry and the audit row (JSON)."""
        return {"order_no": self.order_no, "from_level": self.from_level, "level": self.level,
                "previous_due": self.previous_due.isoformat(), "due_at": self.due_at.isoformat()}

"""Unanswered return-visit calls (未接通) are spread out: another one is refused until UNREACHABLE_CALL_GAP has passed
since the last, saying from when (local time); an answered call is never held back; the visit queue puts the tickets
that may be called now before those that may not yet."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from services.tracker.actions import (
    OUTCOME_LABELS,
    UNREACHABLE_CALL_GAP,
    call_gap_words,
    call_too_soon,
    callable_first,
    next_call_at,
)

# 2026-11-25 10:00 in Beijing.
LAST = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


def test_the_default_gap_between_unanswered_calls_is_two_hours() -> None:
    assert UNREACHABLE_CALL_GAP == dt.timedelta(hours=2)
    assert call_gap_words() == ("2 小时", "2 hours")


def test_an_unanswered_call_within_two_hours_of_the_last_is_refused_saying_when_to_call_again_in_local_time() -> None:
    refusal = call_too_soon("unreachable", LAST, LAST + dt.timedelta(hours=1, minutes=59))
    assert refusal is not None and refusal.status == 409 and refusal.code == "visit_call_too_soon"
    assert refusal.zh == ("上次未接通在 2026-11-25 10:00，两次未接通须间隔至少 2 小时：请于 2026-11-25 12:00 以后再拨。"
                          "本次未登记；市民接听了，可随时登记结果。")
    assert "call again from 2026-11-25 12:00 (local time)" in refusal.en
    assert "at least 2 hours apart" in refusal.en and "Nothing was recorded" in refusal.en


@pytest.mark.parametrize("after", [UNREACHABLE_CALL_GAP, UNREACHABLE_CALL_GAP + dt.timedelta(days=1)],
                         ids=["exactly-the-gap", "a-day-later"])
def test_an_unanswered_call_once_the_gap_has_passed_is_recorded(after: dt.timedelta) -> None:
    assert call_too_soon("unreachable", LAST, LAST + after) is None


def test_the_first_unanswered_call_of_a_visit_is_never_held_back() -> None:
    assert call_too_soon("unreachable", None, LAST) is None
    assert next_call_at(None) is None


@pytest.mark.parametrize("outcome", [o for o in OUTCOME_LABELS if o != "unreachable"])
def test_an_answered_call_is_recorded_even_a_minute_after_an_unanswered_one(outcome: str) -> None:
    assert call_too_soon(outcome, LAST, LAST + dt.timedelta(minutes=1)) is None


def test_the_queue_lists_tickets_that_may_be_called_now_first_then_the_others_soonest_first() -> None:
    now = LAST + dt.timedelta(hours=1)
    rows = [SimpleNamespace(ticket_id=name) for name in ("late", "never-called", "soon", "waited-out")]
    last = {"late": now - dt.timedelta(minutes=10), "soon": now - dt.timedelta(minutes=100),
            "waited-out": now - dt.timedelta(hours=3)}
    queue = callable_first(rows, last, now)
    assert [(row.ticket_id, at) for row, at in queue] == [
        ("never-called", None), ("waited-out", None),
        ("soon", now + dt.timedelta(minutes=20)), ("late", now + dt.timedelta(minutes=110))]

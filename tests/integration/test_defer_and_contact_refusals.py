"""挂账 and 记录联系市民 refuse what records nothing true, in Chinese and English, through the actions (SQLite and
PostgreSQL) and through the ticket page, which comes back with what was typed.

- 挂账 of an urgent matter (紧急), which must be answered within its hours as it takes no extension; and 挂账 with a
  planned completion date before today. The page offers no form for the first and says why in a line.
- 联系市民 with no note of what was said and agreed, which before satisfied an urgent matter's contact clock.
"""

from __future__ import annotations

import datetime as dt
from html import unescape

import httpx
import pytest

from jiesu.errors import ApiError
from schemas.enums import Role
from schemas.events import utcnow
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import STAFF, _assigned, _pending, _row
from tests.pages import action_form


def _local_today(rt) -> dt.date:
    return utcnow().astimezone(rt.state["tracker.clocks"].calendar.timezone).date()


def _end_of(rt, day: dt.date) -> dt.datetime:
    return rt.state["tracker.clocks"].calendar.end_of_working_day(day)


async def test_an_urgent_matter_is_not_deferred_and_stays_where_it_was(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 1, urgency="urgent")
        await tracker.sign_for(STAFF, number)
        with pytest.raises(ApiError) as refused:
            await tracker.pause(STAFF, number, "deferred", "需待明年道路改造统一解决",
                                _end_of(rt, _local_today(rt) - dt.timedelta(days=1)))  # the matter first, not the date
        assert (refused.value.status, refused.value.code) == (422, "defer_not_allowed")
        assert "紧急" in refused.value.zh and "urgent" in refused.value.en
        row = await _row(rt, number)
        assert (row.state, row.paused_at) == ("signed_for", None)
        # Waiting on the citizen's material is still possible: it is not a deferral.
        assert (await tracker.pause(STAFF, number, "waiting_citizen", "请市民补充漏水位置照片")).state == "waiting_citizen"
    finally:
        await _dispose(rt)


async def test_a_deferral_planned_to_end_before_today_is_refused_and_today_or_later_is_taken(any_settings):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 2)
        await tracker.sign_for(STAFF, number)
        today = _local_today(rt)
        with pytest.raises(ApiError) as refused:
            await tracker.pause(STAFF, number, "deferred", "需待明年道路改造统一解决",
                                _end_of(rt, today - dt.timedelta(days=1)))
        assert (refused.value.status, refused.value.code) == (422, "expected_until_past")
        assert [f["field"] for f in refused.value.fields] == ["expected_until"]
        assert (await _row(rt, number)).state == "signed_for"
        assert (await tracker.pause(STAFF, number, "deferred", "需待明年道路改造统一解决",
                                    _end_of(rt, today))).state == "deferred"
    finally:
        await _dispose(rt)


@pytest.mark.parametrize("note", ["", "  \n "])
async def test_a_call_recorded_without_a_note_is_refused_and_the_contact_clock_still_runs(any_settings, note):
    rt = await _migrated_runtime(any_settings)
    tracker = rt.state["tracker"]
    try:
        number = await _assigned(rt, 3, urgency="urgent")
        await tracker.sign_for(STAFF, number)
        with pytest.raises(ApiError) as refused:
            await tracker.contact(STAFF, number, note)
        assert (refused.value.status, refused.value.code) == (422, "note_required")
        assert "沟通情况" in refused.value.zh and "agreed" in refused.value.en
        row = await _row(rt, number)
        assert (row.state, row.contacted_at) == ("signed_for", None)
        assert "contact_due" in await _pending(rt, number)  # still owed, and chased
    finally:
        await _dispose(rt)


async def test_the_page_offers_no_deferral_of_an_urgent_matter_and_says_why(live):
    rt = live.runtime
    urgent, normal = await _assigned(rt, 4, urgency="urgent"), await _assigned(rt, 5)
    for number in (urgent, normal):
        await rt.state["tracker"].sign_for(STAFF, number)
    unit = await live.user("cgw", Role.DEPARTMENT, department=STAFF.department)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {unit}"}) as client:
        shown = (await client.get(f"/tracker/tickets/{urgent}")).text
        assert action_form(shown, "defer") == "" and action_form(shown, "reply")
        assert '<p class="muted" id="no-defer"><small>紧急事项须按时限答复，不能挂账。</small></p>' in shown
        shown = (await client.get(f"/tracker/tickets/{normal}")).text
    assert 'id="no-defer"' not in shown
    today = _local_today(rt).isoformat()
    assert f'name="expected_until" min="{today}"' in action_form(shown, "defer")


async def test_a_refused_deferral_or_call_comes_back_with_what_was_typed(live):
    rt = live.runtime
    number = await _assigned(rt, 6, urgency="urgent")
    await rt.state["tracker"].sign_for(STAFF, number)
    other = await _assigned(rt, 7)
    await rt.state["tracker"].sign_for(STAFF, other)
    unit = await live.user("cgw", Role.DEPARTMENT, department=STAFF.department)
    yesterday = (_local_today(rt) - dt.timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {unit}"}) as client:
        r = await client.post(f"/tracker/tickets/{other}/do/defer",
                              data={"note": "待明年春季道路改造时一并修复", "expected_until": yesterday})
        assert r.status_code == 422
        shown = unescape(r.text)
        assert "未能挂账：" in shown and "计划完成日期不能早于今天" in shown and "planned completion date" in shown
        form = action_form(shown, "defer")
        assert "待明年春季道路改造时一并修复</textarea>" in form and f'value="{yesterday}"' in form
        assert (await _row(rt, other)).state == "signed_for"

        r = await client.post(f"/tracker/tickets/{number}/do/contact", data={"note": "   "})
        assert r.status_code == 422
        shown = unescape(r.text)
        assert "未能记录联系情况：" in shown and "请填写沟通情况" in shown
        assert "what was said" in shown and "required" in action_form(shown, "contact")
        assert (await _row(rt, number)).contacted_at is None

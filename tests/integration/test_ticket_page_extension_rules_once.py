"""The ticket page asks the SLA rules once whether its unit may ask for an extension (延期): the answer that leaves
the form out is the one that says why in a line, not a second look that could disagree with it."""

from __future__ import annotations

from services.tracker import web
from services.tracker.actions import extension_refused
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime
from tests.integration.test_tracker_resume import STAFF, _assigned


async def test_the_ticket_page_asks_the_rules_once_whether_the_unit_may_ask_for_an_extension(sqlite_settings,
                                                                                               monkeypatch):
    rt = await _migrated_runtime(sqlite_settings)
    try:
        number = await _assigned(rt, 1, urgency="urgent")
        await rt.state["tracker"].sign_for(STAFF, number)
        asked = []

        def counted(policy, row):
            asked.append(row.number)
            return extension_refused(policy, row)

        monkeypatch.setattr(web, "extension_refused", counted)
        context = await web._ticket_context(rt, STAFF, number)
        assert asked == [number]
        assert "request_extension" not in context["can"]
        assert context["no_extension"] == "紧急事项须按时限答复，不能申请延期。"
    finally:
        await _dispose(rt)

"""Notes (协办意见 / 办理意见) on a ticket: the ticket page offers the form exactly when the API accepts a note.

After the reply, while the return visit is pending, the lead may still add what it found; once the visit closes the
ticket, the page no longer offers the form and the API refuses, saying why (`actions.note_refused`).
"""

from __future__ import annotations

import httpx
import pytest

from schemas.enums import Role
from tests.integration.test_tracker_workflow import CALL, REPLY, Desk, bearer

NOTE_FORM = "/do/note"


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


async def offers_note(desk: Desk, who: str, number: str) -> bool:
    page = await desk.client.get(f"/tracker/tickets/{number}", headers=bearer(desk.tokens[who]))
    assert page.status_code == 200, page.text
    return f"/tracker/tickets/{number}{NOTE_FORM}" in page.text


async def test_a_replied_ticket_takes_notes_until_the_visit_closes_it_on_the_page_and_through_the_api(desk):
    t = await desk.post_ticket()
    number = t["number"]
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.as_("visitor", Role.VISITOR)
    await desk.act("dept", number, "sign-for")
    await desk.act("dept", number, "reply", {"reply": REPLY})

    assert await offers_note(desk, "dept", number) and await offers_note(desk, "sup", number)
    noted = await desk.act("dept", number, "notes", {"note": "答复后复查：施工单位已加装隔音屏障。"})
    assert noted["state"] == "replied"

    await desk.act("visitor", number, "return-visit", {"outcome": "satisfied"})
    assert not await offers_note(desk, "dept", number) and not await offers_note(desk, "sup", number)
    refused = await desk.act("dept", number, "notes", {"note": "补充一句"}, status=409)
    assert refused["error"]["code"] == "ticket_closed" and "工单已办结" in refused["error"]["zh"]


async def test_a_ticket_waiting_for_a_dispatcher_takes_no_note_on_the_page_nor_through_the_api(desk):
    op = await desk.as_("op", Role.OPERATOR)
    vague = {**CALL, "subject": "反映个情况", "description": "有个事情想反映一下，具体说不清楚，希望有人联系我。"}
    r = await desk.client.post("/api/v1/intake/tickets", json=vague, headers=bearer(op))
    assert r.status_code == 201, r.text
    number = (await desk.wait(r.json()["number"], "dispatching"))["number"]

    assert not await offers_note(desk, "sup", number)
    refused = await desk.act("sup", number, "notes", {"note": "请尽快派单"}, status=409)
    assert refused["error"]["code"] == "no_unit"

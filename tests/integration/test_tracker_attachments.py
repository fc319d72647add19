"""Department staff open a citizen's photo from the ticket page, through a grant the tracker signs for them.

Intake keeps the files but cannot know whose department a ticket is in; the tracker's ticket
page, which shows a ticket only to those who may see it, lists the files with links carrying a
ten-minute grant for that user and that file. Everything refused is refused with a stable code
and Chinese and English, and leaves no trace in the audit trail; each download leaves one row.
"""

from __future__ import annotations

import hashlib
import html
import re
import time

import httpx
import pytest
from sqlalchemy import func, null, select, update

from jiesu import attachment_grants
from schemas.enums import Role
from services.tracker.store import tickets
from tests.integration.test_intake_letters import (  # noqa: F401 (quick_challenge and staff are fixtures)
    PNG,
    form_fields,
    letter,
    quick_challenge,
    staff,
    tracked,
)
from tests.pages import spoilt

OTHER_PNG = PNG + b"\x01"
LINK = re.compile(r'href="(/api/v1/intake/tickets/[^"]+)"')


async def write_online(live, photo: bytes, **changes) -> str:
    """A citizen's online message (网上留言) with one photo; its ticket number."""
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        fields = {**letter(**changes), **form_fields((await citizen.get("/intake/online")).text)}
        r = await citizen.post("/intake/online", data=fields, files=[("attachments", ("现场.png", photo, "image/png"))])
    assert r.status_code == 200, r.text
    return re.search(r"12345-\d{8}-\d{6}", r.text).group(0)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def downloads(live) -> list:
    store = live.runtime.store("intake")
    async with store.db.session() as s:
        return (await s.execute(select(store.tables.audit).where(
            store.tables.audit.c.action == "download_attachment").order_by(store.tables.audit.c.id))).all()


def refused(r: httpx.Response, code: str) -> None:
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["zh"] and error["en"]


async def test_department_staff_download_their_tickets_photo_and_nothing_else(live, staff, quick_challenge):
    first = await write_online(live, PNG)
    second = await write_online(live, OTHER_PNG, name="王强", phone="13600002222", email="",
                                subject="幸福里小区垃圾站满溢无人清理")  # another citizen: not a repeat (重复件)
    ticket, other_ticket = await tracked(staff, first), await tracked(staff, second)
    lead = ticket["lead"]["code"]
    assert other_ticket["lead"]["code"] == lead  # the same staff see both: only the grant keeps them apart
    mine = bearer(await live.user("lead-staff", Role.DEPARTMENT, department=lead))
    elsewhere = "U-ZLS" if lead != "U-ZLS" else "M-CGW"
    theirs = bearer(await live.user("other-staff", Role.DEPARTMENT, department=elsewhere))
    sha, other_sha = hashlib.sha256(PNG).hexdigest(), hashlib.sha256(OTHER_PNG).hexdigest()

    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await client.get(f"/tracker/tickets/{first}", headers=mine)
        assert page.status_code == 200
        listed = page.text[page.text.index('id="attachments"'):]
        assert "现场.png" in listed and "image/png" in listed and f"{len(PNG)} 字节" in listed
        link = html.unescape(LINK.search(listed).group(1))
        assert link.startswith(f"/api/v1/intake/tickets/{first}/attachments/{sha}?grant=")

        got = await client.get(link, headers=mine)
        assert got.status_code == 200 and got.content == PNG and got.headers["content-type"] == "image/png"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in got.headers["content-security-policy"]
        assert got.headers["x-content-type-options"] == "nosniff" and "no-store" in got.headers["cache-control"]
        [row] = await downloads(live)
        assert (row.actor, str(row.ticket_id)) == ("lead-staff", ticket["ticket_id"])
        assert row.details == {"role": "department", "department": lead, "via": "grant", "sha256": sha}

        grant = link.split("grant=", 1)[1]
        now = time.time()
        with pytest.MonkeyPatch.context() as clock:  # a grant signed eleven minutes ago
            clock.setattr(time, "time", lambda: now - 11 * 60)
            old = attachment_grants.sign(live.runtime.secret, attachment_grants.AttachmentGrant(
                first, sha, "lead-staff", "department", lead))
        file_url = f"/api/v1/intake/tickets/{first}/attachments/{sha}"
        refused(await client.get(file_url, headers=mine), "forbidden")  # no grant: as before grants
        refused(await client.get(f"{file_url}?grant={old}", headers=mine), "grant_expired")
        refused(await client.get(f"{file_url}?grant={spoilt(grant)}", headers=mine), "grant_invalid")
        refused(await client.get(f"/api/v1/intake/tickets/{second}/attachments/{other_sha}?grant={grant}",
                                 headers=mine), "grant_mismatch")  # the first ticket's grant, the second's file
        refused(await client.get(f"/api/v1/intake/tickets/{second}/attachments/{sha}?grant={grant}",
                                 headers=mine), "grant_mismatch")

        # Another unit's staff: the ticket page answers as for no ticket and signs nothing; a grant
        # copied from the lead's staff does not open the file for them, nor does no grant.
        page = await client.get(f"/tracker/tickets/{first}", headers=theirs)
        assert page.status_code == 404 and "grant=" not in page.text
        refused(await client.get(link, headers=theirs), "grant_mismatch")
        refused(await client.get(file_url, headers=theirs), "forbidden")
        assert len(await downloads(live)) == 1  # nothing refused was recorded

        assert (await client.get(link, headers=mine)).content == PNG
        assert [r.actor for r in await downloads(live)] == ["lead-staff", "lead-staff"]  # one row per download

        # A department's own system reads the ticket over the API with the same links.
        [listed] = (await client.get(f"/api/v1/tracker/tickets/{first}", headers=mine)).json()["attachments"]
        assert (listed["filename"], listed["size"], listed["sha256"]) == ("现场.png", len(PNG), sha)
        assert (await client.get(listed["url"], headers=mine)).content == PNG
        assert (await client.get(f"/api/v1/tracker/tickets/{first}", headers=theirs)).status_code == 404


async def test_a_ticket_received_before_the_tracker_kept_attachments_lists_none(live, staff, quick_challenge):
    number = await write_online(live, PNG)
    lead = (await tracked(staff, number))["lead"]["code"]
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        assert await s.scalar(select(func.count()).where(tickets.c.number == number,
                                                         tickets.c.attachments.is_not(None))) == 1
        await s.execute(update(tickets).where(tickets.c.number == number).values(attachments=null()))
    mine = bearer(await live.user("lead-staff", Role.DEPARTMENT, department=lead))
    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await client.get(f"/tracker/tickets/{number}", headers=mine)
    assert page.status_code == 200 and number in page.text and 'id="attachments"' not in page.text

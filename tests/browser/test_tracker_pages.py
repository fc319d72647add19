"""A supervisor logs in and finds a ticket logged over the API, with its department and deadline;
department staff find a citizen's photo on their ticket and download it."""

import asyncio
from pathlib import Path

import pytest

from schemas.enums import Role
from tests.integration.test_intake_letters import PNG, quick_challenge, staff, tracked  # noqa: F401 (fixtures)
from tests.integration.test_tracker_attachments import write_online

pytestmark = pytest.mark.browser


async def test_supervisor_sees_the_routed_ticket_with_its_deadline(live, browser, login):
    import httpx

    token = await live.user("op", Role.OPERATOR)
    await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {token}"}, json={
            "kind": "help", "urgency": "urgent", "subject": "小区突然停水", "description": "整栋楼停水，没有通知。<script>alert(1)</script>",
            "citizen": {"name": "王芳", "phone": "13700001111"}})
        number = r.json()["number"]
        for _ in range(100):
            t = (await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {token}"}))
            if t.status_code == 200 and t.json()["state"] == "assigned":
                break
            await asyncio.sleep(0.05)

    page = await browser.new_page()
    alerts = []
    page.on("dialog", lambda d: alerts.append(d.message))
    await login(page, live.url, "sup")
    await page.goto(f"{live.url}/tracker/tickets")
    row = page.locator("tr", has_text=number)
    await row.wait_for()
    assert "待签收" in await row.inner_text()
    async with page.expect_navigation():
        await row.locator("a").click()
    await page.wait_for_load_state("networkidle")
    body = await page.inner_text("main")
    assert number in body and "答复期限" in body and "紧急" in body and "联系市民期限" in body
    assert "<script>alert(1)</script>" in body  # shown as text, never run
    assert alerts == []
    await page.screenshot(path=str(live.settings.data_dir / "ticket.png"))


async def open_ticket_with_photo(live, browser, login, staff):
    """A citizen's online message with a photo (现场.png), tracked; its lead unit's staff `lead-staff` logged in on
    its ticket page: (page, number, lead unit code)."""
    number = await write_online(live, PNG)
    lead = (await tracked(staff, number))["lead"]["code"]
    await live.user("lead-staff", Role.DEPARTMENT, department=lead)
    page = await browser.new_page()
    await login(page, live.url, "lead-staff")
    await page.goto(f"{live.url}/tracker/tickets/{number}")
    return page, number, lead


async def test_department_staff_find_the_citizens_photo_on_their_ticket_and_download_it(live, browser, login, staff,
                                                                                      quick_challenge):
    page, number, lead = await open_ticket_with_photo(live, browser, login, staff)
    row = page.locator("#attachments tr", has_text="现场.png")
    assert "image/png" in await row.inner_text() and f"{len(PNG)} 字节" in await row.inner_text()
    async with page.expect_download() as started:
        await row.get_by_role("link", name="下载").click()
    download = await started.value
    assert download.suggested_filename == "现场.png"
    assert Path(await download.path()).read_bytes() == PNG

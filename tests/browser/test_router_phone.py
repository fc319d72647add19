"""The dispatcher's pages on a phone (390 px): no keyboard help where there is no keyboard, and tables whose unit
names read as names, not as a column of single characters."""

import httpx
import pytest
from sqlalchemy import update

from schemas.enums import Role
from schemas.events import utcnow
from services.router.store import assignments
from tests.browser.test_router_pages import LAMP, VAGUE, _queued
from tests.mandatory import require_chinese_font

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# A cell's text width (padding left out), its lines of text and its font size: a name squeezed to a character a
# line is one em wide and as many lines as it has characters (市人力资源和社会保障局: 11).
CELL = """cell => {
    const style = getComputedStyle(cell), box = cell.getBoundingClientRect();
    return {width: box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
            lines: Math.round((box.height - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom))
                              / parseFloat(style.lineHeight)),
            em: parseFloat(style.fontSize)};
}"""


async def test_on_a_phone_the_queue_hides_its_keyboard_help_and_unit_names_keep_their_width(live, browser, login):
    require_chinese_font()  # the widths measured are those of Chinese text
    _, (lamp, vague) = await _queued(live, LAMP, VAGUE)
    dispatcher = await live.user("disp", Role.DISPATCHER)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {dispatcher}"}) as client:
        queue = (await client.get("/api/v1/router/queue")).json()["items"]
        lamp_id = next(i["ticket_id"] for i in queue if i["number"] == lamp)
        r = await client.post(f"/api/v1/router/tickets/{lamp_id}/dispatch", json={"unit": "M-RSJ"})
        assert r.status_code == 200, r.text  # 市人力资源和社会保障局 now has a row on 退单分析
    async with live.runtime.store("router").db.session() as s:  # and sent it back (退单): its rate bar at full length
        await s.execute(update(assignments).values(returned_at=utcnow(), return_reason_code="not_our_duty"))
        await s.commit()

    page = await browser.new_page(viewport=PHONE, has_touch=True, is_mobile=True)
    await login(page, live.url, "disp")
    assert page.url.endswith("/router/dispatch")
    await page.locator("article.ticket", has_text=vague).wait_for()
    assert not await page.locator("p.keys").is_visible()  # J/K, 1–3, / and Enter: keys a phone does not have
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    await page.goto(f"{live.url}/router/stats")
    await page.screenshot(path=str(live.settings.data_dir / "router-stats-390.png"), full_page=True)
    cell = page.locator("td", has_text="市人力资源和社会保障局")
    measured = await cell.evaluate(CELL)
    assert measured["width"] >= 7 * measured["em"] and measured["lines"] <= 2, measured
    # The table scrolls in its box, not the page.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    desk = await browser.new_page(viewport={"width": 1280, "height": 900})
    await login(desk, live.url, "disp")
    assert await desk.locator("p.keys").is_visible()  # at a desk the help stays

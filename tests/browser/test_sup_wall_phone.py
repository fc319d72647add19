"""The 大屏 in Chromium: its clock keeps the system's time zone and format after a refresh, whatever zone the
screen's browser is set to, and the wall and the bulletin fit a phone without scrolling sideways."""

from __future__ import annotations

import pytest

from schemas.enums import Role
from tests.browser.test_tracker_sup_live import _seed

pytestmark = pytest.mark.browser


async def test_the_wall_clock_keeps_the_system_zone_in_a_browser_set_to_utc(live, browser, login):
    await _seed(live)
    await live.user("sup", Role.SUPERVISOR)
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", timezone_id="UTC")
    page = await context.new_page()
    await login(page, live.url, "sup")
    fixed = "2026-11-25T00:18:52+00:00"  # the overview's instant, in UTC as the API gives it

    async def at_fixed(route):
        body = await (await route.fetch()).json()
        await route.fulfill(json={**body, "at": fixed})

    await page.route("**/api/v1/tracker/supervision/overview", at_fixed)
    await page.goto(f"{live.url}/tracker/sup/wall")
    # Drawn from the overview in Asia/Shanghai's time, as the server renders it (08:18:52), not the browser's
    # (00:18:52), and then running on from it second by second until the next refresh.
    shown = "() => document.querySelector('#wall-time').textContent"
    await page.wait_for_function(f"() => ({shown})().startsWith('2026-11-25 08:1')", timeout=15000)
    first = await page.evaluate(shown)
    assert "2026-11-25 08:18:52" <= first < "2026-11-25 08:19:30", first
    await page.wait_for_function(f"t => ({shown})() > t", arg=first, timeout=5000)
    assert (await page.evaluate(shown)) < "2026-11-25 08:19:30"
    await context.close()


@pytest.mark.parametrize("path", ["/tracker/sup/wall", "/tracker/sup/reports"])
async def test_the_wall_and_the_bulletin_fit_a_phone(live, browser, login, path):
    await _seed(live)
    await live.user("sup", Role.SUPERVISOR)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                        has_touch=True)
    page = await context.new_page()
    await login(page, live.url, "sup")
    await page.goto(f"{live.url}{path}")
    await page.wait_for_load_state("networkidle")
    width = await page.evaluate("document.documentElement.scrollWidth")
    wide = await page.evaluate("""() => [...document.querySelectorAll('body *')].filter(e => !e.closest('nav') && e.getBoundingClientRect().right > 392)
        .slice(0, 8).map(e => e.parentElement.tagName + '.' + e.parentElement.className + '>' + e.tagName + ' ' + e.textContent.trim().slice(0, 8) + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert width <= 390, (path, width, wide)
    if path.endswith("wall"):  # the four rates stand apart, each whole
        boxes = [await b.bounding_box() for b in await page.query_selector_all(".wall-rates b")]
        assert len(boxes) == 4 and all(b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes), boxes
    await context.close()

"""The list behind a scorecard figure fits a phone: its wide table scrolls sideways inside the page (.table-scroll),
the page itself does not."""

from __future__ import annotations

import pytest

from schemas.enums import Role
from services.tracker.store import tickets, unit_log
from tests.integration.test_sup_figure_lists_and_bulk_messages import X, X_LOG
from tests.unit.tracker import sup_month as m

pytestmark = pytest.mark.browser


async def test_a_figure_list_of_late_returns_scrolls_its_table_not_the_page_on_a_phone(live, browser, login):
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
        await s.execute(tickets.insert(), [X])
        await s.execute(unit_log.insert(), X_LOG)
    await live.user("sup", Role.SUPERVISOR)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                        has_touch=True)
    page = await context.new_page()
    await login(page, live.url, "sup")
    await page.goto(f"{live.url}/tracker/sup/tickets?period=2026-10&measure=response&part=denominator&unit={m.A}")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("table.sup-table tbody tr").count() == 10  # the widest list: clocks and all
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    scroller = page.locator(".table-scroll")
    assert await scroller.evaluate("e => e.scrollWidth > e.clientWidth")  # the table scrolls within it
    await context.close()

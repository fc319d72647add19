"""The warm colour (--warn) reads as clearly as the overdue red: the 紧急 tag (white on it), the ledger's 预警
count and the inbox's 即将到期 count (on white or the page's grey) all reach WCAG AA's 4.5."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from services.tracker.store import tickets
from tests.browser.test_tracker_review_fixes import CONTRASTS
from tests.integration.test_tracker_review_fixes import seeded
from tests.mandatory import require_chinese_font
from tests.unit.tracker import sup_month as m

pytestmark = pytest.mark.browser

WARM = ".tag.urgent, .count.warm, b.amber, .left.soon, .flag"


async def test_the_urgent_tag_and_the_warning_counts_read_clearly(live, browser, login):
    require_chinese_font()
    await seeded(live)
    async with live.runtime.store("tracker").db.session() as s:  # one of unit A's tickets is urgent
        await s.execute(update(tickets).where(tickets.c.number == m.number_of("a6")).values(urgency="urgent"))
    seen = []
    for user, paths in (("cgw", ["/tracker/inbox", f"/tracker/tickets/{m.number_of('a6')}"]),
                        ("sup", ["/tracker/sup/ledger"])):
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        await login(page, live.url, user)
        for path in paths:
            await page.goto(f"{live.url}{path}")
            found = await page.evaluate(CONTRASTS, WARM)
            seen += [(path, s["text"], round(s["ratio"], 2)) for s in found]
        await page.close()
    assert any(text == "紧急" for _, text, _ in seen) and any(path.endswith("ledger") for path, _, _ in seen), seen
    assert [s for s in seen if s[2] < 4.5] == [], seen

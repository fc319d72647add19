"""The console reads a phone number as typed the way intake and the tracker keep it: console.js's plainPhone, which
makes the number the caller's history and the repeat check are asked with, gives jiesu.text.plain_phone's answer for
every way an operator or an input method may type one (full-width, dashes of every kind, spaces, brackets)."""

import pytest

from jiesu.text import plain_phone
from schemas.enums import Role

pytestmark = pytest.mark.browser

AS_TYPED = [
    "13900001111", "139-0000-1111", "139 0000 1111", "+86 139 0000 1111", "(010)1234-5678", "010-1234 5678 ",
    # A Chinese input method: full-width digits, ＋, brackets, dashes and spaces.
    "１３９００００１１１１", "１３９－００００－１１１１", "＋８６ １３９", "（010）1234－5678", "139\u30000000\u30001111",
    # Dashes: en, em, hyphen, non-breaking hyphen, minus, the long-vowel mark (full and half width), the wave dash, the
    # small hyphen-minus, the two-em dash.
    "139–0000—1111", "139\u20100000\u20111111", "139−0000", "139ー0000ー1111", "139ｰ0000", "139〜0000", "139﹣0000",
    "139⸺0000",
    # Spaces: no-break, em, thin, narrow no-break, tab and newline, the information separators Python counts as space.
    "139\u00a00000", "\u2003139\u2009", "139\u202f0000", "139\t0000\n1111", "139\x1c0000\x1f", "139\x850000",
    # Not taken out by either: the zero-width space and the byte-order mark, dots, slashes, other scripts' digits.
    "139\u200b0000", "\ufeff13900001111", "139.0000.1111", "139/0000", "١٣٩٠٠٠٠",
    # What NFKC makes plain: the small plus and brackets, super- and subscripts, circled and bracketed digits.
    "﹢86 139", "﹙010﹚12345678", "¹³⁹₀₀", "①③⑨", "⑴39", "Ｔｅｌ：１３９",
    "", "   ", "--", "()",
]


async def test_the_console_reads_a_number_as_typed_as_the_server_does(live, browser, login):
    await live.user("wangli", Role.OPERATOR)
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(60_000)  # a busy machine
    await login(page, live.url, "wangli")
    await page.goto(f"{live.url}/intake/console")
    await page.wait_for_function("window.jiesuConsole !== undefined")

    in_the_browser = await page.evaluate("numbers => numbers.map(window.jiesuConsole.plainPhone)", AS_TYPED)
    differ = [(typed, shown, plain_phone(typed)) for typed, shown in zip(AS_TYPED, in_the_browser, strict=True)
              if shown != plain_phone(typed)]
    assert differ == [], "(as typed, console.js, jiesu.text)"

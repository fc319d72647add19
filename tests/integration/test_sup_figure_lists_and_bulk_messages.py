"""The supervision office's pages, as a reviewer read them:

- A figure's list of events (visits, returns, assignments) showed beside each the ticket as it is now: a visit 不满意
  beside the ticket's final 满意 and its later 重办 deadline, a late return beside the next unit's assignment and
  待签收. Each row now shows the thing it counts, as it was: the visit's result and time, the clocks the return kept,
  the assignment's time and unit; the ticket's present state only under 当前状态.
- An empty list of returns said 共 0 件, and its empty row spanned one column too many.
- The ledger's bulk 督办 said 已下达督办单 0 件 in green when every ticket already had an order waiting, named none
  of the tickets it passed over, said nothing of a 重点督办 it did not give, and came back to `ledger?&done=`.
- The rating link of a ticket sent back for 重办 promised a new link to citizens who gave no address to send it to.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import httpx
import pytest

from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.actions import rating_refused
from services.tracker.store import tickets, unit_log
from tests.integration.test_tracker_escalation import BEIJING, _order
from tests.integration.test_tracker_workflow import bearer
from tests.unit.tracker import sup_month as m

# A ticket unit A was given on 12 October and returned the next day without signing for it by its deadline (a late
# return, counted in A's 响应率), then given to unit B on the 17th, which has not signed for it yet.
X_AT_B = m.T0 + 5 * m.D
X = m._ticket("x1", "B", "assigned", at=X_AT_B, signed=None, subject="路灯不亮")
NO_CLOCKS = {"assigned_at": None, "sign_for_due": None, "signed_for_at": None, "reply_due": None}
X_LOG = [
    {"ticket_id": X["ticket_id"], "unit_code": m.A, "kind": "assigned", "at": m.T0, **NO_CLOCKS},
    {"ticket_id": X["ticket_id"], "unit_code": m.A, "kind": "returned", "at": m.T0 + m.D, "assigned_at": m.T0,
     "sign_for_due": m.T0 + 2 * m.H, "signed_for_at": None, "reply_due": m.T0 + 7 * m.D},
    {"ticket_id": X["ticket_id"], "unit_code": m.B, "kind": "assigned", "at": X_AT_B, **NO_CLOCKS},
]


async def _month(live) -> httpx.AsyncClient:
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
        await s.execute(tickets.insert(), [X])
        await s.execute(unit_log.insert(), X_LOG)
    sup = await live.user("sup", Role.SUPERVISOR)
    return httpx.AsyncClient(base_url=live.url, headers=bearer(sup), timeout=20)


def _table(page: str) -> tuple[list[str], list[list[str]]]:
    """A figure list's column heads and its rows, each as the text of its cells."""

    def text(cell: str) -> str:
        return html_lib.unescape(re.sub(r"<[^>]+>", " ", cell)).split()

    heads = [" ".join(text(h)) for h in re.findall(r"<th>(.*?)</th>", page)]
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    rows = [[" ".join(text(c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
    return heads, rows


async def _list(client, measure: str, part: str, unit: str = "", period: str = "2026-10") -> str:
    r = await client.get("/tracker/sup/tickets", params={"period": period, "measure": measure, "part": part,
                                                        "unit": unit})
    assert r.status_code == 200, r.text
    return r.text


def _row_of(rows: list[list[str]], name: str, kind: str) -> list[str]:
    """The row of the ticket `name` (of sup_month, or x1) that counts a `kind`."""
    number = X["number"] if name == "x1" else m.number_of(name)
    found = [row for row in rows if row[0].startswith(number) and row[1].startswith(kind)]
    assert len(found) == 1, (name, kind, rows)
    return found[0]


# --- 1. each row shows the thing it counts ------------------------------------------------------------------


async def test_a_visit_row_shows_that_visits_result_and_time_and_nothing_of_the_ticket_since(live):
    async with await _month(live) as client:
        page = await _list(client, "satisfaction", "denominator", m.A)
    heads, rows = _table(page)
    assert heads == ["工单", "计入", "计入单位", "当前状态"]  # no 结果 or 答复期限 of the ticket now beside a visit
    number = m.number_of("a3")
    dissatisfied = _row_of(rows, "a3", "回访：不满意")
    assert dissatisfied == [f"{number} 夜间施工噪音扰民", "回访：不满意（承办单位原因） 2026-10-16 10:00", m.A_NAME,
                            f"已办结 重办 承办：{m.A_NAME}"]
    assert _row_of(rows, "a3", "回访：满意")[1] == "回访：满意 2026-10-22 10:00"
    assert f'<a href="/tracker/tickets/{number}">{number}</a>' in page


async def test_a_late_return_row_shows_the_clocks_the_unit_held_the_ticket_under_not_the_next_units(live):
    async with await _month(live) as client:
        page = await _list(client, "response", "denominator", m.A)
    heads, rows = _table(page)
    assert heads == ["工单", "计入", "计入单位", "派单", "签收时限", "签收", "答复期限", "答复", "当前状态"]
    late = _row_of(rows, "x1", "超时后退单")
    # Given to A on the 12th at 10:00, to be signed for by 12:00, never signed, returned on the 13th; now with B.
    assert late == [f"{X['number']} 路灯不亮", "超时后退单 2026-10-13 10:00", m.A_NAME, "2026-10-12 10:00",
                    "2026-10-12 12:00", "—", "2026-10-19 10:00", "—", f"待签收 承办：{m.B_NAME}"]
    a1 = _row_of(rows, "a1", "本期派件")  # a ticket the unit holds: its own clocks
    assert a1[3:8] == ["2026-10-12 10:00", "2026-10-12 12:00", "2026-10-12 11:00", "2026-10-19 10:00",
                       "2026-10-13 10:00"]
    head = re.search(r'id="figure-count">[^<]*· 共 (\d+) ', page)
    assert int(head.group(1)) == len(rows) == 10  # a1–a8, a11 and the late return


async def test_a_return_row_keeps_the_returning_units_clocks_and_an_assignment_row_its_own_time_and_unit(live):
    async with await _month(live) as client:
        returns = await _list(client, "return", "numerator")
        assignments = await _list(client, "return", "denominator", m.A)
    heads, rows = _table(returns)
    assert heads == ["工单", "计入", "计入单位", "派单", "签收时限", "签收", "答复期限", "当前状态"]
    assert _row_of(rows, "x1", "退单")[1:7] == ["退单 2026-10-13 10:00", m.A_NAME, "2026-10-12 10:00",
                                               "2026-10-12 12:00", "—", "2026-10-19 10:00"]
    # r1 was returned before returns kept their clocks: nothing is shown rather than B's.
    assert _row_of(rows, "r1", "退单")[1:7] == ["退单 2026-10-13 10:00", m.A_NAME, "—", "—", "—", "—"]

    heads, rows = _table(assignments)
    assert heads == ["工单", "计入", "计入单位", "当前状态"]
    # r1 was given to A on the 12th and to B on the 14th: A's row is A's assignment, with no trace of B's date.
    assert _row_of(rows, "r1", "派件") == [f"{m.number_of('r1')} 小区电梯故障", "派件 2026-10-12 10:00", m.A_NAME,
                                          f"已办结 承办：{m.B_NAME}"]


# --- 2. an empty list says what it would count -----------------------------------------------------------------


@pytest.mark.parametrize(("measure", "part", "said", "columns"), [
    ("return", "numerator", "共 0 次退单", 8), ("return", "denominator", "共 0 次派件", 4),
    ("satisfaction", "denominator", "共 0 次回访", 4), ("response", "denominator", "共 0 件", 8)])
async def test_an_empty_list_says_none_of_its_kind_across_all_its_columns(live, measure, part, said, columns):
    async with await _month(live) as client:
        page = await _list(client, measure, part, m.A, period="2026-12")
    heads, rows = _table(page)
    assert f"2026年12月 · {said}</small>" in page
    colspan = re.search(r'<td colspan="(\d+)"', page)
    assert len(heads) == columns and int(colspan.group(1)) == columns and len(rows) == 1


# --- 3. the ledger's bulk 督办 --------------------------------------------------------------------------------


async def _bulk(live, numbers: list[str], level: str) -> httpx.URL:
    office = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers=bearer(office)) as client:
        ledger = (await client.get("/tracker/sup/ledger")).text
        back = html_lib.unescape(re.search(r'name="back" value="([^"]*)"', ledger).group(1))
        r = await client.post("/tracker/sup/ledger/bulk", data={
            "number": numbers, "op": "supervise", "level": level, "reason": "超期未办", "back": back},
            follow_redirects=False)
    assert r.status_code == 303
    return httpx.URL(r.headers["location"])


async def test_a_bulk_order_that_finds_every_ticket_with_an_order_waiting_says_so_as_a_refusal_naming_them(live):
    now = utcnow()
    day = f"{now.astimezone(BEIJING):%Y%m%d}"
    waiting = [(await _order(live.runtime, i, now, day=day))[0] for i in (1, 2)]
    location = await _bulk(live, waiting, "normal")
    assert location.path == "/tracker/sup/ledger" and "?&" not in str(location)  # the bare ledger, no stray &
    assert "done" not in location.params
    assert location.params["refused"] == f"所选 2 件均已有待回复的督办单（{waiting[0]}、{waiting[1]}），未重复下达"


async def test_a_bulk_key_order_passed_over_for_a_normal_order_says_where_to_give_it(live):
    now = utcnow()
    day = f"{now.astimezone(BEIJING):%Y%m%d}"
    normal = [(await _order(live.runtime, i, now, day=day))[0] for i in (1, 2, 3, 4)]
    key = (await _order(live.runtime, 5, now, day=day, level="key"))[0]
    location = await _bulk(live, [*normal, key], "key")
    said = location.params["refused"]
    assert said.startswith(f"所选 5 件均已有待回复的督办单（{normal[0]}、{normal[1]}、{normal[2]} 等），未重复下达。")
    assert said.endswith("待回复的督办单中 4 件为一般督办，如需重点督办，请在工单页下达")


# --- 4. the rating link of a ticket sent back for 重办 ----------------------------------------------------------


def test_the_link_of_a_ticket_being_redone_points_to_the_progress_page_and_mail_only_if_an_address_was_given():
    row = type("Row", (), {"state": "reopened", "replied_at": None})()
    said = rating_refused(row).zh
    assert "会另发评价链接给您" not in said
    assert "“办理进度查询”页面凭工单编号和查询码评价" in said and "留了电子邮箱的，也会收到新的评价链接" in said


def test_the_link_of_an_earlier_reply_points_to_the_progress_page_too():
    replied = dt.datetime(2026, 10, 20, 2, 0, tzinfo=dt.UTC)
    row = type("Row", (), {"state": "replied", "replied_at": replied})()
    link = type("Link", (), {"expires_at": replied - dt.timedelta(days=1)})()
    said = rating_refused(row, link).zh
    assert "随新答复发送的评价链接" not in said and "“办理进度查询”页面凭工单编号和查询码评价" in said

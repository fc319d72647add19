"""The supervision office's pages, API, exports and CLI over the real system, on the hand-made October."""

from __future__ import annotations

import asyncio
import io
from argparse import Namespace
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from jiesu.db import Database
from jiesu.migrate import upgrade
from schemas.enums import Role
from services.tracker import reports, stats
from services.tracker.store import notifications, supervision_orders, timeline
from tests.unit.tracker import sup_month as m

TZ = ZoneInfo("Asia/Shanghai")


async def _seeded(live):
    async with live.runtime.store("tracker").db.session() as s:
        await m.seed(s)
    sup = await live.user("sup", Role.SUPERVISOR)
    return httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {sup}"}, timeout=20)


def keyed(tables) -> dict:
    """(key, rows) of each table as {first cell: the other cells}; the units' rows by unit name instead, as the
    unranked ones all read 不参与排名 in their first cell."""
    return {key: {row[1]: [row[0], *row[2:]] for row in rows} if key == "units" else {row[0]: row[1:] for row in rows}
            for key, rows in tables}


def check_october(tables: dict) -> None:
    """The monthly bulletin of the hand-made October, worked out by hand (see sup_month.py)."""
    overview = tables["overview"]
    assert overview["受理诉求"][0] == 14  # s1 came in September
    assert overview["直接办结（话务员当场答复）"][0] == 1 and overview["重复件合并"][0] == 1
    assert overview["派单至承办单位"][0] == 12
    assert overview["已答复（含直接办结）"] == [8, "61.5%"]  # 8 of the 13 that are not duplicates
    # As they stand: a11 awaits its visit; a1–a5 and r1 closed after it; a6 a7 a8 b2 b3 在办 (stats.IN_PROGRESS).
    assert [overview[k][0] for k in ("已答复待回访", "已办结（回访后）", "在办")] == [1, 6, 5]
    channel = tables["channel"]
    assert [channel[k][0] for k in ("电话（12345 热线）", "来信（市长信箱）", "网上（留言、Open311）", "电子邮件", "来访", "其他")] \
        == [7, 1, 3, 1, 1, 1]
    kind = tables["kind"]
    assert (kind["投诉"][0], kind["求助"][0], kind["咨询"][0], kind["举报"][0], kind["建议"][0]) == (8, 2, 2, 1, 1)
    assert {k: v[0] for k, v in tables["district"].items()} == {"D-01": 9, "D-02": 2, "D-03": 3}
    outcome = tables["outcome"]
    assert [outcome[f"本期办结：{x}"][0] for x in ("满意", "基本满意", "不满意（非承办单位原因）", "联系不上")] == [3, 1, 1, 1]
    assert outcome["满意率（满意+基本满意 ÷ 参评回访）"] == [5, "71.4%"]
    assert outcome["解决率（已解决 ÷ 参评回访）"] == [6, "85.7%"]
    orders = tables["supervision"]
    assert orders["重点督办"] == [1, 1, 0, 0] and orders["一般督办"] == [1, 0, 0, 1] and orders["合计"] == [2, 1, 0, 1]
    assert orders["其中：逾期升级"] == [1, 0, 0, 1]  # DB-a6-1, marked escalated, under the level it was issued at
    units = tables["units"]  # too few tickets and visits for a rank (stats.MIN_SAMPLE): both listed, A first by volume
    assert list(units) == [m.A_NAME, m.B_NAME]
    assert units[m.A_NAME][:5] == ["不参与排名", 9, "77.8%", "83.3%", "66.7%"]
    assert units[m.A_NAME][-2:] == ["—", f"样本不足：应签收 9 件、参评回访 6 件，须各不少于 {stats.MIN_SAMPLE} 件"]


async def test_scorecard_json_and_pages_show_the_hand_computed_figures(live):
    async with await _seeded(live) as client:
        card = (await client.get("/api/v1/tracker/supervision/scorecard", params={"period": "2026-10"})).json()
        a = next(u for u in card["units"] if u["unit_code"] == m.A)
        assert a["rates"]["response"] == {"numerator": 7, "denominator": 9, "rate": 0.7778}
        assert a["rates"]["satisfaction"]["rate"] == 0.6667 and a["rates"]["return"]["denominator"] == 11
        assert [u["unit_code"] for u in card["units"]] == [m.A, m.B] and card["units"][0]["rank"] is None
        assert "联系不上" in card["definitions"]["satisfaction"]["definition"]

        html = (await client.get("/tracker/sup/scorecard", params={"period": "2026-10"})).text
        assert m.A_NAME in html and "77.8%" in html and "按时签收 ÷ 应签收" in html
        assert "/tracker/sup/tickets?period=2026-10&measure=response&part=numerator&unit=M-CGW" in html

        listed = (await client.get("/tracker/sup/tickets", params={
            "period": "2026-10", "measure": "response", "part": "denominator", "unit": m.A})).text
        assert "共 9 件" in listed and m.number_of("a7") in listed and m.number_of("a9") not in listed
        rows = {name: next(r for r in listed.split("<tr") if m.number_of(name) in r) for name in ("a3", "a4", "a7")}
        # a3 was reopened once and closed satisfied; a4 closed as unreachable; a7 is still being handled.
        assert '<span class="tag">重办</span>' in rows["a3"] and "<td>满意</td>" in rows["a3"]
        assert "<td>联系不上</td>" in rows["a4"] and "重办" not in rows["a4"]
        assert "<td></td></tr>" in rows["a7"]  # no outcome yet

        for path in ("/tracker/sup/ledger", "/tracker/sup/orders?tab=all", "/tracker/sup/trends", "/tracker/sup/wall",
                     "/tracker/sup/reports?period=2026-10", "/tracker/sup/reports?kind=annual&period=2026",
                     "/tracker/supervision"):
            r = await client.get(path)
            assert r.status_code == 200, (path, r.text[:500])
        ledger = (await client.get("/tracker/sup/ledger")).text
        assert m.number_of("a6") in ledger and m.number_of("a7") in ledger  # overdue and unanswered
        assert m.number_of("a8") not in ledger  # paused: its clock stands still
        only_d2 = (await client.get("/tracker/sup/ledger", params={"district": "D-02"})).text
        assert m.number_of("a6") not in only_d2

        trend = (await client.get("/api/v1/tracker/supervision/trends",
                                  params={"dimension": "kind", "days": 60, "until": "2026-11-05"})).json()
        assert trend["total"] == 15 and {s["name"] for s in trend["series"]} >= {"投诉", "求助"}
        assert trend["dates"][0] == "2026-09-07" and trend["dates"][-1] == "2026-11-05"
        for days, total in ((42, 15), (41, 14)):  # s1 came in on 25 September, 41 days before 5 November
            window = (await client.get("/api/v1/tracker/supervision/trends",
                                       params={"dimension": "kind", "days": days, "until": "2026-11-05"})).json()
            assert window["total"] == total, days
        wall = (await client.get("/api/v1/tracker/supervision/overview")).json()
        assert wall["overdue"] == 2 and wall["open"] == 5  # a6, a7 overdue; a6 a7 a8 b2 b3 open


async def test_monthly_bulletin_json_csv_and_xlsx_hold_the_same_hand_computed_figures(live):
    from openpyxl import load_workbook

    async with await _seeded(live) as client:
        data = (await client.get("/tracker/sup/reports/monthly.json", params={"period": "2026-10"})).json()
        check_october(keyed((t["key"], t["rows"]) for t in data["tables"]))
        xlsx = await client.get("/tracker/sup/reports/monthly.xlsx", params={"period": "2026-10"})
        assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        csv_text = (await client.get("/tracker/sup/reports/monthly.csv", params={"period": "2026-10"})).content
        page = (await client.get("/tracker/sup/reports", params={"period": "2026-10"})).text
    wb = load_workbook(io.BytesIO(xlsx.content))
    for table in data["tables"]:
        ws = wb[table["title"].split("、", 1)[-1][:31]]
        cells = ws.iter_rows(min_row=3, max_row=2 + len(table["rows"]))
        # A rate is a number in a percent format in the workbook (sortable), shown as the JSON's text.
        shown = [[f"{c.value * 100:.1f}%" if c.number_format == "0.0%" else c.value for c in row] for row in cells]
        assert shown == table["rows"], table["key"]
    check_october(keyed((t["key"], t["rows"]) for t in data["tables"]))
    assert csv_text.startswith("\ufeff".encode()) and "电话（12345 热线）,7,50.0%" in csv_text.decode("utf-8-sig")
    assert "12345 热线2026年10月诉求办理情况月通报" in page and "61.5%" in page


async def test_orders_are_answered_by_their_own_unit_and_closed_by_the_office(live):
    async with await _seeded(live) as client:
        other = await live.user("zjw", Role.DEPARTMENT, department=m.B)
        own = await live.user("cgw", Role.DEPARTMENT, department=m.A)
        async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {other}"}) as dept:
            r = await dept.post("/tracker/sup/orders/DB-a6-1/respond", data={"response": "我单位已派人处理"})
            assert r.status_code == 404  # not its unit's order
            assert (await dept.get("/tracker/sup/scorecard")).status_code == 403
            assert (await dept.get("/api/v1/tracker/supervision/scorecard")).status_code == 403
            assert (await dept.get("/tracker/sup/ledger")).status_code == 403
        r = await client.post("/tracker/sup/orders/DB-a6-1/close", data={"note": "x"}, follow_redirects=False)
        assert "尚未回复" in httpx.URL(r.headers["location"]).params["refused"]
        async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {own}"}) as dept:
            r = await dept.post("/tracker/sup/orders/DB-a6-1/respond", data={"response": "已约谈施工单位并整改完毕"},
                                follow_redirects=False)
            assert r.status_code == 303
        answered = (await client.get("/tracker/sup/orders", params={"tab": "responded"})).text
        assert 'data-confirm="督办单 DB-a6-1 办结销号？销号后不能撤回。"' in answered  # asks before closing
        assert 'data-confirm="对选中的工单下达督办单？' in (await client.get("/tracker/sup/ledger")).text
        r = await client.post("/tracker/sup/orders/DB-a6-1/close", data={"note": "核实属实"}, follow_redirects=False)
        assert "已销号" in httpx.URL(r.headers["location"]).params["done"]
        closed = (await client.get("/tracker/sup/orders", params={"tab": "closed"})).text
        assert "DB-a6-1" in closed and "已约谈施工单位并整改完毕" in closed

        # Bulk from the ledger: a reminder to each lead unit, then orders through the SupervisionOrdered path.
        numbers = [m.number_of("a6"), m.number_of("a7")]
        r = await client.post("/tracker/sup/ledger/bulk", data={"number": numbers, "op": "remind", "reason": "请今日答复"},
                              follow_redirects=False)
        assert "已催办 2 件" in httpx.URL(r.headers["location"]).params["done"]
        r = await client.post("/tracker/sup/ledger/bulk", data={"number": numbers, "op": "supervise", "level": "key",
                                                               "reason": "超期未办"}, follow_redirects=False)
        assert "已下达督办单 2 件" in httpx.URL(r.headers["location"]).params["done"]
        r = await client.post("/tracker/sup/ledger/bulk", data={"op": "remind", "reason": "请今日答复"},
                              follow_redirects=False)
        assert httpx.URL(r.headers["location"]).params["refused"] == "未选择工单"  # said as a refusal, not as done
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        kinds = (await s.execute(select(notifications.c.kind).where(notifications.c.unit_code == m.A))).scalars().all()
        orders = (await s.execute(select(supervision_orders.c.order_no, supervision_orders.c.level).where(
            supervision_orders.c.reason == "超期未办"))).all()
        events = (await s.execute(select(timeline.c.event_type))).scalars().all()
        outbox = (await s.execute(select(store.tables.outbox.c.event_type))).scalars().all()
    assert kinds.count("reminder") == 2 and kinds.count("supervision") == 2
    assert len(orders) == 2 and all(o.level == "key" for o in orders)
    assert {"SupervisionResponded", "SupervisionClosed", "ReminderSent", "SupervisionOrdered"} <= set(events)
    assert outbox.count("SupervisionOrdered") == 2


async def test_the_rates_and_the_report_agree_on_sqlite_and_postgresql(any_settings):
    url = any_settings.database_url("tracker")
    await asyncio.to_thread(upgrade, "tracker", url)
    database = Database(url)
    try:
        async with database.session() as s:
            await m.seed(s)
        period = stats.period_of("2026-10", TZ)
        async with database.session() as s:
            scores, _ = await stats.scorecard(s, period, m.NOW)
        report = await reports.build(database, "annual", stats.period_of("2026", TZ), m.NOW, TZ)
        monthly = await reports.build(database, "monthly", period, m.NOW, TZ)
    finally:
        await database.dispose()
    a = next(x for x in scores if x.unit_code == m.A)
    assert a.handling_hours == pytest.approx(320 / 6) and a.counts["on_time"] == (5, 8)
    check_october(keyed((t.key, t.rows) for t in monthly.tables))
    assert report.table("months").rows == [["2026-09", 1, 1, "100.0%"], ["2026-10", 14, 8, "61.5%"]]


def test_jiesu_report_monthly_writes_the_workbook(sqlite_settings, tmp_path):
    from openpyxl import load_workbook

    from services.tracker import report_cli

    url = sqlite_settings.database_url("tracker")
    upgrade("tracker", url)

    async def seed():
        database = Database(url)
        async with database.session() as s:
            await m.seed(s)
        await database.dispose()

    asyncio.run(seed())
    out = tmp_path / "oct.xlsx"
    assert report_cli.cmd_report(Namespace(report_kind="monthly", month="2026-10", out=out), sqlite_settings) == 0
    ws = load_workbook(out)["按受理渠道"]
    assert [r[:2] for r in ws.iter_rows(min_row=3, max_row=8, values_only=True)][0] == ("电话（12345 热线）", 7)
    assert report_cli.cmd_report(Namespace(report_kind="annual", year="26", out=None), sqlite_settings) == 2

"""月通报 / 年度报告: the tables the supervision office publishes, as data, .xlsx and CSV.

A report is a list of `Table`s (title, header, rows, note); the page, the workbook and the
CSV are three renderings of the same list, so they cannot disagree.

Counting rules (shown in the report's notes):

- requests (受理量) are counted by the time they were received, every channel and every
  outcome included (merged duplicates and direct answers too);
- replied (已答复) means a reply to the citizen exists: the department's, or the
  operator's direct answer; reply rate = replied ÷ (received − merged duplicates);
- satisfaction is the city-wide rate from return visits in the period (see stats.py);
- supervision orders are counted by the day they were issued and under the level they were issued
  at (`ORDERS_NOTE`): an order escalated later (逾期升级) stays under its first level, so a month's
  figures do not move when its orders are escalated in the next; the escalated are a row of their own;
- the per-unit table is the department scorecard of the same period.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field

from sqlalchemy import case, func, select

from schemas.enums import CHANNEL_LABELS, KIND_LABELS
from services.tracker import stats
from services.tracker.store import supervision_orders, tickets

# The channels a bulletin reports (电话 / 来信 / 网上 / 电子邮件 / 来访 / 其他) and which of ours each holds.
REPORT_CHANNELS = (
    ("phone", "电话（12345 热线）", ("hotline",)),
    ("letter", "来信（市长信箱）", ("mailbox",)),
    ("online", "网上（留言、Open311）", ("online", "open311")),
    ("email", "电子邮件", ("email",)),
    ("in_person", "来访", ("in_person",)),
    ("other", "其他", ("other",)),
)
ORDERS_NOTE = ("督办单按下达日期计入当期，按下达时的级别分列：此后逾期升级为重点督办的仍计入原级别，另在“其中：逾期升级”中列出；"
               "已回复、已办结销号、逾期未回复为报告生成时的状态。")
OUTCOMES = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意（非承办单位原因）",
            "unreachable": "联系不上"}


@dataclass
class Table:
    key: str
    title: str
    header: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""


@dataclass
class Report:
    kind: str  # monthly | annual
    title: str
    period: stats.Period
    generated_at: dt.datetime
    tables: list[Table]
    tz: object = None

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)


class Percent(str):
    """A rate in a table: the text the page, the CSV and the JSON show ("77.8%", or "—" without one), which keeps
    the ratio behind it for the workbook to write as a number in a percent format (sortable, summable)."""

    ratio: float | None

    def __new__(cls, ratio: float | None) -> Percent:
        text = super().__new__(cls, stats.pct(ratio))
        text.ratio = ratio
        return text


class UnitCell(str):
    """A unit in the per-unit table: its name, or its code marked 名称未知 when the tracker does not know the name
    (`stats.Score.named`): "D-99（名称未知）" on the page, in the workbook and the CSV alike. `hint` says why
    (`stats.UNNAMED_UNIT`): the page's tooltip; the table's note says it for the exports and the print."""

    hint: str | None

    def __new__(cls, score: stats.Score) -> UnitCell:
        cell = super().__new__(cls, score.unit_name if score.named else f"{score.unit_code}（名称未知）")
        cell.hint = None if score.named else stats.UNNAMED_UNIT
        return cell


def _share(n: int, total: int) -> Percent:
    return Percent(n / total if total else None)


def _keyed(pairs) -> dict[str, int]:
    """Counts keyed by text (JSON keys cannot be None: a missing value is "")."""
    return {("" if k is None else str(k)): int(v) for k, v in pairs}


async def facts(session, period: stats.Period, now: dt.datetime) -> dict:
    """Every count a report needs for one period, as JSON-able data that adds up across months."""
    t = tickets.c
    where = [t.received_at >= period.start, t.received_at < period.end]

    async def by(column) -> dict:
        return _keyed((await session.execute(select(column, func.count()).where(*where).group_by(column))).all())

    out: dict = {"channels": await by(t.channel), "kinds": await by(t.kind), "districts": await by(t.district),
                 "categories": await by(t.category), "states": await by(t.state)}
    out["total"] = sum(out["states"].values())
    out["dispatched"] = await session.scalar(select(func.count()).select_from(tickets).where(
        *where, t.lead_code.is_not(None), t.state.not_in(("merged", "answered_directly")))) or 0
    out["replied"] = await session.scalar(select(func.count()).select_from(tickets).where(
        *where, t.replied_at.is_not(None), t.state != "merged")) or 0
    out["outcomes"] = _keyed((await session.execute(select(t.outcome, func.count()).where(
        t.closed_at >= period.start, t.closed_at < period.end, t.state == "closed").group_by(t.outcome))).all())
    out["orders"] = await _orders(session, period, now)
    scores, _ = await stats.scorecard(session, period, now)
    out["scores"] = [s.to_json() for s in scores]
    return out


async def _orders(session, period: stats.Period, now: dt.datetime) -> dict[str, list[int]]:
    """The orders issued in the period, [issued, responded, closed, overdue unanswered] (the last three as they
    stand `now`), by the level they were issued at (key, normal), and those of them escalated since (escalated).

    An order's level is the office's choice when it issued it until escalation makes it key; the escalation
    keeps the level it raised the order from on the order (`from_level`). An escalated order without one
    (escalated before tracker_0014 with no timeline entry to fill it from) keeps the level it has.
    """
    o = supervision_orders.c
    issued = select(
        case((o.escalated_at.is_(None), o.level), else_=func.coalesce(o.from_level, o.level)).label("level"),
        case((o.escalated_at.is_(None), 0), else_=1).label("escalated"),
        case((o.responded_at.is_not(None), 1), else_=0).label("responded"),
        case((o.closed_at.is_not(None), 1), else_=0).label("closed"),
        case((o.responded_at.is_(None) & o.closed_at.is_(None) & (o.due_at < now), 1), else_=0).label("overdue"),
    ).where(o.created_at >= period.start, o.created_at < period.end).subquery()
    i = issued.c
    rows = (await session.execute(select(i.level, i.escalated, func.count(), func.sum(i.responded),
                                         func.sum(i.closed), func.sum(i.overdue))
                                  .group_by(i.level, i.escalated))).all()
    out: dict[str, list[int]] = {}
    for level, escalated, *counts in rows:
        for key in (level, "escalated") if escalated else (level,):
            out[key] = [a + int(b or 0) for a, b in zip(out.get(key, [0, 0, 0, 0]), counts)]
    return out


def combine(parts: list[dict]) -> dict:
    """The facts of a longer period from those of its months (every count is additive)."""
    out: dict = {"total": 0, "dispatched": 0, "replied": 0, "orders": {}, "scores": []}
    for key in ("channels", "kinds", "districts", "categories", "states", "outcomes"):
        out[key] = {}
    for part in parts:
        for key in ("total", "dispatched", "replied"):
            out[key] += part[key]
        for key in ("channels", "kinds", "districts", "categories", "states", "outcomes"):
            for k, v in part[key].items():
                out[key][k] = out[key].get(k, 0) + v
        for level, values in part["orders"].items():
            out["orders"][level] = [a + b for a, b in zip(out["orders"].get(level, [0, 0, 0, 0]), values)]
    out["scores"] = [s.to_json() for s in stats.combine_scores([[stats.Score.from_json(x) for x in part["scores"]]
                                                               for part in parts])]
    return out


async def build(db, kind: str, period: stats.Period, now: dt.datetime, tz,
                names: dict[str, str] | None = None, months: list[tuple[str, dict]] | None = None) -> Report:
    """The report's tables, read on a reading session of `db`. An annual report is put together from its
    months' facts (`rollup.py`), which are also given here for its by-month table; `names` maps
    district/category codes to names."""
    if months is None and kind == "annual":
        from services.tracker import rollup

        months = await rollup.month_facts(db, period, now, tz)
    if months is not None:
        f = combine([m for _, m in months])
    else:
        async with db.reading() as session:
            f = await facts(session, period, now)
    return render(kind, period, now, tz, f, months, names or {})


def render(kind: str, period: stats.Period, now: dt.datetime, tz, f: dict, months, names: dict) -> Report:
    total, states = f["total"], f["states"]
    merged, direct = states.get("merged", 0), states.get("answered_directly", 0)
    replied, closed, awaiting_visit = f["replied"], states.get("closed", 0), states.get("replied", 0)
    in_progress = sum(states.get(s, 0) for s in stats.IN_PROGRESS)
    base = total - merged
    overview = Table("overview", "一、受理总体情况", ["项目", "数量", "占比"])
    overview.rows = [
        ["受理诉求", total, _share(total, total)],
        ["直接办结（话务员当场答复）", direct, _share(direct, total)],
        ["派单至承办单位", f["dispatched"], _share(f["dispatched"], total)],
        ["重复件合并", merged, _share(merged, total)],
        ["已答复（含直接办结）", replied, _share(replied, base)],
        ["已答复待回访", awaiting_visit, _share(awaiting_visit, base)],
        ["已办结（回访后）", closed, _share(closed, base)],
        ["在办", in_progress, _share(in_progress, base)],
    ]
    overview.note = ("答复率 = 已答复 ÷（受理诉求 − 重复件合并）；已答复含重办中的。直接办结、已答复待回访、已办结（回访后）、在办"
                     "四项按报告生成时的状态计，合计为受理诉求 − 重复件合并。" + stats.IN_PROGRESS_DEFINITION)

    by_channel = Table("channel", "二、按受理渠道", ["渠道", "数量", "占比"])
    for _key, label, ours in REPORT_CHANNELS:
        n = sum(f["channels"].get(c, 0) for c in ours)
        by_channel.rows.append([label, n, _share(n, total)])

    by_kind = Table("kind", "三、按诉求类型", ["类型", "数量", "占比"])
    for k, label in KIND_LABELS.items():
        by_kind.rows.append([label, f["kinds"].get(k.value, 0), _share(f["kinds"].get(k.value, 0), total)])

    by_district = Table("district", "四、按区域", ["区域", "数量", "占比"])
    for code, n in sorted(f["districts"].items(), key=lambda kv: (-kv[1], kv[0])):
        by_district.rows.append([names.get(code, code) if code else "未注明", n, _share(n, total)])

    by_category = Table("category", "五、按问题分类", ["分类", "数量", "占比"])
    for code, n in sorted(f["categories"].items(), key=lambda kv: (-kv[1], kv[0]))[:30]:
        by_category.rows.append([names.get(code, code) if code else "未分类", n, _share(n, total)])
    by_category.note = "列出数量最多的 30 类。"

    scores = stats.rank([stats.Score.from_json(x) for x in f["scores"]])
    total_score = stats.total_of(scores)
    sat_n, sat_d = total_score.counts["satisfaction"]
    res_n, res_d = total_score.counts["resolution"]
    outcomes = f["outcomes"]
    replies = Table("outcome", "六、答复与办理结果", ["项目", "数量", "比率"])
    replies.rows = [
        ["本期答复率", replied, _share(replied, base)],
        *([f"本期办结：{label}", outcomes.get(k, 0), _share(outcomes.get(k, 0), sum(outcomes.values()))]
          for k, label in OUTCOMES.items()),
        ["满意率（满意+基本满意 ÷ 参评回访）", sat_n, _share(sat_n, sat_d)],
        ["解决率（已解决 ÷ 参评回访）", res_n, _share(res_n, res_d)],
        ["响应率（按时签收 ÷ 应签收）", total_score.counts["response"][0], Percent(total_score.rate("response"))],
        ["按时办结率", total_score.counts["on_time"][0], Percent(total_score.rate("on_time"))],
    ]
    replies.note = "办结结果按办结时间统计，比率为占本期办结数的比例；满意率、解决率按回访时间统计，联系不上的不计入。"

    orders = Table("supervision", "七、督办情况", ["下达级别", "督办单", "已回复", "已办结销号", "逾期未回复"])
    for level, label in (("key", "重点督办"), ("normal", "一般督办")):
        orders.rows.append([label, *f["orders"].get(level, [0, 0, 0, 0])])
    orders.rows.append(["合计", *(sum(row[i] for row in orders.rows) for i in range(1, 5))])
    orders.rows.append(["其中：逾期升级", *f["orders"].get("escalated", [0, 0, 0, 0])])
    orders.note = ORDERS_NOTE

    units = Table("units", "八、承办单位考评", ["排名", "承办单位", "派件量", "响应率", "解决率", "满意率", "按时办结率",
                                        "退单率", "重办率", "回访率", "平均办理时长（小时）", "综合得分", "说明"])
    for s in scores:
        units.rows.append([s.rank or "不参与排名", UnitCell(s), s.assigned, *(Percent(s.rate(k)) for k in (
            "response", "resolution", "satisfaction", "on_time", "return", "redo", "visit")),
            "—" if s.handling_hours is None else round(s.handling_hours, 1),
            "—" if s.score is None else round(s.score, 2), s.unranked_reason or ""])
    units.note = stats.SCORE_DEFINITION + "各比率口径见“部门考评”页。"
    if not all(s.named for s in scores):
        units.note += stats.UNNAMED_UNIT

    tables = [overview, by_channel, by_kind, by_district, by_category, replies, orders, units]
    if kind == "annual" and months is not None:
        monthly = Table("months", "九、分月受理量", ["月份", "受理量", "已答复", "答复率"])
        for key, m in months:
            if m["total"]:
                n, r = m["total"], m["replied"]
                monthly.rows.append([key, n, r, _share(r, n - m["states"].get("merged", 0))])
        tables.append(monthly)
    label = "月通报" if kind == "monthly" else "年度报告"
    return Report(kind, f"12345 热线{period.label}诉求办理情况{label}", period, now, tables, tz)


def to_xlsx(report: Report) -> bytes:
    """One sheet per table, plus a cover sheet; numbers stay numbers, rates too (a ratio shown as a percentage)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    cover = wb.active
    cover.title = "封面"
    cover["A1"] = report.title
    cover["A1"].font = Font(size=16, bold=True)
    cover["A3"] = "统计期间"
    cover["B3"] = report.period.label
    cover["A4"] = "生成时间"
    cover["B4"] = report.generated_at.astimezone(report.tz).strftime("%Y-%m-%d %H:%M")
    cover.column_dimensions["A"].width = 14
    cover.column_dimensions["B"].width = 40
    head = PatternFill("solid", fgColor="C62828")
    for table in report.tables:
        ws = wb.create_sheet(table.title.split("、", 1)[-1][:31])
        ws.append([table.title])
        ws["A1"].font = Font(size=13, bold=True)
        ws.append(table.header)
        for cell in ws[2]:
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = head
            cell.alignment = Alignment(horizontal="center")
        for row in table.rows:
            ws.append([c.ratio if isinstance(c, Percent) and c.ratio is not None else c for c in row])
            for cell, value in zip(ws[ws.max_row], row):
                if isinstance(value, Percent) and value.ratio is not None:
                    cell.number_format = "0.0%"
        if table.note:
            ws.append([])
            ws.append([f"说明：{table.note}"])
        for i, _ in enumerate(table.header, start=1):
            ws.column_dimensions[get_column_letter(i)].width = 26 if i <= 2 else 14
        ws.freeze_panes = "A3"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def to_csv(report: Report) -> bytes:
    """All tables one after another, UTF-8 with a BOM so that Excel opens the Chinese correctly."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([report.title])
    w.writerow(["统计期间", report.period.label])
    for table in report.tables:
        w.writerow([])
        w.writerow([table.title])
        w.writerow(table.header)
        w.writerows(table.rows)
        if table.note:
            w.writerow([f"说明：{table.note}"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def filename(report: Report, ext: str) -> str:
    return f"jiesu-{report.kind}-{report.period.key}.{ext}"


def channel_labels() -> dict[str, str]:
    return {c.value: label for c, label in CHANNEL_LABELS.items()}

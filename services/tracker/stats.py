"""The supervision office's figures: periods, the department scorecard (三率 and the rest).

Every rate is a numerator over a denominator, both defined once here as SQL conditions.
The scorecard sums them per unit; the click-through lists what satisfies the same
conditions, one row for each thing counted (`figure_items`: a ticket, a return visit, an
assignment or a return), so a figure and its list can never disagree. The definitions are
also shown beside each rate on the page (`RATES[...].definition`).

Three sources, each read by an index over its time column:

- the **cohort**: tickets assigned to the unit in the period (``assigned_at``), leaving
  out tickets that are not the unit's to answer — merged duplicates (合并), tickets the
  operator answered directly (直办) and tickets returned or waiting for dispatch;
- the **return visits** (回访) recorded in the period (``tracker_return_visits.at``);
- the **unit log**: assignments to and returns (退单) by the unit in the period; and, by the period the unit was
  given the ticket, holdings that ended after a clock ran out, by a return or by a dispatcher's move (改派) before
  sign-for, whose lateness stays the unit's (`late_return_conditions`).

A unit is scored and ranked only when all three weighted rates rest on enough data (`MIN_SAMPLE`);
the others are listed after the ranked, 不参与排名, with the reason (`Score.unranked_reason`).
The state groups, 在办 (`IN_PROGRESS`) among them, are defined here once for every page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, String, and_, case, cast, func, literal, not_, null, or_, select, union_all
from sqlalchemy.sql import ColumnElement, Select

from jiesu.db import UTCDateTime
from services.tracker.domain import lifecycle
from services.tracker.store import code_names, return_visits, tickets, unit_log

# The reply clock runs: a unit holds the ticket and is not paused.
RUNNING = ("assigned", "signed_for", "contacted", "extension_requested", "reopened")
# A unit holds the ticket and its reply clock stands still: 待补充材料 (waiting on the citizen) or 挂账 (deferred).
PAUSED = ("waiting_citizen", "deferred")
# A unit holds the ticket and owes the reply (paused ones too): the part of 在办 a unit's workbench shows.
OPEN = (*RUNNING, *PAUSED)
# Received and not yet with a unit (`lifecycle.AWAITING_DISPATCH`, the one definition), in a fixed order: the same
# statement text on every query.
AWAITING_DISPATCH = tuple(sorted(s.value for s in lifecycle.AWAITING_DISPATCH))
# 在办, the one definition every page that shows 在办 counts by: received and not yet answered, wherever it is.
# Not 在办: replied awaiting the return visit (已答复待回访), closed, merged duplicates, answered directly.
IN_PROGRESS = (*AWAITING_DISPATCH, *OPEN)
IN_PROGRESS_DEFINITION = ("在办：已受理、尚未答复的工单，含待派单、退回待改派、承办中（含暂停计时、挂账）和重办中的；"
                          "不含已答复待回访、已办结、重复件合并和直接办结的。")
# Not the unit's to answer: merged into another ticket, answered on the call, or not yet (or no longer) with a unit.
NOT_THE_UNITS = ("merged", "answered_directly", *AWAITING_DISPATCH)
RATED = ("satisfied", "basically_satisfied", "dissatisfied")
# Weights of the composite score used for ranking (Beijing's 接诉即办 考评: 响应 10 %, 解决 45 %, 满意 45 %).
WEIGHTS = {"response": 0.10, "resolution": 0.45, "satisfaction": 0.45}
# A score needs all three weighted rates, each over at least this many tickets (应签收) or visits (参评回访).
# Below ten, one ticket moves a rate by more than ten points, more than the gap between neighbouring units,
# so the order would be chance: a unit with one satisfied visit would score 100 and lead the ranking.
MIN_SAMPLE = 10
SCORE_DEFINITION = (f"综合得分 = 响应率×{WEIGHTS['response']:.0%} + 解决率×{WEIGHTS['resolution']:.0%} + "
                    f"满意率×{WEIGHTS['satisfaction']:.0%}。三率须都有数据，且应签收、参评回访各不少于 {MIN_SAMPLE} 件，"
                    "方计得分、参与排名；否则列在参与排名的单位之后，标“不参与排名”并注明原因，各项比率照常列出。")


# --- periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive
    label: str  # as people read it: 2026年11月
    key: str  # as URLs carry it: 2026-11, 2026, 2026-11-01..2026-11-15

    @property
    def days(self) -> int:
        return max(1, round((self.end - self.start).total_seconds() / 86400))


def period_of(key: str, tz: ZoneInfo) -> Period:
    """`YYYY-MM` (a month), `YYYY` (a year) or `YYYY-MM-DD..YYYY-MM-DD` (inclusive days), in local time."""
    key = key.strip()

    def at(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)

    try:
        if ".." in key:
            a, b = (dt.date.fromisoformat(x) for x in key.split(".."))
            if b < a:
                raise ValueError(key)
            return Period(at(a), at(b + dt.timedelta(days=1)), f"{a.isoformat()} 至 {b.isoformat()}", key)
        if len(key) == 4:
            year = int(key)
            return Period(at(dt.date(year, 1, 1)), at(dt.date(year + 1, 1, 1)), f"{year}年", key)
        year, month = (int(x) for x in key.split("-"))
        first = dt.date(year, month, 1)
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        return Period(at(first), at(nxt), f"{year}年{month}月", f"{year}-{month:02d}")
    except ValueError:
        raise ValueError(f"期间格式应为 YYYY-MM、YYYY 或 YYYY-MM-DD..YYYY-MM-DD：{key} / "
                         f"Write the period as YYYY-MM, YYYY or YYYY-MM-DD..YYYY-MM-DD") from None


def this_month(tz: ZoneInfo, now: dt.datetime | None = None) -> str:
    local = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
    return f"{local.year}-{local.month:02d}"


# --- the rates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    key: str
    label: str
    numerator: str
    denominator: str
    definition: str
    source: str  # cohort | visits | log


RATES: dict[str, Rate] = {r.key: r for r in (
    Rate("response", "响应率", "按时签收", "应签收",
         "本期派件中在签收时限内签收的件数 ÷ 本期派件中已签收或签收时限已过的件数。签收时限未到且尚未签收的不计。"
         "超过签收时限才签收或仍未签收即退单的，以及超过签收时限仍未签收即被改派的，仍计入该单位的分母；"
         "签收时限前被改派的不计入该单位。", "cohort"),
    Rate("resolution", "解决率", "已解决", "参评回访",
         "本期回访结果为满意、基本满意，或不满意但经核实非承办单位原因的件数 ÷ 本期参评回访数。"
         "参评回访：满意、基本满意、不满意（已判明原因）；联系不上的、市民在线评价不满意尚待回访员核实的不计。",
         "visits"),
    Rate("satisfaction", "满意率", "满意+基本满意", "参评回访",
         "本期回访结果为满意或基本满意的件数 ÷ 本期参评回访数（联系不上的不计入分母）。每次回访各计一次：重办后再回访满意的，"
         "前一次不满意仍计入。", "visits"),
    Rate("on_time", "按时办结率", "按期答复", "应答复",
         "本期派件中在答复期限内答复的件数 ÷ 本期派件中已答复或答复期限已过仍未答复的件数（暂停计时中的不计）。"
         "期限含批准的延期与暂停顺延；重办件以重办期限计。超过答复期限后退单或被改派的，仍计入该单位的分母。", "cohort"),
    Rate("return", "退单率", "退单次数", "派件次数",
         "本期该单位退单次数 ÷ 本期派给该单位的次数（含后来被退回的）。", "log"),
    Rate("redo", "重办率", "重办件", "已答复件",
         "本期派件中因回访不满意（承办单位原因）被重办过的件数 ÷ 本期派件中已答复的件数。", "cohort"),
    Rate("visit", "回访率", "已回访", "已答复件",
         "本期派件中已答复且回访取得结果（满意、基本满意、不满意）的件数 ÷ 本期派件中已答复的件数。联系不上的不算已回访。",
         "cohort"),
)}
HANDLING_DEFINITION = "本期派件中已答复工单从派单到（最后一次）答复的平均时长，按自然时间计，单位小时。"
ASSIGNED_DEFINITION = ("本期（按派单时间）派给该单位且仍由其负责的工单；不含重复件合并、直接办结、已退回待改派的工单。"
                       "超时后退单或被改派的另计入响应率、按时办结率的分母，故应签收、应答复可多于派件量。")
# The city total (全市合计) adds up the units' rows: each assignment is an obligation, so a ticket late with one
# unit and then given to another counts for both, and the total's denominators can exceed its tickets.
TOTAL_DEFINITION = ("全市合计为各单位之和：每次派单各是一项责任，超时后退单或被改派的工单既计入原单位的应签收、应答复，"
                    "也计入后来承办的单位，故同一工单可计入多次。")
# Why a unit is shown by its code (`Score.named`): the tracker learns a unit's name only with an assignment to it.
UNNAMED_UNIT = ("单位名称未知：跟踪系统只从派单消息得知单位名称，派给该单位的工单记录中均未留下其名称；"
                "再有工单派给该单位后即显示名称。")


def cohort_conditions(now: dt.datetime) -> dict[str, tuple[ColumnElement, ColumnElement]]:
    """(numerator, denominator) conditions on tracker_tickets for the cohort rates."""
    t = tickets.c
    replied = t.replied_at.is_not(None)
    return {
        "response": (and_(t.signed_for_at.is_not(None), or_(t.sign_for_due.is_(None), t.signed_for_at <= t.sign_for_due)),
                     or_(t.signed_for_at.is_not(None), t.sign_for_due < now)),
        "on_time": (and_(replied, or_(t.reply_due.is_(None), t.replied_at <= t.reply_due)),
                    or_(replied, and_(t.state.in_(RUNNING), t.reply_due < now))),
        "redo": (and_(replied, t.reopen_count > 0), replied),
        "visit": (and_(replied, or_(and_(t.state == "closed", t.outcome.in_(RATED)), t.reopen_count > 0)), replied),
    }


def late_return_conditions() -> dict[str, ColumnElement]:
    """Holdings that ended after the unit let a clock run out, as conditions on tracker_unit_log rows that keep the
    clocks the unit held the ticket under, as they stood when it ended: a return (退单, kind "returned") or a
    dispatcher's move (改派, kind "moved", only possible before sign-for). Signed for late, or not signed for by the
    deadline (响应率); the reply deadline passed (按时办结率). Each counts in that rate's denominator of the unit, in
    the period it was given the ticket (`late_return_where`), as it would have had the unit kept the ticket:
    returning it, or having it taken away, takes the lateness off nothing. A return or a move before the deadline
    counts nowhere (a move is not the unit's doing). Assignments keep no clocks and never match."""
    u = unit_log.c
    return {
        "response": or_(u.signed_for_at > u.sign_for_due, and_(u.signed_for_at.is_(None), u.sign_for_due < u.at)),
        "on_time": u.reply_due < u.at,
    }


def late_return_where(period: Period, unit: str | None = None) -> list[ColumnElement]:
    """The returns whose unit was given the ticket in the period: only returns keep `assigned_at`."""
    u = unit_log.c
    where = [u.assigned_at >= period.start, u.assigned_at < period.end]
    if unit:
        where.append(u.unit_code == unit)
    return where


def visit_conditions() -> dict[str, tuple[ColumnElement, ColumnElement]]:
    v = return_visits.c
    rated = and_(v.outcome.in_(RATED), not_(and_(v.outcome == "dissatisfied", v.department_caused.is_(None))))
    good = v.outcome.in_(("satisfied", "basically_satisfied"))
    return {
        "satisfaction": (and_(rated, good), rated),
        "resolution": (and_(rated, or_(good, and_(v.outcome == "dissatisfied", v.department_caused.is_(False)))),
                       rated),
    }


def cohort_where(period: Period, unit: str | None = None) -> list[ColumnElement]:
    t = tickets.c
    where = [t.assigned_at >= period.start, t.assigned_at < period.end, t.lead_code.is_not(None),
             t.state.not_in(NOT_THE_UNITS)]
    if unit:
        where.append(t.lead_code == unit)
    return where


def _hours(dialect: str, later, earlier) -> ColumnElement:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _sum(cond) -> ColumnElement:
    return func.sum(case((cond, 1), else_=0))


# Why the city total (全市合计) has no rank, whether or not its figures carry a score: it adds up every unit's.
TOTAL_UNRANKED = "合计行不参与排名"


@dataclass
class Score:
    unit_code: str
    unit_name: str
    assigned: int = 0
    handling_hours: float | None = None
    counts: dict[str, tuple[int, int]] | None = None  # rate key -> (numerator, denominator)
    rank: int | None = None
    total: bool = False  # the city total (全市合计, `total_of`), never ranked

    @property
    def named(self) -> bool:
        """Whether the unit's name is known; shown by its code otherwise (`UNNAMED_UNIT`)."""
        return self.unit_name != self.unit_code

    def rate(self, key: str) -> float | None:
        n, d = self.counts_of(key)
        return n / d if d else None

    @property
    def unranked_reason(self) -> str | None:
        """Why the row has no rank (不参与排名): a unit's, when its data carries no score (None when it does); the
        total's always (`TOTAL_UNRANKED`), with why it has no score either when it has none."""
        short = self._short_of_data()
        if self.total:
            return "；".join(why for why in (TOTAL_UNRANKED, short) if why)
        return short

    def _short_of_data(self) -> str | None:
        """What the three weighted rates lack for a score (missing, or fewer than MIN_SAMPLE behind one), or None."""
        missing = [RATES[k].label for k in WEIGHTS if not self.counts_of(k)[1]]
        samples: dict[str, int] = {}  # 解决率 and 满意率 share their denominator: name it once
        for k in WEIGHTS:
            d = self.counts_of(k)[1]
            if 0 < d < MIN_SAMPLE:
                samples[RATES[k].denominator] = d
        why = []
        if missing:
            why.append("缺少" + "、".join(missing))
        if samples:
            why.append("样本不足：" + "、".join(f"{name} {d} 件" for name, d in samples.items())
                       + f"，须各不少于 {MIN_SAMPLE} 件")
        return "；".join(why) or None

    @property
    def score(self) -> float | None:
        """响应率×10 % + 解决率×45 % + 满意率×45 % (`WEIGHTS`), or None when `unranked_reason` says why not."""
        if self._short_of_data():
            return None
        return sum(w * self.rate(k) for k, w in WEIGHTS.items()) * 100

    def counts_of(self, key: str) -> tuple[int, int]:
        return (self.counts or {}).get(key, (0, 0))

    def to_json(self) -> dict:
        return {"code": self.unit_code, "name": self.unit_name, "assigned": self.assigned, "hours": self.handling_hours,
                "counts": {k: list(v) for k, v in (self.counts or {}).items()}}

    @classmethod
    def from_json(cls, data: dict) -> Score:
        return cls(data["code"], data["name"], data["assigned"], data["hours"],
                   {k: (v[0], v[1]) for k, v in data["counts"].items()})

    def as_dict(self) -> dict:
        return {"unit_code": self.unit_code, "unit_name": self.unit_name, "assigned": self.assigned,
                "handling_hours": None if self.handling_hours is None else round(self.handling_hours, 1),
                "score": None if self.score is None else round(self.score, 2), "rank": self.rank,
                "unranked_reason": self.unranked_reason,
                "rates": {k: {"numerator": n, "denominator": d, "rate": (None if not d else round(n / d, 4))}
                          for k, (n, d) in (self.counts or {}).items()}}


async def scorecard(session, period: Period, now: dt.datetime, unit: str | None = None) -> tuple[list[Score], Score]:
    """Per-unit figures for the period, ranked by composite score, and the city-wide total."""
    dialect = session.bind.dialect.name
    t = tickets.c
    conds = cohort_conditions(now)
    cols = [t.lead_code, func.max(t.lead_name), func.count()]
    for n, d in conds.values():
        cols += [_sum(n), _sum(d)]
    cols.append(func.avg(case((t.replied_at.is_not(None), _hours(dialect, t.replied_at, t.assigned_at)))))
    rows = (await session.execute(select(*cols).where(*cohort_where(period, unit)).group_by(t.lead_code))).all()
    scores: dict[str, Score] = {}
    for row in rows:
        s = Score(row[0], row[1] or row[0], row[2], row[-1], {})
        for i, key in enumerate(conds):
            s.counts[key] = (int(row[3 + 2 * i] or 0), int(row[4 + 2 * i] or 0))
        scores[row[0]] = s

    u = unit_log.c
    late = late_return_conditions()
    for row in (await session.execute(select(u.unit_code, *(_sum(c) for c in late.values()))
                                      .where(*late_return_where(period, unit)).group_by(u.unit_code))).all():
        s = scores.setdefault(row[0], Score(row[0], row[0], 0, None, {}))
        for i, key in enumerate(late):
            n, d = s.counts.get(key, (0, 0))
            s.counts[key] = (n, d + int(row[1 + i] or 0))

    v = return_visits.c
    vconds = visit_conditions()
    vcols = [v.unit_code]
    for n, d in vconds.values():
        vcols += [_sum(n), _sum(d)]
    vwhere = [v.at >= period.start, v.at < period.end, v.unit_code.is_not(None)]
    if unit:
        vwhere.append(v.unit_code == unit)
    for row in (await session.execute(select(*vcols).where(*vwhere).group_by(v.unit_code))).all():
        s = scores.setdefault(row[0], Score(row[0], row[0], 0, None, {}))
        for i, key in enumerate(vconds):
            s.counts[key] = (int(row[1 + 2 * i] or 0), int(row[2 + 2 * i] or 0))

    lwhere = [u.at >= period.start, u.at < period.end]
    if unit:
        lwhere.append(u.unit_code == unit)
    logged: dict[str, dict[str, int]] = {}
    for code, kind, count in (await session.execute(
            select(u.unit_code, u.kind, func.count()).where(*lwhere).group_by(u.unit_code, u.kind))).all():
        logged.setdefault(code, {})[kind] = count
    for code, kinds in logged.items():
        s = scores.setdefault(code, Score(code, code, 0, None, {}))
        s.counts["return"] = (kinds.get("returned", 0), kinds.get("assigned", 0))

    missing = [s for s in scores.values() if s.unit_name == s.unit_code]
    if missing:  # units that only appear in visits or the log
        names = await unit_names(session, [s.unit_code for s in missing])
        for s in missing:
            s.unit_name = names.get(s.unit_code) or s.unit_code
    for s in scores.values():
        for key in RATES:
            s.counts.setdefault(key, (0, 0))
    ranked = rank(list(scores.values()))
    return ranked, total_of(ranked)


async def unit_names(session, codes) -> dict[str, str]:
    """code → name of the units `codes`: as a ticket the unit leads carries it, else as the directory named it with
    the unit's last assignment (tracker_code_names), for a unit that leads no ticket now (it returned every ticket it
    was given). A code with neither is left out."""
    codes = sorted(set(codes))
    if not codes:
        return {}
    t = tickets.c
    names = {code: name for code, name in (await session.execute(select(t.lead_code, func.max(t.lead_name)).where(
        t.lead_code.in_(codes)).group_by(t.lead_code))).all() if name}
    if rest := [code for code in codes if code not in names]:
        names |= dict((await session.execute(select(code_names.c.code, code_names.c.name).where(
            code_names.c.code.in_(rest)))).all())
    return names


def rank(scores: list[Score]) -> list[Score]:
    """Units with a score by score (ties by volume), then the unranked (不参与排名) by volume."""
    ranked = sorted(scores, key=lambda s: (s.score is None, -(s.score or 0), -s.assigned, s.unit_code))
    for i, s in enumerate(ranked, start=1):
        s.rank = i if s.score is not None else None
    return ranked


def combine_scores(parts: list[list[Score]]) -> list[Score]:
    """One unit's figures over several periods: every numerator and denominator adds up; the average
    handling time is weighted by the replied tickets (the redo rate's denominator)."""
    out: dict[str, Score] = {}
    hours: dict[str, float] = {}
    for part in parts:
        for s in part:
            c = out.setdefault(s.unit_code, Score(s.unit_code, s.unit_name, 0, None, {k: (0, 0) for k in RATES}))
            if c.unit_name == c.unit_code:
                c.unit_name = s.unit_name
            c.assigned += s.assigned
            for key, (n, d) in s.counts.items():
                cn, cd = c.counts[key]
                c.counts[key] = (cn + n, cd + d)
            if s.handling_hours is not None:
                hours[s.unit_code] = hours.get(s.unit_code, 0.0) + s.handling_hours * s.counts["redo"][1]
    for code, c in out.items():
        replied = c.counts["redo"][1]
        c.handling_hours = hours[code] / replied if code in hours and replied else None
    return rank(list(out.values()))


def total_of(scores: list[Score]) -> Score:
    total = Score("ALL", "全市合计", sum(s.assigned for s in scores), None, {k: (0, 0) for k in RATES}, total=True)
    for s in scores:
        for key, (n, d) in s.counts.items():
            tn, td = total.counts[key]
            total.counts[key] = (tn + n, td + d)
    weighted = [(s.handling_hours, s.counts["redo"][1]) for s in scores if s.handling_hours is not None]
    replied = sum(w for _, w in weighted)
    total.handling_hours = sum(h * w for h, w in weighted) / replied if replied else None
    return total


# What a row of a figure's list stands for (`figure_items`), as the list says it.
ITEM_KINDS = {"ticket": "本期派件", "late_return": "超时后退单", "late_move": "超时后被改派", "visit": "回访",
              "assigned": "派件", "returned": "退单"}
# The list's kind of a late holding (`late_return_conditions`), by how it ended.
LATE_KIND = {"returned": "late_return", "moved": "late_move"}


def figure_kind(measure: str, part: str) -> str:
    """What every row of a figure's list stands for (an `ITEM_KINDS` key), whatever the list holds, even nothing:
    "ticket" for a cohort figure, whose denominator may also hold late returns (`figure_items`)."""
    rate = RATES.get(measure)
    if rate is None or rate.source == "cohort":
        return "ticket"
    if rate.source == "visits":
        return "visit"
    return "returned" if part == "numerator" else "assigned"


def figure_items(measure: str, part: str, period: Period, now: dt.datetime, unit: str | None) -> Select:
    """What one figure of the scorecard counts (numerator or denominator), one row for each thing counted, so that
    the list behind a figure has as many rows as the figure says: (ticket_id, item_at, item_kind, item_outcome,
    item_caused, item_unit, item_assigned_at, item_sign_for_due, item_signed_for_at, item_reply_due,
    item_replied_at).

    A cohort figure counts tickets (`item_kind` "ticket", at their assignment), and its late holdings
    (`late_return_conditions`) one row per return ("late_return") or move ("late_move"), as the figure adds them;
    a visit figure counts each return visit (回访, "visit", with its outcome and cause), a ticket visited twice
    twice; the return rate counts each assignment ("assigned") or return ("returned") in the unit log. `item_unit`
    is the unit the row counts for.

    The clocks (item_assigned_at … item_replied_at) are the ones the row was counted under: a ticket's own, a
    return's or a move's as it kept them (NULL for returns before tracker_0016), none for a visit or an assignment,
    so that a row never shows what happened to the ticket after the thing it counts."""
    t, v, u = tickets.c, return_visits.c, unit_log.c
    no_outcome, no_cause, no_time = cast(null(), String), cast(null(), Boolean), cast(null(), UTCDateTime)
    no_clocks = (no_time,) * 5

    def row(ticket_id, at, kind: str | ColumnElement, outcome, caused, unit_code, clocks):
        assigned_at, sign_for_due, signed_for_at, reply_due, replied_at = clocks
        kind = literal(kind, String) if isinstance(kind, str) else kind
        return (ticket_id.label("ticket_id"), at.label("item_at"), kind.label("item_kind"),
                outcome.label("item_outcome"), caused.label("item_caused"), unit_code.label("item_unit"),
                assigned_at.label("item_assigned_at"), sign_for_due.label("item_sign_for_due"),
                signed_for_at.label("item_signed_for_at"), reply_due.label("item_reply_due"),
                replied_at.label("item_replied_at"))

    cohort = select(*row(t.ticket_id, t.assigned_at, "ticket", no_outcome, no_cause, t.lead_code,
                         (t.assigned_at, t.sign_for_due, t.signed_for_at, t.reply_due, t.replied_at)))
    if measure == "assigned":
        return cohort.where(*cohort_where(period, unit))
    if measure == "handling":
        return cohort.where(*cohort_where(period, unit), t.replied_at.is_not(None))
    rate = RATES.get(measure)
    if rate is None or part not in ("numerator", "denominator"):
        raise ValueError(measure)
    index = 0 if part == "numerator" else 1
    kept = (u.assigned_at, u.sign_for_due, u.signed_for_at, u.reply_due, no_time)  # a return's clocks, as it kept them
    if rate.source == "cohort":
        counted = cohort.where(*cohort_where(period, unit), cohort_conditions(now)[measure][index])
        if index == 1 and measure in late_return_conditions():  # and the late holdings, as the figure adds them
            late_kind = case(*((u.kind == k, literal(v, String)) for k, v in LATE_KIND.items()),
                             else_=literal("late_return", String))
            late = select(*row(u.ticket_id, u.at, late_kind, no_outcome, no_cause, u.unit_code, kept)).where(
                *late_return_where(period, unit), late_return_conditions()[measure])
            return union_all(counted, late)
        return counted
    if rate.source == "visits":
        where = [v.at >= period.start, v.at < period.end, v.unit_code.is_not(None),
                 visit_conditions()[measure][index]]
        if unit:
            where.append(v.unit_code == unit)
        return select(*row(v.ticket_id, v.at, "visit", v.outcome, v.department_caused, v.unit_code, no_clocks)
                      ).where(*where)
    kind = figure_kind(measure, part)
    where = [u.at >= period.start, u.at < period.end, u.kind == kind]
    if unit:
        where.append(u.unit_code == unit)
    return select(*row(u.ticket_id, u.at, kind, no_outcome, no_cause, u.unit_code,
                       kept if kind == "returned" else no_clocks)).where(*where)


def local_day(dialect: str, column, tz: ZoneInfo) -> ColumnElement:
    """The local calendar day of a UTC instant, as 'YYYY-MM-DD' text, in SQL."""
    if dialect == "postgresql":
        return func.to_char(func.timezone(tz.key, column), "YYYY-MM-DD")
    offset = dt.datetime.now(tz).utcoffset() or dt.timedelta(0)
    return func.date(column, f"{int(offset.total_seconds() // 3600):+d} hours")


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"



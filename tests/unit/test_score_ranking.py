"""The department ranking (三率考核) ranks only units whose score rests on complete, large enough data.

A unit missing one of the three weighted rates, or with fewer than `stats.MIN_SAMPLE` tickets or visits
behind one of them, has no score and no rank: it is listed after the ranked units, 不参与排名, with the
reason, and its measurable rates are still shown.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.tracker import reports, stats

TZ = ZoneInfo("Asia/Shanghai")


def unit(code: str, *, assigned: int = 0, response=(0, 0), visits=(0, 0, 0)) -> stats.Score:
    """A unit's counts; `visits` is (resolved, satisfied, rated visits)."""
    counts = {k: (0, 0) for k in stats.RATES}
    resolved, satisfied, rated = visits
    counts.update(response=response, resolution=(resolved, rated), satisfaction=(satisfied, rated))
    return stats.Score(code, f"单位{code}", assigned, None, counts)


def busy() -> stats.Score:
    return unit("M-BUSY", assigned=300, response=(280, 300), visits=(250, 240, 280))


def steady() -> stats.Score:
    return unit("M-STEADY", assigned=40, response=(36, 40), visits=(28, 27, 35))


def one_satisfied_visit() -> stats.Score:
    """One return visit in the period, satisfied, and nothing else: the old score was 100."""
    return unit("S-LONE", visits=(1, 1, 1))


def test_a_unit_with_one_satisfied_visit_is_listed_after_the_complete_units_without_score_or_rank():
    ranked = stats.rank([one_satisfied_visit(), steady(), busy()])
    assert [s.unit_code for s in ranked] == ["M-BUSY", "M-STEADY", "S-LONE"]
    assert [s.rank for s in ranked] == [1, 2, None]
    lone = ranked[-1]
    assert lone.score is None
    assert lone.unranked_reason == f"缺少响应率；样本不足：参评回访 1 件，须各不少于 {stats.MIN_SAMPLE} 件"
    assert lone.rate("satisfaction") == 1.0 and lone.rate("resolution") == 1.0  # still shown


def test_a_unit_with_only_the_response_rate_is_not_ranked_for_want_of_resolution_and_satisfaction():
    signed_only = unit("M-SIGNED", assigned=50, response=(50, 50))
    ranked = stats.rank([signed_only, steady()])
    assert [(s.unit_code, s.rank) for s in ranked] == [("M-STEADY", 1), ("M-SIGNED", None)]
    assert signed_only.unranked_reason == "缺少解决率、满意率"


def test_a_unit_is_ranked_from_min_sample_tickets_and_visits_and_not_below():
    n = stats.MIN_SAMPLE
    small = unit("M-SMALL", assigned=n - 1, response=(n - 1, n - 1), visits=(n - 1, n - 1, n - 1))
    enough = unit("M-ENOUGH", assigned=n, response=(n, n), visits=(n, n, n))
    ranked = stats.rank([small, enough, steady()])
    assert [(s.unit_code, s.rank) for s in ranked] == [("M-ENOUGH", 1), ("M-STEADY", 2), ("M-SMALL", None)]
    assert enough.score == 100.0 and small.score is None
    assert small.unranked_reason == f"样本不足：应签收 {n - 1} 件、参评回访 {n - 1} 件，须各不少于 {n} 件"


def test_the_score_weighs_the_three_rates_without_reweighting():
    s = steady()
    assert s.score == pytest.approx((0.10 * 36 / 40 + 0.45 * 28 / 35 + 0.45 * 27 / 35) * 100)
    assert s.as_dict()["unranked_reason"] is None and s.as_dict()["score"] == round(s.score, 2)


def test_months_too_small_alone_are_ranked_when_the_year_adds_up():
    month = [unit("M-SMALL", assigned=6, response=(6, 6), visits=(5, 5, 5))]
    assert stats.rank(month)[0].rank is None
    year = stats.combine_scores([month, [unit("M-SMALL", assigned=6, response=(6, 6), visits=(5, 5, 5))]])
    assert year[0].counts["satisfaction"] == (10, 10) and year[0].rank == 1
    total = stats.total_of(year)
    assert total.score == 100.0


def test_the_bulletin_lists_the_unranked_unit_last_marked_不参与排名_with_the_reason_and_its_rates():
    facts = reports.combine([])
    facts["scores"] = [s.to_json() for s in (one_satisfied_visit(), steady(), busy())]
    now = dt.datetime(2026, 11, 5, 2, 0, tzinfo=dt.UTC)
    report = reports.render("monthly", stats.period_of("2026-10", TZ), now, TZ, facts, None, {})
    table = report.table("units")
    assert [row[:2] for row in table.rows] == [[1, "单位M-BUSY"], [2, "单位M-STEADY"], ["不参与排名", "单位S-LONE"]]
    lone = dict(zip(table.header, table.rows[-1]))
    assert lone["综合得分"] == "—" and lone["满意率"] == "100.0%" and lone["响应率"] == "—"
    assert lone["说明"].startswith("缺少响应率")
    assert f"各不少于 {stats.MIN_SAMPLE} 件" in table.note

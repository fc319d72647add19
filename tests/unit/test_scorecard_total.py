"""The scorecard's city total (全市合计) adds up every unit's figures and is never ranked: it says so, as the
units that are not ranked say why (`Score.unranked_reason`), and when the city's own data is too thin for a score,
it says that too. Its score, when there is one, is the same weighting of the same rates as a unit's.
"""

from __future__ import annotations

import pytest

from services.tracker import stats


def unit(code: str, *, response=(0, 0), visits=(0, 0, 0)) -> stats.Score:
    """A unit's counts; `visits` is (resolved, satisfied, rated visits)."""
    counts = {k: (0, 0) for k in stats.RATES}
    resolved, satisfied, rated = visits
    counts.update(response=response, resolution=(resolved, rated), satisfaction=(satisfied, rated))
    return stats.Score(code, f"单位{code}", response[1], None, counts)


def test_a_city_total_too_thin_for_a_score_says_it_is_not_ranked_and_why_it_has_no_score():
    total = stats.total_of(stats.rank([unit("M-A", response=(8, 9), visits=(5, 4, 6)),
                                       unit("M-B", response=(2, 2), visits=(1, 1, 1))]))
    assert total.score is None and total.rank is None
    why = f"合计行不参与排名；样本不足：参评回访 7 件，须各不少于 {stats.MIN_SAMPLE} 件"
    assert total.unranked_reason == why
    assert {k: total.as_dict()[k] for k in ("unit_name", "rank", "score", "unranked_reason")} == {
        "unit_name": "全市合计", "rank": None, "score": None, "unranked_reason": why}


def test_a_city_total_with_no_visits_at_all_names_the_missing_rates():
    total = stats.total_of([unit("M-A", response=(12, 12))])
    assert total.unranked_reason == "合计行不参与排名；缺少解决率、满意率"


def test_a_city_total_with_enough_data_has_its_score_and_still_says_it_is_not_ranked():
    units = stats.rank([unit("M-A", response=(36, 40), visits=(28, 27, 35)), unit("M-B", visits=(1, 1, 1))])
    total = stats.total_of(units)
    assert total.score == pytest.approx((0.10 * 36 / 40 + 0.45 * 29 / 36 + 0.45 * 28 / 36) * 100)
    assert total.unranked_reason == "合计行不参与排名"  # nothing lacking: its own reason alone
    assert total.as_dict()["rank"] is None and total.as_dict()["score"] == round(total.score, 2)
    # The units are scored and ranked as before: the total's reason is its own.
    assert [(s.unit_code, s.rank, s.unranked_reason) for s in units] == [
        ("M-A", 1, None), ("M-B", None, f"缺少响应率；样本不足：参评回访 1 件，须各不少于 {stats.MIN_SAMPLE} 件")]

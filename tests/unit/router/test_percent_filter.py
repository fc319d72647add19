"""How a routing suggestion's probability reads on the router's pages: below the first few suggestions the model's
scores are often a fraction of a percent, and "0%" would say the unit is impossible."""

from __future__ import annotations

import pytest

import services.router.bootstrap  # noqa: F401 (adds the router's templates to the one loader)
from jiesu.web import templates
from services.router.api import percent


@pytest.mark.parametrize(("score", "shown"), [(0.62, "62%"), (0.015, "2%"), (0.006, "1%"), (1.0, "100%")])
def test_a_score_reads_as_a_whole_percentage(score, shown):
    assert percent(score) == shown


@pytest.mark.parametrize("score", [0.004, 0.005, 0.0001, 1e-9])
def test_a_score_that_rounds_to_nothing_reads_as_under_one_percent_not_zero(score):
    assert percent(score) == "<1%"


def test_only_a_score_of_exactly_zero_reads_as_zero():
    assert percent(0.0) == "0%"


def test_the_rule_testers_suggestions_never_show_a_possible_unit_as_zero_percent():
    decision = {"outcome": "manual", "lead": None, "co_handlers": [], "why": "模型把握不足",
                "suggestions": [{"unit": {"name": "市城市管理委员会"}, "score": 0.62},
                                {"unit": {"name": "市生态环境局"}, "score": 0.003}]}
    html = templates.get_template("router_rules_result.html").render(result={"decision": decision, "rules": []})
    assert "市城市管理委员会（62%）" in html
    assert "市生态环境局（&lt;1%）" in html  # escaped: the browser shows <1%

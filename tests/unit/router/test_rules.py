"""Explicit routing rules: order, conditions, co-handlers, and the explanation a dispatcher reads."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.enums import Channel, Kind
from services.router.domain.directory import Directory, Rule
from services.router.domain.rules import TicketFacts, evaluate, explain


def rule(rule_id: str, lead: str, co_handlers: tuple[str, ...] = (), **conditions: Any) -> Rule:
    return Rule.model_validate({
        "id": rule_id,
        "description": f"测试规则 {rule_id}",
        "conditions": conditions,
        "result": {"lead": lead, "co_handlers": list(co_handlers)},
    })


def facts(text: str = "", **fields: Any) -> TicketFacts:
    return TicketFacts(subject=fields.pop("subject", ""), description=text, **fields)


def fired(rules: list[Rule], ticket: TicketFacts) -> str | None:
    match = evaluate(rules, ticket)
    return match.rule_id if match else None


# -- precedence --------------------------------------------------------------------------


def test_the_first_matching_rule_wins_and_later_matching_rules_do_not() -> None:
    rules = [rule("R-001", "U-RQ", keywords_any=["燃气"]), rule("R-002", "M-CGW", keywords_any=["燃气", "井盖"])]
    assert fired(rules, facts("楼下燃气井盖冒气")) == "R-001"
    assert fired(list(reversed(rules)), facts("楼下燃气井盖冒气")) == "R-002"


def test_a_rule_that_does_not_match_passes_the_ticket_to_the_next() -> None:
    rules = [rule("R-001", "U-QCSW", keywords_any=["停水"], districts=["D-06"]), rule("R-002", "U-ZLS", keywords_any=["停水"])]
    assert fired(rules, facts("小区停水了", district="D-06")) == "R-001"
    assert fired(rules, facts("小区停水了", district="D-01")) == "R-002"


def test_no_matching_rule_gives_none() -> None:
    assert evaluate([rule("R-001", "U-GD", keywords_any=["停电"])], facts("路灯不亮")) is None
    assert evaluate([], facts("任何内容")) is None


# -- conditions --------------------------------------------------------------------------


def test_keywords_any_needs_one_hit_in_subject_or_description() -> None:
    rules = [rule("R-001", "U-GD", keywords_any=["停电", "断电"])]
    assert fired(rules, facts("整个单元都断电了")) == "R-001"
    assert fired(rules, facts("从中午开始一直没恢复", subject="小区停电")) == "R-001"
    assert fired(rules, facts("电费太贵")) is None


def test_keywords_match_latin_letters_regardless_of_case() -> None:
    assert fired([rule("R-001", "M-GAJ", keywords_any=["KTV"])], facts("楼下ktv太吵")) == "R-001"
    assert fired([rule("R-001", "M-GAJ", keywords_any=["ktv"])], facts("楼下KTV太吵")) == "R-001"


def test_keywords_all_needs_every_word() -> None:
    rules = [rule("R-001", "M-RSJ", keywords_all=["工地", "工资"])]
    assert fired(rules, facts("在工地干了半年，工资一分没拿到")) == "R-001"
    assert fired(rules, facts("公司三个月没发工资")) is None


def test_regex_is_compiled_at_load_and_searched_in_the_text() -> None:
    night_work = rule("R-001", "M-CGW", regex="(晚上|凌晨).{0,10}施工")
    assert isinstance(night_work.conditions.regex, re.Pattern)
    assert fired([night_work], facts("工地每天凌晨两点还在施工")) == "R-001"
    assert fired([night_work], facts("白天施工可以理解")) is None


def test_every_condition_a_rule_gives_must_pass() -> None:
    rules = [rule("R-001", "M-GXQ", category=["CM"], streets=["S-05-04"], channels=["hotline"])]
    ticket = {"category": "CM.ORDER.STALL", "street": "S-05-04", "channel": "hotline"}
    assert fired(rules, facts("有人摆摊", **ticket)) == "R-001"
    assert fired(rules, facts("有人摆摊", **{**ticket, "channel": "online"})) is None
    assert fired(rules, facts("有人摆摊", **{**ticket, "street": "S-05-01"})) is None


def test_a_category_condition_matches_the_code_and_everything_below_it() -> None:
    rules = [rule("R-001", "M-CGW", category=["CM.ORDER"])]
    assert fired(rules, facts(category="CM.ORDER")) == "R-001"
    assert fired(rules, facts(category="CM.ORDER.STALL")) == "R-001"
    assert fired(rules, facts(category="CM.ORDERLY")) is None  # a prefix only counts at a dot
    assert fired(rules, facts(category="CM")) is None
    assert fired(rules, facts(category=None)) is None


def test_district_and_street_conditions_fail_when_the_address_is_unknown() -> None:
    assert fired([rule("R-001", "U-QCSW", districts=["D-06"])], facts("没水")) is None
    assert fired([rule("R-001", "M-GXQ", streets=["S-05-04"])], facts("摆摊", district="D-05")) is None


def test_channel_and_kind_conditions() -> None:
    rules = [
        rule("R-001", "M-ZFB", kinds=["information_request"]),
        rule("R-002", "M-GHZY", channels=["mailbox"], kinds=["suggestion"]),
    ]
    assert fired(rules, facts("申请公开", kind="information_request", channel="hotline")) == "R-001"
    assert fired(rules, facts("建议修桥", kind="suggestion", channel="mailbox")) == "R-002"
    assert fired(rules, facts("建议修桥", kind="suggestion", channel="hotline")) is None
    assert fired(rules, facts("建议修桥", kind="complaint", channel="mailbox")) is None


# -- results -----------------------------------------------------------------------------


def test_a_match_names_the_lead_and_fixed_co_handlers() -> None:
    match = evaluate([rule("R-001", "M-SCJG", co_handlers=("M-WJW",), keywords_any=["食物中毒"])], facts("疑似食物中毒"))
    assert match is not None
    assert (match.lead, match.co_handlers) == ("M-SCJG", ("M-WJW",))
    assert match.description == "测试规则 R-001"
    assert [check.condition for check in match.evidence] == ["keywords_any"]


def test_place_co_handlers_become_the_district_or_street_of_the_address() -> None:
    gas = [rule("R-001", "U-RQ", co_handlers=("@district", "@street"), keywords_any=["燃气味"])]
    match = evaluate(gas, facts("闻到燃气味", district="D-01", street="S-01-03"))
    assert match is not None and match.co_handlers == ("D-01", "S-01-03")


def test_street_co_handler_falls_back_to_the_district_and_unknown_places_are_dropped() -> None:
    rules = [rule("R-001", "M-XFZD", co_handlers=("@street", "M-SCJG"), keywords_any=["电梯困人"])]
    only_district = evaluate(rules, facts("电梯困人", district="D-02"))
    no_address = evaluate(rules, facts("电梯困人"))
    assert only_district is not None and only_district.co_handlers == ("D-02", "M-SCJG")
    assert no_address is not None and no_address.co_handlers == ("M-SCJG",)


# -- explain -----------------------------------------------------------------------------


def test_explain_checks_every_condition_of_every_rule_and_marks_the_one_that_fires() -> None:
    rules = [
        rule("R-001", "U-QCSW", keywords_any=["停水"], districts=["D-06"]),
        rule("R-002", "U-ZLS", keywords_any=["停水"]),
        rule("R-003", "M-SWJ", keywords_any=["水"]),
    ]
    traces = explain(rules, facts("今天一早就停水了", district="D-01"))
    assert [(t.rule_id, t.matched, t.fired) for t in traces] == [
        ("R-001", False, False), ("R-002", True, True), ("R-003", True, False),
    ]
    first = traces[0].checks
    assert [(c.condition, c.passed) for c in first] == [("keywords_any", True), ("districts", False)]
    assert first[0].detail == "命中关键词：停水"
    assert first[1].detail == "所在区 D-01 不在 D-06 中"


def test_explain_keeps_checking_after_a_failed_condition() -> None:
    trace = explain([rule("R-001", "M-RSJ", keywords_all=["工地", "工资"], kinds=["complaint"])], facts("工资"))[0]
    assert [(c.condition, c.passed) for c in trace.checks] == [("keywords_all", False), ("kinds", False)]
    assert trace.checks[0].detail == "缺少关键词：工地"
    assert trace.checks[1].detail == "工单未写明诉求类型"


def test_explain_and_evaluate_agree() -> None:
    rules = [rule("R-001", "U-GD", keywords_any=["停电"]), rule("R-002", "U-RQ", regex="燃气|煤气")]
    for text in ("家里停电", "有煤气味", "路灯不亮"):
        winner = [t.rule_id for t in explain(rules, facts(text)) if t.fired]
        assert winner == ([fired(rules, facts(text))] if fired(rules, facts(text)) else [])


def _vocabulary(rules: tuple[Rule, ...]) -> dict[str, list]:
    """What the demo rules look for, so that random tickets hit and miss them in every way."""
    when = [r.conditions for r in rules]
    words = sorted({w for c in when for w in (*c.keywords_any, *c.keywords_all)})
    return {
        "words": words + [w.upper() for w in words if w.isascii()] + ["路灯", "噪音", "WiFi", "投诉"]
        + ["夜间", "晚上", "施工", "打桩", "信息公开申请", "要求公开", "预算"],  # what the regexes look for
        "categories": sorted({code for c in when for code in c.category} | {f"{code}.x" for c in when
                                                                           for code in c.category}),
        "districts": sorted({d for c in when for d in c.districts}) + ["D-99"],
        "streets": sorted({d for c in when for d in c.streets}) + ["S-99-99"],
    }


DEMO_WORDS = _vocabulary(Directory.default().rules)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.lists(st.sampled_from(DEMO_WORDS["words"]), max_size=4).map("".join),
       description=st.lists(st.sampled_from(DEMO_WORDS["words"]) | st.text(max_size=3), max_size=6).map("，".join),
       category=st.none() | st.sampled_from(DEMO_WORDS["categories"]),
       district=st.none() | st.sampled_from(DEMO_WORDS["districts"]),
       street=st.none() | st.sampled_from(DEMO_WORDS["streets"]),
       channel=st.none() | st.sampled_from([c.value for c in Channel]),
       kind=st.none() | st.sampled_from([k.value for k in Kind]))
def test_evaluate_fires_the_rule_explain_shows_firing_with_the_same_evidence(**fields) -> None:
    """evaluate() tries rules without writing out why; explain() writes out every check. They must agree."""
    rules = Directory.default().rules
    ticket = TicketFacts(**fields)
    traces = [t for t in explain(rules, ticket) if t.fired]
    match = evaluate(rules, ticket)
    assert (match.rule_id if match else None) == (traces[0].rule_id if traces else None)
    if match:
        assert match.evidence == traces[0].checks


# -- the demo city's rules ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_rules() -> tuple[Rule, ...]:
    return Directory.default().rules


def test_demo_gas_leak_goes_to_the_gas_company_with_the_district_helping(demo_rules: tuple[Rule, ...]) -> None:
    match = evaluate(demo_rules, facts("厨房里一股很浓的煤气味，不敢开灯", district="D-01", street="S-01-03", channel="hotline"))
    assert match is not None
    assert (match.rule_id, match.lead, match.co_handlers) == ("R-003", "U-RQ", ("D-01",))


def test_demo_information_request_beats_keywords_it_happens_to_contain(demo_rules: tuple[Rule, ...]) -> None:
    text = "申请公开去年解放路燃气泄漏事故的调查报告"
    match = evaluate(demo_rules, facts(text, kind="information_request", channel="mailbox"))
    assert match is not None and (match.rule_id, match.lead) == ("R-001", "M-ZFB")
    unlabelled = evaluate(demo_rules, facts(text, channel="mailbox"))
    assert unlabelled is not None and unlabelled.rule_id == "R-002"


@pytest.mark.parametrize(
    ("district", "rule_id", "lead"),
    [("D-06", "R-006", "U-QCSW"), ("D-01", "R-007", "U-ZLS"), (None, "R-007", "U-ZLS")],
)
def test_demo_water_outage_goes_to_the_water_company_of_the_district(
    demo_rules: tuple[Rule, ...], district: str | None, rule_id: str, lead: str
) -> None:
    match = evaluate(demo_rules, facts("从早上起家里水龙头就不出水", district=district))
    assert match is not None and (match.rule_id, match.lead) == (rule_id, lead)


@pytest.mark.parametrize(
    ("text", "lead"),
    [
        ("晚上十一点多工地还在打桩，孩子没法睡觉", "M-CGW"),
        ("楼下KTV每天半夜唱歌，吵得睡不着", "M-GAJ"),
        ("工地老板拖了我们三个月工资", "M-RSJ"),
        ("公司已经两个月不发工资了", "M-RSJ"),
        ("我家暖气不热，屋里才十五度", "U-RL"),
    ],
)
def test_demo_rules_route_everyday_complaints(demo_rules: tuple[Rule, ...], text: str, lead: str) -> None:
    match = evaluate(demo_rules, facts(text, district="D-02", street="S-02-03"))
    assert match is not None and match.lead == lead


def test_demo_construction_site_wage_case_adds_the_housing_commission(demo_rules: tuple[Rule, ...]) -> None:
    match = evaluate(demo_rules, facts("在北站那个工地干活，包工头一直欠薪"))
    assert match is not None and (match.rule_id, match.co_handlers) == ("R-014", ("M-ZJW",))


def test_demo_high_tech_zone_streets_send_city_management_to_the_zone_committee(demo_rules: tuple[Rule, ...]) -> None:
    ticket = facts("路边有人摆摊卖水果", category="CM.ORDER.STALL", district="D-05", street="S-05-04")
    match = evaluate(demo_rules, ticket)
    assert match is not None and (match.lead, match.co_handlers) == ("M-GXQ", ("S-05-04",))
    assert evaluate(demo_rules, facts("路边有人摆摊卖水果", category="CM.ORDER.STALL", district="D-05", street="S-05-01")) is None

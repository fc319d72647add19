"""A ticket whose street is not in the district given with it cannot be placed by category and place: it waits
for a dispatcher, and the card says why. Intake refuses such a pair now, but tickets it took before it had the
router's directory, and older ones sent back (退单), still bring one."""

import dataclasses

from services.router.domain.decide import decide
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts
from tests.unit.router.test_vague_requests import Confident

WHY = "解放路街道（S-01-03）不在东湖区（D-02）内，无法按地点派单"  # 解放路街道 is in 临江区 (D-01)


def facts(category: str | None, district: str = "D-02") -> TicketFacts:
    return TicketFacts(subject="小广告贴满电线杆", description="小区外面的电线杆上全是小广告。", category=category,
                       district=district, street="S-01-03", channel="hotline", kind="complaint")


def test_a_category_with_a_street_outside_its_district_goes_to_a_dispatcher_saying_so():
    d = decide(Directory.default(), facts("CM.ORDER.ADS"))
    assert (d.outcome, d.lead, d.why, d.reason.note) == ("dispatch", None, WHY, WHY)
    placed = decide(Directory.default(), facts("CM.ORDER.ADS", district="D-01"))
    assert placed.outcome == "assign" and placed.lead.code == "S-01-03"


def test_the_models_category_cannot_be_placed_there_either():
    d = decide(Directory.default(), facts(None), classifier=Confident(), threshold=0.6)
    assert (d.outcome, d.suggestions, d.why) == ("dispatch", (), WHY)


def test_without_a_category_the_card_says_both_what_is_missing():
    d = decide(Directory.default(), facts(None))
    assert d.outcome == "dispatch" and d.why == f"{WHY}；未命中派单规则，且无法确定类别"


def test_a_place_code_the_directory_does_not_know_is_named_on_the_card():
    """A ticket taken before intake held the router's directory, or whose street a directory change removed."""
    gone = TicketFacts(subject="小广告贴满电线杆", description="小区外面的电线杆上全是小广告。", category="CM.ORDER.ADS",
                       district="D-01", street="S-01-99", channel="hotline", kind="complaint")
    d = decide(Directory.default(), gone)
    assert d.outcome == "dispatch" and d.why.endswith("；部门目录中没有街道代码 S-01-99，无法按地点派单"), d.why
    unknown = decide(Directory.default(), dataclasses.replace(gone, district="D-99", street=None))
    assert unknown.why.endswith("；部门目录中没有区代码 D-99，无法按地点派单"), unknown.why

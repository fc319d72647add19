"""A ticket whose category is known (the operator chose it on the call) but gives no unit goes to a dispatcher
with the true reason: the category's unit sent it back (退单), or the directory has no unit or no such category.
It said "未命中派单规则，且无法确定类别", though the category was on the card's ticket."""

from services.router.domain.decide import decide
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts


def lamp(category: str = "CM.FACILITY.LIGHT", **place) -> TicketFacts:
    return TicketFacts(subject="路灯不亮", description="小区门口的路灯坏了一个多星期。", category=category,
                       channel="hotline", kind="complaint", **place)


def test_a_known_category_whose_unit_returned_the_ticket_names_the_category_and_the_unit():
    city = Directory.default()
    assert decide(city, lamp()).lead.code == "M-CGW"
    d = decide(city, lamp(), exclude=frozenset({"M-CGW"}))
    assert d.outcome == "dispatch" and d.category == "CM.FACILITY.LIGHT"
    assert d.why == "“路灯照明”的承办单位市城市管理委员会已退单，请另选单位"
    assert d.reason.note == d.why


def test_a_category_the_directory_does_not_know_is_named():
    d = decide(Directory.default(), lamp("XX.NOPE"))
    assert d.outcome == "dispatch" and d.why == "部门目录中没有类别代码 XX.NOPE，无法按类别派单"


def test_a_known_category_at_a_place_the_directory_does_not_know_says_both():
    d = decide(Directory.default(), lamp(district="D-99"))
    assert d.why == "“路灯照明”在该地点没有承办单位；部门目录中没有区代码 D-99，无法按地点派单"


def test_without_a_category_the_reason_is_still_that_none_could_be_found():
    d = decide(Directory.default(), lamp(None))
    assert d.why == "未命中派单规则，且无法确定类别"

"""重复件: a citizen who calls again about the same matter words it differently; a different matter is not a repeat.

The first four pairs of subjects are real messages of one user each (TipDM 2020 C, days apart); bigram
Jaccard of their whole texts scored the three repeats 0.08–0.31 and missed them.
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import uuid4

from jiesu.text import normalise, repeat_score
from services.intake.domain.similarity import REPEAT_THRESHOLD as REPEAT_SIMILARITY
from services.router.service import DUPLICATE_SIMILARITY, _duplicate_target

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


def subjects(a: str, b: str) -> float:
    return repeat_score(a, "", b, "")


def test_the_same_street_lights_asked_about_again_in_other_words_is_a_repeat():
    assert subjects("A4区凯乐国际城周边的庆和里路、太平路路灯很久没亮了",
                    "A市庆和里路、太平路的问题何时能解决，投诉好多次了") >= REPEAT_SIMILARITY


def test_poaching_at_the_same_park_reported_again_is_a_repeat():
    assert subjects("A3区西湖文化园偷钓者十分猖獗", "A市西湖文化园偷钓现象仍然存在") >= REPEAT_SIMILARITY


def test_a_second_complaint_about_the_same_estates_parking_spaces_is_a_repeat():
    assert subjects("投诉A市北大资源理想家园小区人防车位涉嫌欺诈销售",
                    "再次投诉A市北大资源理想家园违规租售车位") >= REPEAT_SIMILARITY


def test_a_serial_petitioners_different_matters_in_the_same_words_are_not_repeats():
    assert subjects("请A市加快国家中心城市建设力度", "请A市加快自来水深度净化改造力度") < REPEAT_SIMILARITY
    boilerplate = "在国家大力倡导以人民为中心的大背景下，希望市委市政府加快建设力度，刻不容缓，有何具体行动？"
    hospital = repeat_score("请加快A市四医院新院区建设力度", "新院区停工多年。" + boilerplate,
                            "请加快A市汉王陵考古遗址公园建设力度", "遗址公园杂草丛生。" + boilerplate)
    assert hospital < REPEAT_SIMILARITY


def test_the_same_text_again_is_a_repeat_for_the_router():
    text = ("楼下工地夜间施工噪音扰民", "每天晚上十一点以后还在打桩，孩子睡不着。")
    assert repeat_score(*text, *text) == 1.0 >= DUPLICATE_SIMILARITY


def test_a_reworded_call_about_the_same_site_is_a_repeat_and_another_matter_of_the_caller_is_not():
    earlier = ("楼下工地夜间施工噪音扰民", "每天晚上十一点以后还在打桩，孩子睡不着。")
    assert repeat_score(*earlier, "工地夜间施工噪音又扰民", "晚上十一点以后还在打桩，孩子睡不着，上周已经反映过。") \
        >= DUPLICATE_SIMILARITY
    assert repeat_score(*earlier, "咨询医保异地报销", "在外地住院的费用怎么报销？") == 0.0


def test_the_same_words_about_another_city_or_county_are_not_a_repeat_but_a_district_of_the_city_is():
    assert subjects("希望A市重视滴滴出行的问题", "希望B市重视滴滴出行的问题") == 0.0
    assert subjects("希望A市城区增加智能红绿灯和过街天桥", "希望A7县城区增加智能红绿灯和过街天桥") == 0.0
    assert subjects("A市魏家坡小区脏乱差", "A3区魏家坡小区脏乱差") >= DUPLICATE_SIMILARITY


def test_normalising_keeps_letters_and_digits_of_every_width_and_drops_punctuation():
    assert normalise("二〇一九年１２月，每㎡ＡＢ元！（约）") == "二〇一九年12月每m2ab元约"


def test_the_router_merges_a_reworded_repeat_into_the_callers_earlier_open_ticket_and_says_why():
    earlier = {"ticket_id": uuid4(), "number": "12345-20261120-000001", "subject": "楼下工地夜间施工噪音扰民",
               "description": "每天晚上十一点以后还在打桩，孩子睡不着。", "received_at": NOW - timedelta(days=2)}
    other = dict(earlier, ticket_id=uuid4(), number="12345-20261120-000002", subject="小区门口路灯坏了",
                 description="晚上很黑。")
    call = SimpleNamespace(duplicate_of=None, subject="工地夜间施工噪音又扰民", received_at=NOW,
                           description="晚上十一点以后还在打桩，孩子睡不着，上周已经反映过。",
                           number="12345-20261122-000009")
    target_id, number, score, why = _duplicate_target(uuid4(), call, [other, earlier])
    assert (target_id, number) == (earlier["ticket_id"], earlier["number"]) and score >= DUPLICATE_SIMILARITY
    assert why == f"同一来电号码 30 日内同一事项（地点与事项相符度 {score:.0%}），并入 12345-20261120-000001"
    assert _duplicate_target(uuid4(), call, [other]) is None

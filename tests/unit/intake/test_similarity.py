"""重复件: a new call that reads like an open ticket of the same caller within 30 days is flagged."""

from datetime import UTC, datetime, timedelta

from jiesu.text import bigrams
from jiesu.text import similarity as jaccard
from services.intake.domain.similarity import Earlier, find_repeats

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


def earlier(number="12345-20261120-000001", subject="楼下工地夜间施工噪音扰民",
            description="每天晚上十一点以后还在打桩，孩子睡不着。", state="assigned", days_ago=2):
    return Earlier("t1", number, subject, description, state, NOW - timedelta(days=days_ago))


def test_bigrams_ignore_punctuation_spacing_and_width():
    assert bigrams("夜间 施工！") == bigrams("夜间施工") == {"夜间", "间施", "施工"}
    assert bigrams("ＡＢ") == bigrams("ab")


def test_identical_text_scores_one_and_unrelated_text_scores_near_zero():
    assert jaccard("楼下工地夜间施工", "楼下工地夜间施工") == 1.0
    assert jaccard("楼下工地夜间施工", "医保报销比例咨询") == 0.0
    assert jaccard("", "任何内容") == 0.0


def test_a_reworded_call_about_the_same_site_is_a_repeat():
    found = find_repeats("楼下工地夜间施工又开始了", "晚上十一点以后还在打桩，孩子睡不着，上次反映了没人管。",
                         [earlier()], now=NOW)
    assert [r.ticket.number for r in found] == ["12345-20261120-000001"]
    assert 0.3 <= found[0].similarity < 1


def test_a_different_matter_from_the_same_caller_is_not_a_repeat():
    assert find_repeats("咨询医保异地报销", "在外地住院的费用怎么报销？", [earlier()], now=NOW) == []


def test_closed_tickets_and_tickets_older_than_thirty_days_are_not_repeats():
    text = ("楼下工地夜间施工噪音扰民", "每天晚上十一点以后还在打桩，孩子睡不着。")
    assert find_repeats(*text, [earlier(state="closed")], now=NOW) == []
    assert find_repeats(*text, [earlier(state="answered_directly")], now=NOW) == []
    assert find_repeats(*text, [earlier(days_ago=31)], now=NOW) == []
    assert len(find_repeats(*text, [earlier(days_ago=29)], now=NOW)) == 1


def test_most_similar_first():
    a = earlier(number="12345-20261120-000001", subject="工地噪音", description="施工")
    b = earlier(number="12345-20261121-000002")
    found = find_repeats("楼下工地夜间施工噪音扰民", "每天晚上十一点以后还在打桩，孩子睡不着。", [a, b], now=NOW,
                         threshold=0.05)
    assert [r.ticket.number for r in found] == ["12345-20261121-000002", "12345-20261120-000001"]


def test_the_console_warns_of_a_repeat_worded_quite_differently():
    """The caller names the same streets but says nothing else alike (bigram Jaccard 0.08): still the matter."""
    lamps = earlier(subject="凯乐国际城周边的庆和里路、太平路路灯很久没亮了", description="晚上一片漆黑，行人很不安全。")
    found = find_repeats("庆和里路、太平路的问题何时能解决", "投诉好多次了，一直没人来修。", [lamps], now=NOW)
    assert [r.ticket.number for r in found] == [lamps.number]

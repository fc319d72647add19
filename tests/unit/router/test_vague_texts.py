"""A place that points without naming one (我家附近、楼下、门口、这里) says no more than 问题 does: such a text goes to a
dispatcher, while a short text that does say something (小区门口路灯不亮) is routed as before.

The starter model from our example tickets is the one a fresh system routes with; it gave 74 % for 市生态环境局 to
"我家附近有问题请处理" on 附近 and 处理.
"""

import re

import pytest

from services.router.domain.classifier import TextClassifier, train
from services.router.domain.decide import FILLER, decide, says_nothing
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts
from services.router.models import DEMO_EXAMPLES
from services.router.training import read_labelled_csv
from tests.unit.router.test_vague_requests import Sure

VAGUE = ["我家附近有问题请处理", "附近有问题请处理", "我家楼下有问题", "这里有问题，请尽快处理", "门口那边一直有问题",
         "小区里最近出现问题，希望解决一下"]
SHORT_BUT_REAL = {  # text: the unit it goes to today
    "小区门口路灯不亮": "M-CGW",
    "楼下餐馆油烟扰民": "M-STHJ",
    "附近工地夜间施工噪音": "M-CGW",
    "家里停水了": "U-ZLS",
    "小区里垃圾没人清": "M-CGW",
}


@pytest.fixture(scope="module")
def city() -> Directory:
    return Directory.default()


@pytest.fixture(scope="module")
def starter(city) -> TextClassifier:
    texts, labels = read_labelled_csv(DEMO_EXAMPLES)
    known = {c.code for c in city.categories}
    pairs = [(t, label) for t, label in zip(texts, labels, strict=True) if label in known]
    return train([t for t, _ in pairs], [label for _, label in pairs])


class Certain:
    """A model sure of 企业废气与异味 whatever it reads: only the text's emptiness can keep it from deciding."""

    version = "certain-1"

    def predict(self, texts):
        return [Sure("EN.AIR.EMISSION", 0.95) for _ in texts]

    def explain(self, text, label=None, k=5):
        return [("附近", 0.3), ("处理", 0.2)]


def facts(text: str) -> TicketFacts:
    """What the tester typed: the same words as subject and description, no place given."""
    return TicketFacts(subject=text, description=text, category=None, district=None, street=None,
                       channel="hotline", kind="complaint")


@pytest.mark.parametrize("text", VAGUE)
def test_a_place_pointer_without_a_place_says_nothing(text):
    assert says_nothing(text)


@pytest.mark.parametrize("text", SHORT_BUT_REAL)
def test_a_short_text_with_a_matter_beside_the_pointer_says_something(text):
    assert not says_nothing(text)


def test_saying_nothing_is_what_is_left_once_the_filler_is_cut_out():
    """says_nothing reads from the left and stops early; it must answer as the definition does: every filler word
    cut out, longest first at each place, then fewer than two characters of matter left."""
    cut = re.compile("|".join(map(re.escape, FILLER)))
    texts, _ = read_labelled_csv(DEMO_EXAMPLES)
    texts += [*VAGUE, *SHORT_BUT_REAL, "你好", "怎么办啊？", "问题x", "x问题", "！停！", "停", "", "abc"]
    answers = {text: len(re.findall(r"\w", cut.sub("", text))) < 2 for text in texts}
    assert {text: says_nothing(text) for text in texts} == answers
    assert sum(answers.values()) >= len(VAGUE) + 4  # the vague ones are among them, not only texts of matter


@pytest.mark.parametrize("text", VAGUE)
def test_a_vague_text_waits_for_a_dispatcher_however_sure_the_model_is(city, text):
    d = decide(city, facts(text), classifier=Certain(), threshold=0.6)
    assert d.outcome == "dispatch" and d.lead is None and d.why == "诉求内容过于笼统，无法据以判断类别"
    assert [s.unit.code for s in d.suggestions] == ["M-STHJ"]  # the model's guess is offered, not taken


def test_the_testers_texts_are_too_vague_not_just_unsure(city, starter):
    for text in ("我家附近有问题请处理", "附近有问题请处理"):
        d = decide(city, facts(text), classifier=starter, threshold=0.6)
        assert d.why == "诉求内容过于笼统，无法据以判断类别", (text, d.why)
        assert d.suggestions  # the model's guesses are still offered to the dispatcher


@pytest.mark.parametrize(("text", "unit"), SHORT_BUT_REAL.items())
def test_a_short_but_real_text_is_still_routed(city, starter, text, unit):
    d = decide(city, facts(text), classifier=starter, threshold=0.6)
    assert d.outcome == "assign" and d.lead.code == unit, (d.outcome, d.lead, d.why)

"""A request that says nothing (问一下，这个怎么办啊) goes to a dispatcher, however sure the model sounds."""

from dataclasses import dataclass

import pytest

from services.router.domain.decide import decide, says_nothing
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts


@dataclass
class Sure:
    label: str
    score: float

    @property
    def top(self):
        return ((self.label, self.score),)


class Confident:
    version = "sure-1"

    def predict(self, texts):
        return [Sure("LS.INSURANCE.SOCIAL", 0.84) for _ in texts]

    def explain(self, text, label=None, k=5):
        return [("怎么", 0.3), ("么办", 0.2)]


def facts(subject: str, description: str) -> TicketFacts:
    return TicketFacts(subject=subject, description=description, category=None, district="D-01", street=None,
                       channel="hotline", kind="consultation")


@pytest.mark.parametrize("text", ["问一下 这个怎么办啊", "有个事情想反映一下，具体说不清楚，希望有人联系我。", "你好，我想咨询一下",
                                  "反映个情况"])
def test_greetings_questions_and_pointers_alone_say_nothing(text):
    assert says_nothing(text)


@pytest.mark.parametrize("text", ["停水了", "路灯不亮", "医保 怎么报销", "社保卡丢了怎么办"])
def test_two_characters_of_matter_are_enough(text):
    assert not says_nothing(text)


def test_a_request_that_says_nothing_waits_for_a_dispatcher_with_the_models_suggestion():
    d = decide(Directory.default(), facts("问一下", "这个怎么办啊"), classifier=Confident(), threshold=0.6)
    assert d.outcome == "dispatch" and d.why == "诉求内容过于笼统，无法据以判断类别"
    assert d.suggestions and d.suggestions[0].category == "LS.INSURANCE.SOCIAL"
    said = decide(Directory.default(), facts("社保卡丢了", "社保卡丢了怎么补办"), classifier=Confident(), threshold=0.6)
    assert said.outcome == "assign" and said.reason.method == "model"

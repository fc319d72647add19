"""A returned ticket's (退单) suggestions: further down the model's ranking when the returning unit owns its top three,
and, when no other unit is left, a card that says why."""

from __future__ import annotations

from dataclasses import dataclass

from services.router.domain.decide import decide
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts

WATER = (("PU.WATER.QUALITY", 0.55), ("PU.WATER.BILL", 0.2), ("PU.WATER.OUTAGE", 0.1))  # 市水务局's, no address
FURTHER = (("EN.WATER", 0.06), ("TR.BUS", 0.04), ("PU.WATER.LEAK", 0.03), ("ED.ENROLL", 0.01), ("LS.WAGE", 0.01))
FACTS = TicketFacts(subject="水的问题", description="自来水发黄，水费也不对", channel="hotline", kind="complaint")


@dataclass
class _Prediction:
    label: str
    score: float
    top: tuple[tuple[str, float], ...]


class RankedModel:
    """A stand-in classifier with a fixed ranking of categories."""

    version = "ranked-1"

    def __init__(self, *top: tuple[str, float]) -> None:
        self.top = top

    def predict(self, texts):
        return [_Prediction(self.top[0][0], self.top[0][1], self.top) for _ in texts]


def codes(decision) -> list[str]:
    return [s.unit.code for s in decision.suggestions]


def test_a_ticket_returned_by_the_unit_of_the_top_three_categories_gets_units_from_further_down():
    d = decide(Directory.default(), FACTS, classifier=RankedModel(*WATER, *FURTHER), exclude=frozenset({"M-SWJ"}))
    assert d.outcome == "dispatch"
    assert codes(d) == ["M-STHJ", "U-GJ", "M-JW"]  # three units, best first, 市水务局 and repeats left out
    assert [s.category for s in d.suggestions] == ["EN.WATER", "TR.BUS", "ED.ENROLL"]


def test_a_ticket_nobody_returned_is_suggested_from_the_top_three_categories_only():
    d = decide(Directory.default(), FACTS, classifier=RankedModel(*WATER, *FURTHER))
    assert codes(d) == ["M-SWJ"]


def test_when_every_ranked_category_belongs_to_the_returning_unit_the_reason_says_so():
    d = decide(Directory.default(), FACTS, classifier=RankedModel(*WATER, ("PU.WATER.LEAK", 0.05)),
               exclude=frozenset({"M-SWJ"}))
    assert d.outcome == "dispatch" and d.suggestions == ()
    assert d.why == "分类模型排名前 4 的类别都归已退单的市水务局承办，没有其他单位可建议"

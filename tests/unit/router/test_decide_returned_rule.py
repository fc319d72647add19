"""A rule that fires for a unit that returned the ticket (退单) is passed over, and the card says so.

It said "未命中派单规则，且无法确定类别" (no rule fired), though rule R-003 had fired for the gas company that
sent the ticket back."""

from services.router.domain.decide import decide
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts
from tests.unit.router.test_vague_requests import Sure

GAS = TicketFacts(subject="燃气泄漏", description="楼道里闻到很重的燃气味，怀疑燃气泄漏。", district="D-01",
                  channel="hotline", kind="help")
PASSED_OVER = "规则 R-003 命中，但其主办单位江城燃气集团已退单，未再派给该单位"


class Unsure:
    """A model that, like the rule, names the gas company's category, without confidence."""

    version = "unsure-1"

    def predict(self, texts):
        return [Sure("PU.GAS", 0.4) for _ in texts]

    def explain(self, text, label=None, k=5):
        return []


def test_the_rule_for_the_gas_company_fires_while_it_has_not_returned_the_ticket():
    d = decide(Directory.default(), GAS)
    assert (d.outcome, d.lead.code, d.reason.rule_id) == ("assign", "U-RQ", "R-003")


def test_a_rule_whose_unit_returned_the_ticket_is_named_as_passed_over_not_as_unmatched():
    d = decide(Directory.default(), GAS, exclude=frozenset({"U-RQ"}))
    assert d.outcome == "dispatch" and d.lead is None
    assert d.why == f"{PASSED_OVER}，且无法确定类别"
    assert d.reason.note == d.why and "未命中派单规则" not in d.why


def test_the_models_reason_follows_the_passed_over_rule():
    d = decide(Directory.default(), GAS, classifier=Unsure(), threshold=0.6, exclude=frozenset({"U-RQ"}))
    assert d.outcome == "dispatch" and d.suggestions == ()
    assert d.why == f"{PASSED_OVER}；分类模型排名前 1 的类别都归已退单的江城燃气集团承办，没有其他单位可建议"


def test_a_ticket_no_rule_fires_for_still_says_no_rule_fired():
    d = decide(Directory.default(), TicketFacts(subject="有事", description="说不清", channel="hotline", kind="help"),
               exclude=frozenset({"U-RQ"}))
    assert d.why == "未命中派单规则，且无法确定类别"

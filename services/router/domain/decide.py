"""The routing decision as pure code: rules first, then category + place, else a dispatcher.

1. An explicit rule that fires wins (unless it names a unit that returned the ticket).
2. Otherwise the category (the operator's choice, or the classifier's prediction) and the
   place give the responsible unit through the directory.
3. Low confidence, a rule and the model disagreeing, or nothing fitting → a dispatcher
   decides, with the best suggestions and why.
Every decision says why, so it can be explained and audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from schemas.events import RoutingReason, Suggestion, UnitRef
from services.router.domain import rules as rule_engine
from services.router.domain.directory import Directory, Unit, UnknownCode
from services.router.domain.rules import TicketFacts


class Prediction(Protocol):
    label: str
    score: float
    top: Sequence[tuple[str, float]]


class Classifier(Protocol):
    version: str

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...

    def explain(self, text: str, label: str | None = None, k: int = 5) -> list[tuple[str, float]]: ...


@dataclass(frozen=True)
class Decision:
    outcome: Literal["assign", "dispatch"]
    reason: RoutingReason
    lead: Unit | None = None
    co_handlers: tuple[Unit, ...] = ()
    category: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    why: str = ""
    rule_trace: tuple = field(default=(), compare=False)


# Words that ask, greet or point without saying what about ("问一下，这个怎么办啊"). A text of nothing else
# says nothing a model could place, however sure it sounds: the classifier gave one 84 % for 人社局, on 怎么,
# 么办, 一下 and 问一; and 74 % for 市生态环境局 to "我家附近有问题请处理", on 附近 and 处理. So places that
# point without naming one (我家、附近、楼下、门口、这里…) and how long or how badly (一直、严重) are filler
# too: "小区门口路灯不亮" keeps 路灯不亮. Longest first, so that 怎么办 goes before 怎么 and 小区里 before 小区.
FILLER = sorted("""你好 您好 请问 问一下 问下 咨询一下 咨询 反映一下 反映个 想反映 反映 投诉一下 一下 这个 那个 这件事
    这事 事情 情况 问题 怎么办 怎么回事 怎么 什么 为什么 有个 有件 我想 我要 想要 想 请 帮忙 帮我 帮 看看 看一下
    处理一下 处理 解决一下 解决 具体 说不清楚 不清楚 不知道 谢谢 麻烦 希望 有人 联系我 联系 尽快 可以 能不能 能
    我家 我们家 家里 家门口 家附近 附近 周边 周围 旁边 隔壁 对面 楼下 楼上 门口 小区里 小区 这里 那里 这边 那边
    这儿 那儿 这块 那块 这一带 那一带 本地 当地 外面 一直 最近 现在 经常 总是 严重 出现 存在 发生
    啊 吗 呢 吧 了 的 呀 哦 嗯 哈 一 个 我 你 您 们 是 有 在 就 都 还 也 要 给 下 这 那 么 样""".split(),
                key=len, reverse=True)
# A filler word, else one character of matter (group 1), read from the left as a substitution of the filler would.
_FILLER_OR_MATTER = re.compile("(?:%s)|(\\w)" % "|".join(map(re.escape, FILLER)))


def says_nothing(text: str) -> bool:
    """Whether a request's text, its greetings, questions and pointers taken out, leaves fewer than two
    characters of matter (停水 is two): then a dispatcher asks, not the model. It stops at the second character
    of matter, mostly within the first few of the text (1.4 µs a ticket on the real messages, against 46 for
    cutting the filler out of the whole text and counting what is left)."""
    matter = 0
    for found in _FILLER_OR_MATTER.finditer(text):
        if found.group(1):
            matter += 1
            if matter == 2:
                return False
    return True


def ref(unit: Unit) -> UnitRef:
    return UnitRef(code=unit.code, name=unit.name)


def decide(directory: Directory, facts: TicketFacts, *, classifier: Classifier | None = None,
           threshold: float = 0.6, exclude: frozenset[str] = frozenset(),
           operator_unit: str | None = None) -> Decision:
    facts = _with_district(directory, facts)
    if operator_unit and directory.has_unit(operator_unit) and operator_unit not in exclude:
        unit = directory.unit(operator_unit)
        return Decision("assign", RoutingReason(method="operator", category=facts.category,
                                                note="话务员选定承办单位"), unit, (), facts.category,
                        why=f"话务员选定 {unit.name}")

    match = rule_engine.evaluate(directory.rules, facts)
    prediction = None
    if classifier is not None and not facts.category:
        prediction = classifier.predict([f"{facts.subject} {facts.description}"])[0]

    # A rule that fired for a unit that returned the ticket (退单) is passed over, and the card says so.
    passed_over_rule = _rule_passed_over(directory, match) if match is not None and match.lead in exclude else None
    if match is not None and match.lead not in exclude:
        lead = directory.unit(match.lead)
        co = tuple(directory.unit(c) for c in match.co_handlers if directory.has_unit(c) and c != match.lead)
        model_unit = _unit_for(directory, prediction.label, facts) if prediction else None
        if prediction and prediction.score >= threshold and model_unit and model_unit.code != lead.code \
                and not _related(directory, model_unit, lead, co) \
                and not any(_handles(directory, unit, prediction.label) for unit in (lead, *co)):
            return Decision("dispatch", RoutingReason(method="rule", rule_id=match.rule_id,
                                                      model_version=classifier.version, score=prediction.score),
                            category=prediction.label,
                            suggestions=(Suggestion(unit=ref(lead), score=1.0, reason=f"规则 {match.rule_id}"),
                                         Suggestion(unit=ref(model_unit), category=prediction.label,
                                                    score=prediction.score, reason="分类模型")),
                            why=f"规则 {match.rule_id} 与分类模型意见不一致")
        return Decision("assign", RoutingReason(method="rule", rule_id=match.rule_id, category=facts.category,
                                                note=match.description[:500]),
                        lead, co, facts.category, why=f"规则 {match.rule_id}：{match.description}")

    if facts.category:
        assignment = _assignment(directory, facts.category, facts)
        if assignment and assignment.unit.code not in exclude:
            return Decision("assign", RoutingReason(method="directory", category=facts.category,
                                                    note=assignment.reason[:500]),
                            assignment.unit, (), facts.category, why=assignment.reason)

    suggestions: tuple[Suggestion, ...] = ()
    if prediction is not None:
        suggestions, passed_over = suggest(directory, prediction, facts, exclude)
        best = suggestions[0] if suggestions else None
        vague = says_nothing(f"{facts.subject} {facts.description}")
        if best and best.score >= threshold and best.category == prediction.label and not vague:
            words = _weighing_words(classifier, facts, prediction.label)
            return Decision("assign", RoutingReason(method="model", model_version=classifier.version,
                                                    score=best.score, category=best.category,
                                                    top_features=words, note=best.reason),
                            directory.unit(best.unit.code), (), best.category, suggestions,
                            why=best.reason)
        if vague and best:
            why = "诉求内容过于笼统，无法据以判断类别"
        elif best:
            why = "分类置信度低于阈值"
        elif passed_over:
            why = (f"分类模型排名前 {len(prediction.top)} 的类别都归已退单的"
                   f"{'、'.join(unit.name for unit in passed_over)}承办，没有其他单位可建议")
        else:
            why = "没有可用的承办单位建议"
        if passed_over_rule:
            why = f"{passed_over_rule}；{why}"
    elif facts.category:  # the operator's category: the classifier was not asked, so the category says why
        why = _category_unplaced(directory, facts, exclude)
    elif passed_over_rule:
        why = f"{passed_over_rule}，且无法确定类别"
    else:
        why = "未命中派单规则，且无法确定类别"
    misplaced = _street_outside_district(directory, facts)
    if misplaced:  # no category can be placed there: what the dispatcher must know first
        why = misplaced if facts.category or prediction is not None else f"{misplaced}；{why}"
    elif unknown := _unknown_place(directory, facts):  # a matter the city handles may still go, so said after
        why = f"{why}；{unknown}"
    return Decision("dispatch", RoutingReason(method="directory", category=facts.category, note=why),
                    category=facts.category, suggestions=suggestions, why=why)


SUGGESTED = 3  # units on a dispatch card, one key each


def suggest(directory: Directory, prediction: Prediction, facts: TicketFacts,
            exclude: frozenset[str] = frozenset()) -> tuple[tuple[Suggestion, ...], tuple[Unit, ...]]:
    """Up to three units for the model's best categories, one suggestion a unit, and the excluded units (退单)
    passed over. The first three categories, as a dispatcher expects; when a unit that returned the ticket took
    some of their places, further down the ranking too: its categories are often the first three, and a card
    naming no one else leaves the dispatcher to guess."""
    suggestions: list[Suggestion] = []
    passed_over: list[Unit] = []
    for rank, (label, score) in enumerate(prediction.top):
        if len(suggestions) == SUGGESTED or (rank >= SUGGESTED and not passed_over):
            break
        assignment = _assignment(directory, label, facts)
        if assignment is None or any(s.unit.code == assignment.unit.code for s in suggestions):
            continue
        if assignment.unit.code in exclude:
            if assignment.unit not in passed_over:
                passed_over.append(assignment.unit)
            continue
        suggestions.append(Suggestion(unit=ref(assignment.unit), category=label, score=float(score),
                                      reason=assignment.reason[:500]))
    return tuple(suggestions), tuple(passed_over)


def category_handled_by(directory: Directory, unit: Unit, ranked: Iterable[str], facts: TicketFacts) -> str | None:
    """The first of the categories (best first, read no further than needed) the directory gives `unit`, or None:
    for a unit the router did not pick itself (one a return reason named, one a dispatcher typed), the category its
    assignment and its training example carry. Given at the ticket's place, at no place (a local matter's
    supervising department: 物业服务 is 市住建委's where no street is known), or at the unit's own place (a street
    office named or typed while the ticket's street is not)."""
    places = [(facts.district, facts.street), (None, None)]
    if unit.type == "street":
        places.append((unit.parent, unit.code))
    elif unit.type == "district":
        places.append((unit.code, None))
    for category in ranked:
        for district, street in places:
            try:
                assignment = directory.responsible_unit(category, district, street)
            except (UnknownCode, ValueError):
                continue
            if assignment is not None and assignment.unit.code == unit.code:
                return category
    return None


def _rule_passed_over(directory: Directory, match: rule_engine.RuleMatch) -> str:
    """Why the rule that fired did not place the ticket (Chinese): its lead unit returned it (退单)."""
    name = directory.unit(match.lead).name if directory.has_unit(match.lead) else match.lead
    return f"规则 {match.rule_id} 命中，但其主办单位{name}已退单，未再派给该单位"


def _category_unplaced(directory: Directory, facts: TicketFacts, exclude: frozenset[str]) -> str:
    """Why a known category gave no unit (Chinese): its unit returned the ticket (退单), the directory has no such
    category, or no unit handles it at that place."""
    if not directory.has_category(facts.category):
        return f"部门目录中没有类别代码 {facts.category}，无法按类别派单"
    name = directory.category(facts.category).name
    assignment = _assignment(directory, facts.category, facts)
    if assignment and assignment.unit.code in exclude:
        return f"“{name}”的承办单位{assignment.unit.name}已退单，请另选单位"
    return f"“{name}”在该地点没有承办单位"


def _weighing_words(classifier: Classifier, facts: TicketFacts, label: str) -> list[str]:
    """The words that weighed most for the predicted category: why the model thinks so."""
    explain = getattr(classifier, "explain", None)
    if explain is None:
        return []
    return [word for word, _ in explain(f"{facts.subject} {facts.description}", label, 5)]


def _with_district(directory: Directory, facts: TicketFacts) -> TicketFacts:
    if facts.street and not facts.district:
        try:
            street = directory.street(facts.street)
        except UnknownCode:
            return facts
        return TicketFacts(facts.subject, facts.description, facts.category, street.parent, facts.street,
                           facts.channel, facts.kind)
    return facts


def _street_outside_district(directory: Directory, facts: TicketFacts) -> str | None:
    """Why category and place give no unit when the street given is not in the district given (Chinese); None
    when it is, or when either code is unknown. Intake refuses such a pair, but tickets it took before it knew
    the directory, or older ones returned (退单), still bring one."""
    if not (facts.district and facts.street):
        return None
    try:
        street, district = directory.street(facts.street), directory.district(facts.district)
    except UnknownCode:
        return None
    if street.parent == district.code:
        return None
    return f"{street.name}（{street.code}）不在{district.name}（{district.code}）内，无法按地点派单"


def _unknown_place(directory: Directory, facts: TicketFacts) -> str | None:
    """The place codes of the ticket the directory does not know (Chinese), or None: a ticket taken before intake
    held the router's directory, or one whose codes a directory change removed, cannot be placed by them."""
    unknown = []
    for code, look_up, what in ((facts.district, directory.district, "区"), (facts.street, directory.street, "街道")):
        try:
            if code:
                look_up(code)
        except UnknownCode:
            unknown.append(f"{what}代码 {code}")
    return f"部门目录中没有{'、'.join(unknown)}，无法按地点派单" if unknown else None


def _assignment(directory: Directory, category: str, facts: TicketFacts):
    try:
        return directory.responsible_unit(category, facts.district, facts.street)
    except (UnknownCode, ValueError):
        return None


def _unit_for(directory: Directory, category: str, facts: TicketFacts) -> Unit | None:
    assignment = _assignment(directory, category, facts)
    return assignment.unit if assignment else None


def _handles(directory: Directory, unit: Unit, category: str) -> bool:
    """The unit handles this matter or a neighbouring one: responsible for the category, a broader
    one, or a sibling under the same parent (施工噪音 and 施工扬尘 are one matter to a rule), or it is
    the local office for a local matter. Only a model that names a different matter overrules a rule."""
    try:
        lineage = {category, *(c.code for c in directory.ancestors(category))}
        parent = directory.category(category).parent
        local = directory.scope_of(category) == "local"
    except UnknownCode:
        return False
    owned = set(unit.responsibilities)
    siblings = {r for r in owned if parent and directory.has_category(r) and directory.category(r).parent == parent}
    return bool(lineage & owned) or bool(siblings) or (local and unit.type in ("street", "district"))


def _related(directory: Directory, model_unit: Unit, lead: Unit, co: tuple[Unit, ...]) -> bool:
    """The model's unit is the rule's lead, a co-handler, or the lead's own district/street: no conflict."""
    return model_unit.code in {lead.code, *(c.code for c in co)} or model_unit.parent == lead.code \
        or lead.parent == model_unit.code

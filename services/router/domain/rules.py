"""Explicit routing rules (派单规则): which one fires for a ticket, and why each did or did not.

Rules are checked in file order and the first whose conditions all pass wins; a later
rule never overrides an earlier one. Every condition a rule gives must pass; inside a
list of codes, channels, kinds or `keywords_any`, one hit is enough. Keywords and the
regex look at the subject and description together. The rule models themselves live in
`directory.py`, where they are loaded and their regexes compiled once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from schemas.enums import CHANNEL_LABELS, KIND_LABELS
from services.router.domain.directory import AT_DISTRICT, AT_STREET, Rule, RuleConditions


@dataclass(frozen=True)
class TicketFacts:
    """What the rules may look at. `district` should be filled in when only the street is known."""

    subject: str = ""
    description: str = ""
    category: str | None = None
    district: str | None = None
    street: str | None = None
    channel: str | None = None
    kind: str | None = None

    @cached_property
    def text(self) -> str:
        return f"{self.subject}\n{self.description}"

    @cached_property
    def folded_text(self) -> str:
        """The text casefolded once, for every rule's keywords."""
        return self.text.casefold()


@dataclass(frozen=True)
class ConditionCheck:
    condition: str  # the YAML key: keywords_any, districts, …
    passed: bool
    detail: str  # Chinese, for the dispatcher


@dataclass(frozen=True)
class RuleTrace:
    rule_id: str
    description: str
    matched: bool  # all its conditions passed
    fired: bool  # matched and no earlier rule did
    checks: tuple[ConditionCheck, ...]


@dataclass(frozen=True)
class RuleMatch:
    rule_id: str
    description: str
    lead: str  # 主办
    co_handlers: tuple[str, ...]  # 协办, with @district / @street resolved from the facts
    evidence: tuple[ConditionCheck, ...]


def evaluate(rules: Sequence[Rule], facts: TicketFacts) -> RuleMatch | None:
    """The first rule whose conditions all pass, or None.

    Most rules fail for most tickets: each is tried with `_passes`, which builds no
    explanations, and only the one that fires has its checks written out as evidence.
    """
    for rule in rules:
        if _passes(rule.conditions, facts):
            return _match(rule, facts, tuple(_checks(rule.conditions, facts)))
    return None


def explain(rules: Sequence[Rule], facts: TicketFacts) -> list[RuleTrace]:
    """Every rule with every condition checked, for the page where a dispatcher tries a text."""
    traces = []
    fired = False
    for rule in rules:
        checks = tuple(_checks(rule.conditions, facts))
        matched = all(check.passed for check in checks)
        traces.append(RuleTrace(rule.id, rule.description, matched, matched and not fired, checks))
        fired = fired or matched
    return traces


def _match(rule: Rule, facts: TicketFacts, evidence: tuple[ConditionCheck, ...]) -> RuleMatch:
    lead = rule.result.lead
    co_handlers: list[str] = []
    for code in rule.result.co_handlers:
        if code == AT_DISTRICT:
            resolved = facts.district
        elif code == AT_STREET:
            resolved = facts.street or facts.district
        else:
            resolved = code
        if resolved and resolved != lead and resolved not in co_handlers:
            co_handlers.append(resolved)
    return RuleMatch(rule.id, rule.description, lead, tuple(co_handlers), evidence)


def _passes(when: RuleConditions, facts: TicketFacts) -> bool:
    """Whether every condition passes: what `_checks` decides, without saying why."""
    if when.category and _category_hit(when.category, facts.category) is None:
        return False
    text = facts.folded_text
    if when.folded_any and not any(word in text for word in when.folded_any):
        return False
    if when.folded_all and not all(word in text for word in when.folded_all):
        return False
    if when.regex is not None and when.regex.search(facts.text) is None:
        return False
    return all(not allowed or value in allowed for allowed, value in (
        (when.districts, facts.district), (when.streets, facts.street), (when.channels, facts.channel),
        (when.kinds, facts.kind)))


def _checks(when: RuleConditions, facts: TicketFacts) -> Iterator[ConditionCheck]:
    """One check per condition the rule gives, with the words a dispatcher reads."""
    if when.category:
        yield _category_check(when.category, facts.category)
    text = facts.folded_text
    if when.keywords_any:
        hits = [word for word, folded in zip(when.keywords_any, when.folded_any, strict=True) if folded in text]
        yield ConditionCheck(
            "keywords_any", bool(hits),
            f"命中关键词：{'、'.join(hits)}" if hits else f"未命中任一关键词：{'、'.join(when.keywords_any)}",
        )
    if when.keywords_all:
        missing = [word for word, folded in zip(when.keywords_all, when.folded_all, strict=True) if folded not in text]
        yield ConditionCheck(
            "keywords_all", not missing,
            f"缺少关键词：{'、'.join(missing)}" if missing else f"关键词全部命中：{'、'.join(when.keywords_all)}",
        )
    if when.regex is not None:
        found = when.regex.search(facts.text)
        yield ConditionCheck(
            "regex", found is not None,
            f"正则命中：“{found.group(0)}”" if found else f"正则未命中：{when.regex.pattern}",
        )
    if when.districts:
        yield _place_check("districts", "区", when.districts, facts.district)
    if when.streets:
        yield _place_check("streets", "街道", when.streets, facts.street)
    if when.channels:
        yield _label_check("channels", "渠道", when.channels, facts.channel, CHANNEL_LABELS)
    if when.kinds:
        yield _label_check("kinds", "诉求类型", when.kinds, facts.kind, KIND_LABELS)


def _category_hit(codes: tuple[str, ...], category: str | None) -> str | None:
    """The code among `codes` that the category is or descends from."""
    if category is None:
        return None
    return next((code for code in codes if category == code or category.startswith(code + ".")), None)


def _category_check(codes: tuple[str, ...], category: str | None) -> ConditionCheck:
    if category is None:
        return ConditionCheck("category", False, "工单尚无类别")
    hit = _category_hit(codes, category)
    if hit is None:
        return ConditionCheck("category", False, f"类别 {category} 不属于 {'、'.join(codes)}")
    return ConditionCheck("category", True, f"类别 {category} 属于 {hit}")


def _place_check(condition: str, label: str, codes: tuple[str, ...], code: str | None) -> ConditionCheck:
    if code is None:
        return ConditionCheck(condition, False, f"工单未写明所在{label}")
    if code in codes:
        return ConditionCheck(condition, True, f"所在{label} {code} 在范围内")
    return ConditionCheck(condition, False, f"所在{label} {code} 不在 {'、'.join(codes)} 中")


def _label_check(
    condition: str, label: str, allowed: tuple[str, ...], value: str | None, labels: Mapping[str, str]
) -> ConditionCheck:
    if value is None:
        return ConditionCheck(condition, False, f"工单未写明{label}")
    shown = labels.get(value, value)  # StrEnum keys look up by their plain string
    if value in allowed:
        return ConditionCheck(condition, True, f"{label}“{shown}”符合")
    names = "、".join(labels.get(item, item) for item in allowed)
    return ConditionCheck(condition, False, f"{label}“{shown}”不在 {names} 中")

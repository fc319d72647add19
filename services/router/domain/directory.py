"""The department directory (部门目录): who handles what, and where.

Pure domain code: pydantic models loaded from one YAML file, cross-checked once at load,
and the lookup that turns "category + place" into the responsible unit (承办单位).

How a ticket's category and address find a unit:

- every category has a scope, `local` or `citywide` (inherited down the taxonomy);
- a local matter (属地事项) goes to the street office covering the address, or to the
  district when only the district is known;
- a city-wide matter goes to the unit that lists the category among its
  `responsibilities` and whose jurisdiction covers the address; the narrowest
  jurisdiction wins (a district's own water company before the city's);
- a leaf without such a unit falls back to its parent category, then the grandparent;
- a local matter without an address goes to the unit responsible for the category
  (行业主管部门) the same way.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.enums import Channel, Kind

UnitType = Literal["municipal", "district", "street", "utility"]
Scope = Literal["local", "citywide"]
Basis = Literal["local_street", "local_district", "responsible", "supervisor"]

# A rule may name these as co-handlers: the district / street covering the address (属地).
AT_DISTRICT = "@district"
AT_STREET = "@street"
PLACE_PLACEHOLDERS = frozenset({AT_DISTRICT, AT_STREET})

DEMO_CITY = Path(__file__).resolve().parent.parent / "directory" / "demo_city.yaml"

_UNIT_CODE = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"
_CATEGORY_CODE = r"^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*){0,2}$"  # at most three levels
_RULE_ID = r"^[A-Z]+-[0-9A-Z-]+$"


class DirectoryError(ValueError):
    """The directory data is broken; the message lists every problem, in Chinese and English."""


class UnknownCode(LookupError):
    """A unit, place or category code that the directory does not have."""

    def __init__(self, what_zh: str, what_en: str, code: str) -> None:
        super().__init__(f"未知{what_zh}：{code} / unknown {what_en}: {code}")
        self.code = code


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Unit(_Frozen):
    """A handling unit: a municipal department, a public utility, a district or a street office."""

    code: str = Field(pattern=_UNIT_CODE)
    name: str = Field(min_length=1)
    type: UnitType
    parent: str | None = None
    jurisdiction: tuple[str, ...] = ()  # district and street codes; empty = the whole city
    responsibilities: tuple[str, ...] = ()  # category codes it handles inside its jurisdiction
    aliases: tuple[str, ...] = ()  # what dispatchers type: 住建委, 自来水


class _Place(Unit):
    """A district or street as a unit: its jurisdiction is itself."""

    @model_validator(mode="before")
    @classmethod
    def _covers_itself(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("jurisdiction") and "code" in data:
            return {**data, "jurisdiction": [data["code"]]}
        return data


class District(_Place):
    """A district (区); as a unit, the district government."""

    type: Literal["district"] = "district"


class Street(_Place):
    """A street office or town (街道/乡镇) inside one district; handles local matters there."""

    type: Literal["street"] = "street"
    parent: str  # the district code


class Category(_Frozen):
    """A node of the category taxonomy; a child's code extends its parent's: PU.GAS.LEAK."""

    code: str = Field(pattern=_CATEGORY_CODE)
    name: str = Field(min_length=1)
    parent: str | None = None
    scope: Scope | None = None  # None: as the parent
    urgent: bool | None = None  # None: as the parent; not urgent at the top

    @property
    def level(self) -> int:
        return self.code.count(".") + 1


class RuleConditions(_Frozen):
    """What a ticket must have for a rule to fire: every condition given must pass."""

    category: tuple[str, ...] = ()  # any of; a code also matches its descendants
    keywords_any: tuple[str, ...] = ()
    keywords_all: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None  # searched in subject + description
    districts: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()
    channels: tuple[Channel, ...] = ()
    kinds: tuple[Kind, ...] = ()

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)

    @functools.cached_property
    def folded_any(self) -> tuple[str, ...]:
        """`keywords_any` casefolded once, for every ticket the rule is checked against."""
        return tuple(word.casefold() for word in self.keywords_any)

    @functools.cached_property
    def folded_all(self) -> tuple[str, ...]:
        return tuple(word.casefold() for word in self.keywords_all)


class RuleResult(_Frozen):
    lead: str  # 主办
    co_handlers: tuple[str, ...] = ()  # 协办; unit codes or @district / @street


class Rule(_Frozen):
    """An explicit routing rule; the first rule (in file order) whose conditions all pass wins."""

    id: str = Field(pattern=_RULE_ID)
    description: str = Field(min_length=1)
    conditions: RuleConditions
    result: RuleResult


@dataclass(frozen=True)
class UnitAssignment:
    """The unit a category + place maps to, and why (recorded with the assignment)."""

    unit: Unit
    category: str  # the category asked about
    via_category: str  # the taxonomy node that decided; an ancestor when the leaf had no owner
    basis: Basis
    reason: str  # Chinese, shown to the dispatcher


class Directory(_Frozen):
    """Units, places, the category taxonomy and the routing rules of one city."""

    version: str = Field(min_length=1)
    city: str = Field(min_length=1)
    units: tuple[Unit, ...]  # municipal departments and utilities
    districts: tuple[District, ...]
    streets: tuple[Street, ...]
    categories: tuple[Category, ...]
    rules: tuple[Rule, ...] = ()

    # -- loading ---------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Mapping[str, Any], source: str = "<data>") -> Directory:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = []
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                for message in str(error["msg"]).removeprefix("Value error, ").splitlines():
                    lines.append(f"{where}: {message}" if where else message)
            raise DirectoryError(
                f"部门目录有误 / invalid directory ({source}):\n" + "\n".join(f"- {line}" for line in lines)
            ) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Directory:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DirectoryError(f"无法读取部门目录 / cannot read directory {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise DirectoryError(f"部门目录应为 YAML 映射 / directory {path} must be a YAML mapping")
        return cls.from_data(data, source=str(path))

    @classmethod
    def default(cls) -> Directory:
        """The demo city shipped with the router (江城市), loaded once."""
        return _demo_city()

    @model_validator(mode="after")
    def _check(self) -> Directory:
        problems = _problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # The indexes behind the look-ups, built once (validation already uses them). cached_property,
    # not pydantic's PrivateAttr: a private attribute is read through BaseModel.__getattr__, tens
    # of times slower than a plain attribute, and the router looks codes up dozens of times a ticket.

    @functools.cached_property
    def _units(self) -> dict[str, Unit]:
        units: dict[str, Unit] = {}
        # Places first: a department clashing with a district's code must not hide the district.
        for unit in (*self.districts, *self.streets, *self.units):
            units.setdefault(unit.code, unit)
        return units

    @functools.cached_property
    def _categories(self) -> dict[str, Category]:
        categories: dict[str, Category] = {}
        for category in self.categories:
            categories.setdefault(category.code, category)
        return categories

    @functools.cached_property
    def _streets_of(self) -> dict[str, tuple[Street, ...]]:
        streets_of: dict[str, list[Street]] = {}
        for street in self.streets:
            streets_of.setdefault(street.parent, []).append(street)
        return {code: tuple(streets) for code, streets in streets_of.items()}

    @functools.cached_property
    def _owners(self) -> dict[str, tuple[Unit, ...]]:
        owners: dict[str, list[Unit]] = {}
        for unit in self._units.values():
            for code in unit.responsibilities:
                owners.setdefault(code, []).append(unit)
        return {code: tuple(units) for code, units in owners.items()}

    # -- lookups ---------------------------------------------------------------------

    def unit(self, code: str) -> Unit:
        try:
            return self._units[code]
        except KeyError:
            raise UnknownCode("单位", "unit", code) from None

    def has_unit(self, code: str) -> bool:
        return code in self._units

    def has_category(self, code: str) -> bool:
        return code in self._categories

    def district(self, code: str) -> District:
        unit = self._units.get(code)
        if not isinstance(unit, District):
            raise UnknownCode("区", "district", code)
        return unit

    def street(self, code: str) -> Street:
        unit = self._units.get(code)
        if not isinstance(unit, Street):
            raise UnknownCode("街道", "street", code)
        return unit

    def streets_of(self, district_code: str) -> tuple[Street, ...]:
        self.district(district_code)
        return self._streets_of.get(district_code, ())

    def category(self, code: str) -> Category:
        try:
            return self._categories[code]
        except KeyError:
            raise UnknownCode("类别", "category", code) from None

    def ancestors(self, code: str) -> tuple[Category, ...]:
        """Parent first, up to the top-level group."""
        chain = []
        category = self.category(code)
        while category.parent is not None:
            category = self.category(category.parent)
            chain.append(category)
        return tuple(chain)

    def leaves(self) -> tuple[Category, ...]:
        parents = {category.parent for category in self.categories}
        return tuple(category for category in self.categories if category.code not in parents)

    def scope_of(self, code: str) -> Scope:
        for category in (self.category(code), *self.ancestors(code)):
            if category.scope is not None:
                return category.scope
        raise AssertionError("validated: every top-level category has a scope")

    def is_urgent(self, code: str) -> bool:
        for category in (self.category(code), *self.ancestors(code)):
            if category.urgent is not None:
                return category.urgent
        return False

    def search_units(self, query: str, limit: int = 20) -> list[Unit]:
        """Units whose code, name or alias contains the query, or its characters in order (市城管委 is
        市城市管理委员会); exact and prefix hits first, characters in order last."""
        return [unit for _, unit in self._matches(query)[:limit]]

    def resolve_unit(self, typed: str) -> tuple[Unit, ...]:
        """The unit a dispatcher means by what they typed into the unit box.

        Its code, else its name or alias (简称), else the only unit whose code, name or alias
        contains the text. One unit when that is clear; every candidate when the text fits
        several (the dispatcher must choose: 公安 is both 市公安局 and its 交通管理局); () for none.
        A name or alias with the text's characters in order counts only when none contains the text.
        """
        matches = self._matches(typed)
        for rank in (_EXACT_CODE, _EXACT_NAME):
            exact = tuple(unit for r, unit in matches if r == rank)
            if exact:
                return exact
        return tuple(unit for r, unit in matches if r != _IN_ORDER) or tuple(unit for _, unit in matches)

    def _matches(self, query: str) -> list[tuple[int, Unit]]:
        """Every unit the query names, best rank first, in directory order within a rank (characters in order:
        the fewest characters skipped first, so 城管委 finds 市城市管理委员会 before 江城高新区管理委员会)."""
        needle = fold(query)
        if not needle:
            return []
        ranked: list[tuple[int, int, Unit]] = []
        for unit, code, names in self._search_keys:
            skipped = 0
            if code == needle:
                rank = _EXACT_CODE
            elif needle in names:
                rank = _EXACT_NAME
            elif code.startswith(needle) or any(name.startswith(needle) for name in names):
                rank = _PREFIX
            elif needle in code or any(needle in name for name in names):
                rank = _CONTAINS
            elif len(needle) > 1 and (gaps := [g for key in (code, *names)
                                               if (g := _skipped(needle, key)) is not None]):
                rank, skipped = _IN_ORDER, min(gaps)
            else:
                continue
            ranked.append((rank, skipped, unit))
        ranked.sort(key=lambda item: item[:2])  # stable: directory order within a rank
        return [(rank, unit) for rank, _, unit in ranked]

    @functools.cached_property
    def _search_keys(self) -> tuple[tuple[Unit, str, tuple[str, ...]], ...]:
        """Each unit with its code and names folded once, for the search box that asks on every keystroke."""
        return tuple((unit, fold(unit.code), tuple(fold(name) for name in (unit.name, *unit.aliases)))
                     for unit in (*self.units, *self.districts, *self.streets))

    # -- category + place → unit -----------------------------------------------------

    def responsible_unit(
        self, category_code: str, district_code: str | None = None, street_code: str | None = None
    ) -> UnitAssignment | None:
        """The unit that should handle this category at this place, or None if nothing fits.

        Raises UnknownCode for codes the directory does not have, and ValueError when the
        street is not in the district given. An answer is kept: a directory never changes (a
        new version is a new Directory), and the router asks two or three times a ticket.
        """
        key = (category_code, district_code, street_code)
        try:
            return self._assignments[key]
        except KeyError:
            assignment = self._assignments[key] = self._responsible_unit(category_code, district_code, street_code)
            return assignment

    @functools.cached_property
    def _assignments(self) -> dict[tuple[str, str | None, str | None], UnitAssignment | None]:
        """Answers of responsible_unit so far: at most one per category and place, as unknown codes raise."""
        return {}

    def _responsible_unit(self, category_code: str, district_code: str | None,
                          street_code: str | None) -> UnitAssignment | None:
        category = self.category(category_code)
        district, street = self._place(district_code, street_code)
        local = self.scope_of(category.code) == "local"
        if local and street is not None:
            return UnitAssignment(
                street, category.code, category.code, "local_street",
                f"属地事项“{category.name}”，交{self.district(street.parent).name}{street.name}",
            )
        if local and district is not None:
            return UnitAssignment(
                district, category.code, category.code, "local_district",
                f"属地事项“{category.name}”，地址只到区，交{district.name}",
            )
        for node in (category, *self.ancestors(category.code)):
            owner = self._owner(node.code, district, street)
            if owner is None:
                continue
            via = "" if node is category else f"（按上级类别“{node.name}”）"
            if local:
                basis: Basis = "supervisor"
                reason = f"属地事项“{category.name}”但地址不详，交主管部门{owner.name}{via}"
            else:
                basis = "responsible"
                reason = f"“{category.name}”由{owner.name}负责{via}"
            return UnitAssignment(owner, category.code, node.code, basis, reason)
        return None

    def _place(self, district_code: str | None, street_code: str | None) -> tuple[District | None, Street | None]:
        street = self.street(street_code) if street_code else None
        district = self.district(district_code) if district_code else None
        if street is not None and district is not None and street.parent != district.code:
            raise ValueError(
                f"{street.name}（{street.code}）不属于{district.name}（{district.code}） / "
                f"street {street.code} is not in district {district.code}"
            )
        if street is not None and district is None:
            district = self.district(street.parent)
        return district, street

    def _owner(self, category_code: str, district: District | None, street: Street | None) -> Unit | None:
        candidates = [
            unit for unit in self._owners.get(category_code, ())
            if not unit.jurisdiction
            or (street is not None and street.code in unit.jurisdiction)
            or (district is not None and district.code in unit.jurisdiction)
        ]
        return min(candidates, key=self._breadth, default=None)

    def _breadth(self, unit: Unit) -> int:
        """How many streets a unit covers; the whole city counts as more than all of them."""
        if not unit.jurisdiction:
            return len(self.streets) + 1
        return sum(len(self._streets_of.get(code, ())) or 1 for code in unit.jurisdiction)

    def _covered(self, unit: Unit) -> frozenset[str]:
        codes: set[str] = set()
        for code in unit.jurisdiction:
            codes.add(code)
            codes.update(street.code for street in self._streets_of.get(code, ()))
        return frozenset(codes)


# How well a search matches a unit, best first. _IN_ORDER: the query's characters appear in order, as in a
# dispatcher's own abbreviation (简称) that the directory does not list: 市城管委, 人社保局, mcgw.
_EXACT_CODE, _EXACT_NAME, _PREFIX, _CONTAINS, _IN_ORDER = range(5)


def _skipped(needle: str, text: str) -> int | None:
    """How many characters of text lie between the first and the last of needle's, taken in order from the
    left; None when text does not hold needle's characters in order."""
    start = end = -1
    for ch in needle:
        end = text.find(ch, end + 1)
        if end < 0:
            return None
        if start < 0:
            start = end
    return end - start + 1 - len(needle)


def fold(text: str) -> str:
    """Searchable form: NFKC (full-width Ｍ－ＣＧＷ typed in a Chinese input method is M-CGW) and case-folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


@functools.cache
def _demo_city() -> Directory:
    return Directory.from_yaml(DEMO_CITY)


def _problems(directory: Directory) -> list[str]:
    """Every cross-reference problem, each as one "中文 / English" line."""
    problems: list[str] = []
    units = directory._units
    categories = directory._categories

    def duplicates(codes: list[str]) -> list[str]:
        seen: set[str] = set()
        return sorted({code for code in codes if code in seen or seen.add(code)})

    all_units = (*directory.units, *directory.districts, *directory.streets)
    for code in duplicates([unit.code for unit in all_units]):
        problems.append(f"单位编码重复：{code} / duplicate unit code {code}")
    for code in duplicates([category.code for category in directory.categories]):
        problems.append(f"类别编码重复：{code} / duplicate category code {code}")
    for code in duplicates([rule.id for rule in directory.rules]):
        problems.append(f"规则编号重复：{code} / duplicate rule id {code}")

    for unit in directory.units:
        if unit.type not in ("municipal", "utility"):
            problems.append(
                f"单位 {unit.code} 的类型 {unit.type} 应写在 districts/streets 中 / "
                f"unit {unit.code}: type {unit.type} belongs under districts/streets"
            )
        if unit.parent is not None and unit.parent not in units:
            problems.append(
                f"单位 {unit.code} 的上级单位 {unit.parent} 不存在 / unit {unit.code}: parent {unit.parent} does not exist"
            )
    for district in directory.districts:
        if district.parent is not None:
            problems.append(f"区 {district.code} 不应有上级 / district {district.code} must not have a parent")
    for place in (*directory.districts, *directory.streets):
        if place.jurisdiction != (place.code,):
            problems.append(
                f"{place.code} 的辖区就是它自身，不要填写 jurisdiction / "
                f"{place.code}: a district or street covers itself; leave out jurisdiction"
            )
    for street in directory.streets:
        if not isinstance(units.get(street.parent), District):
            problems.append(
                f"街道 {street.code} 所属的区 {street.parent} 不存在 / "
                f"street {street.code}: district {street.parent} does not exist"
            )
    for unit in all_units:
        for code in unit.jurisdiction:
            if not isinstance(units.get(code), (District, Street)):
                problems.append(
                    f"单位 {unit.code} 的辖区 {code} 不是已知的区或街道 / "
                    f"unit {unit.code}: jurisdiction {code} is not a known district or street"
                )
        for code in unit.responsibilities:
            if code not in categories:
                problems.append(
                    f"单位 {unit.code} 负责的类别 {code} 不存在 / unit {unit.code}: category {code} does not exist"
                )

    for category in directory.categories:
        if category.parent is None:
            if category.level != 1:
                problems.append(
                    f"类别 {category.code} 缺少上级类别 / category {category.code} needs a parent"
                )
            if category.scope is None:
                problems.append(
                    f"一级类别 {category.code} 须指定 scope（local 或 citywide） / "
                    f"top-level category {category.code} needs a scope (local or citywide)"
                )
        elif category.parent not in categories:
            problems.append(
                f"类别 {category.code} 的上级 {category.parent} 不存在 / "
                f"category {category.code}: parent {category.parent} does not exist"
            )
        elif category.code.rpartition(".")[0] != category.parent:
            problems.append(
                f"类别 {category.code} 的编码应为上级编码 {category.parent} 加一段 / "
                f"category {category.code}: code must be its parent's code plus one segment"
            )

    for code, owners in directory._owners.items():
        citywide = [unit.code for unit in owners if not unit.jurisdiction]
        if len(citywide) > 1:
            problems.append(
                f"类别 {code} 有多个全市负责单位：{'、'.join(citywide)} / "
                f"category {code} has more than one city-wide unit: {', '.join(citywide)}"
            )
        limited = [unit for unit in owners if unit.jurisdiction]
        for i, first in enumerate(limited):
            for second in limited[i + 1:]:
                if directory._covered(first) & directory._covered(second):
                    problems.append(
                        f"类别 {code} 的负责单位 {first.code} 与 {second.code} 辖区重叠 / "
                        f"category {code}: units {first.code} and {second.code} overlap"
                    )

    for rule in directory.rules:
        problems.extend(_rule_problems(rule, units, categories))
    return problems


def _rule_problems(rule: Rule, units: Mapping[str, Unit], categories: Mapping[str, Category]) -> list[str]:
    problems = []
    when, then = rule.conditions, rule.result
    if when.is_empty():
        problems.append(
            f"规则 {rule.id} 没有任何条件，会匹配所有工单 / rule {rule.id} has no conditions and would match every ticket"
        )
    if then.lead not in units:
        problems.append(f"规则 {rule.id} 的主办单位 {then.lead} 不存在 / rule {rule.id}: lead unit {then.lead} does not exist")
    for code in then.co_handlers:
        if code not in units and code not in PLACE_PLACEHOLDERS:
            problems.append(
                f"规则 {rule.id} 的协办单位 {code} 不存在 / rule {rule.id}: co-handler {code} does not exist"
            )
    if then.lead in then.co_handlers:
        problems.append(
            f"规则 {rule.id} 的主办单位 {then.lead} 不能同时协办 / rule {rule.id}: the lead cannot also be a co-handler"
        )
    for code in when.category:
        if code not in categories:
            problems.append(f"规则 {rule.id} 的类别 {code} 不存在 / rule {rule.id}: category {code} does not exist")
    for code in when.districts:
        if not isinstance(units.get(code), District):
            problems.append(f"规则 {rule.id} 的区 {code} 不存在 / rule {rule.id}: district {code} does not exist")
    for code in when.streets:
        if not isinstance(units.get(code), Street):
            problems.append(f"规则 {rule.id} 的街道 {code} 不存在 / rule {rule.id}: street {code} does not exist")
    return problems

"""The unit a return reason (退单理由) names as responsible: "此事应由市生态环境局办理" names 市生态环境局.

Pure code over the directory. A unit counts as named only when the reason says so, not when it merely
appears: a returning unit often writes the address ("投诉地点在东湖区青山街道幸福小区"), or what it is not
responsible for ("不属于市城管委职责"). So, for a dispatcher to rely on it:

- a unit is named by its full name, by its name without the city (市生态环境局 → 生态环境局), or by an
  alias (简称) of at least three characters ending in an organisation word (环保局, 住建委, 燃气公司): short
  aliases such as 城管, 燃气 or 自来水 are ordinary words of a complaint, and one ending in 办 is often the
  verb 办理 (应由区政府办理 is not 政府办);
- the longest name wins where names overlap (市公安局交通管理局 is not 市公安局), and a name read where it
  only resembles one (新港区域) or one short form of two units does not count;
- the name must stand beside a word that gives the matter to it, before (应由、转、属于、请、归…) or after
  (负责、职责、辖区、办理、处理…), or after a heading ("责任单位：市水务局"), or be all the reason says;
  a word that refuses it (不属于、非、不归、与…无关) takes it away;
- a district named together with one of its streets (属于东湖区湖滨街道辖区), or a unit together with one of
  its own sub-units, only says where that one is: the narrower unit is meant;
- a district or a street only said to be where the matter is (属于东湖区、位于湖滨街道辖区内), while the reason
  gives the matter to another unit (属于东湖区，应由市住建委处理), is that unit's place, not a unit named: it stays
  named where the reason gives it something to do (属于东湖区职责、应由东湖区…处理) or names no one else;
- a municipal department's short name written right after a district's (东湖区住建局, 某某县住建局) is that
  district's own bureau, not the city's department: the directory's district is meant where the directory has
  it (and the bureau itself where the directory lists it by that name: the longer name wins), else no unit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

from services.router.domain.directory import Directory, Unit, fold

# How a suggestion the reason gave starts (退单理由指明“市环保局”): the dispatch card shows these words, not a score.
NAMED = "退单理由指明"

# An alias this long and ending so is a unit's name, not a word of the matter (城管、燃气、自来水 are not).
_ORGANISATION_ENDINGS = ("局", "委", "会", "公司", "集团", "中心", "支队", "大队", "所", "厅", "院", "办事处")
_SHORTEST_ALIAS = 3

# A new clause starts after these (the text is NFKC-folded first, so full-width ，； are , ;). Not after a colon:
# "承办单位：市水务局" gives the matter to it, "地址：东湖区青山街道" does not.
_CLAUSE_END = re.compile(r"[,，。.;；!！?？\n\r]")
# Between a word and the name: enumerations and quotation marks (应由“市住建委”、市城管委处理).
_BETWEEN = r"[\s、和及与或“”\"'‘’「」《》]*"
_HANDING = (r"(?:职责|单位|部门)\s*[:：]|应由|交由|转由|(?<![理自])由|转交|移交|转至|转给|转到|转|交给|交|归口|归|(?<!申)请|"
           r"联系|建议|派至|派给|派")
_GIVEN_BEFORE = re.compile(r"(?:" + _HANDING + r"|属于|属)" + _BETWEEN + "$")
# Words that only place the matter in a district or a street (属于东湖区、位于湖滨街道辖区内): before it, and after it
# (辖区、范围…, then nothing, or 的 and what is there: 属于东湖区的市管道路).
_HANDED_BEFORE = re.compile(r"(?:" + _HANDING + r")" + _BETWEEN + "$")
_PLACE_BEFORE = re.compile(r"(?:属于|属|位于|地处|处于|在)" + _BETWEEN + "$")
_PLACE_AFTER = re.compile("^" + _BETWEEN + r"((?:辖区|管辖范围|范围|境内|地界|内)*)")
_REFUSED_BEFORE = re.compile(r"(?:不属于|不属|不归|不是|并非|非|不应由|不由|不在|无需)" + _BETWEEN + "$")
# After the name: its office (湖滨街道办事处), then the word that gives the matter to it.
_OFFICE = r"(?:人民政府|政府|办事处|街道办|部门)?"
_GIVEN_AFTER = re.compile(
    "^" + _BETWEEN + _OFFICE + r"[的]?(?:依法|依职责|按职责|按规定)?"
    r"(?:负责|职责|职能|职权|管辖|辖区|范围|主管|管理|牵头|配合|协助|协办|办理|处理|处置|承办|受理|核查|查处|产权|管护|养护|维护|协调|解决)")
_REFUSED_AFTER = re.compile("^" + _BETWEEN + _OFFICE + r"(?:无关|不负责|不管|不属|不承担)")


@dataclass(frozen=True)
class NamedUnit:
    """A unit the reason names, and the words it names it by, as written (市环保局)."""

    unit: Unit
    words: str


@dataclass(frozen=True)
class _Mention:
    start: int  # in the folded text
    end: int
    unit: Unit
    key_length: int  # of the name found; the city written before it makes the mention longer


def units_named(directory: Directory, text: str, *, returned_by: Collection[str] = ()) -> tuple[NamedUnit, ...]:
    """The units of the directory the text gives the matter to, in the order it names them, each once, without
    the units of `returned_by` (the one that wrote it, and any that sent the ticket back before: naming itself
    says nothing about who else should handle it, and the others have said no already)."""
    folded, origin = _folded(text)
    mentions = _mentions(directory, folded)
    if _without(folded, 0, len(folded), mentions).strip(" \t\r\n、,。."):
        named = [m for m in mentions if _given(folded, m, mentions)]
        # 属于东湖区，应由市住建委处理: the district says where, the unit given the matter by name is meant.
        placed = {m for m in named if _only_placed(folded, m, mentions)}
        named = [m for m in named if m not in placed
                 or not any(o not in placed and o.unit.code != m.unit.code for o in named)]
    else:  # the reason is names and nothing else ("市水务局"): whom else would it name
        named = mentions
    # A district before its street, a department before its own sub-unit, only says where that one is.
    named = [m for m in named if not any(other.unit.parent == m.unit.code for other in named)]
    seen: set[str] = set()
    out = []
    for m in named:
        if m.unit.code in seen or m.unit.code in returned_by:
            continue
        seen.add(m.unit.code)
        out.append(NamedUnit(m.unit, text[origin[m.start]:origin[m.end]]))
    return tuple(out)


def named_by_return(reason: str) -> bool:
    """Whether a dispatch suggestion is a unit the return reason named (its reason says so), not the router's."""
    return reason.startswith(NAMED)


def _folded(text: str) -> tuple[str, list[int]]:
    """The text folded as the directory's names are (full-width Ｍ is M, ，is ,), and where each of its characters
    came from in the text (one more, for the end)."""
    parts, origin = [], []
    for at, ch in enumerate(text):
        folded = unicodedata.normalize("NFKC", ch).casefold()
        parts.append(folded)
        origin.extend([at] * len(folded))
    origin.append(len(text))
    return "".join(parts), origin


def unit_names(directory: Directory) -> dict[str, Unit]:
    """Each folded name a reason may name a unit by, and the unit. A short form that two units share names neither.
    Kept for the directory in force (a directory never changes: a new version is a new Directory); building them
    takes longer than reading a reason."""
    global _names_of
    if _names_of is None or _names_of[0] is not directory:
        _names_of = (directory, _unit_names(directory))
    return _names_of[1]


_names_of: tuple[Directory, dict[str, Unit]] | None = None


def _unit_names(directory: Directory) -> dict[str, Unit]:
    city = directory.city
    by_key: dict[str, set[Unit]] = {}
    for unit in (*directory.units, *directory.districts, *directory.streets):
        words = {unit.name}
        words.update(short for prefix in {city, city.removesuffix("市"), "市"} if prefix
                     and unit.name.startswith(prefix) and _distinctive(short := unit.name[len(prefix):]))
        words.update(alias for alias in unit.aliases if _distinctive(alias))
        for word in words:
            if key := fold(word):
                by_key.setdefault(key, set()).add(unit)
    return {key: next(iter(units)) for key, units in by_key.items() if len(units) == 1}


def _distinctive(word: str) -> bool:
    return len(word) >= _SHORTEST_ALIAS and word.endswith(_ORGANISATION_ENDINGS)


def _mentions(directory: Directory, folded: str) -> list[_Mention]:
    """Every place the text holds a unit's name, the longest where names overlap, in the order of the text. A
    mention takes in the city written before it (江城市环保局, 市城管委): a word before it is read before that."""
    found = []
    prefixes = sorted({fold(p) for p in (directory.city, directory.city.removesuffix("市"), "市") if p},
                      key=len, reverse=True)
    for key, unit in unit_names(directory).items():
        start = folded.find(key)
        while start >= 0:
            end = start + len(key)
            if not (key.endswith("区") and folded.startswith("域", end)):  # 新港区域 is an area, not 新港区
                city = next((p for p in prefixes if folded.startswith(p, start - len(p), start)), "")
                found.append(_Mention(start - len(city), end, unit, len(key)))
            start = folded.find(key, start + 1)
    kept: list[_Mention] = []
    # Longest first; of two as long (市水务局 written, found as the name and as 市 + 水务局), the longer name.
    for m in sorted(found, key=lambda m: (m.start - m.end, -m.key_length, m.start)):
        if all(m.end <= k.start or k.end <= m.start for k in kept):
            kept.append(m)
    return _district_bureaus(folded, sorted(kept, key=lambda m: m.start))


def _district_bureaus(folded: str, mentions: list[_Mention]) -> list[_Mention]:
    """The mentions, a municipal department's name written right after a district's read as that district's bureau
    (东湖区住建局 is not 市住建委): the district's mention, taking in the bureau's name, where the directory has the
    district; none after any other word ending in 区 or 县 (某某区、高新区、辖区、区住建局). A utility's name is the
    utility (东湖区供电公司 is the power company's office there: the district only says where)."""
    out: list[_Mention] = []
    for m in mentions:
        district = out[-1] if out and out[-1].end == m.start and out[-1].unit.type == "district" else None
        if m.unit.type == "municipal" and folded[m.start - 1:m.start] in ("区", "县"):
            if district is not None:
                out[-1] = _Mention(district.start, m.end, district.unit, district.key_length)
            continue
        if m.unit.type == "utility" and district is not None:
            m = _Mention(out.pop().start, m.end, m.unit, m.key_length)
        out.append(m)
    return out


def _given(folded: str, m: _Mention, mentions: list[_Mention]) -> bool:
    """Whether the clause around the mention gives the matter to its unit (see the module's docstring)."""
    before, after = _clause(folded, m, mentions)
    if _REFUSED_BEFORE.search(before) or _REFUSED_AFTER.match(after):
        return False
    return bool(_GIVEN_BEFORE.search(before) or _GIVEN_AFTER.match(after))


def _only_placed(folded: str, m: _Mention, mentions: list[_Mention]) -> bool:
    """Whether a district's or a street's mention only says where the matter is (属于东湖区、位于湖滨街道辖区内,
    属于东湖区的市管道路), giving it nothing to do: no word hands the matter to it (应由、转、请…), none after it
    says it is its to do (职责、负责、管理、处理…)."""
    if m.unit.type not in ("district", "street"):
        return False
    before, after = _clause(folded, m, mentions)
    place = _PLACE_AFTER.match(after)
    rest = after[place.end():]
    if _HANDED_BEFORE.search(before) or not (_PLACE_BEFORE.search(before) or place.group(1)):
        return False
    return not rest or (rest.startswith("的") and not _GIVEN_AFTER.match(rest))


def _clause(folded: str, m: _Mention, mentions: list[_Mention]) -> tuple[str, str]:
    """The words of the mention's clause before it and after it, the other names in it left out."""
    start = max((s.end() for s in _CLAUSE_END.finditer(folded, 0, m.start)), default=0)
    end = next((s.start() for s in _CLAUSE_END.finditer(folded, m.end)), len(folded))
    others = [o for o in mentions if o is not m and start <= o.start and o.end <= end]
    return _without(folded, start, m.start, others), _without(folded, m.end, end, others)


def _without(folded: str, start: int, end: int, mentions: list[_Mention]) -> str:
    """folded[start:end] with the other names in it left out: 属于东湖区湖滨街道辖区 reads 属于…辖区 for each."""
    parts, at = [], start
    for m in mentions:
        if start <= m.start and m.end <= end:
            parts.append(folded[at:m.start])
            at = m.end
    parts.append(folded[at:end])
    return "".join(parts)

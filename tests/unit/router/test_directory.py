"""The department directory: loading, validation, and category + place → responsible unit."""

from __future__ import annotations

import copy
import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.router.domain.directory import DEMO_CITY, Directory, DirectoryError, UnknownCode

DEMO_EXAMPLES = DEMO_CITY.with_name("demo_examples.csv")

# A tiny city: two districts, three streets, a water company that only serves 甲区.
TINY: dict[str, Any] = {
    "version": "test-1",
    "city": "测试市",
    "units": [
        {"code": "M-CGW", "name": "市城市管理委员会", "type": "municipal", "aliases": ["城管委"],
         "responsibilities": ["CM"]},
        {"code": "M-SWJ", "name": "市水务局", "type": "municipal", "responsibilities": ["PU.WATER"]},
        {"code": "U-ZLS", "name": "甲区自来水公司", "type": "utility", "aliases": ["自来水"],
         "jurisdiction": ["D-01"], "responsibilities": ["PU.WATER"]},
        {"code": "U-GD", "name": "供电公司", "type": "utility", "responsibilities": ["PU.POWER.OUTAGE"]},
    ],
    "districts": [{"code": "D-01", "name": "甲区"}, {"code": "D-02", "name": "乙区"}],
    "streets": [
        {"code": "S-01-01", "name": "东门街道", "parent": "D-01"},
        {"code": "S-01-02", "name": "西门街道", "parent": "D-01"},
        {"code": "S-02-01", "name": "南湖镇", "parent": "D-02"},
    ],
    "categories": [
        {"code": "CM", "name": "城市管理", "scope": "local"},
        {"code": "CM.STALL", "name": "占道经营", "parent": "CM"},
        {"code": "CM.LIGHT", "name": "路灯", "parent": "CM", "scope": "citywide"},
        {"code": "PU", "name": "公用事业", "scope": "citywide", "urgent": True},
        {"code": "PU.WATER", "name": "供水", "parent": "PU"},
        {"code": "PU.WATER.OUTAGE", "name": "停水", "parent": "PU.WATER"},
        {"code": "PU.WATER.BILL", "name": "水费", "parent": "PU.WATER", "urgent": False},
        {"code": "PU.POWER", "name": "供电", "parent": "PU"},
        {"code": "PU.POWER.OUTAGE", "name": "停电", "parent": "PU.POWER"},
        {"code": "PU.HEAT", "name": "供热", "parent": "PU"},
        {"code": "PU.HEAT.COLD", "name": "暖气不热", "parent": "PU.HEAT"},
    ],
    "rules": [
        {"id": "R-001", "description": "停水找自来水公司", "conditions": {"keywords_any": ["停水"]},
         "result": {"lead": "U-ZLS", "co_handlers": ["@district"]}},
    ],
}


def tiny(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(TINY)
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def city() -> Directory:
    return Directory.from_data(TINY)


@pytest.fixture(scope="module")
def demo() -> Directory:
    return Directory.default()


def unit_code(directory: Directory, category: str, district: str | None = None, street: str | None = None) -> str | None:
    assignment = directory.responsible_unit(category, district, street)
    return assignment.unit.code if assignment else None


def problems_of(data: dict[str, Any]) -> str:
    with pytest.raises(DirectoryError) as caught:
        Directory.from_data(data, source="tiny")
    return str(caught.value)


# -- category + place → unit -----------------------------------------------------------


def test_local_matter_in_a_known_street_goes_to_that_street_office(city: Directory) -> None:
    assignment = city.responsible_unit("CM.STALL", "D-01", "S-01-02")
    assert assignment is not None
    assert assignment.unit.code == "S-01-02"
    assert assignment.basis == "local_street"
    assert "西门街道" in assignment.reason


def test_local_matter_with_only_the_district_known_goes_to_the_district(city: Directory) -> None:
    assignment = city.responsible_unit("CM.STALL", "D-02")
    assert assignment is not None
    assert (assignment.unit.code, assignment.basis) == ("D-02", "local_district")


def test_local_matter_without_an_address_goes_to_the_supervising_department(city: Directory) -> None:
    assignment = city.responsible_unit("CM.STALL")
    assert assignment is not None
    assert (assignment.unit.code, assignment.basis, assignment.via_category) == ("M-CGW", "supervisor", "CM")


def test_citywide_matter_goes_to_the_municipal_department_even_with_a_street(city: Directory) -> None:
    assignment = city.responsible_unit("CM.LIGHT", "D-01", "S-01-01")
    assert assignment is not None
    assert (assignment.unit.code, assignment.basis) == ("M-CGW", "responsible")


def test_the_unit_with_the_narrowest_jurisdiction_covering_the_address_wins(city: Directory) -> None:
    assert unit_code(city, "PU.WATER.OUTAGE", "D-01") == "U-ZLS"
    assert unit_code(city, "PU.WATER.OUTAGE", "D-02") == "M-SWJ"
    assert unit_code(city, "PU.WATER.OUTAGE") == "M-SWJ"


def test_a_street_alone_is_enough_to_know_the_district(city: Directory) -> None:
    assert unit_code(city, "PU.WATER.OUTAGE", street="S-01-01") == "U-ZLS"


def test_a_leaf_without_its_own_unit_falls_back_to_its_parent_category(city: Directory) -> None:
    assignment = city.responsible_unit("PU.WATER.BILL", "D-02")
    assert assignment is not None
    assert (assignment.category, assignment.via_category) == ("PU.WATER.BILL", "PU.WATER")
    assert "供水" in assignment.reason


def test_an_explicit_leaf_unit_is_used_without_fallback(city: Directory) -> None:
    assignment = city.responsible_unit("PU.POWER.OUTAGE", "D-02")
    assert assignment is not None
    assert (assignment.unit.code, assignment.via_category) == ("U-GD", "PU.POWER.OUTAGE")


def test_no_unit_anywhere_up_the_taxonomy_gives_none(city: Directory) -> None:
    assert city.responsible_unit("PU.HEAT.COLD", "D-01", "S-01-01") is None


def test_a_street_outside_the_given_district_is_refused(city: Directory) -> None:
    with pytest.raises(ValueError, match="S-02-01.*D-01"):
        city.responsible_unit("CM.STALL", "D-01", "S-02-01")


def test_unknown_codes_raise_with_a_bilingual_message(city: Directory) -> None:
    with pytest.raises(UnknownCode, match="未知类别：NOPE / unknown category: NOPE"):
        city.responsible_unit("NOPE")
    with pytest.raises(UnknownCode, match="unknown street"):
        city.responsible_unit("CM.STALL", street_code="S-09-09")


# -- lookups -----------------------------------------------------------------------------


def test_scope_and_urgency_are_inherited_unless_a_category_says_otherwise(city: Directory) -> None:
    assert city.scope_of("CM.STALL") == "local"
    assert city.scope_of("CM.LIGHT") == "citywide"
    assert city.is_urgent("PU.WATER.OUTAGE") is True
    assert city.is_urgent("PU.WATER.BILL") is False
    assert city.is_urgent("CM.STALL") is False


def test_ancestors_run_from_parent_to_top_level(city: Directory) -> None:
    assert [c.code for c in city.ancestors("PU.WATER.OUTAGE")] == ["PU.WATER", "PU"]
    assert city.ancestors("PU") == ()


def test_leaves_are_the_categories_nobody_names_as_parent(city: Directory) -> None:
    assert {c.code for c in city.leaves()} == {
        "CM.STALL", "CM.LIGHT", "PU.WATER.OUTAGE", "PU.WATER.BILL", "PU.POWER.OUTAGE", "PU.HEAT.COLD",
    }


def test_units_districts_and_streets_are_found_by_code(city: Directory) -> None:
    assert city.unit("U-GD").name == "供电公司"
    assert city.unit("S-01-01").type == "street"
    assert city.district("D-01").jurisdiction == ("D-01",)
    assert [s.code for s in city.streets_of("D-01")] == ["S-01-01", "S-01-02"]
    with pytest.raises(UnknownCode):
        city.district("S-01-01")


def test_search_box_matches_code_name_and_alias_best_first(city: Directory) -> None:
    assert [u.code for u in city.search_units("u-gd")] == ["U-GD"]
    assert [u.code for u in city.search_units("城管委")] == ["M-CGW"]
    assert [u.code for u in city.search_units("门街道")] == ["S-01-01", "S-01-02"]
    assert [u.code for u in city.search_units("自来水")][0] == "U-ZLS"
    assert [u.code for u in city.search_units("甲区")][0] == "D-01"  # exact name before 甲区自来水公司
    assert city.search_units("   ") == []


# -- validation --------------------------------------------------------------------------


def test_a_rule_naming_an_unknown_unit_is_refused() -> None:
    data = tiny()
    data["rules"][0]["result"] = {"lead": "M-NOPE", "co_handlers": ["U-NOPE", "@district"]}
    message = problems_of(data)
    assert "规则 R-001 的主办单位 M-NOPE 不存在" in message
    assert "rule R-001: co-handler U-NOPE does not exist" in message
    assert "@district" not in message


def test_a_street_in_a_missing_district_is_refused() -> None:
    data = tiny()
    data["streets"].append({"code": "S-07-01", "name": "无主街道", "parent": "D-07"})
    assert "street S-07-01: district D-07 does not exist" in problems_of(data)


def test_duplicate_codes_are_refused() -> None:
    data = tiny()
    data["units"].append({"code": "D-01", "name": "重名单位", "type": "municipal"})
    data["categories"].append({"code": "CM.STALL", "name": "又一个占道经营", "parent": "CM"})
    data["rules"].append(copy.deepcopy(data["rules"][0]))
    message = problems_of(data)
    assert "duplicate unit code D-01" in message
    assert "duplicate category code CM.STALL" in message
    assert "duplicate rule id R-001" in message
    assert message.count("\n- ") == 3, "one problem per line"


def test_category_references_are_checked() -> None:
    data = tiny()
    data["categories"] += [
        {"code": "XX.ORPHAN", "name": "孤儿", "parent": "XX"},
        {"code": "PU.MISPLACED", "name": "挂错", "parent": "CM"},
        {"code": "NEW", "name": "无范围"},
    ]
    data["units"][0]["responsibilities"] = ["CM", "CM.NOPE"]
    data["rules"][0]["conditions"]["category"] = ["PU.NOPE"]
    message = problems_of(data)
    assert "category XX.ORPHAN: parent XX does not exist" in message
    assert "category PU.MISPLACED: code must be its parent's code plus one segment" in message
    assert "top-level category NEW needs a scope" in message
    assert "unit M-CGW: category CM.NOPE does not exist" in message
    assert "rule R-001: category PU.NOPE does not exist" in message


def test_rule_places_must_exist_and_a_rule_needs_a_condition() -> None:
    data = tiny()
    data["rules"].append({"id": "R-002", "description": "什么都匹配", "conditions": {},
                          "result": {"lead": "M-CGW"}})
    data["rules"][0]["conditions"].update(districts=["D-09"], streets=["D-01"])
    message = problems_of(data)
    assert "rule R-002 has no conditions" in message
    assert "rule R-001: district D-09 does not exist" in message
    assert "rule R-001: street D-01 does not exist" in message


def test_an_invalid_regex_is_refused_at_load() -> None:
    data = tiny()
    data["rules"][0]["conditions"]["regex"] = "(停水"
    assert "rules.0.conditions.regex" in problems_of(data)


def test_two_units_owning_a_category_in_the_same_place_is_ambiguous() -> None:
    data = tiny()
    data["units"] += [
        {"code": "M-SW2", "name": "另一个水务局", "type": "municipal", "responsibilities": ["PU.WATER"]},
        {"code": "U-ZLS2", "name": "东门供水站", "type": "utility", "jurisdiction": ["S-01-01"],
         "responsibilities": ["PU.WATER"]},
    ]
    message = problems_of(data)
    assert "category PU.WATER has more than one city-wide unit: M-SWJ, M-SW2" in message
    assert "category PU.WATER: units U-ZLS and U-ZLS2 overlap" in message


def test_districts_and_streets_belong_in_their_own_sections() -> None:
    data = tiny()
    data["units"].append({"code": "D-03", "name": "丙区", "type": "district"})
    data["streets"][0]["jurisdiction"] = ["S-01-01", "S-01-02"]
    message = problems_of(data)
    assert "unit D-03: type district belongs under districts/streets" in message
    assert "S-01-01: a district or street covers itself; leave out jurisdiction" in message


def test_shape_errors_name_the_place_in_the_file() -> None:
    data = tiny()
    del data["units"][1]["name"]
    message = problems_of(data)
    assert message.startswith("部门目录有误 / invalid directory (tiny)")
    assert "units.1.name" in message


def test_yaml_files_load_and_unreadable_ones_say_so(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(TINY, allow_unicode=True), encoding="utf-8")
    assert Directory.from_yaml(path).city == "测试市"
    with pytest.raises(DirectoryError, match="cannot read directory"):
        Directory.from_yaml(tmp_path / "missing.yaml")


# -- the demo city -----------------------------------------------------------------------


def test_demo_city_has_its_departments_districts_and_streets(demo: Directory) -> None:
    assert demo.city == "江城市" and demo.version
    assert len([u for u in demo.units if u.type in ("municipal", "utility")]) >= 35
    assert len(demo.districts) == 6
    assert len(demo.streets) >= 55
    assert all(8 <= len(demo.streets_of(d.code)) <= 12 for d in demo.districts)


def test_demo_city_urgent_defaults_cover_water_power_gas_heat_and_safety(demo: Directory) -> None:
    for code in ("PU.WATER.OUTAGE", "PU.POWER.OUTAGE", "PU.GAS.LEAK", "PU.HEAT.FAULT", "PS.FIRE"):
        assert demo.is_urgent(code), code
    assert not demo.is_urgent("PU.WATER.BILL")


def test_demo_city_sends_water_in_the_suburbs_to_the_local_water_company(demo: Directory) -> None:
    assert unit_code(demo, "PU.WATER.OUTAGE", street="S-06-03") == "U-QCSW"
    assert unit_code(demo, "PU.WATER.OUTAGE", street="S-01-03") == "U-ZLS"


def test_every_demo_leaf_resolves_to_a_unit_for_every_street(demo: Directory) -> None:
    unplaced = [
        (leaf.code, street.code)
        for leaf in demo.leaves()
        for street in demo.streets
        if demo.responsible_unit(leaf.code, street_code=street.code) is None
    ]
    assert unplaced == []


def test_demo_examples_use_existing_leaves_that_resolve_with_enough_varied_rows(demo: Directory) -> None:
    with DEMO_EXAMPLES.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["subject", "body", "category"]
    leaves = {leaf.code for leaf in demo.leaves()}
    per_category = Counter(row["category"] for row in rows)
    assert set(per_category) <= leaves, set(per_category) - leaves
    assert min(per_category.values()) >= 8
    for code in per_category:
        assert any(demo.responsible_unit(code, street_code=s.code) for s in demo.streets), code
    assert all(20 <= len(row["body"]) <= 200 for row in rows)
    assert all(row["subject"].strip() for row in rows)
    assert len({row["body"] for row in rows}) == len(rows), "no duplicated example"

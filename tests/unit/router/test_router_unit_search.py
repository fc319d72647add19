"""The dispatcher's unit search on the demo city's directory (services/router/directory/demo_city.yaml): a
dispatcher's own abbreviation (简称) finds the unit by its characters in order, below every closer match."""

from __future__ import annotations

import pytest

from services.router.domain.directory import Directory


@pytest.fixture(scope="module")
def city() -> Directory:
    return Directory.default()


def codes(units) -> list[str]:
    return [u.code for u in units]


@pytest.mark.parametrize("typed", ["市城管委", "城管局", "mcgw"])
def test_an_abbreviation_the_directory_does_not_list_finds_the_city_management_committee(city, typed):
    assert codes(city.search_units(typed))[:1] == ["M-CGW"]  # 市城市管理委员会, 城管执法局, M-CGW
    assert codes(city.resolve_unit(typed)) == ["M-CGW"]


def test_the_characters_in_order_rank_below_exact_names_and_prefixes(city):
    assert codes(city.search_units("城管委")) == ["M-CGW", "M-GXQ"]  # the alias, then 江城高新区管理委员会
    assert codes(city.search_units("市城")) == ["M-CGW", "M-ZJW"]  # 市城市管理…, then 市住房和城乡…
    assert codes(city.search_units("市政")) == ["M-ZFB", "M-ZWFW", "M-MZJ", "M-CZJ"]  # 市政… before 市民政局
    assert codes(city.search_units("政局")) == ["M-MZJ", "M-CZJ", "M-ZWFW"]  # 市政务服务管理局 only spreads it


def test_among_units_holding_the_characters_in_order_the_fewest_skipped_come_first(city):
    # 市医疗保障局 skips two characters, 市人力资源和社会保障局 seven: the directory lists the latter first.
    assert codes(city.search_units("市保障")) == ["M-YBJ", "M-RSJ"]


def test_a_name_that_contains_the_text_wins_over_one_that_only_holds_its_characters_in_order(city):
    assert codes(city.resolve_unit("公安")) == ["M-GAJ", "M-JGJ"]  # both contain it; no third by spread letters
    assert codes(city.resolve_unit("城管")) == ["M-CGW"]  # the alias, exactly
    assert codes(city.resolve_unit("市城")) == ["M-CGW"]  # 市城市管理委员会 begins so; 市住房和城乡… only spreads it
    assert city.resolve_unit("火星办事处") == ()

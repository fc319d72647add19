"""Intake's copy of the directory's public part: whether a street lies in the district given with it."""

import yaml

from schemas.events import DirectoryPublished
from services.intake.domain.places import Places
from services.router.domain.directory import DEMO_CITY

DEMO = Places.from_file_data(yaml.safe_load(DEMO_CITY.read_text(encoding="utf-8")))


def test_the_demo_city_file_gives_every_district_street_and_category():
    assert DEMO.published is None and DEMO.activated_at is None and DEMO.version == "2026.1"
    assert len(DEMO.districts) == 6 and sum(len(d.streets) for d in DEMO.districts) == 60
    assert DEMO.category_names["CM"] == "城市管理"


def test_a_street_in_its_own_district_fits():
    assert DEMO.street_outside_district("D-01", "S-01-03") is None


def test_a_street_of_another_district_is_named_with_both_districts_in_chinese_and_english():
    zh, en = DEMO.street_outside_district("D-02", "S-01-03")
    assert zh == "解放路街道（S-01-03）属于临江区（D-01），不在东湖区（D-02），请重新选择区或街道"
    assert en == "street S-01-03 is in district D-01, not in D-02: choose the district or the street again"


def test_a_street_or_district_alone_or_a_code_not_known_is_left_to_the_router():
    assert DEMO.street_outside_district(None, "S-01-03") is None
    assert DEMO.street_outside_district("D-02", None) is None
    assert DEMO.street_outside_district("D-99", "S-01-03") is None
    assert DEMO.street_outside_district("D-02", "S-99-99") is None


def test_the_published_part_gives_the_same_answers_as_the_file():
    published = Places.from_event(DirectoryPublished(
        version="2026.1", version_id=1, activated_at="2026-11-24T09:00:00Z", districts=list(DEMO.districts),
        categories=list(DEMO.categories)))
    assert published.street_outside_district("D-02", "S-01-03") == DEMO.street_outside_district("D-02", "S-01-03")
    assert published.category_names == DEMO.category_names and published.activated_at is not None


PUBLISHED = Places.from_event(DirectoryPublished(
    version="2026.1", version_id=1, activated_at="2026-11-24T09:00:00Z", districts=list(DEMO.districts),
    categories=list(DEMO.categories)))


def test_codes_the_router_published_without_are_named_by_field_in_chinese_and_english():
    assert PUBLISHED.unknown_codes("D-01", "S-01-03", "CM.ORDER.ADS") == []
    assert PUBLISHED.unknown_codes(None, None, None) == []
    assert PUBLISHED.unknown_codes("D-99", "S-99-01", "XX.NOPE") == [
        ("location.district", "部门目录中没有区代码 D-99，请从列表中重新选择",
         "the directory has no district with code D-99: choose one from the list"),
        ("location.street", "部门目录中没有街道代码 S-99-01，请从列表中重新选择",
         "the directory has no street with code S-99-01: choose one from the list"),
        ("category", "部门目录中没有类别代码 XX.NOPE，请从列表中重新选择",
         "the directory has no category with code XX.NOPE: choose one from the list")]
    assert [field for field, *_ in PUBLISHED.unknown_codes("S-01-03", "D-01", None)] == [
        "location.district", "location.street"]  # a street's code is no district's, and the other way round


def test_codes_missing_from_the_file_are_left_to_the_router_until_it_publishes_its_directory():
    assert DEMO.unknown_codes("D-99", "S-99-01", "XX.NOPE") == []

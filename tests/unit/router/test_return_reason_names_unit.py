"""The unit a return reason (退单理由) names as responsible, read as a dispatcher would read it.

A unit counts only when the reason gives the matter to it by a name the directory knows (its name, its name
without the city, or a distinctive alias): not an address, not a unit it refuses, not a word that only resembles
a name, and not the unit that wrote the reason."""

from __future__ import annotations

import pytest

from services.router.domain.directory import Directory
from services.router.domain.return_reason import units_named

CITY = Directory.default()
CGW = "M-CGW"  # 市城市管理委员会, the unit that most often sends a ticket back


def named(text: str, *returned_by: str) -> list[tuple[str, str]]:
    return [(n.unit.code, n.words) for n in units_named(CITY, text, returned_by=returned_by or (CGW,))]


@pytest.mark.parametrize(("reason", "expected"), [
    ("此事应由市生态环境局办理", [("M-STHJ", "市生态环境局")]),
    ("经现场核实，该厂夜间排放废气，属于环保局职责，请转交处理。", [("M-STHJ", "环保局")]),
    ("此事应由江城市生态环境局办理", [("M-STHJ", "江城市生态环境局")]),
    ("建议转市住建委督促开发商整改", [("M-ZJW", "市住建委")]),
    ("该路段路灯归供电公司管理，非我委职责", [("U-GD", "供电公司")]),
    ("小区二次供水设施产权属江城自来水集团，请自来水集团处理", [("U-ZLS", "江城自来水集团")]),
    ("电梯维保不到位，应由市场监督管理局查处", [("M-SCJG", "市场监督管理局")]),
    ("责任单位：市水务局", [("M-SWJ", "市水务局")]),
    ("市水务局", [("M-SWJ", "市水务局")]),
])
def test_a_reason_that_gives_the_matter_to_a_unit_names_it(reason, expected):
    assert named(reason) == expected


def test_a_street_named_with_its_district_is_the_street_office():
    assert named("属于东湖区湖滨街道辖区，请转湖滨街道办事处") == [("S-02-02", "湖滨街道")]
    assert named("经核实该小区属新港区科技城街道，应由科技城街道办事处负责") == [("S-05-04", "科技城街道")]


def test_the_unit_that_wrote_the_reason_naming_itself_names_no_one():
    assert named("此事应由市生态环境局办理", "M-STHJ") == []
    assert named("该处属于东湖区湖滨街道辖区", "S-02-02") == []  # the district only placed the street
    assert named("本单位（市城市管理委员会）经核实，应由市住建委处理") == [("M-ZJW", "市住建委")]


def test_a_unit_that_sent_the_ticket_back_before_is_not_named_again():
    assert named("应由市城管委处理", "M-ZJW", "M-CGW") == []


def test_a_name_inside_a_longer_name_is_the_longer_ones_unit():
    assert named("应由市公安局交通管理局处理") == [("M-JGJ", "市公安局交通管理局")]
    assert named("应由市公安局处理") == [("M-GAJ", "市公安局")]
    assert named("请转青川区供水有限公司处理") == [("U-QCSW", "青川区供水有限公司")]  # not 青川区


@pytest.mark.parametrize("reason", [
    "请转城管处理",  # 城管: the matter, not a name
    "燃气管道漏气属燃气问题，请专业部门处理",
    "自来水水质问题，请相关部门处理",
    "施工会产生噪音，工地属于住建部门监管",  # 工会 is no name, 住建部门 no unit
    "该工地位于开发区，应由开发区管委会处理",  # not a unit of this city
])
def test_ordinary_words_and_units_the_directory_does_not_have_name_no_unit(reason):
    assert named(reason) == []


def test_a_short_form_ending_in_ban_is_not_read_into_banli():
    assert named("应由东湖区政府办理") == [("D-02", "东湖区")]  # not 政府办 (市人民政府办公厅)


def test_an_address_names_no_unit():
    assert named("投诉地点在东湖区青山街道幸福小区，非我委职责") == []
    assert named("地址：东湖区青山街道幸福小区3号楼，经核实不属于我委职责") == []


def test_a_unit_the_reason_refuses_is_not_named():
    assert named("不属于市住建委职责", "M-STHJ") == []
    assert named("此事与市住建委无关，应由市城管委处理", "M-STHJ") == [("M-CGW", "市城管委")]
    assert named("不属于本单位职责应由市住建委负责") == [("M-ZJW", "市住建委")]  # the refusal is of itself


def test_a_word_that_only_resembles_a_district_is_not_it():
    assert named("该厂属于新港区域内企业，应由市生态环境局查处") == [("M-STHJ", "市生态环境局")]  # not 新港区


def test_several_units_are_named_in_the_order_written_each_once():
    assert named("应由市住建委牵头、市城管委配合处理，市住建委负责督办", "M-STHJ") == [
        ("M-ZJW", "市住建委"), ("M-CGW", "市城管委")]


def test_full_width_punctuation_and_spaces_are_read_as_written():
    assert named("不属于我委职责；应由 市生态环境局 办理！") == [("M-STHJ", "市生态环境局")]


@pytest.mark.parametrize(("reason", "expected"), [
    # A district's own bureau: the directory's district (its government) is meant, in the words written.
    ("经核实，该小区加装电梯审批属东湖区住建局职责，请转东湖区住建局办理", [("D-02", "东湖区住建局")]),
    ("此事应由西山区市场监督管理局查处", [("D-03", "西山区市场监督管理局")]),
    ("东湖区住建局负责", [("D-02", "东湖区住建局")]),
    # A district or county the directory does not have, or none said: no unit, not the city's department.
    ("该违建位于青山区，应由青山区住建局依法处置", []),
    ("经核实，此事属于某某县住建局职责范围", []),
    ("该工地在高新区，应由高新区住建局负责", []),
    ("请转区住建局处理", []),
    ("属于辖区住建局监管范围，请转办", []),
])
def test_a_city_departments_name_after_a_districts_is_that_districts_bureau_not_the_city_department(reason, expected):
    assert named(reason, CGW, "M-STHJ") == expected


def test_the_city_department_is_still_named_when_no_district_stands_right_before_it():
    assert named("投诉地点在东湖区，应由市住建委处理") == [("M-ZJW", "市住建委")]
    assert named("应由江城市住建局处理") == [("M-ZJW", "江城市住建局")]
    assert named("不属于东湖区职责，应由住建局处理") == [("M-ZJW", "住建局")]


def test_a_district_bureau_the_directory_has_is_that_bureau():
    data = CITY.model_dump()
    data["units"] = [*data["units"], {"code": "D-02-ZJJ", "name": "东湖区住房和城乡建设局", "type": "municipal",
                                      "jurisdiction": ["D-02"], "aliases": ["东湖区住建局"]}]
    city = Directory.from_data(data)
    assert [(n.unit.code, n.words) for n in units_named(city, "此事应由东湖区住建局办理", returned_by=(CGW,))] == [
        ("D-02-ZJJ", "东湖区住建局")]
    assert [n.unit.code for n in units_named(city, "此事应由东湖区住房和城乡建设局办理", returned_by=(CGW,))] == [
        "D-02-ZJJ"]


def test_a_utilitys_office_in_a_district_is_the_utility():
    assert named("表前线路属东湖区供电公司维护，请转供电公司处理") == [("U-GD", "东湖区供电公司")]


@pytest.mark.parametrize(("reason", "expected"), [
    ("属于东湖区，应由市住建委处理", [("M-ZJW", "市住建委")]),
    ("经核实，该小区位于东湖区辖区内，加装电梯事宜应由市住建委负责", [("M-ZJW", "市住建委")]),
    ("经核实，该地块属东湖区湖滨街道辖区，违法占地应由市规划和自然资源局依法查处", [("M-GHZY", "市规划和自然资源局")]),
    ("该路段属于湖滨街道，路灯线路请转供电公司处理", [("U-GD", "供电公司")]),
    ("属于东湖区的市管道路，应由市城管委负责养护", [("M-CGW", "市城管委")]),
    ("投诉地址属于东湖区辖区范围，属于市住建委职责", [("M-ZJW", "市住建委")]),
    ("属于湖滨街道，应由东湖区处理", [("D-02", "东湖区")]),  # the street only placed it: the district is given it
])
def test_a_district_or_street_that_only_places_the_matter_is_not_named_beside_the_unit_given_it(reason, expected):
    assert named(reason, "M-STHJ") == expected


@pytest.mark.parametrize(("reason", "expected"), [
    # Given the matter itself (职责、管辖、请、由…), a district stays beside the unit.
    ("属于东湖区职责，请市住建委配合", [("D-02", "东湖区"), ("M-ZJW", "市住建委")]),
    ("属于东湖区的职责，应由市住建委协助", [("D-02", "东湖区"), ("M-ZJW", "市住建委")]),
    ("属于东湖区管辖，应由市住建委处理", [("D-02", "东湖区"), ("M-ZJW", "市住建委")]),
    ("属于东湖区辖区，建议由东湖区协调市住建委处理", [("D-02", "东湖区"), ("M-ZJW", "市住建委")]),
    ("应由东湖区辖区内的街道办事处处理，请市住建委指导", [("D-02", "东湖区"), ("M-ZJW", "市住建委")]),
    # The place and the unit given the matter are one: it is named.
    ("该小区属于湖滨街道辖区，请转湖滨街道办理", [("S-02-02", "湖滨街道")]),
    ("属于东湖区辖区，请转东湖区住建局办理", [("D-02", "东湖区")]),
    # Nothing else is given the matter: the place is what the reason says.
    ("该处属于东湖区辖区", [("D-02", "东湖区")]),
    ("该河道属于东湖区和西山区", [("D-02", "东湖区"), ("D-03", "西山区")]),
    ("属于东湖区，非我局职责", [("D-02", "东湖区")]),
    ("东湖区、市住建委", [("D-02", "东湖区"), ("M-ZJW", "市住建委")]),
    # Only a district or a street is a place: a department the matter belongs to (属于) is given it.
    ("废气扰民属于市城管委，请市住建委配合", [("M-CGW", "市城管委"), ("M-ZJW", "市住建委")]),
])
def test_a_district_given_the_matter_or_the_only_one_named_is_still_named(reason, expected):
    assert named(reason, "M-STHJ") == expected

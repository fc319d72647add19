"""The category a unit named by a return reason (退单理由指明) carries: one the directory gives that unit.

A dispatcher taking the named unit with one key takes this category too, and it becomes the assignment's and a
training example's. So it must be the named unit's, the best-ranked of those; never another unit's, and none at all
rather than a wrong one."""

from __future__ import annotations

from services.router.domain.decide import category_handled_by
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts

CITY = Directory.default()
AT_HUBIN = TicketFacts(subject="小区问题", description="反映小区的问题", district="D-02", street="S-02-02")
NOWHERE = TicketFacts(subject="小区问题", description="反映小区的问题")


def category(code: str, ranked: list[str], facts: TicketFacts = AT_HUBIN) -> str | None:
    return category_handled_by(CITY, CITY.unit(code), ranked, facts)


def test_the_best_ranked_of_the_named_units_own_categories_is_taken_past_other_units_ones():
    ranked = ["PU.POWER.OUTAGE", "HC.CONSTRUCTION.DUST", "EN.AIR.EMISSION", "EN.WATER"]
    assert category("M-STHJ", ranked) == "EN.AIR.EMISSION"


def test_a_local_matter_is_its_supervising_departments_where_a_street_office_handles_it_at_the_address():
    # 物业服务 at 湖滨街道 is the street office's; 市住建委 supervises it (the directory's answer without an address).
    assert category("M-ZJW", ["PU.POWER.OUTAGE", "HC.PROPERTY.SERVICE"]) == "HC.PROPERTY.SERVICE"
    assert category("S-02-02", ["PU.POWER.OUTAGE", "HC.PROPERTY.SERVICE"]) == "HC.PROPERTY.SERVICE"


def test_a_street_office_named_for_a_ticket_without_an_address_handles_local_matters_at_its_own_place():
    assert category("S-02-02", ["EN.AIR.EMISSION", "CM.SANITATION.GARBAGE"], NOWHERE) == "CM.SANITATION.GARBAGE"
    assert category("D-02", ["EN.AIR.EMISSION", "CM.SANITATION.GARBAGE"], NOWHERE) == "CM.SANITATION.GARBAGE"


def test_a_broad_responsibility_does_not_take_a_category_the_directory_gives_a_narrower_unit():
    # 市城管委 is responsible for 公用事业 (PU) as a whole, but 停电 is the power company's.
    assert category("M-CGW", ["PU.POWER.OUTAGE"]) is None
    assert category("U-GD", ["PU.POWER.OUTAGE"]) == "PU.POWER.OUTAGE"


def test_a_named_unit_that_handles_none_of_the_categories_gets_none():
    assert category("M-STHJ", ["PU.POWER.OUTAGE", "HC.PROPERTY.SERVICE"]) is None
    assert category("M-STHJ", []) is None
    assert category("M-FGW", ["EN.AIR.EMISSION"]) is None  # 发改委 handles no category at all


def test_an_unknown_category_or_a_street_outside_the_district_is_passed_over():
    assert category("M-STHJ", ["XX.UNKNOWN", "EN.WATER"]) == "EN.WATER"
    astray = TicketFacts(subject="x", description="x", district="D-01", street="S-02-02")
    assert category("M-STHJ", ["EN.WATER"], astray) == "EN.WATER"  # asked without the place

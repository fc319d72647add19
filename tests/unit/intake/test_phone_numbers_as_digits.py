"""A caller's phone number is stored as its digits (and a leading + for an international one), however it was
typed, so that the same caller is one number to the repeat look-up (重复件) and to the caller's history."""

import pytest
from pydantic import ValidationError

from jiesu.errors import validation_fields
from jiesu.text import plain_phone as read_phone
from services.intake.domain.submission import TicketSubmission

BASE = {"kind": "complaint", "subject": "工地夜间施工噪音", "description": "晚上十一点以后还在打桩。"}


def phone_of(typed: str) -> str:
    return TicketSubmission.model_validate({**BASE, "citizen": {"phone": typed}}).citizen.phone


@pytest.mark.parametrize("typed", ["13900001111", "139-0000-1111", "139 0000 1111", " 139-0000 1111 ",
                                   "１３９００００１１１１", "１３９－００００－１１１１", "139—0000—1111", "139‐0000‐1111",
                                   "139　0000　1111"])
def test_a_mobile_typed_with_dashes_spaces_or_full_width_digits_is_stored_as_its_digits(typed):
    assert phone_of(typed) == "13900001111"


@pytest.mark.parametrize("typed, stored", [("(010)1234-5678", "01012345678"), ("（０１０）１２３４－５６７８", "01012345678"),
                                           ("010-12345678", "01012345678"), ("+86 139 0000 1111", "+8613900001111"),
                                           ("＋86-139-0000-1111", "+8613900001111"), ("(+86) 139 0000 1111", "+8613900001111")])
def test_a_landline_with_its_area_code_in_brackets_or_an_international_number_keeps_only_digits_and_the_plus(
        typed, stored):
    assert phone_of(typed) == stored


def test_no_number_is_an_empty_one():
    assert phone_of("") == phone_of("   ") == ""


@pytest.mark.parametrize("typed", ["139abc0000", "139+00001111", "1-2-3-4", "----", "电话13900001111"])
def test_a_number_that_cannot_be_one_is_refused_saying_what_a_number_may_hold(typed):
    with pytest.raises(ValidationError) as err:
        phone_of(typed)
    (field,) = validation_fields(err.value.errors())
    assert field["field"] == "citizen.phone" and field["type"] == "phone_format"
    assert field["zh"] == "只能由数字组成（可用空格、“-”或括号分隔），可以“+”开头，至少 5 位"
    assert field["en"] == ("phone number may contain digits (spaced by spaces, '-' or brackets) and a leading '+' only, "
                           "at least 5 digits")


def test_the_repeat_look_up_reads_a_number_as_tickets_store_it():
    assert read_phone(" 139-0000 1111") == read_phone("１３９００００１１１１") == phone_of("139 0000-1111")

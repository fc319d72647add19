"""A ticket number typed with spaces for its dashes, or as its 19 digits alone, is read as the number: the look-up
said 未查到 (and counted a failed look-up) though the README said spaces were read as typed plainly."""

import pytest

from services.intake.domain.submission import read_number

NUMBER = "12345-20261125-000003"


@pytest.mark.parametrize("typed", [
    "12345 20261125 000003",  # read aloud and typed in groups
    "1234520261125000003",  # the digits alone
    " 1234520261125000003\n",  # pasted
    "１２３４５　２０２６１１２５　０００００３",  # full-width digits and spaces
    "12345 20261125-000003",  # a space and a dash
])
def test_a_ticket_number_typed_with_spaces_for_its_dashes_or_as_its_digits_alone_is_read_as_the_number(typed):
    assert read_number(typed) == NUMBER


@pytest.mark.parametrize("typed", [
    "123452026112500003",  # 18 digits
    "12345202611250000031",  # 20 digits
    "1234620261125000003",  # 19 digits, but not the hotline's number
    "12345 2026112５ 00000٣",  # an Arabic-Indic digit is not a digit of a ticket number
])
def test_digits_that_cannot_be_a_ticket_number_stay_not_one(typed):
    assert read_number(typed) is None

"""A ticket number is read as typed plainly only in its own groups (12345-YYYYMMDD-NNNNNN, with any dash or spaces
between them) or as its 19 digits alone: read_number took out every dash and space and read any 19 digits, so
digits split at the wrong places (1234-520261125-000003) were read as a ticket number."""

import pytest

from services.intake.domain.submission import read_number

NUMBER = "12345-20261125-000003"


@pytest.mark.parametrize("typed", [
    "12345-20261125-000003",  # as printed
    "１２３４５－２０２６１１２５－０００００３",  # full-width digits and dash
    "12345——20261125—000003",  # a Chinese keyboard's dashes
    "12345 20261125 000003",  # spaces for the dashes
    "12345 - 20261125 - 000003",  # spaced-out dashes
    "12345\u300020261125\u3000000003",  # full-width spaces
    "  1234520261125000003 ",  # the 19 digits alone, pasted
])
def test_a_ticket_number_in_its_own_groups_or_as_its_digits_alone_is_read_as_the_number(typed):
    assert read_number(typed) == NUMBER


@pytest.mark.parametrize("typed", [
    "1234-520261125-000003",  # the first dash one digit early
    "12345-2026112-5000003",  # the second dash one digit early
    "123452026-1125000003",  # one dash inside the date
    "12345-20261125000003",  # one dash only
    "1234520261125-000003",  # the other dash only
    "12345 2026 1125 000003",  # the date split in two
    "1 2 3 4 5 2 0 2 6 1 1 2 5 0 0 0 0 0 3",  # a space between every digit
    "-12345-20261125-000003",  # a dash before the number
    "12345-20261125-000003-",  # and after it
])
def test_digits_split_at_the_wrong_places_are_not_a_ticket_number(typed):
    assert read_number(typed) is None

"""A citizen's look-up reads the ticket number and the query code as typed plainly: a Chinese keyboard's full-width
characters and dashes and pasted spaces made a valid number "not found" (and used up its failed look-ups)."""

import pytest

from services.intake.domain.submission import plain, read_number, read_query_code

NUMBER = "12345-20261125-000001"


@pytest.mark.parametrize("typed", [
    "12345－20261125－000001",  # full-width hyphen-minus (U+FF0D), a Chinese keyboard's -
    "12345—20261125—000001",  # em dash
    "12345——20261125——000001",  # a Chinese keyboard's shifted -: two em dashes
    "12345‐20261125‐000001",  # hyphen (U+2010)
    "12345–20261125−000001",  # en dash, minus sign
    "１２３４５－２０２６１１２５－０００００１",  # full-width digits
    "  12345-20261125-000001 \n",  # pasted with the spaces around it
    "\u300012345 - 20261125 - 000001\u00a0",  # full-width and no-break spaces, spaced out
])
def test_a_ticket_number_typed_with_full_width_characters_any_dash_or_spaces_is_read_as_the_number(typed):
    assert read_number(typed) == NUMBER


@pytest.mark.parametrize("typed", ["", "12345-2026112-000001", "12345_20261125_000001", "12345-٢٠٢٦١١٢٥-000001",
                                   "12345-20261125-0000011", "工单12345-20261125-000001"])
def test_what_is_not_a_ticket_number_stays_not_one(typed):
    assert read_number(typed) is None


def test_a_query_code_in_full_width_letters_or_with_a_long_dash_is_read_as_printed():
    for typed in ("ＡＢＣＤ－ＥＦＧＨ", "abcd—efgh", " ABCD ‐ EFGH ", "ａｂｃｄｅｆｇｈ"):
        assert read_query_code(typed) == "ABCDEFGH", typed


def test_the_last_four_digits_of_a_phone_in_full_width_are_plain_digits():
    assert plain(" ８０００　") == "8000"

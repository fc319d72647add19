"""One validation layer for every channel: what a submission may and may not say."""

import pytest
from pydantic import ValidationError

from services.intake.domain.submission import TicketSubmission, new_query_code, read_query_code, show_query_code

BASE = {"kind": "consultation", "subject": "医保异地报销", "description": "在外地住院怎么报销？"}


def test_an_answer_on_the_call_travels_as_answer():
    sub = TicketSubmission.model_validate({**BASE, "answer": "持备案凭证直接结算，咨询电话 12393。"})
    assert sub.answer.startswith("持备案凭证")


def test_a_blank_answer_is_refused():
    with pytest.raises(ValidationError) as err:
        TicketSubmission.model_validate({**BASE, "answer": "  "})
    assert err.value.errors()[0]["loc"] == ("answer",)


def test_answered_directly_and_duplicate_at_once_is_refused():
    with pytest.raises(ValidationError, match="cannot also be attached"):
        TicketSubmission.model_validate({**BASE, "answer": "已答复", "duplicate_of_number": "12345-20261120-000001"})


def test_duplicate_of_must_look_like_a_ticket_number():
    with pytest.raises(ValidationError) as err:
        TicketSubmission.model_validate({**BASE, "duplicate_of_number": "abc"})
    assert err.value.errors()[0]["type"] == "string_pattern_mismatch"


def test_text_is_kept_exactly_as_given():
    text = "  <b>原样</b>\n保存  "
    assert TicketSubmission.model_validate({**BASE, "description": text}).description == text


def test_query_codes_are_read_as_printed_or_as_typed_and_nothing_else():
    codes = {new_query_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert read_query_code(show_query_code(code)) == code
        assert read_query_code(f" {code.lower()[:4]} {code.lower()[4:]}") == code
    # Characters people misread are never in a code, so one typed with them is none.
    assert all(ch not in code for code in codes for ch in "01IO")
    assert read_query_code("ABCD-EFG0") is None and read_query_code("ABCD-EFGHJ") is None
    assert read_query_code("ABCD-EFG") is None and read_query_code("1234") is None and read_query_code("") is None
    assert show_query_code(None) == ""

"""直接办结 (answered on the call) refused where it cannot stand: with a repeat merged into another ticket (并入), and
for an urgent matter, which must be dispatched. Each refusal names its field and says what to do, in Chinese and
English, as the console and the API show it."""

import pytest
from pydantic import ValidationError

from jiesu.errors import validation_fields
from services.intake.domain.submission import TicketSubmission

GAS = {"kind": "report", "subject": "楼道里有燃气味", "description": "三单元楼道燃气味很重，担心泄漏。"}
ANSWER = "已告知关闭总阀、开窗通风，勿开关电器。"


def refusal(**body) -> dict:
    with pytest.raises(ValidationError) as err:
        TicketSubmission.model_validate(body)
    (field,) = validation_fields(err.value.errors())
    return field


def test_a_call_answered_directly_and_merged_into_another_ticket_is_refused_by_the_merge_field():
    field = refusal(**GAS, answer=ANSWER, duplicate_of_number="12345-20261120-000001")
    assert field["field"] == "duplicate_of_number"
    assert field["zh"] == "直接办结的来电不能同时并入其他工单：请取消“直接办结”，或不并入"
    assert "cannot also be attached to another ticket" in field["en"] and "直接办结" in field["en"]


def test_an_urgent_call_answered_directly_is_refused_by_the_answer_field():
    field = refusal(**GAS, urgency="urgent", answer=ANSWER)
    assert field["field"] == "answer"
    assert field["zh"] == "紧急事项须派单办理，不能直接办结：请取消“直接办结”"
    assert "urgent matter must be dispatched" in field["en"]


@pytest.mark.parametrize("kind", ["consultation", "help", "complaint", "report", "suggestion", "praise"])
def test_a_call_of_any_kind_that_is_not_urgent_may_be_answered_directly(kind):
    sub = TicketSubmission.model_validate({**GAS, "kind": kind, "urgency": "normal", "answer": ANSWER})
    assert sub.answer == ANSWER


def test_an_urgent_call_may_be_logged_and_merged_into_an_open_ticket():
    sub = TicketSubmission.model_validate({**GAS, "urgency": "urgent", "duplicate_of_number": "12345-20261120-000001"})
    assert sub.duplicate_of_number == "12345-20261120-000001" and sub.answer is None

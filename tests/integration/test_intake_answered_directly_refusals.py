"""The hotline API refuses 直接办结 where it cannot stand, naming the field in Chinese and English (as the console
shows it beside the field), and records nothing: merged into another ticket (并入) at once, or an urgent matter.

It said only "(body)：取值不正确" for the first and accepted the second, which was then never dispatched."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.intake.store import tickets
from tests.integration.test_intake_phone_digits import intake  # noqa: F401 (a fixture)

GAS = {"kind": "report", "subject": "楼道里有燃气味", "description": "三单元楼道燃气味很重，担心泄漏。",
       "citizen": {"name": "王芳", "phone": "13700001234"}}
ANSWER = "已告知关闭总阀、开窗通风，勿开关电器。"


@pytest.mark.parametrize("body, field, zh", [
    ({**GAS, "answer": ANSWER, "duplicate_of_number": "12345-20261120-000001"}, "duplicate_of_number",
     "直接办结的来电不能同时并入其他工单：请取消“直接办结”，或不并入"),
    ({**GAS, "urgency": "urgent", "answer": ANSWER}, "answer", "紧急事项须派单办理，不能直接办结：请取消“直接办结”"),
])
async def test_answered_directly_with_a_merge_or_for_an_urgent_matter_is_refused_by_its_field(
        intake, body, field, zh):  # noqa: F811
    rt, client, token = intake
    r = await client.post("/api/v1/intake/tickets", json=body,
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["fields"] == [{"field": field, "type": error["fields"][0]["type"], "zh": zh,
                                "en": error["fields"][0]["en"]}]
    assert error["zh"] == f"提交的内容有误：{field}：{zh}" and "(body)" not in error["message"]
    assert "直接办结" in error["en"]
    async with rt.store("intake").db.session() as s:
        assert await s.scalar(select(func.count()).select_from(tickets)) == 0

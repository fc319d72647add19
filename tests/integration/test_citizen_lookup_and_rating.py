"""The citizen's side of the running system, over the real broker: an online citizen is offered the one-time rating
link (评价) of the reply on the progress page and by mail, and rates through it; the look-up reads a number typed on
a Chinese keyboard; a ticket answered on the call shows the answer.

Before, the link went only into ReturnVisitDue, which nothing delivered to the citizen; a number with full-width
characters, dashes or spaces was "not found"; and 直接办结 showed 尚未答复."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from jiesu.config import Settings
from schemas.enums import Role
from services.intake.store import rate_limits
from tests.integration.test_tracker_notifications import _until
from tests.integration.test_tracker_workflow import CALL, REPLY, Desk, bearer

EMAIL = "zhangwei@example.cn"
FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")
CTA = "评价办理结果"


@pytest.fixture
def sqlite_settings(tmp_path, outgoing) -> Settings:
    """The live system's settings with outgoing mail to the sink (overrides the conftest fixture)."""
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    mail_host="127.0.0.1", mail_port=outgoing[1], mail_from="12345@city.example",
                    public_url="https://12345.city.example", _env_file=None)


@pytest.fixture
async def desk(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        yield Desk(live, client)


async def look_up(desk: Desk, number: str, proof: str = "8000") -> tuple[dict, str]:
    """The API's answer and the page's text."""
    api = await desk.client.post("/api/v1/intake/progress", json={"number": number, "phone_last4": proof})
    page = await desk.client.post("/intake/progress", data={"number": number, "proof": proof})
    assert api.status_code == page.status_code == 200, (api.text, page.text[-500:])
    return api.json(), page.text


async def shown(desk: Desk, number: str, state: str) -> tuple[dict, str]:
    """The look-up once intake shows `state`."""
    deadline = asyncio.get_running_loop().time() + 15
    while (found := await look_up(desk, number))[0]["state"] != state:
        assert asyncio.get_running_loop().time() < deadline, found[0]
        await asyncio.sleep(0.1)
    return found


async def test_an_online_citizen_is_offered_the_rating_link_on_the_page_and_by_mail_until_rating_through_it(
        desk, live, outgoing):
    sink, _ = outgoing
    op = await desk.as_("op", Role.OPERATOR)
    r = await desk.client.post("/api/v1/intake/messages", params={"channel": "online"}, headers=bearer(op),
                               json={**CALL, "citizen": {**CALL["citizen"], "email": EMAIL}})
    assert r.status_code == 201, r.text
    t = await desk.wait(r.json()["number"], "assigned")
    number = t["number"]
    await desk.as_("dept", Role.DEPARTMENT, department=t["lead"]["code"])
    await desk.act("dept", number, "sign-for")
    view, page = await shown(desk, number, "signed_for")
    assert "rating_link" not in view and CTA not in page

    await desk.act("dept", number, "reply", {"reply": REPLY})
    deadline = asyncio.get_running_loop().time() + 15
    while "rating_needs_query_code" not in (view := (await look_up(desk, number))[0]):
        assert asyncio.get_running_loop().time() < deadline, view
        await asyncio.sleep(0.1)
    # The phone's last four digits, which the handling unit sees too, show the state and the reply, not the link:
    # the unit would rate itself.
    view, page = await look_up(desk, number)
    assert "rating_link" not in view and view["rating_needs_query_code"] is True
    assert "/tracker/rate/" not in page and CTA not in page and "请用受理页面或受理回执邮件上的查询码查询本工单" in page
    view, page = await look_up(desk, number, r.json()["query_code"])
    link = view["rating_link"]
    assert view["state_label"] == "已答复" and view["reply"] == REPLY
    assert link.startswith("https://12345.city.example/tracker/rate/")
    assert CTA in page and f'href="{link}"' in page

    invitation = await _until(lambda: next((m for m in sink.messages if "【请评价】" in m["Subject"]), None))
    assert invitation["To"] == EMAIL and number in invitation["Subject"]
    text = invitation.get_body(("plain",)).get_content()
    assert link in text and REPLY in text

    rated = await desk.client.post("/tracker/rate/" + link.rsplit("/tracker/rate/", 1)[1],
                                   data={"outcome": "satisfied", "comment": "处理及时"})
    assert rated.status_code == 200 and "感谢您的评价" in rated.text
    view, page = await shown(desk, number, "closed")
    assert "rating_link" not in view and CTA not in page and REPLY in page
    view, page = await look_up(desk, number, r.json()["query_code"])
    assert "rating_link" not in view and CTA not in page
    assert sum("【请评价】" in m["Subject"] for m in sink.messages) == 1


async def test_the_look_up_reads_a_number_typed_on_a_chinese_keyboard_and_shows_an_answer_given_on_the_call(
        desk, live):
    op = await desk.as_("op", Role.OPERATOR)
    answer = "持备案凭证可在就医地直接结算，详询医保咨询电话 12393。"
    r = await desk.client.post("/api/v1/intake/tickets", headers=bearer(op), json={
        "kind": "consultation", "subject": "医保异地报销", "description": "在外地住院怎么报销？",
        "citizen": {"name": "张伟", "phone": "13800138000"}, "answer": answer})
    assert r.status_code == 201, r.text
    number = r.json()["number"]

    for typed in (number.translate(FULL_WIDTH), f"  {number.replace('-', '——')} ", number.replace("-", "—")):
        view, page = await look_up(desk, typed, proof=" ８０００ ")
        assert (view["number"], view["reply"]) == (number, answer), typed
        assert answer in page and "尚未答复" not in page
    async with live.runtime.store("intake").db.session() as s:  # none of them counted as a failed look-up
        failed = (await s.execute(select(rate_limits.c.bucket).where(rate_limits.c.bucket.like("lookup-fail:%")))).all()
    assert failed == []
    form = await desk.client.get("/intake/progress")
    assert 'maxlength="21"' not in form.text

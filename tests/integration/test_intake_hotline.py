"""Hotline calls over the real embedded broker: logged once, routed, tracked, and reported back to intake."""

import asyncio

import httpx
import pytest

from schemas.enums import Role


async def wait_for(check, timeout=15.0):
    """Poll `check` (async, returns a value or None) until it answers."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def call(**overrides):
    body = {"kind": "complaint", "subject": "楼下工地夜间施工噪音扰民",
            "description": "每天晚上十一点以后还在打桩，孩子睡不着。",
            "citizen": {"name": "张伟", "phone": "13800138000"},
            "location": {"district": "D-01", "street": "S-01-03", "address": "解放路18号"}}
    return {**body, **overrides}


@pytest.fixture
async def operator(live):
    token = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


async def tracked(client, number, state=None):
    async def check():
        r = await client.get(f"/api/v1/tracker/tickets/{number}")
        if r.status_code == 200 and (state is None or r.json()["state"] == state):
            return r.json()
    return await wait_for(check)


async def intake_state(client, number, state):
    async def check():
        r = await client.get(f"/api/v1/intake/tickets/{number}")
        return r.json() if r.json()["state"] == state else None
    return await wait_for(check)


async def test_a_call_reaches_the_tracker_and_intake_learns_its_department_and_deadline(live, operator):
    r = await operator.post("/api/v1/intake/tickets", json=call(), headers={"Idempotency-Key": "call-0001"})
    assert r.status_code == 201
    number = r.json()["number"]
    t = await tracked(operator, number, "assigned")
    mine = await intake_state(operator, number, "assigned")
    assert mine["department"] == t["lead"]["name"] and mine["reply_due"] == t["reply_due"]


async def test_a_consultation_answered_on_the_call_is_closed_at_once_and_never_dispatched(live, operator):
    r = await operator.post("/api/v1/intake/tickets", json=call(
        kind="consultation", subject="医保异地就医怎么备案", description="母亲在外地住院，怎么报销？",
        answer="可在国家医保服务平台App办理异地就医备案，备案后直接结算。"))
    number = r.json()["number"]
    t = await tracked(operator, number, "answered_directly")
    assert t["lead"] is None
    await intake_state(operator, number, "answered_directly")


async def test_a_repeat_call_is_flagged_and_attached_to_the_open_ticket(live, operator):
    first = (await operator.post("/api/v1/intake/tickets", json=call())).json()["number"]
    await intake_state(operator, first, "assigned")
    r = await operator.post("/api/v1/intake/similar", json={
        "phone": "13800138000", "subject": "工地夜间施工噪音又扰民了", "description": "晚上十一点以后还在打桩，孩子睡不着。"})
    assert [x["number"] for x in r.json()["items"]] == [first]
    assert r.json()["items"][0]["state_label"] == "待签收"
    again = await operator.post("/api/v1/intake/tickets", json=call(duplicate_of_number=first))
    assert again.status_code == 201
    await tracked(operator, again.json()["number"], "merged")


async def test_attaching_to_a_ticket_that_does_not_exist_names_the_field(live, operator):
    r = await operator.post("/api/v1/intake/tickets", json=call(duplicate_of_number="12345-20200101-000001"))
    assert r.status_code == 422
    field = r.json()["error"]["fields"][0]
    assert field["field"] == "duplicate_of_number" and "没有" in field["zh"] and "no ticket" in field["en"]


async def test_concurrent_retries_of_one_call_make_one_ticket(live, operator):
    responses = await asyncio.gather(*(
        operator.post("/api/v1/intake/tickets", json=call(source_ref="CALL-20261122-0042")) for _ in range(12)))
    numbers = {r.json()["number"] for r in responses}
    assert len(numbers) == 1
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    keyed = await asyncio.gather(*(
        operator.post("/api/v1/intake/tickets", json=call(), headers={"Idempotency-Key": "retry-7"})
        for _ in range(8)))
    assert len({r.json()["number"] for r in keyed}) == 1


async def test_invalid_input_names_each_field_in_chinese_and_english(live, operator):
    r = await operator.post("/api/v1/intake/tickets", json=call(kind="rant", subject=" ", citizen={"phone": "abc"}))
    assert r.status_code == 422
    fields = {f["field"]: f for f in r.json()["error"]["fields"]}
    assert set(fields) == {"kind", "subject", "citizen.phone"}
    assert fields["kind"]["zh"] == "不是允许的选项" and "consultation" in fields["kind"]["en"]


async def test_an_oversize_body_is_refused_early_with_413(live, operator):
    r = await operator.post("/api/v1/intake/tickets", content=b"{" + b" " * (300 * 1024) + b"}",
                            headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large" and "上限" in r.json()["error"]["zh"]

    async def chunks():  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b" " * 10240

    r = await operator.post("/api/v1/intake/tickets", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


async def test_text_longer_than_the_limit_is_refused_naming_the_field(live, operator):
    r = await operator.post("/api/v1/intake/tickets", json=call(subject="长" * 201))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "subject"


async def test_the_console_is_the_operators_landing_page(live):
    await live.user("op2", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        await client.post("/login", data={"username": "op2", "password": "demo-password-1", "next": "/"})
        r = await client.get("/", follow_redirects=True)
    assert r.url.path == "/intake/console" and "来电登记" in r.text and 'accesskey="n"' in r.text

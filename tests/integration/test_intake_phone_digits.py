"""One caller, one number: a phone number typed with dashes, spaces, brackets or full-width digits is stored as its
digits on every channel (hotline API, 网上留言 / 市长信箱 API and forms, Open311), the repeat look-up (重复件) reads
a number typed either way as the same caller's, and intake_0015 puts the numbers stored before into that form.
Intake alone, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import insert, select

from jiesu.db import Database
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime, load_spec
from jiesu.web import create_app
from schemas.enums import Role
from schemas.events import utcnow
from services.intake import bootstrap
from services.intake.domain import challenge
from services.intake.store import tickets
from tests.integration.test_intake_letters import form_fields, letter

CALL = {"kind": "complaint", "subject": "楼下工地夜间施工噪音扰民", "description": "每天晚上十一点以后还在打桩，孩子睡不着。"}


@pytest.fixture
async def intake(any_settings, monkeypatch):
    """Intake's pages and API alone, with a token of an operator account (the hotline desk, a portal, Open311)."""
    monkeypatch.setattr(challenge, "MIN_SECONDS", 0.0)
    for name in ("intake", "identity"):
        await asyncio.to_thread(upgrade, name, any_settings.database_url(name))
    rt = Runtime.create(any_settings, ["intake"], bootstrap="unused:9092")
    await bootstrap.setup(rt)
    await rt.identity.create_user("desk", "demo-password-1", Role.OPERATOR, display_name="desk")
    token = await rt.identity.create_token("desk", "test")
    app = create_app(lambda: rt, list(load_spec("intake").routers), start=False)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://jiesu.test") as client:
            yield rt, client, token
    finally:
        await rt.close()


async def stored_phone(rt, number: str) -> str:
    async with rt.store("intake").db.session() as s:
        return await s.scalar(select(tickets.c.citizen_phone).where(tickets.c.number == number))


async def test_every_channel_stores_the_number_as_its_digits_and_the_repeat_look_up_finds_the_caller_either_way(
        intake):
    rt, client, token = intake
    bearer = {"Authorization": f"Bearer {token}"}

    r = await client.post("/api/v1/intake/tickets", headers=bearer,
                          json={**CALL, "citizen": {"name": "张伟", "phone": "139-0000-1111"}})
    assert r.status_code == 201, r.text
    first = r.json()["number"]
    assert await stored_phone(rt, first) == "13900001111"
    for typed in ("139 0000 1111", "13900001111", "１３９－００００－１１１１", "(139)0000-1111"):
        found = await client.post("/api/v1/intake/similar", headers=bearer,
                                  json={"phone": typed, "subject": "工地夜间施工噪音又扰民了",
                                        "description": "晚上十一点以后还在打桩，孩子睡不着。"})
        assert [x["number"] for x in found.json()["items"]] == [first], typed
    nobody = await client.post("/api/v1/intake/similar", headers=bearer, json={"phone": " - ", "subject": "噪音"})
    assert nobody.json()["items"] == []  # no number is no one caller

    r = await client.post("/api/v1/intake/messages?channel=mailbox", headers=bearer,
                          json={**CALL, "citizen": {"phone": "（０１０）１２３４－５６７８"}, "source_ref": "portal-1"})
    assert r.status_code == 201, r.text
    assert await stored_phone(rt, r.json()["number"]) == "01012345678"

    page = await client.get("/intake/online")
    r = await client.post("/intake/online", data={**letter(phone="+86 139-0000 2222"), **form_fields(page.text)})
    assert r.status_code == 200, r.text
    async with rt.store("intake").db.session() as s:
        online = (await s.execute(select(tickets.c.citizen_phone).where(tickets.c.channel == "online"))).scalars()
        assert list(online) == ["+8613900002222"]

    r = await client.post("/open311/v2/requests.json", data={
        "api_key": token, "service_code": "CM", "lat": "30.58", "long": "114.27", "address_string": "解放路18号",
        "description": "人行道上有个大坑", "phone": "139 0000-3333"})
    assert r.status_code == 201, r.text
    assert await stored_phone(rt, r.json()[0]["service_request_id"]) == "13900003333"


async def test_intake_0015_stores_the_numbers_kept_before_as_their_digits(unmigrated_settings):
    url = unmigrated_settings.database_url("intake")
    await asyncio.to_thread(upgrade, "intake", url, "intake_0014")
    kept = {"139-0000-1111": "13900001111", "+86-139-0000-2222": "+8613900002222", "010 1234 5678": "01012345678",
            "13900004444": "13900004444", "": ""}
    db = Database(url)
    try:
        async with db.session() as s:
            for i, phone in enumerate(kept):
                await s.execute(insert(tickets).values(
                    ticket_id=uuid.uuid4(), number=f"12345-20261101-{i + 1:06d}", channel="hotline",
                    source_ref=f"call-{i}", kind="complaint", urgency="normal", subject="路灯不亮", description="一周了",
                    citizen_name="", citizen_phone=phone, citizen_email="", confidential=False, location={},
                    received_at=utcnow(), event_id=uuid.uuid4(), state="received", reconcile_attempts=0))
        await asyncio.to_thread(upgrade, "intake", url)
        async with db.session() as s:
            rows = (await s.execute(select(tickets.c.source_ref, tickets.c.citizen_phone))).all()
    finally:
        await db.dispose()
    assert {ref: phone for ref, phone in rows} == {f"call-{i}": digits for i, digits in enumerate(kept.values())}

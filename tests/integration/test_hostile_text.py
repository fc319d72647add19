"""Text with markup, script, SQL, emoji, right-to-left marks, GB18030-only characters and 100 kB
bodies: stored exactly as given, shown escaped on every page."""

from __future__ import annotations

import asyncio

import httpx

from schemas.enums import Role

NASTY = ("<script>alert('x')</script><img src=x onerror=alert(1)> '; DROP TABLE tracker_tickets; -- "
         "😡🏗️ 夜间施工 \u202eRTL\u202c \u200f 𠀀𪚥𫝀 ㊣ 〇 \x7f")


def _body(size: int) -> str:
    text = NASTY
    while len(text.encode()) < size:
        text += " 楼下工地夜间施工噪音扰民，" + NASTY
    return text


async def test_hostile_text_is_stored_exactly_and_escaped_wherever_shown(live):
    operator = await live.user("op", Role.OPERATOR)
    await live.user("sup", Role.SUPERVISOR)
    description = _body(100_000)
    assert len(description.encode()) >= 100_000
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {operator}"}, json={
            "kind": "complaint", "subject": NASTY[:150], "description": description,
            "citizen": {"name": "<b>张</b>", "phone": "13800138000"}, "location": {"address": NASTY[:300]}})
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        for _ in range(200):
            t = await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {operator}"})
            if t.status_code == 200 and t.json()["state"] in ("assigned", "dispatching"):
                break
            await asyncio.sleep(0.05)
        ticket = t.json()
        assert ticket["description"] == description  # every character, exactly
        assert ticket["subject"] == NASTY[:150] and ticket["location"]["address"] == NASTY[:300]
        assert ticket["citizen"]["name"] == "<b>张</b>"

        await client.post("/login", data={"username": "sup", "password": "demo-password-1"})
        for page in (f"/tracker/tickets/{number}", "/tracker/tickets", "/router/dispatch"):
            html = (await client.get(page)).text
            assert "<script>alert" not in html and "<img src=x" not in html and "<b>张</b>" not in html, page
        detail = (await client.get(f"/tracker/tickets/{number}")).text
        assert "&lt;script&gt;alert(" in detail and "𠀀𪚥𫝀" in detail

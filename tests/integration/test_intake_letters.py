"""市长信箱 and 网上留言 (public forms and the portal API), and the citizen's progress look-up."""

import asyncio
import hashlib
import re

import httpx
import pytest
from sqlalchemy import select

from schemas import topics
from schemas.enums import Role
from schemas.events import Envelope, TicketClosed, TicketReplied, UnitRef
from services.intake.domain import challenge
from services.intake.files import path_of

DIGITS = "零一二三四五六七八九十"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def wait_for(check, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)
    return value


def form_fields(html: str) -> dict:
    token = re.search(r'name="challenge_token" value="([^"]+)"', html).group(1)
    submission = re.search(r'name="submission_id" value="([^"]+)"', html).group(1)
    a, b = re.search(r"验证题：(.)加(.)等于几", html).groups()
    return {"challenge_token": token, "submission_id": submission,
            "challenge_answer": str(DIGITS.index(a) + DIGITS.index(b))}


def letter(**overrides):
    return {"kind": "complaint", "subject": "小区垃圾清运不及时", "description": "幸福里小区垃圾桶三天没人清运，气味很大。",
            "name": "李娜", "phone": "13912345678", "email": "lina@example.cn", "address": "解放路幸福里",
            "may_publish": "on", **overrides}


@pytest.fixture
def quick_challenge(monkeypatch):
    monkeypatch.setattr(challenge, "MIN_SECONDS", 0.0)


@pytest.fixture
async def staff(live):
    token = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


async def tracked(client, number):
    async def check():
        r = await client.get(f"/api/v1/tracker/tickets/{number}")
        return r.json() if r.status_code == 200 and r.json()["state"] != "received" else None
    return await wait_for(check)


@pytest.mark.parametrize("path, channel", [("/intake/mailbox", "mailbox"), ("/intake/online", "online")])
async def test_a_citizen_writes_with_a_photo_and_the_letter_reaches_the_tracker(live, staff, quick_challenge, path,
                                                                                  channel):
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        page = await citizen.get(path)
        assert page.status_code == 200 and "验证题" in page.text
        fields = {**letter(), **form_fields(page.text)}
        r = await citizen.post(path, data=fields, files=[("attachments", ("现场.png", PNG, "image/png"))])
        assert r.status_code == 200, r.text
        number = re.search(r"12345-\d{8}-\d{6}", r.text).group(0)
        again = await citizen.post(path, data=fields, files=[("attachments", ("现场.png", PNG, "image/png"))])
        assert re.search(r"12345-\d{8}-\d{6}", again.text).group(0) == number  # a double submit: one letter
    t = await tracked(staff, number)
    assert t["channel"] == channel and t["description"] == letter()["description"]
    op = await live.user("op", Role.OPERATOR)
    mine = (await staff.get(f"/api/v1/intake/tickets/{number}", headers={"Authorization": f"Bearer {op}"})).json()
    sha = hashlib.sha256(PNG).hexdigest()
    assert mine["attachments"] == [{"filename": "现场.png", "content_type": "image/png", "size": len(PNG), "sha256": sha}]
    stored = path_of(live.settings, sha)
    assert stored.read_bytes() == PNG and not str(stored).startswith(str(live.settings.data_dir / "static"))
    download = await staff.get(f"/api/v1/intake/tickets/{number}/attachments/{sha}")
    assert download.content == PNG and download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in download.headers["content-security-policy"]
    assert (await staff.get(f"/api/v1/intake/tickets/{number}/attachments/{'0' * 64}")).status_code == 404
    store = live.runtime.store("intake")
    async with store.db.session() as s:  # the download is on the audit trail; the miss records nothing
        audited = (await s.execute(select(store.tables.audit).where(
            store.tables.audit.c.action == "download_attachment"))).all()
    assert [(a.actor, str(a.ticket_id), a.details) for a in audited] == [
        ("sup", t["ticket_id"], {"role": "supervisor", "sha256": sha})]


async def test_a_wrong_answer_a_forbidden_file_and_a_missing_contact_are_each_explained(live, quick_challenge):
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        fields = form_fields((await citizen.get("/intake/mailbox")).text)
        fields["challenge_answer"] = str(int(fields["challenge_answer"]) + 1)
        r = await citizen.post("/intake/mailbox", data={**letter(), **fields})
        assert r.status_code == 400 and "验证题答案不正确" in r.text
        r = await citizen.post("/intake/mailbox", data={**letter(phone="", email=""), **form_fields(r.text)},
                               files=[("attachments", ("病毒.exe", b"MZ\x90\x00", "application/octet-stream"))])
        assert r.status_code == 400
        assert "类型不允许" in r.text and "请至少留下电话或电子邮箱" in r.text
        assert "小区垃圾清运不及时" in r.text  # what was written is kept for the next try
        assert "您选择的附件（病毒.exe）未随本次提交保存，请重新选择" in r.text  # files cannot be: the citizen is told


async def test_a_letter_sent_faster_than_a_person_can_write_is_refused(live):
    async with httpx.AsyncClient(base_url=live.url) as bot:
        r = await bot.post("/intake/mailbox", data={**letter(), **form_fields((await bot.get("/intake/mailbox")).text)})
    assert r.status_code == 400 and "提交过快" in r.text


async def test_a_solved_challenge_cannot_be_reused_for_a_second_letter(live, quick_challenge):
    async with httpx.AsyncClient(base_url=live.url) as bot:
        fields = form_fields((await bot.get("/intake/online")).text)
        assert (await bot.post("/intake/online", data={**letter(), **fields})).status_code == 200
        fields["submission_id"] = "6f1c1f4e-0000-4000-8000-000000000001"
        r = await bot.post("/intake/online", data={**letter(subject="另一封"), **fields})
    assert r.status_code == 400 and "已使用过" in r.text


async def test_markup_in_a_letter_is_stored_as_written_and_shown_as_text(live, staff, quick_challenge):
    evil = "<script>alert('x')</script>路灯不亮"
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        fields = form_fields((await citizen.get("/intake/online")).text)
        fields["challenge_answer"] = "0"  # wrong: the form comes back with the text
        r = await citizen.post("/intake/online", data={**letter(subject=evil), **fields})
        assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text
        r = await citizen.post("/intake/online", data={**letter(subject=evil), **form_fields(r.text)})
        number = re.search(r"12345-\d{8}-\d{6}", r.text).group(0)
    assert (await tracked(staff, number))["subject"] == evil


async def test_portals_submit_online_messages_with_a_token_only(live):
    token = await live.user("portal", Role.OPERATOR)
    body = {"kind": "suggestion", "subject": "建议增加公交班次", "description": "早高峰 12 路车太挤。",
            "citizen": {"phone": "13600001111"}, "source_ref": "portal-msg-881"}
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201
        retry = await client.post("/api/v1/intake/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        assert retry.status_code == 200 and retry.json()["number"] == r.json()["number"]
        assert (await client.post("/api/v1/intake/messages", json=body)).status_code == 401


async def emit_from_tracker(live, ticket_id, payload):
    """What the tracker publishes on tickets.lifecycle, sent through its real outbox and the broker."""
    async with live.runtime.store("tracker").transaction() as tx:
        await tx.emit(topics.LIFECYCLE, Envelope.wrap(payload, ticket_id=ticket_id, producer="tracker"))


async def test_the_citizen_looks_up_progress_and_reads_the_reply_and_nothing_else(live):
    op = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        operator = {"Authorization": f"Bearer {op}"}
        r = await client.post("/api/v1/intake/tickets", headers=operator, json={
            "kind": "complaint", "subject": "楼下工地夜间施工噪音扰民", "description": "每天晚上十一点以后还在打桩。",
            "citizen": {"name": "王芳", "phone": "137-0000-1234"},
            "location": {"district": "D-01", "street": "S-01-03", "address": "解放路18号"}})
        number, ticket_id = r.json()["number"], r.json()["ticket_id"]

        async def intake_state(state):
            mine = (await client.get(f"/api/v1/intake/tickets/{number}", headers=operator)).json()
            return mine if mine["state"] == state else None

        await wait_for(lambda: intake_state("assigned"))
        unit = UnitRef(code="S-01-03", name="解放路街道")
        await emit_from_tracker(live, ticket_id, TicketReplied(unit=unit, reply="已更换灯泡，恢复照明。", by="dept"))
        await wait_for(lambda: intake_state("replied"))

        view = (await client.post("/api/v1/intake/progress", json={"number": number, "phone_last4": "1234"})).json()
        assert view == {"number": number, "state": "replied", "state_label": "已答复", "department": "解放路街道",
                        "reply_due": view["reply_due"], "reply": "已更换灯泡，恢复照明。"}
        assert view["reply_due"]

        await emit_from_tracker(live, ticket_id, TicketClosed(outcome="satisfied"))
        await wait_for(lambda: intake_state("closed"))
        wrong_digits = await client.post("/api/v1/intake/progress", json={"number": number, "phone_last4": "9999"})
        wrong_number = await client.post("/api/v1/intake/progress",
                                         json={"number": "12345-20200101-000001", "phone_last4": "1234"})
        assert wrong_digits.status_code == wrong_number.status_code == 404
        assert wrong_digits.json() == wrong_number.json()
        html = await client.post("/intake/progress", data={"number": number, "proof": "1234"})
        assert "已办结" in html.text and "已更换灯泡" in html.text and "王芳" not in html.text
        assert "1370000" not in html.text and "解放路18号" not in html.text


async def test_guessing_the_four_digits_is_cut_off(live):
    async with httpx.AsyncClient(base_url=live.url) as client:
        codes = [(await client.post("/api/v1/intake/progress",
                                    json={"number": "12345-20261122-000001", "phone_last4": f"{i:04d}"})).status_code
                 for i in range(12)]
    assert codes[:10] == [404] * 10 and codes[-1] == 429


async def test_a_citizen_who_gave_no_phone_looks_up_progress_with_the_query_code(live, quick_challenge):
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        fields = {**letter(phone=""), **form_fields((await citizen.get("/intake/mailbox")).text)}
        done = await citizen.post("/intake/mailbox", data=fields)
        assert done.status_code == 200, done.text
        number = re.search(r"12345-\d{8}-\d{6}", done.text).group(0)
        code = re.search(r"查询码：</p>\s*<p class=\"query-code\">([2-9A-Z]{4}-[2-9A-Z]{4})</p>", done.text).group(1)
        again = await citizen.post("/intake/mailbox", data=fields)  # a double submit: the same code again
        assert code in again.text
        assert f'href="/intake/progress?number={number}"' in done.text
        prefilled = await citizen.get(f"/intake/progress?number={number}")
        assert f'name="number" value="{number}"' in prefilled.text

        # As printed, or as typed: lower case, no hyphen, spaces around.
        for typed in (code, code.lower().replace("-", ""), f" {code[:4]} {code[5:]} "):
            r = await citizen.post("/api/v1/intake/progress", json={"number": number, "query_code": typed})
            assert r.status_code == 200 and r.json()["number"] == number, typed
        html = await citizen.post("/intake/progress", data={"number": number, "proof": code.lower()})
        assert html.status_code == 200 and "办理状态" in html.text and "李娜" not in html.text

        # A wrong code, a code for another number and no proof at all.
        wrong = ("3" if code[0] != "3" else "4") + code[1:]
        miss = await citizen.post("/api/v1/intake/progress", json={"number": number, "query_code": wrong})
        other = await citizen.post("/api/v1/intake/progress",
                                   json={"number": "12345-20200101-000001", "query_code": code})
        assert miss.status_code == other.status_code == 404 and miss.json() == other.json()
        # Four digits are a phone's: a ticket without a phone matches none.
        assert (await citizen.post("/api/v1/intake/progress",
                                   json={"number": number, "phone_last4": "0000"})).status_code == 404
        none = await citizen.post("/api/v1/intake/progress", json={"number": number})
        assert none.status_code == 422 and none.json()["error"]["code"] == "proof_required"
        form = await citizen.post("/intake/progress", data={"number": number, "proof": ""})
        assert form.status_code == 422 and "查询码" in form.text


async def test_an_operator_and_a_portal_get_the_query_code_with_the_number(live):
    op = await live.user("op", Role.OPERATOR)
    body = {"kind": "help", "subject": "路灯不亮", "description": "幸福里路灯坏了一周。", "citizen": {"email": "a@example.cn"},
            "source_ref": "portal-msg-9"}
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {op}"}) as client:
        first = (await client.post("/api/v1/intake/messages", json=body)).json()
        retry = (await client.post("/api/v1/intake/messages", json=body)).json()
        assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", first["query_code"]) and retry["query_code"] == first["query_code"]
        found = await client.post("/api/v1/intake/progress",
                                  json={"number": first["number"], "query_code": first["query_code"]})
    assert found.status_code == 200


@pytest.mark.parametrize("linked_by_operator", [False, True])
async def test_a_repeat_merged_into_an_earlier_ticket_shows_the_earlier_ones_progress(live, linked_by_operator):
    op = await live.user("op", Role.OPERATOR)
    call = {"kind": "complaint", "subject": "楼下工地夜间施工噪音扰民", "description": "每天晚上十一点以后还在打桩。",
            "citizen": {"name": "王芳", "phone": "137-0000-1234"},
            "location": {"district": "D-01", "street": "S-01-03", "address": "解放路18号"}}
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {op}"}) as client:
        first = (await client.post("/api/v1/intake/tickets", json=call)).json()

        async def routed():
            mine = (await client.get(f"/api/v1/intake/tickets/{first['number']}")).json()
            return mine if mine["state"] != "received" else None

        await wait_for(routed)  # the repeat comes later (a repeat routed first is never merged into)
        # The router finds a repeat of the caller's open ticket by itself; an operator may also link it (重复件).
        link = {"duplicate_of_number": first["number"]} if linked_by_operator else {}
        repeat = (await client.post("/api/v1/intake/tickets", json={**call, **link})).json()

        async def merged_state(number):
            mine = (await client.get(f"/api/v1/intake/tickets/{number}")).json()
            return mine if mine["state"] == "merged" else None

        await wait_for(lambda: merged_state(repeat["number"]))
        view = (await client.post("/api/v1/intake/progress",
                                  json={"number": repeat["number"], "phone_last4": "1234"})).json()
        assert view["state"] == "merged" and view["merged_into"]["number"] == first["number"]
        assert view["merged_into"]["state"] in ("assigned", "dispatching")
        html = await client.post("/intake/progress", data={"number": repeat["number"], "proof": "1234"})
        assert f"已并入工单 <strong>{first['number']}</strong>" in html.text
        alone = (await client.post("/api/v1/intake/progress",
                                   json={"number": first["number"], "phone_last4": "1234"})).json()
        assert "merged_into" not in alone
        if not linked_by_operator:
            return
        # A neighbour's call about the same site, linked by the operator: only the number, not the progress.
        neighbour = (await client.post("/api/v1/intake/tickets", json={
            **call, "citizen": {"name": "赵强", "phone": "13800005678"}, "source_ref": "neighbour",
            "duplicate_of_number": first["number"]})).json()
        await wait_for(lambda: merged_state(neighbour["number"]))
        view = (await client.post("/api/v1/intake/progress",
                                  json={"number": neighbour["number"], "phone_last4": "5678"})).json()
        assert view["merged_into"] == {"number": first["number"]}
        html = await client.post("/intake/progress", data={"number": neighbour["number"], "proof": "5678"})
        assert "此前已有人反映" in html.text and "以下为该工单的办理情况" not in html.text


async def test_a_form_too_large_shows_the_citizen_a_page_and_the_api_keeps_its_json(live):
    """A citizen's browser posting more than the form allows reads why on a page, not a JSON body."""
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    body = {"number": "12345-20261124-000001", "phone_last4": "1234", "filler": "字" * 30_000}  # about 90 KB
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/intake/progress", data=body, headers=browser)
        assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
        assert "提交的内容过大，上限为 64 KB" in r.text and "The request is too large" in r.text
        r = await client.post("/api/v1/intake/progress", content=b"{" + b" " * (300 * 1024) + b"}",
                              headers={"Content-Type": "application/json", **browser})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

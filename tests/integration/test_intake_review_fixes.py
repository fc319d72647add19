"""Intake after review: Open311 forms read as UTF-8, an empty field said to be required, a message called a message."""

import re

import httpx
import jsonschema
import pytest
from sqlalchemy import select

from schemas.enums import Role
from services.intake.domain import challenge
from services.intake.store import tickets
from tests.integration.test_intake_letters import form_fields, letter
from tests.integration.test_intake_open311 import BASE, ERRORS

FORM = "application/x-www-form-urlencoded; charset=utf-8"
LAMP = "路灯坏了三天"


@pytest.fixture
async def operator(live):
    """The Open311 api_key, and a client that reads the tickets back with it."""
    token = await live.user("fixmystreet", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield token, client


async def stored_description(live, response) -> str:
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    async with live.runtime.store("intake").db.session() as s:
        return (await s.execute(select(tickets.c.description).where(tickets.c.number == number))).scalar_one()


async def test_open311_reads_a_raw_utf8_form_body_as_utf8_not_latin1(live, operator):
    api_key, client = operator
    raw = f"api_key={api_key}&service_code=CM.FACILITY.LIGHT&description={LAMP}&lat=30.1&long=114.3".encode()
    r = await client.post(f"{BASE}/requests.json", content=raw, headers={"Content-Type": FORM})
    assert await stored_description(live, r) == LAMP


async def test_open311_reads_a_percent_encoded_form_and_a_multipart_one_as_before(live, operator):
    api_key, client = operator
    fields = {"api_key": api_key, "service_code": "CM.FACILITY.LIGHT", "description": LAMP + "\n第二行 a+b&c",
              "lat": "30.1", "long": "114.3"}
    encoded = await client.post(f"{BASE}/requests.json", data=fields)  # httpx percent-encodes UTF-8
    assert await stored_description(live, encoded) == LAMP + "\n第二行 a+b&c"
    # An empty part without a file name: httpx then sends the form as multipart, and Open311 takes it as a field.
    multipart = await client.post(f"{BASE}/requests.json", data=fields, files={"unused": ("", b"")})
    assert await stored_description(live, multipart) == LAMP + "\n第二行 a+b&c"


@pytest.mark.parametrize("description", [b"\xc2\xb7\xff\xfe", b"%FF%FE"], ids=["raw", "percent-encoded"])
async def test_open311_refuses_a_form_that_is_not_utf8_in_chinese_and_english(live, operator, description):
    api_key, client = operator
    raw = f"api_key={api_key}&service_code=CM&lat=30.1&long=114.3&description=".encode() + description
    for fmt in ("json", "xml"):
        r = await client.post(f"{BASE}/requests.{fmt}", content=raw, headers={"Content-Type": FORM})
        assert r.status_code == 400, r.text
        if fmt == "json":
            jsonschema.validate(r.json(), ERRORS)  # the specification's error list, as every Open311 error here
            message = r.json()[0]["description"]
            assert "UTF-8" in message and "不是有效的 UTF-8 编码" in message and "not valid UTF-8" in message
        else:
            assert "<errors>" in r.text and "UTF-8" in r.text
    assert (await client.get("/api/v1/tracker/tickets")).json()["total"] == 0


async def test_an_empty_subject_or_description_is_required_not_too_short(live, operator):
    _, client = operator
    for blank in ("", "   "):
        r = await client.post("/api/v1/intake/tickets", json={"kind": "complaint", "subject": blank,
                                                               "description": blank})
        assert r.status_code == 422
        fields = {f["field"]: f for f in r.json()["error"]["fields"]}
        assert fields["subject"]["type"] == fields["description"]["type"] == "missing"
        assert fields["subject"]["zh"] == "请填写标题" and fields["subject"]["en"] == "Please enter the subject"
        assert fields["description"]["zh"] == "请填写诉求内容"
        assert fields["description"]["en"] == "Please enter the description"
        assert "内容太短" not in r.text
    # Text as long as it may be is still refused for its length, as before.
    r = await client.post("/api/v1/intake/tickets", json={"kind": "complaint", "subject": "路" * 201,
                                                           "description": "路灯坏了"})
    assert r.json()["error"]["fields"][0]["zh"] == "内容太长"
    # A call answered on the spot with no answer: the answer is required.
    r = await client.post("/api/v1/intake/tickets", json={"kind": "consultation", "subject": "社保查询",
                                                           "description": "如何查询社保缴费", "answer": " "})
    assert r.json()["error"]["fields"][0] == {"field": "answer", "type": "missing",
                                              "zh": "请填写通话中给出的答复",
                                              "en": "Please enter the answer given on the call"}


@pytest.mark.parametrize("path, noun, not_noun", [("/intake/online", "留言", "来信"), ("/intake/mailbox", "来信", "留言")],
                         ids=["online", "mailbox"])
async def test_the_confirmation_calls_an_online_message_a_message_and_a_letter_a_letter(live, monkeypatch,
                                                                                        path, noun, not_noun):
    monkeypatch.setattr(challenge, "MIN_SECONDS", 0.0)
    async with httpx.AsyncClient(base_url=live.url) as citizen:
        form = (await citizen.get(path)).text
        assert f"同意公开{noun}内容及答复" in form
        done = await citizen.post(path, data={**letter(), **form_fields(form)})
    assert done.status_code == 200, done.text
    assert re.search(rf"您的{noun}已于 .+ 受理", done.text)
    assert f"您的{not_noun}" not in done.text


@pytest.mark.parametrize("charset", ["", "; charset=utf-8", "; charset=nonesuch"], ids=["default", "utf-8", "unknown"])
async def test_open311_refuses_a_multipart_form_that_is_not_in_its_charset(live, operator, charset):
    """Starlette would read a multipart part that is not valid in its charset as Latin-1, and store mojibake."""
    api_key, client = operator
    boundary = "jiesu-boundary"
    parts = [("api_key", api_key.encode()), ("service_code", b"CM.FACILITY.LIGHT"), ("lat", b"30.1"),
             ("long", b"114.3"), ("description", "路灯不亮".encode("gbk"))]
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
                    for name, value in parts) + f"--{boundary}--\r\n".encode()
    r = await client.post(f"{BASE}/requests.json", content=body,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}{charset}"})
    assert r.status_code == 400, r.text
    jsonschema.validate(r.json(), ERRORS)
    assert "编码" in r.json()[0]["description"] and "UTF-8" in r.json()[0]["description"]
    assert (await client.get("/api/v1/tracker/tickets")).json()["total"] == 0

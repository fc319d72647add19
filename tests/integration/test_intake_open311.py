"""Open311 GeoReport v2: JSON checked against the community's schemas, XML as the spec requires, spec errors."""

import asyncio
import json
from pathlib import Path
from xml.etree.ElementTree import fromstring

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource

from schemas.enums import Role

SCHEMAS = Path("/work/shared/data/open311-georeport-v2")
BASE = "/open311/v2"


def validator(name: str) -> jsonschema.Draft7Validator:
    resources = [(p.name, Resource.from_contents({**json.loads(p.read_text()),
                                                  "$schema": "http://json-schema.org/draft-07/schema#"}))
                 for p in SCHEMAS.glob("*.json") if p.name != "swagger.json"]
    registry = Registry().with_resources(resources)
    return jsonschema.Draft7Validator(registry.contents(name), registry=registry,
                                      format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


ERRORS = {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["code", "description"],
                                                     "properties": {"code": {"type": "integer"},
                                                                    "description": {"type": "string"}}}}


@pytest.fixture
async def client(live):
    async with httpx.AsyncClient(base_url=live.url) as c:
        yield c


@pytest.fixture
async def api_key(live):
    return await live.user("fixmystreet", Role.OPERATOR)


def report(api_key, **overrides):
    return {"api_key": api_key, "service_code": "CM", "lat": "30.58", "long": "114.27",
            "address_string": "解放路18号", "description": "人行道上有个大坑\n很危险，已经有人摔倒。",
            "first_name": "伟", "last_name": "张", "phone": "13800138000", "email": "zw@example.cn", **overrides}


async def test_services_are_the_taxonomy_in_json_and_xml(client):
    r = await client.get(f"{BASE}/services.json")
    assert r.status_code == 200
    validator("services.json").validate(r.json())
    codes = {s["service_code"] for s in r.json()}
    assert {"CM", "PU.GAS"} <= codes
    xml = fromstring((await client.get(f"{BASE}/services.xml")).content)
    assert xml.tag == "services" and len(xml.findall("service")) == len(codes)
    definition = await client.get(f"{BASE}/services/PU.GAS.json")
    validator("service-definition.json").validate(definition.json())
    assert fromstring((await client.get(f"{BASE}/services/PU.GAS.xml")).content).tag == "service_definition"


async def test_a_request_is_created_tracked_and_read_back_in_both_formats(live, client, api_key):
    r = await client.post(f"{BASE}/requests.json", data=report(api_key), headers={"Idempotency-Key": "fms-1"})
    assert r.status_code == 201
    created = r.json()[0]
    number = created["service_request_id"]
    assert number.startswith("12345-") and created["token"]
    retry = await client.post(f"{BASE}/requests.json", data=report(api_key), headers={"Idempotency-Key": "fms-1"})
    assert retry.status_code == 200 and retry.json()[0]["service_request_id"] == number

    async def agency():
        items = (await client.get(f"{BASE}/requests/{number}.json")).json()
        return items if items[0]["agency_responsible"] else None
    for _ in range(300):
        if items := await agency():
            break
        await asyncio.sleep(0.05)
    validator("requests.json").validate(items)
    got = items[0]
    assert (got["status"], got["service_code"], got["address"]) == ("open", "CM", "解放路18号")
    assert got["expected_datetime"] or got["status_notes"] == "待派单"
    assert "13800138000" not in json.dumps(got) and "zw@example.cn" not in json.dumps(got)
    assert "张" not in json.dumps(got, ensure_ascii=False)  # never the reporter's name

    listed = (await client.get(f"{BASE}/requests.json", params={"service_code": "CM", "status": "open"})).json()
    validator("requests.json").validate(listed)
    assert number in [x["service_request_id"] for x in listed]
    assert (await client.get(f"{BASE}/requests.json", params={"status": "closed"})).json() == []
    xml = fromstring((await client.get(f"{BASE}/requests/{number}.xml")).content)
    assert xml.tag == "service_requests" and xml.find("request/service_request_id").text == number
    token = (await client.get(f"{BASE}/tokens/{created['token']}.json")).json()
    assert token == [{"service_request_id": number, "token": created["token"]}]


async def test_hotline_tickets_are_not_listed_publicly(live, client, api_key):
    r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {api_key}"}, json={
        "kind": "complaint", "subject": "私人纠纷", "description": "不公开的来电", "category": "CM"})
    number = r.json()["number"]
    assert (await client.get(f"{BASE}/requests/{number}.json")).status_code == 404
    assert number not in (await client.get(f"{BASE}/requests.json")).text


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_errors_are_the_specs_list_of_code_and_description(client, api_key, fmt):
    cases = [
        (client.post(f"{BASE}/requests.{fmt}", data=report("wrong-key")), 403),
        (client.post(f"{BASE}/requests.{fmt}", data=report(api_key, service_code="NOPE")), 404),
        (client.post(f"{BASE}/requests.{fmt}", data=report(api_key, lat="", long="", address_string="")), 400),
        (client.post(f"{BASE}/requests.{fmt}", data=report(api_key, description="")), 400),
        (client.get(f"{BASE}/services/NOPE.{fmt}"), 404),
        (client.get(f"{BASE}/requests.{fmt}", params={"status": "pending"}), 400),
        (client.get(f"{BASE}/requests.{fmt}", params={"start_date": "yesterday"}), 400),
        (client.get(f"{BASE}/requests/12345-20200101-000001.{fmt}"), 404),
    ]
    for request, status in cases:
        r = await request
        assert r.status_code == status, r.text
        if fmt == "json":
            jsonschema.validate(r.json(), ERRORS)
            assert r.json()[0]["code"] == status
        else:
            xml = fromstring(r.content)
            assert xml.tag == "errors" and xml.find("error/code").text == str(status)
            assert xml.find("error/description").text


async def test_an_unknown_format_is_a_spec_error(client):
    r = await client.get(f"{BASE}/services.csv")
    assert r.status_code == 404 and r.json()[0]["code"] == 404


async def test_an_oversize_post_is_refused_with_413_in_the_spec_format(client, api_key):
    r = await client.post(f"{BASE}/requests.json", data=report(api_key, description="长" * 40000))
    assert r.status_code == 413 and r.json()[0]["code"] == 413


async def test_letters_are_listed_only_when_the_writer_agreed_to_publish_and_never_if_confidential(client, api_key):
    async def message(subject, **flags):
        r = await client.post("/api/v1/intake/messages", headers={"Authorization": f"Bearer {api_key}"}, json={
            "kind": "suggestion", "subject": subject, "description": "建议在解放路增设自行车道。", "category": "CM",
            "citizen": {"phone": "13600001111", "confidential": flags.pop("confidential", False)}, **flags})
        return r.json()["number"]

    public = await message("可以公开", may_publish=True)
    private = await message("不愿公开")
    secret = await message("同意公开但要求保密", may_publish=True, confidential=True)
    listed = {x["service_request_id"] for x in (await client.get(f"{BASE}/requests.json")).json()}
    assert public in listed and private not in listed and secret not in listed

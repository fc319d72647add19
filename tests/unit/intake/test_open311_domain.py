"""Open311 translation: our taxonomy as services, tickets as public service requests, XML as the spec says."""

import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree.ElementTree import fromstring

import jsonschema
from referencing import Registry, Resource

from services.intake.domain import open311
from services.router.domain.directory import Directory

SCHEMAS = Path("/work/shared/data/open311-georeport-v2")


def validator(name: str):
    resources = [(p.name, Resource.from_contents({**json.loads(p.read_text()), "$schema":
                                                  "http://json-schema.org/draft-07/schema#"}))
                 for p in SCHEMAS.glob("*.json") if p.name != "swagger.json"]
    registry = Registry().with_resources(resources)
    return jsonschema.Draft7Validator(registry.contents(name), registry=registry)


def row(**kw):
    base = {"number": "12345-20261122-000007", "state": "assigned", "category": "CM.ROAD", "description": "路面塌陷",
            "department": "解放路街道", "received_at": datetime(2026, 11, 22, 8, tzinfo=UTC), "reply": None,
            "status_at": None, "reply_due": datetime(2026, 11, 27, 10, tzinfo=UTC),
            "location": {"address": "解放路18号", "latitude": 30.5, "longitude": 114.3}}
    return {**base, **kw}


def test_every_category_is_a_service_valid_against_the_community_schema():
    services = open311.services(Directory.default().categories)
    assert len(services) == len(Directory.default().categories)
    validator("services.json").validate(services)
    assert all(s["group"] for s in services)


def test_a_ticket_becomes_an_open_request_with_agency_and_deadline():
    view = open311.request_view(row(), "道路", "待签收")
    validator("request.json").validate(view)
    assert (view["status"], view["agency_responsible"], view["status_notes"]) == ("open", "解放路街道", "待签收")
    assert view["lat"] == 30.5 and view["long"] == 114.3


def test_closed_states_are_closed_and_the_reply_is_in_the_status_notes():
    for state in ("closed", "answered_directly", "merged"):
        assert open311.status_of(state) == "closed"
    view = open311.request_view(row(state="closed", reply="已修复"), "道路", "已办结")
    assert view["status"] == "closed" and view["status_notes"] == "已办结：已修复"


def test_xml_lists_and_errors_have_the_spec_element_names():
    xml = fromstring(open311.to_xml("service_requests", "request", [open311.request_view(row(), "道路", "待签收")]))
    assert xml.tag == "service_requests" and xml.find("request/service_request_id").text == "12345-20261122-000007"
    err = fromstring(open311.to_xml("errors", "error", open311.errors(404, "not found")))
    assert err.find("error/code").text == "404" and err.find("error/description").text == "not found"

"""Open311 GeoReport v2: our taxonomy as its services, our tickets as its service requests.

Pure translation, both ways, and the XML the specification makes mandatory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

CLOSED_STATES = frozenset({"closed", "merged", "answered_directly"})
FORMATS = ("json", "xml")


def status_of(state: str) -> str:
    return "closed" if state in CLOSED_STATES else "open"


def services(categories: Iterable[Any]) -> list[dict]:
    """Every category of the taxonomy is a service; its top-level ancestor is the group."""
    cats = list(categories)
    names = {c.code: c.name for c in cats}
    out = []
    for c in cats:
        top = c.code.split(".", 1)[0]
        out.append({
            "service_code": c.code,
            "service_name": c.name,
            "description": f"{names.get(top, top)} › {c.name}" if top != c.code else c.name,
            "metadata": False,
            "type": "realtime",
            "keywords": c.code.replace(".", ","),
            "group": names.get(top, top),
        })
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def request_view(row: Mapping[str, Any], service_name: str | None, state_label: str) -> dict:
    """One ticket as a service request: what the public may see of it, never contact details."""
    location = row["location"] or {}
    notes = state_label
    if row.get("reply"):
        notes = f"{state_label}：{row['reply']}"
    return {
        "service_request_id": row["number"],
        "status": status_of(row["state"]),
        "status_notes": notes,
        "service_name": service_name,
        "service_code": row["category"] or "",
        "description": (row["description"] or "")[:4000],
        "agency_responsible": row["department"],
        "service_notice": None,
        "requested_datetime": _iso(row["received_at"]),
        "updated_datetime": _iso(row.get("status_at") or row["received_at"]),
        "expected_datetime": _iso(row.get("reply_due")),
        "address": location.get("address") or None,
        "address_id": None,
        "zipcode": None,
        "lat": location.get("latitude"),
        "long": location.get("longitude"),
        "media_url": None,
    }


def _xml_value(parent: Element, key: str, value: Any) -> None:
    child = SubElement(parent, key)
    if value is None:
        return
    child.text = ("true" if value else "false") if isinstance(value, bool) else str(value)


def to_xml(root: str, item: str, items: list[dict]) -> bytes:
    """<services><service>…</service></services> and the like; lists of attributes nest."""
    top = Element(root)
    for entry in items:
        node = SubElement(top, item)
        for key, value in entry.items():
            if isinstance(value, list):
                holder = SubElement(node, key)
                for sub in value:
                    child = SubElement(holder, key.rstrip("s"))
                    for k, v in sub.items():
                        _xml_value(child, k, v)
            else:
                _xml_value(node, key, value)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(top, encoding="unicode").encode()


def definition_to_xml(definition: dict) -> bytes:
    top = Element("service_definition")
    _xml_value(top, "service_code", definition["service_code"])
    SubElement(top, "attributes")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(top, encoding="unicode").encode()


def errors(code: int, description: str) -> list[dict]:
    return [{"code": code, "description": description}]

"""Export the event contract: JSON Schema files (committed) and the AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import PAYLOADS, Envelope

OUT = Path(__file__).parent / "json"


def documents() -> dict[str, dict]:
    docs = {"Envelope.v1.json": Envelope.model_json_schema()}
    for (event_type, version), model in sorted(PAYLOADS.items()):
        schema = model.model_json_schema()
        schema["title"] = event_type
        schema["x-event-type"] = event_type
        schema["x-schema-version"] = version
        docs[f"{event_type}.v{version}.json"] = schema
    return docs


def _render(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write(*, check: bool = False, out: Path = OUT) -> list[str]:
    """Write the files (or, with check, only compare); returns the names that were stale."""
    out.mkdir(parents=True, exist_ok=True)
    docs = documents()
    stale = []
    for name, doc in docs.items():
        path = out / name
        text = _render(doc)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not check:
                path.write_text(text, encoding="utf-8")
    for path in out.glob("*.json"):
        if path.name not in docs:
            stale.append(path.name)
            if not check:
                path.unlink()
    return stale


def asyncapi() -> dict:
    """The AsyncAPI document generated from the FastStream apps of all three services."""
    from faststream.specification import AsyncAPI

    from jiesu.config import SERVICES, Settings
    from jiesu.runtime import Runtime

    rt = Runtime.create(Settings(data_dir=Path("/tmp/jiesu-asyncapi")), list(SERVICES), bootstrap="kafka:9092")
    from faststream.kafka import KafkaBroker

    shared = KafkaBroker("kafka:9092")  # one document for the whole system: every service's consumer on it
    rt.build_brokers(factory=lambda: shared)
    spec = AsyncAPI(shared, title="jiesu events", version="0.1.0",
                    description="Topics and events between intake, router and tracker. Payload schemas: schemas/json/.")
    return json.loads(spec.to_specification().to_json())

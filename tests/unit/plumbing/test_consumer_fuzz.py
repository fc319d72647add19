"""Consumers fed malformed, truncated, oversized, wrong-version, duplicated and out-of-order events.

Whatever arrives, the consumer never raises (which would stall the partition) and never
crashes: each record is applied once, skipped as not meant for it, or dead-lettered with
its error. Good records in the same batch as poison are still applied.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest
from sqlalchemy import select

from jiesu.config import Settings
from jiesu.consumer import EventConsumer
from jiesu.messaging import ServiceStore
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas.events import Envelope, TicketAssigned, TicketReceived, UnitRef, RoutingReason, utcnow
from bench.records import Record

def number(ticket_id: uuid.UUID) -> str:
    return f"12345-20261122-{ticket_id.int % 999_999 + 1:06d}"


def received(ticket_id: uuid.UUID, **changes) -> Envelope:
    payload = TicketReceived.model_validate({
        "number": number(ticket_id), "channel": "hotline", "kind": "complaint", "subject": "噪音扰民",
        "description": "楼下夜间施工", "citizen": {"phone": "13800000000"}, "received_at": utcnow().isoformat(),
        "source_ref": str(ticket_id), **changes,
    })
    return Envelope.wrap(payload, ticket_id=ticket_id, producer="intake")


def assigned(ticket_id: uuid.UUID) -> Envelope:
    return Envelope.wrap(TicketAssigned(number=number(ticket_id), kind="complaint",
                                        lead=UnitRef(code="M-CGW", name="市城管委"),
                                        reason=RoutingReason(method="rule", rule_id="R-012")),
                         ticket_id=ticket_id, producer="router")


def mutate(envelope: Envelope, how: str, data) -> bytes:
    raw = envelope.to_bytes()
    doc = json.loads(raw)
    if how == "truncate":
        return raw[: data.draw(st.integers(0, len(raw) - 1))]
    if how == "garbage":
        return data.draw(st.binary(max_size=300))
    if how == "future_version":
        doc["schema_version"] = 99
    elif how == "unknown_type":
        doc["event_type"] = "TicketTeleported"
    elif how == "oversized":
        doc["payload"]["description"] = "长" * 200_000  # twice what a TicketReceived may carry
    elif how == "missing_field":
        required = sorted(name for name, f in TicketReceived.model_fields.items() if f.is_required())
        del doc["payload"][data.draw(st.sampled_from(required))]
    elif how == "wrong_type":
        doc["payload"]["kind"] = data.draw(st.one_of(st.integers(), st.none(), st.just("rant"), st.just([])))
    elif how == "naive_time":
        doc["occurred_at"] = "2026-11-22T08:00:00"
    return json.dumps(doc, ensure_ascii=False).encode()


MUTATIONS = ["truncate", "garbage", "future_version", "unknown_type", "oversized", "missing_field", "wrong_type",
             "naive_time"]


class Harness:
    """The tracker's real consumer on a SQLite database, reused across examples."""

    def __init__(self, tmp_path) -> None:
        settings = Settings(data_dir=tmp_path, secret_key="x", _env_file=None)
        upgrade("tracker", settings.database_url("tracker"))
        self.loop = asyncio.new_event_loop()
        rt = Runtime.create(settings, ["tracker"], bootstrap="unused:9092")
        self.loop.run_until_complete(rt.specs["tracker"].setup(rt))
        sub = rt.specs["tracker"].subscriptions(rt)[0]
        self.store: ServiceStore = rt.store("tracker")
        self.consumer = EventConsumer(self.store, sub.handlers, retries=1)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def outcome(self, records: list[Record]) -> dict[int, str]:
        t = self.store.tables
        async with self.store.db.session() as s:
            applied = set((await s.execute(select(t.inbox.c.event_id))).scalars())
            dead = set((await s.execute(select(t.dead_letters.c.offset))).scalars())
        result = {}
        for r in records:
            try:
                event_id = uuid.UUID(json.loads(r.value)["event_id"])
            except Exception:  # noqa: BLE001 - not even an envelope
                event_id = None
            result[r.offset] = "applied" if event_id in applied else "dead" if r.offset in dead else "skipped"
        return result


_harness: dict[str, Harness] = {}


def harness(tmp_path_factory) -> Harness:
    if "h" not in _harness:
        _harness["h"] = Harness(tmp_path_factory.mktemp("fuzz"))
    return _harness["h"]


@pytest.mark.splits_batches
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_input_stalls_or_crashes_the_consumer(tmp_path_factory, data):
    h = harness(tmp_path_factory)
    ticket = uuid.uuid4()
    good = [Record(received(ticket).to_bytes()), Record(assigned(ticket).to_bytes(), topic="tickets.assigned")]
    if data.draw(st.booleans()):
        good.reverse()  # the assignment overtakes the receipt (different topics)
    bad = [Record(mutate(received(uuid.uuid4()), how, data))
           for how in data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4))]
    duplicate = [Record(good[0].value, topic=good[0].topic)]
    batch = data.draw(st.permutations(good + bad + duplicate))

    h.run(h.consumer.process(batch))  # must not raise

    outcome = h.run(h.outcome(batch))
    for record in good:
        assert outcome[record.offset] == "applied"
    assert outcome[duplicate[0].offset] == "applied"  # its event id was applied once, by the original
    for record in bad:
        assert outcome[record.offset] in ("dead", "skipped"), (record.value[:80], outcome[record.offset])


def test_the_tracker_acknowledges_a_ticket_only_once_it_holds_its_receipt(tmp_path_factory):
    """A decision that overtook its TicketReceived (lost by the broker, say) is not acknowledged yet:
    intake keeps reconciling the ticket until the TicketReceived arrives again."""
    h = harness(tmp_path_factory)
    ticket = uuid.uuid4()

    async def acknowledgements() -> int:
        outbox = h.store.tables.outbox
        async with h.store.db.session() as s:
            return len((await s.execute(select(outbox.c.id).where(
                outbox.c.ticket_id == ticket, outbox.c.event_type == "TicketTracked"))).all())

    h.run(h.consumer.process([Record(assigned(ticket).to_bytes(), topic="tickets.assigned")]))
    assert h.run(acknowledgements()) == 0
    h.run(h.consumer.process([Record(received(ticket).to_bytes())]))
    assert h.run(acknowledgements()) == 1

"""A Batched handler gets runs of its events: of its type, one event per ticket, each ticket's in order."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import MetaData

from jiesu.consumer import Batched, EventConsumer, runs_of
from jiesu.db import Database
from jiesu.messaging import ServiceStore, messaging_tables
from schemas.events import Envelope, RoutingReason, TicketAssigned, TicketClosed, UnitRef
from bench.records import Record

def assigned(ticket_id: uuid.UUID) -> Envelope:
    return Envelope.wrap(TicketAssigned(number="12345-20261123-000001", kind="complaint",
                                        lead=UnitRef(code="M-CGW", name="市城管委"),
                                        reason=RoutingReason(method="rule", rule_id="R-012")),
                         ticket_id=ticket_id, producer="router")


def closed(ticket_id: uuid.UUID) -> Envelope:
    return Envelope.wrap(TicketClosed(outcome="satisfied"),
                         ticket_id=ticket_id, producer="tracker")


@pytest.fixture
async def store(tmp_path):
    metadata = MetaData()
    tables = messaging_tables(metadata, "t")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield ServiceStore("t", db, tables)
    await db.dispose()


async def test_a_run_waits_only_for_its_own_tickets_earlier_events(store):
    """Another type between two tickets' events does not cut their run; a ticket's own events keep their order."""
    calls: list[tuple[str, list[uuid.UUID]]] = []

    async def many(tx, items):
        calls.append(("assigned", [e.ticket_id for e, _ in items]))

    async def one(tx, envelope, payload):
        calls.append(("closed", [envelope.ticket_id]))

    a, b, c, x, y = (uuid.uuid4() for _ in range(5))
    consumer = EventConsumer(store, {"TicketAssigned": Batched(many), "TicketClosed": one})
    events = [assigned(a), closed(x), assigned(b), closed(y), assigned(c), assigned(a), closed(b), assigned(b)]
    await consumer.process([Record(e.to_bytes()) for e in events])

    assert calls == [("closed", [x]), ("closed", [y]),
                     ("assigned", [a, b, c]),  # a's second event needs the first applied
                     ("closed", [b]), ("assigned", [a, b])]
    async with store.transaction() as tx:
        assert await tx.claim([(e.event_id, "t") for e in events]) == set()  # every one was marked applied


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.sampled_from(("A", "B", "C"))), max_size=40))
def test_runs_keep_each_tickets_order_apply_every_event_once_and_never_hold_a_ticket_twice(events):
    """A and B are Batched, C is not: whatever the batch, each call is one type, distinct tickets."""
    items = [(i, SimpleNamespace(ticket_id=ticket, event_type=kind)) for i, (ticket, kind) in enumerate(events)]
    runs = runs_of(items, lambda kind: kind != "C")

    applied = [i for run in runs for i, _ in run]
    assert sorted(applied) == list(range(len(events)))
    for ticket in range(8):
        assert [i for i in applied if events[i][0] == ticket] == [i for i, e in enumerate(events) if e[0] == ticket]
    for run in runs:
        assert len({e.event_type for _, e in run}) == 1
        assert len({e.ticket_id for _, e in run}) == len(run)
        assert run[0][1].event_type != "C" or len(run) == 1
    # Runs are cut only where a ticket repeats: with no ticket twice, one run per Batched type.
    if len({ticket for ticket, _ in events}) == len(events):
        assert len(runs) == len({kind for _, kind in events} - {"C"}) + sum(kind == "C" for _, kind in events)


@pytest.mark.splits_batches
async def test_a_failing_run_is_retried_event_by_event_and_only_the_poison_is_dead_lettered(store):
    applied: list[uuid.UUID] = []
    poison = uuid.uuid4()

    async def many(tx, items):
        if any(e.ticket_id == poison for e, _ in items):
            raise ValueError("cannot apply this one")
        applied.extend(e.ticket_id for e, _ in items)

    good = [uuid.uuid4() for _ in range(4)]
    consumer = EventConsumer(store, {"TicketAssigned": Batched(many)}, retries=0)
    def split() -> float:
        return REGISTRY.get_sample_value("jiesu_consumer_batches_split_total", {"service": "t"}) or 0.0

    before = split()
    await consumer.process([Record(assigned(t).to_bytes()) for t in (*good[:2], poison, *good[2:])])

    assert applied == good
    assert split() == before + 1  # counted, so that /metrics and the tests' guard see it
    async with store.db.session() as s:
        dead = (await s.execute(store.tables.dead_letters.select())).all()
    assert len(dead) == 1 and "cannot apply this one" in dead[0].error


async def test_another_services_event_is_skipped_by_its_header_and_a_replay_is_read(store):
    applied: list[uuid.UUID] = []

    async def many(tx, items):
        applied.extend(e.ticket_id for e, _ in items)

    consumer = EventConsumer(store, {"TicketAssigned": Batched(many)}, retries=0)
    replayed = uuid.uuid4()
    await consumer.process([
        Record(b"not even json", headers=(("event_type", b"TicketTracked"),)),  # not ours: never parsed
        Record(assigned(replayed).to_bytes(), headers=(("event_type", b"replay"),)),  # a dead letter replayed
    ])
    assert applied == [replayed]
    async with store.db.session() as s:
        assert (await s.execute(store.tables.dead_letters.select())).all() == []


@pytest.mark.parametrize(("lanes", "transactions"), [(1, 1), (2, 2), (6, 4)])
async def test_a_batch_is_applied_in_one_transaction_per_lane_each_lane_holding_whole_partitions(
        store, lanes, transactions):
    seen: list[tuple[object, list[uuid.UUID]]] = []  # (transaction, tickets in order); kept, so ids stay apart

    async def many(tx, items):
        seen.append((tx, [e.ticket_id for e, _ in items]))

    tickets = [uuid.uuid4() for _ in range(8)]
    records = [Record(assigned(t).to_bytes(), partition=i % 4) for i, t in enumerate(tickets)]
    consumer = EventConsumer(store, {"TicketAssigned": Batched(many)}, lanes=lanes)
    await consumer.process(records)

    assert len({id(tx) for tx, _ in seen}) == transactions
    by_lane: dict[int, set[int]] = {}
    for record in records:
        by_lane.setdefault(record.partition % lanes, set()).add(record.partition)
    applied = [t for _, run in seen for t in run]
    assert sorted(applied) == sorted(tickets)
    for partitions in by_lane.values():  # each partition's tickets in their order, within one run
        lane_tickets = [t for r, t in zip(records, tickets, strict=True) if r.partition in partitions]
        assert any(run == lane_tickets for _, run in seen)

"""待人工派单 in the tracker: a run of DispatchNeeded is applied with one statement per table, and each
ticket ends as it would alone: waiting for a dispatcher, acknowledged only once intake's TicketReceived is here."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select

from bench import tickets as bench_tickets
from bench.records import records_of
from jiesu.consumer import EventConsumer
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas import topics
from schemas.events import DispatchNeeded, Envelope
from services.tracker.store import tickets, timeline


def _dispatch(received: Envelope) -> Envelope:
    return Envelope.wrap(DispatchNeeded(number=received.parsed().number, why="没有规则命中，模型把握不足"),
                         ticket_id=received.ticket_id, producer="router")


async def test_a_run_of_dispatch_needed_waits_for_a_dispatcher_and_acknowledges_only_received_tickets(
        any_settings):
    await asyncio.to_thread(upgrade, "tracker", any_settings.database_url("tracker"))
    rt = Runtime.create(any_settings, ["tracker"], bootstrap="unused:9092")
    await rt.specs["tracker"].setup(rt)
    store = rt.store("tracker")
    consumer = EventConsumer(store, rt.specs["tracker"].subscriptions(rt)[0].handlers)
    try:
        here, also, early, settled = bench_tickets.received(4, prefix="dispatch")
        await consumer.process(records_of([here, also, settled], topics.RECEIVED))
        async with store.db.session() as s:  # a dispatcher already decided this one
            await s.execute(tickets.update().where(tickets.c.ticket_id == settled.ticket_id)
                            .values(state="assigned", lead_code="M-CGW"))
            await s.commit()
        updates: list[str] = []
        event.listen(store.db.engine.sync_engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: updates.append(statement)
                     if statement.startswith("UPDATE tracker_tickets") else None)

        await consumer.process(records_of([_dispatch(e) for e in (here, also, early, settled)], topics.ASSIGNED))

        assert len(updates) == 1  # the run's tickets already here, in one statement
        async with store.db.session() as s:
            rows = {r.ticket_id: r for r in await s.execute(select(tickets))}
            notes = (await s.execute(select(timeline.c.ticket_id).where(
                timeline.c.summary == "转人工派单：没有规则命中，模型把握不足"))).scalars().all()
            sent = [Envelope.from_bytes(v) for v in (await s.execute(select(store.tables.outbox.c.value))).scalars()]
        for t in (here, also):
            assert rows[t.ticket_id].state == "dispatching" and rows[t.ticket_id].tracked_event_id is not None
        assert rows[early.ticket_id].state == "dispatching" and rows[early.ticket_id].tracked_event_id is None
        assert rows[early.ticket_id].tracked_at is not None and rows[early.ticket_id].number == early.parsed().number
        assert rows[settled.ticket_id].state == "assigned"  # a stale decision changes nothing
        assert sorted(map(str, notes)) == sorted(map(str, (here.ticket_id, also.ticket_id, early.ticket_id)))
        tracked = {e.ticket_id: e.parsed() for e in sent if e.event_type == "TicketTracked"}
        assert tracked[here.ticket_id].state == tracked[also.ticket_id].state == "dispatching"
        assert early.ticket_id not in tracked

        await consumer.process(records_of([early], topics.RECEIVED))  # intake's event, late: now it is acknowledged
        async with store.db.session() as s:
            row = (await s.execute(select(tickets).where(tickets.c.ticket_id == early.ticket_id))).one()
        assert row.state == "dispatching" and row.tracked_event_id is not None and row.subject == early.parsed().subject
    finally:
        await rt.close()

"""The three services wired on FastStream's TestKafkaBroker (no broker process), on SQLite."""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker, TestKafkaBroker
from sqlalchemy import func, select

from jiesu.config import SERVICES
from jiesu.migrate import upgrade_all
from jiesu.outbox import BrokerSender
from jiesu.runtime import Runtime
from schemas.enums import Channel


async def _pipeline(settings):
    await asyncio.to_thread(upgrade_all, settings)
    rt = Runtime.create(settings, list(SERVICES), bootstrap="test:9092")
    shared = KafkaBroker("test:9092")
    rt.build_brokers(factory=lambda: shared)
    return rt, shared


async def test_hotline_call_is_received_routed_and_tracked_with_a_deadline(sqlite_settings):
    from services.intake import service
    from services.intake.domain.submission import TicketSubmission
    from services.tracker.store import tickets as tracked
    from zoneinfo import ZoneInfo

    rt, shared = await _pipeline(sqlite_settings)
    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        try:
            sub = TicketSubmission.model_validate({
                "kind": "help", "subject": "家里停水三天了", "description": "小区从周一开始停水，没有任何通知，老人做饭都困难。",
                "citizen": {"name": "刘女士", "phone": "13911112222"},
            })
            receipt = await service.accept(rt.store("intake"), sub, channel=Channel.HOTLINE, operator="operator",
                                           idempotency_key="call-1", tz=ZoneInfo("Asia/Shanghai"))
            for _ in range(100):
                async with rt.store("tracker").db.session() as s:
                    row = (await s.execute(select(tracked).where(tracked.c.ticket_id == receipt.ticket_id))).first()
                if row is not None and row.state == "assigned":
                    break
                await asyncio.sleep(0.05)
            assert row is not None and row.state == "assigned"
            assert row.lead_code and row.reply_due > row.assigned_at
            assert row.routing["method"] in ("rule", "directory", "model")
        finally:
            await rt.stop()


async def test_redelivered_event_is_applied_once(sqlite_settings):
    from schemas.events import Envelope, TicketReceived
    from services.tracker.store import timeline

    rt, shared = await _pipeline(sqlite_settings)
    payload = TicketReceived.model_validate({
        "number": "12345-20261122-000001", "channel": "online", "kind": "suggestion", "subject": "建议增设公交站",
        "description": "建议在新区学校门口增设公交站。", "citizen": {"phone": "13800000000"},
        "received_at": "2026-11-22T08:00:00Z", "source_ref": "x-1",
    })
    import uuid

    envelope = Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="test")
    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        try:
            for _ in range(3):
                await test_broker.publish(envelope.to_bytes(), "tickets.received", key=str(envelope.ticket_id).encode())
            async with rt.store("tracker").db.session() as s:
                count = await s.scalar(select(func.count()).select_from(timeline).where(
                    timeline.c.ticket_id == envelope.ticket_id, timeline.c.event_type == "TicketReceived"))
            assert count == 1
        finally:
            await rt.stop()


async def test_poison_message_goes_to_the_dead_letter_table_and_dlq_topic(sqlite_settings):
    rt, shared = await _pipeline(sqlite_settings)
    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        try:
            await test_broker.publish(b'{"not": "an envelope"}', "tickets.received", key=b"k")
            store = rt.store("router")
            async with store.db.session() as s:
                dead = (await s.execute(select(store.tables.dead_letters))).all()
                owed = (await s.execute(select(store.tables.outbox.c.topic))).scalars().all()
            assert len(dead) == 1 and "ValidationError" in dead[0].error
            assert "tickets.received.dlq" in owed
        finally:
            await rt.stop()


async def _publish_received(test_broker, ticket_id, **extra):
    from schemas.events import Envelope, TicketReceived

    payload = TicketReceived.model_validate({
        "number": extra.pop("number", "12345-20261122-000009"), "channel": "hotline", "kind": "consultation",
        "subject": "咨询公积金提取", "description": "想问租房提取公积金需要什么材料。",
        "citizen": {"phone": "13800000001"}, "received_at": "2026-11-22T08:00:00Z", "source_ref": str(ticket_id),
        **extra,
    })
    envelope = Envelope.wrap(payload, ticket_id=ticket_id, producer="test")
    await test_broker.publish(envelope.to_bytes(), "tickets.received", key=str(ticket_id).encode())


async def _tracker_row(rt, ticket_id):
    from services.tracker.store import tickets as tracked

    for _ in range(100):
        async with rt.store("tracker").db.session() as s:
            row = (await s.execute(select(tracked).where(tracked.c.ticket_id == ticket_id))).first()
        if row is not None and row.tracked_at is not None:
            return row
        await asyncio.sleep(0.02)
    return row


async def test_answered_directly_is_closed_at_once_and_never_dispatched(sqlite_settings):
    import uuid

    from services.router.store import decisions

    rt, shared = await _pipeline(sqlite_settings)
    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        try:
            ticket_id = uuid.uuid4()
            await _publish_received(test_broker, ticket_id, answer="租房提取需身份证、租赁合同，可在网上办理。")
            row = await _tracker_row(rt, ticket_id)
            assert row.state == "answered_directly" and row.reply.startswith("租房提取")
            async with rt.store("router").db.session() as s:
                assert (await s.execute(select(decisions).where(decisions.c.ticket_id == ticket_id))).first() is None
        finally:
            await rt.stop()


async def test_a_call_attached_to_an_open_ticket_is_merged_and_both_timelines_say_so(sqlite_settings):
    import uuid

    from services.tracker.store import timeline

    rt, shared = await _pipeline(sqlite_settings)
    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        try:
            first, second = uuid.uuid4(), uuid.uuid4()
            await _publish_received(test_broker, first, number="12345-20261122-000010")
            await _publish_received(test_broker, second, number="12345-20261122-000011", duplicate_of=str(first),
                                    duplicate_of_number="12345-20261122-000010")
            row = await _tracker_row(rt, second)
            assert row.state == "merged" and row.merged_into == first
            async with rt.store("tracker").db.session() as s:
                notes = (await s.execute(select(timeline.c.summary).where(timeline.c.ticket_id == first))).scalars()
                assert any("12345-20261122-000011" in n for n in notes)
        finally:
            await rt.stop()


async def _stop_with(rt, shared, task_coro, name: str):
    """Start the runtime, add a background task, stop: the logs of the stop and whether it returned."""
    from structlog.testing import capture_logs

    async with TestKafkaBroker(shared) as test_broker:
        await rt.start(sender=BrokerSender(test_broker), start_broker=False)
        rt._spawn(task_coro, name)
        await asyncio.sleep(0)
        with capture_logs() as logs:
            stopping = asyncio.create_task(rt.stop())
            done, _ = await asyncio.wait({stopping}, timeout=10)
    return logs, stopping, done


async def test_stopping_goes_on_without_a_task_that_ignores_its_cancellation_and_says_where_it_waits(
        sqlite_settings, monkeypatch):
    from jiesu import runtime

    monkeypatch.setattr(runtime, "STOP_GRACE_SECONDS", 0.2)
    monkeypatch.setattr(runtime, "SECOND_CANCEL_GRACE_SECONDS", 0.1)
    released = asyncio.Event()

    async def stubborn_wait() -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue  # as a driver stuck in a call that never returns

    rt, shared = await _pipeline(sqlite_settings)
    try:
        logs, stopping, done = await _stop_with(rt, shared, stubborn_wait(), "stubborn")
    finally:
        released.set()  # so that the test ends either way
    await stopping
    assert stopping in done, "stop() waited for a task that would not end"
    assert rt.stuck == ["stubborn"]
    said = [e for e in logs if e.get("task") == "stubborn"]
    assert [e["log_level"] for e in said] == ["error", "error"]
    assert "cancelling it again" in said[0]["event"] and "stopping without it" in said[1]["event"]
    assert any("stubborn_wait" in line for line in said[1]["waiting_in"])


async def test_a_task_whose_cancellation_its_clean_up_swallowed_ends_at_the_second_cancel(
        sqlite_settings, monkeypatch):
    from jiesu import runtime

    monkeypatch.setattr(runtime, "STOP_GRACE_SECONDS", 0.2)

    async def clean_up_that_waits_for_ever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:  # clean-up that awaits a driver's future, which nobody completes
            await asyncio.get_running_loop().create_future()

    rt, shared = await _pipeline(sqlite_settings)
    logs, stopping, done = await _stop_with(rt, shared, clean_up_that_waits_for_ever(), "cleaning")
    assert stopping in done
    assert rt.stuck == []
    assert [e["event"] for e in logs if e.get("task") == "cleaning"] == [
        "a background task did not end when cancelled; cancelling it again"]


def test_a_process_left_with_tasks_that_would_not_end_exits_at_once(monkeypatch):
    from types import SimpleNamespace

    from jiesu import app

    exits = []
    monkeypatch.setattr(app.os, "_exit", exits.append)
    app.exit_if_stuck(SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(stuck=[]))))
    assert exits == []
    app.exit_if_stuck(SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(stuck=["outbox-router"]))))
    assert exits == [1]

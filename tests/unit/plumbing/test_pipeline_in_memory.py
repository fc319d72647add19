"""The three services wired on FastStream's TestKafkaBroker (no broker process), on SQLite."""

from __future__ import annotations

import asyncio

import httpx
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

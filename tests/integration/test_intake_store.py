"""Intake's own rules against its database, on SQLite and on PostgreSQL: one ticket per reference under
concurrency, status from lifecycle events that never goes backwards, look-ups and rate limits."""

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.migrate import upgrade_all
from schemas.enums import Channel, TicketState
from schemas.events import (
    Envelope,
    ExtensionDecided,
    TicketClosed,
    TicketReopened,
    TicketReplied,
    TicketTracked,
    UnitRef,
    utcnow,
)
from services.intake import service
from services.intake.domain.submission import TicketSubmission
from services.intake.store import messaging, tickets

TZ = ZoneInfo("Asia/Shanghai")
UNIT = UnitRef(code="S-01-03", name="解放路街道")


@pytest.fixture
async def store(any_settings):
    await asyncio.to_thread(upgrade_all, any_settings, ("intake",))
    s = ServiceStore("intake", Database(any_settings.database_url("intake")), messaging)
    try:
        yield s
    finally:
        await s.db.dispose()


def submission(**kw):
    return TicketSubmission.model_validate({"kind": "complaint", "subject": "路灯不亮", "description": "一周了",
                                            "citizen": {"phone": "137-0000-1234"}, **kw})


async def accept(store, sub, channel=Channel.HOTLINE, key=None):
    return await service.accept(store, sub, channel=channel, operator="op", idempotency_key=key, tz=TZ)


async def apply(store, receipt, payload, *, seconds_later: float):
    envelope = Envelope.wrap(payload, ticket_id=receipt.ticket_id, producer="tracker",
                             occurred_at=receipt.received_at + timedelta(seconds=seconds_later))
    handler = {"TicketTracked": service.on_tracked, "TicketReplied": service.on_replied,
               "TicketClosed": service.on_closed, "TicketReopened": service.on_reopened,
               "ExtensionDecided": service.on_extension_decided}[payload.event_type]
    async with store.transaction() as tx:
        await handler(tx, envelope, payload)


async def row(store, receipt):
    async with store.db.session() as s:
        return (await s.execute(tickets.select().where(tickets.c.ticket_id == receipt.ticket_id))).first()


async def test_twenty_concurrent_submissions_with_one_reference_make_one_ticket(store):
    receipts = await asyncio.gather(*(accept(store, submission(source_ref="CALL-77")) for _ in range(20)))
    assert len({r.number for r in receipts}) == 1
    assert sum(not r.duplicate_request for r in receipts) == 1
    assert len({r.query_code for r in receipts}) == 1 and receipts[0].query_code  # what the first was given


async def test_the_same_reference_on_another_channel_is_another_ticket(store):
    a = await accept(store, submission(source_ref="X-1"), Channel.MAILBOX)
    b = await accept(store, submission(source_ref="X-1"), Channel.ONLINE)
    assert a.number != b.number


async def test_status_follows_the_lifecycle_and_a_late_redelivery_does_not_turn_it_back(store):
    r = await accept(store, submission())
    tracked = TicketTracked(number=r.number, state=TicketState.ASSIGNED, lead=UNIT, reply_due=utcnow())
    await apply(store, r, tracked, seconds_later=1)
    later = utcnow() + timedelta(days=10)
    await apply(store, r, ExtensionDecided(approved=False, new_due=None, by="sup"), seconds_later=2)
    assert (await row(store, r)).reply_due == tracked.reply_due
    await apply(store, r, ExtensionDecided(approved=True, new_due=later, by="sup"), seconds_later=3)
    assert (await row(store, r)).reply_due == later
    await apply(store, r, TicketReplied(unit=UNIT, reply="已修复", by="dept"), seconds_later=5)
    await apply(store, r, tracked, seconds_later=1)  # re-emitted by reconciliation, arrives late
    got = await row(store, r)
    assert (got.state, got.department, got.reply) == ("replied", "解放路街道", "已修复")
    assert got.tracked_at is not None
    await apply(store, r, TicketReopened(unit=UNIT, reason="不满意", reply_due=utcnow()), seconds_later=8)
    assert ((await row(store, r)).state, (await row(store, r)).reply) == ("reopened", None)
    await apply(store, r, TicketClosed(outcome="answered_directly"), seconds_later=9)
    assert (await row(store, r)).state == "answered_directly"


async def test_progress_needs_the_last_four_digits_of_the_phone(store):
    r = await accept(store, submission())
    row, by_code = await service.progress(store, r.number, "1234")
    assert row.number == r.number and not by_code  # the digits do not prove the citizen as the query code does
    for wrong in ("4321", "123", "abcd", ""):
        assert await service.progress(store, r.number, wrong) is None
    assert await service.progress(store, "12345-20200101-000001", "1234") is None


async def test_rate_limits_count_per_bucket_and_single_use_tokens_work_once(store):
    results = [await service.allow(store, "lookup:10.0.0.1", limit=3, window=timedelta(minutes=10)) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert await service.allow(store, "lookup:10.0.0.2", limit=3, window=timedelta(minutes=10))
    assert await service.first_use(store, "nonce-1") is True
    assert await service.first_use(store, "nonce-1") is False
    assert await service.first_use(store, "nonce-2") is True

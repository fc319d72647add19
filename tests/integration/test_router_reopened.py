"""A ticket closed and then reopened (重办, TicketReopened) is open work of its lead unit again, in the router's own
view: the directory import refuses to remove that unit without the admin confirming it. Through the router's
consumer as it subscribes, on SQLite and PostgreSQL.

The router applied TicketClosed but not TicketReopened, so a reopened ticket stayed closed for it and removing its
unit went through unasked."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bench.records import records_of
from jiesu.consumer import EventConsumer
from jiesu.migrate import upgrade
from jiesu.runtime import Runtime
from schemas import topics
from schemas.events import Envelope, TicketClosed, TicketReopened, UnitRef, utcnow
from services.router import service
from services.router.domain.directory import Directory
from services.router.store import decisions
from tests.integration.test_directory_import_review import demo, ticket_led_by, without_culture

CULTURE = UnitRef(code="M-WLJ", name="市文化和旅游局")


@pytest.fixture
async def router(any_settings):
    """The router's store and its consumer with the handlers it subscribes, the demo directory in force."""
    await asyncio.to_thread(upgrade, "router", any_settings.database_url("router"))
    rt = Runtime.create(any_settings, ["router"], bootstrap="unused:9092")
    store = rt.store("router")
    try:
        _, directory, _ = await service.import_directory(store, demo(), by="system")
        rt.state["router"] = service.RouterState(directory=directory, phone_key=b"test-key")
        yield store, EventConsumer(store, rt.specs["router"].subscriptions(rt)[0].handlers), directory
    finally:
        await rt.close()


async def led_ticket(store, directory: Directory):
    """A ticket a dispatcher gave to 市文化和旅游局: its id and number."""
    number = await ticket_led_by(store, CULTURE.code, directory)
    async with store.db.session() as s:
        ticket_id = await s.scalar(select(decisions.c.ticket_id).where(decisions.c.number == number))
    return ticket_id, number


def lifecycle(ticket_id, payload, at) -> Envelope:
    return Envelope.wrap(payload, ticket_id=ticket_id, producer="tracker", occurred_at=at)


def reopened(ticket_id, at) -> Envelope:
    return lifecycle(ticket_id, TicketReopened(unit=CULTURE, reason="回访不满意：仍未解决",
                                               reply_due=at + timedelta(days=3)), at)


async def test_a_ticket_reopened_after_closing_is_its_lead_units_open_work_again(router):
    store, consumer, directory = router
    ticket_id, number = await led_ticket(store, directory)
    start = utcnow()
    await consumer.process(records_of([lifecycle(ticket_id, TicketClosed(outcome="satisfied"), start)],
                                      topics.LIFECYCLE))
    assert await service.open_work(store, {CULTURE.code}) == {}

    again = reopened(ticket_id, start + timedelta(minutes=5))
    await consumer.process(records_of([again], topics.LIFECYCLE))
    await consumer.process(records_of([again], topics.LIFECYCLE))  # redelivered: applied once
    assert await service.open_work(store, {CULTURE.code}) == {CULTURE.code: (1, 0, [number])}
    with pytest.raises(service.UnitsStillHandling) as refused:
        await service.import_directory(store, without_culture(), by="admin")
    assert f"单位 M-WLJ（市文化和旅游局）仍有 1 件在办工单：{number}" in str(refused.value)

    # Satisfied at last: closed again. Neither the reopening redelivered nor one older than this close, arriving
    # after it (re-emitted by reconciliation when the broker lost it), undoes the close.
    await consumer.process(records_of([lifecycle(ticket_id, TicketClosed(outcome="satisfied"),
                                                 start + timedelta(minutes=10)), again,
                                       reopened(ticket_id, start + timedelta(minutes=7))], topics.LIFECYCLE))
    assert await service.open_work(store, {CULTURE.code}) == {}
    _, _, summary = await service.import_directory(store, without_culture(), by="admin")
    assert summary == "删除单位 1：M-WLJ"


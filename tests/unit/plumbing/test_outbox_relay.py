"""The outbox relay: publishes in id order and marks sent; on PostgreSQL one relay of a service leads at a time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.outbox import OutboundRecord, OutboxRelay
from schemas.events import Envelope, TicketClosed
from services.router.store import messaging


class Collected:
    """A sender that keeps what it was given; `down` makes it fail as a broker that is away."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []
        self.down = False

    async def send(self, records: list[OutboundRecord]) -> None:
        if self.down:
            raise ConnectionError("broker away")
        self.records.extend(records)

    def event_ids(self) -> list[str]:
        return [dict(r.headers)["event_id"].decode() for r in self.records]


async def _owe(store: ServiceStore, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        async with store.transaction() as tx:
            envelope = Envelope.wrap(TicketClosed(outcome="satisfied"), ticket_id=uuid.uuid4(), producer="router")
            await tx.emit("tickets.lifecycle", envelope)
            ids.append(str(envelope.event_id))
    return ids


async def _unsent(store: ServiceStore) -> int:
    outbox = store.tables.outbox
    async with store.db.session() as s:
        return len((await s.execute(select(outbox.c.id).where(outbox.c.sent_at.is_(None)))).all())


async def test_rows_are_published_in_the_order_they_were_written_and_marked_sent(store):
    sender = Collected()
    relay = OutboxRelay(store, sender, batch=4)
    owed = await _owe(store, 10)

    assert [await relay.relay_once() for _ in range(4)] == [4, 4, 2, 0]

    assert sender.event_ids() == owed
    assert await _unsent(store) == 0
    await relay.release()


async def test_a_broker_that_is_away_loses_nothing_and_the_next_pass_sends_it(store):
    sender = Collected()
    relay = OutboxRelay(store, sender)
    owed = await _owe(store, 3)
    sender.down = True
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert await _unsent(store) == 3

    if store.db.dialect == "postgresql":  # the failed pass's connection went with its lock, not back to the pool
        assert await _relay_locks_held(store) == 0

    sender.down = False
    assert await relay.relay_once() == 3
    assert sender.event_ids() == owed
    await relay.release()


async def _relay_locks_held(store: ServiceStore) -> int:
    async with store.db.session() as s:
        return await s.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                   "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))


async def test_one_relay_of_a_service_leads_and_another_takes_over_when_it_is_gone(pg_store):
    first_sender, second_sender = Collected(), Collected()
    first, second = OutboxRelay(pg_store, first_sender), OutboxRelay(pg_store, second_sender)
    owed = await _owe(pg_store, 3)

    assert await first.relay_once() == 3
    more = await _owe(pg_store, 2)
    assert await second.relay_once() == 0  # the first still leads: the second sends nothing
    assert second_sender.records == [] and await _unsent(pg_store) == 2

    await first.release()  # that instance stopped (or its connection died): the lead is free
    assert await second.relay_once() == 2
    assert first_sender.event_ids() == owed and second_sender.event_ids() == more
    await second.release()


async def test_a_relay_whose_connection_was_cut_fails_one_pass_then_leads_again_on_a_new_one(pg_store):
    sender = Collected()
    relay = OutboxRelay(pg_store, sender)
    await relay.relay_once()  # leads, on a connection of its own
    pid = await relay._own.scalar(text("SELECT pg_backend_pid()"))
    async with pg_store.db.session() as s:
        assert await s.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    owed = await _owe(pg_store, 2)

    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver says of a dead connection
        await relay.relay_once()
    assert await relay.relay_once() == 2

    assert sender.event_ids() == owed
    await relay.release()


class Network:
    """A TCP relay to PostgreSQL whose client side can be dropped while the server side stays open and
    silent, as when the leader's host crashes or a firewall forgets the connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, list[asyncio.Task]]] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _link(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection(self.host, self.port)
        pipes = [asyncio.create_task(self._pipe(client_reader, server_writer)),
                 asyncio.create_task(self._pipe(server_reader, client_writer))]
        self.links.append((client_writer, server_writer, pipes))

    @staticmethod
    async def _pipe(reader, writer) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def drop_clients(self) -> None:
        for client_writer, _, pipes in self.links:
            for pipe in pipes:
                pipe.cancel()
            client_writer.transport.abort()

    def close(self) -> None:
        self.drop_clients()
        for _, server_writer, _ in self.links:
            server_writer.transport.abort()
        self.server.close()


async def test_a_leader_lost_without_a_word_to_the_server_gives_up_the_lead_within_seconds(pg_store, pg_url):
    server = make_url(pg_url)
    network = Network(server.host or "127.0.0.1", server.port or 5432)
    through = server.set(host="127.0.0.1", port=await network.start())
    far = ServiceStore("router", Database(through.render_as_string(hide_password=False)), messaging)
    lost, other = OutboxRelay(far, Collected(), lost_after_seconds=1), OutboxRelay(pg_store, Collected())
    try:
        await lost.relay_once()  # leads, through the network
        network.drop_clients()  # its host is gone; the server still holds its session, idle, and the lock
        owed = await _owe(pg_store, 2)
        assert await other.relay_once() == 0

        sent = 0
        for _ in range(50):  # PostgreSQL ends the silent session after 1 s; then the lead is free
            await asyncio.sleep(0.1)
            sent = await other.relay_once()
            if sent:
                break
        assert sent == 2 and other.sender.event_ids() == owed
    finally:
        await other.release()
        await lost.release()
        await far.db.dispose()
        network.close()

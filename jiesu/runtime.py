"""Wiring: what a service declares, and the runtime that starts services in a process.

`jiesu up` runs all three services in one process; `jiesu run router` runs one. The same
`ServiceSpec`s, the same broker code and the same database code serve both: only the
settings (URLs) differ.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter
from faststream.kafka import KafkaBroker, KafkaRouter
from sqlalchemy import MetaData, text

from jiesu.audit import seal_all
from jiesu.config import SERVICES, Settings
from jiesu.consumer import Handler, EventConsumer
from jiesu.db import Database, is_sqlite
from jiesu.identity import IdentityStore, load_secret
from jiesu.logging import get_logger
from jiesu.messaging import MessagingTables, ServiceStore
from jiesu.outbox import AioKafkaSender, OutboxRelay, Sender

log = get_logger(__name__)

# How long stopping waits for a cancelled background task, and again after cancelling it once more.
STOP_GRACE_SECONDS = 10.0
SECOND_CANCEL_GRACE_SECONDS = 2.0


@dataclass
class Subscription:
    """One consumer group per service: its topics and a handler per event type it applies."""

    topics: tuple[str, ...]
    handlers: dict[str, Handler]


@dataclass
class ServiceSpec:
    """Everything a service contributes; `services/<name>/bootstrap.py` defines `SPEC`."""

    name: str
    metadata: MetaData
    tables: MessagingTables
    routers: list[APIRouter]
    # Called once the runtime exists: the service builds its own state (directory, model, calendar …).
    setup: Callable[[Runtime], Awaitable[Any]]
    subscriptions: Callable[[Runtime], list[Subscription]]
    background: Callable[[Runtime], list[Callable[[], Awaitable[None]]]] = lambda rt: []
    # Extra `jiesu` sub-commands: called with argparse's sub-parsers; each sets `func=(args, settings) -> int`.
    cli: Callable[[Any], None] | None = None
    static_dir: Path | None = None  # served at /static/<name>/
    # The service's own housekeeping beside its outbox and inbox (deliveries done with, old rate-limit windows),
    # run by the runtime's hourly purge after those two.
    purge: Callable[[Runtime], Awaitable[Any]] | None = None


def load_spec(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{name}.bootstrap").SPEC


@dataclass
class Runtime:
    settings: Settings
    specs: dict[str, ServiceSpec]
    bootstrap: str
    stores: dict[str, ServiceStore] = field(default_factory=dict)
    identity: IdentityStore | None = None
    secret: str = ""
    brokers: dict[str, KafkaBroker] = field(default_factory=dict)
    sender: Sender | None = None
    state: dict[str, Any] = field(default_factory=dict)  # per-service objects set by setup()
    http: httpx.AsyncClient | None = None
    _producer: AIOKafkaProducer | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    relays: dict[str, OutboxRelay] = field(default_factory=dict)
    stuck: list[str] = field(default_factory=list)  # background tasks that would not end when stopping

    @classmethod
    def create(cls, settings: Settings, services: list[str], *, bootstrap: str) -> Runtime:
        specs = {name: load_spec(name) for name in services}
        rt = cls(settings=settings, specs=specs, bootstrap=bootstrap)
        for name, spec in specs.items():
            rt.stores[name] = ServiceStore(name, Database(settings.database_url(name)), spec.tables)
        rt.identity = IdentityStore(Database(settings.database_url("identity")))
        rt.secret = load_secret(settings.secret_key, settings.data_dir)
        return rt

    def store(self, name: str) -> ServiceStore:
        return self.stores[name]

    def build_brokers(self, factory: Callable[[], KafkaBroker] | None = None) -> dict[str, KafkaBroker]:
        """One FastStream broker per service, with that service's consumer registered.

        Separate brokers let the services join their consumer groups concurrently at
        start-up and keep each service's consumer independent, as in production.
        """
        for name, spec in self.specs.items():
            broker = factory() if factory else KafkaBroker(
                self.bootstrap, acks="all", enable_idempotence=self.settings.producer_idempotence,
                client_id=f"jiesu-{name}",
            )
            router = _GroupRouter(self.consumer_options())
            for sub in spec.subscriptions(self):
                consumer = EventConsumer(self.stores[name], sub.handlers, retries=self.settings.consumer_retries,
                                         lanes=self.settings.consumer_lanes)
                consumer.subscribe(router, *sub.topics, group_id=f"jiesu-{name}", batch=self.settings.consumer_batch)
            broker.include_router(router)
            self.brokers[name] = broker
        return self.brokers

    def consumer_options(self) -> dict[str, Any]:
        """Group-membership options (aiokafka's names) for every consumer this runtime starts."""
        return {"session_timeout_ms": self.settings.consumer_session_timeout_ms,
                "heartbeat_interval_ms": self.settings.consumer_heartbeat_interval_ms,
                "fetch_max_wait_ms": self.settings.consumer_fetch_max_wait_ms}

    async def prepare(self) -> None:
        """Each service sets up its state (directory, model, calendar …); nothing is started."""
        for spec in self.specs.values():
            await spec.setup(self)
        for store in self.stores.values():
            if await store.db.autovacuum_off():
                log.warning("autovacuum is off on this PostgreSQL server: the tables' statistics go stale and "
                            "look-ups slow down as they grow; turn it on, or ANALYZE regularly", service=store.name)

    async def close(self) -> None:
        """Release what prepare() opened (database connections)."""
        for store in self.stores.values():
            await store.db.dispose()
        if self.identity:
            await self.identity.db.dispose()

    async def start(self, *, sender: Sender | None = None, start_broker: bool = True) -> None:
        await self.prepare()
        if not self.brokers:
            self.build_brokers()
        if sender is None:
            async def start_producer() -> AIOKafkaProducer:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", linger_ms=2,
                    enable_idempotence=self.settings.producer_idempotence, client_id="jiesu-outbox",
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                return producer

            self._producer = await _retry(start_producer, "outbox producer", self.bootstrap)
            sender = AioKafkaSender(self._producer)
        self.sender = sender
        if start_broker:
            await asyncio.gather(*(_retry(b.start, f"{name} consumer", self.bootstrap)
                                   for name, b in self.brokers.items()))
        self.http = httpx.AsyncClient(timeout=5.0)
        for name, store in self.stores.items():
            relay = OutboxRelay(store, sender, batch=self.settings.outbox_batch,
                                poll_seconds=self.settings.outbox_poll_seconds)
            self.relays[name] = relay
            self._spawn(relay.run(), f"outbox-{name}")
            own = self.specs[name].purge
            self._spawn(_repeat(store, "purge", PURGE_EVERY_SECONDS,
                                partial(_purge, store, self.settings, own and partial(own, self)),
                                first=PURGE_FIRST_SECONDS), f"purge-{name}")
            if store.tables.audit is not None:
                self._spawn(_repeat(store, "audit sealing", 1.0, partial(seal_all, store.db, store.tables.audit)),
                            f"audit-{name}")
            if is_sqlite(store.db.url):
                self._spawn(_repeat(store, "WAL checkpoint", 1.0, store.db.checkpoint), f"checkpoint-{name}")
            for job in self.specs[name].background(self):
                self._spawn(job(), f"{name}-background")
        log.info("services started", services=list(self.specs), broker=self.bootstrap)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def stop(self) -> None:
        async with self._sqlite_quiet():
            for task in self._tasks:
                task.cancel()
            self.stuck = [task.get_name() for task in await _until_ended(self._tasks, STOP_GRACE_SECONDS)]
        self._tasks.clear()
        # Flush what is left in the outbox before leaving, if the broker is still there; not through a
        # relay whose own task is stuck in a pass (it holds the relay's connection).
        for name, relay in self.relays.items():
            if f"outbox-{name}" in self.stuck:
                continue
            try:
                await asyncio.wait_for(relay.relay_once(), 5)
            except Exception:  # noqa: BLE001 - it stays in the outbox for next time
                pass
            await relay.release()
        await asyncio.gather(*(b.stop() for b in self.brokers.values()), return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
        if self.http is not None:
            await self.http.aclose()
        await self.close()

    @asynccontextmanager
    async def _sqlite_quiet(self, timeout: float = 5.0) -> AsyncIterator[None]:
        """Hold every SQLite store's connection, so that tasks cancelled meanwhile are between transactions.

        A task cancelled inside a SQLite transaction has its connection thrown away with the
        write lock still held (the cancelled statement is never finalized): the outbox flush
        after it then waited SQLite's whole busy timeout (30 s) and failed. A store has one
        connection per process (jiesu.db), so holding it means no transaction of ours is open.
        Past `timeout` (a transaction waiting on something slow) the tasks are cancelled anyway.
        """
        async with AsyncExitStack() as held:
            for store in self.stores.values():
                if is_sqlite(store.db.url):
                    try:
                        await asyncio.wait_for(held.enter_async_context(store.db.engine.connect()), timeout)
                    except Exception as exc:  # noqa: BLE001 - busy or gone: cancel as before
                        log.warning("could not quiesce the database before stopping", service=store.name,
                                    error=repr(exc))
            yield

    async def ready(self) -> dict[str, str]:
        """What /readyz reports: each database and the broker."""
        status: dict[str, str] = {}
        for name, store in self.stores.items():
            try:
                async with store.db.session() as s:
                    await s.execute(text("SELECT 1"))
                status[f"db:{name}"] = "ok"
            except Exception as exc:  # noqa: BLE001
                status[f"db:{name}"] = f"error: {type(exc).__name__}"
        for name, broker in self.brokers.items():
            try:
                status[f"broker:{name}"] = "ok" if await broker.ping(timeout=2.0) else "down"
            except Exception as exc:  # noqa: BLE001
                status[f"broker:{name}"] = f"error: {type(exc).__name__}"
        return status


class _GroupRouter(KafkaRouter):
    """A service's router: its subscribers get the runtime's group-membership options by default.

    A subscriber that names one of them itself keeps its own value.
    """

    def __init__(self, consumer_options: dict[str, Any]) -> None:
        super().__init__()
        self._consumer_options = consumer_options

    def subscriber(self, *topics: str, **kwargs: Any):
        return super().subscriber(*topics, **{**self._consumer_options, **kwargs})


PURGE_EVERY_SECONDS = 3600.0
PURGE_FIRST_SECONDS = 60.0  # after start: a service restarted now and then still purges


async def _repeat(store: ServiceStore, what: str, every: float, job: Callable[[], Awaitable[Any]], *,
                  first: float | None = None) -> None:
    """Run a service's housekeeping job every so often (the first time after `first`, default `every`);
    a failed run is logged and the next retries."""
    await asyncio.sleep(every if first is None else first)
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next run retries
            log.warning(f"{what} failed; will retry", service=store.name, error=repr(exc))
        await asyncio.sleep(every)


async def _purge(store: ServiceStore, settings: Settings, own: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Drop outbox rows sent, and inbox entries applied, longer ago than their retention; then the service's
    own housekeeping (`ServiceSpec.purge`), if it has any."""
    sent = await store.purge_outbox(timedelta(days=settings.outbox_retention_days))
    applied = await store.purge_inbox(timedelta(days=settings.inbox_retention_days))
    if sent or applied:
        log.info("purged", service=store.name, outbox=sent, inbox=applied)
    if own is not None:
        await own()


async def _retry(start: Callable[[], Awaitable[Any]], what: str, bootstrap: str, timeout: float = 120.0):
    """Start something that needs the broker, waiting for the broker rather than failing at once.

    A service started while Kafka restarts (or before it) comes up when Kafka does.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.5
    while True:
        try:
            return await start()
        except Exception as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise
            log.warning("broker not reachable yet; retrying", what=what, broker=bootstrap, error=repr(exc),
                        retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _until_ended(tasks: list[asyncio.Task], grace: float) -> list[asyncio.Task]:
    """Wait for cancelled tasks to end; answer those that would not.

    One still running after `grace` is logged with where it waits and cancelled once more: a
    task whose cancellation was taken up by clean-up code that then waits on something that
    never comes (a driver's future) ends at the second. One that outlives that too is left
    behind: a service that never stops is worse than one task not cleaned up.
    """
    if not tasks:
        return []
    _, stuck = await asyncio.wait(tasks, timeout=grace)
    for task in stuck:
        log.error("a background task did not end when cancelled; cancelling it again",
                  task=task.get_name(), waiting_in=_awaiting(task))
        task.cancel()
    if stuck:
        _, stuck = await asyncio.wait(stuck, timeout=SECOND_CANCEL_GRACE_SECONDS)
    for task in stuck:
        log.error("a background task did not end when cancelled twice; stopping without it",
                  task=task.get_name(), waiting_in=_awaiting(task))
    return list(stuck)


def _awaiting(task: asyncio.Task) -> list[str]:
    """Where a suspended task waits: its chain of awaits, outermost first (get_stack() gives one frame)."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    # What the task itself waits on: the chain ends in an opaque iterator (a future's __await__,
    # an async context manager's generator) that hides it.
    chain.append(f"waiting on {getattr(task, '_fut_waiter', None)!r}")
    return chain


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task crashed", task=task.get_name(), error=repr(task.exception()))



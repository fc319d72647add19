"""Department notifications that cannot be delivered are given up, not retried for ever (on SQLite and on
PostgreSQL): at once when the receiver refuses them for good, after JIESU_DELIVERY_GIVE_UP_HOURS when they
keep failing for now. The lease reads the rows still owed through the pending partial index.

A real SMTP server and a real webhook receiver (tests.smtp_sink, tests.webhook_sink) run on loopback ports; the
receiver answers /hook/<status> with that status.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select, text, update

from jiesu.embedded_broker import free_port
from jiesu.migrate import upgrade, upgrade_all
from jiesu.runtime import Runtime
from schemas.events import utcnow
from services.tracker.notify import DeliveryWorker, notify, notify_many
from services.tracker.store import deliveries, notifications, unit_contacts
from tests.smtp_sink import MailSink, mail_server
from tests.webhook_sink import webhook_server

GONE = "gone@cgw.city.example"  # a department mailbox that no longer exists


@pytest.fixture
async def receivers():
    """(the mail sink, its SMTP port, the webhook receiver's URL); test_delivery_resend takes them too."""
    refusing = MailSink(refused={GONE: "550 5.1.1 <gone@cgw.city.example>: Recipient address rejected: User unknown"})
    with mail_server(refusing) as (mail, smtp_port):
        async with webhook_server() as (_, hook):
            yield mail, smtp_port, hook


@pytest.fixture
async def rt(any_settings, receivers):
    """The tracker alone (no broker): its store, mail to the receiver, give up after two hours of failing."""
    _, smtp_port, _ = receivers
    settings = any_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": smtp_port,
                                               "delivery_give_up_hours": 2})
    await asyncio.to_thread(upgrade_all, settings, ("tracker",))
    runtime = Runtime.create(settings, ["tracker"], bootstrap="unused:9092")
    try:
        yield runtime
    finally:
        await runtime.close()


async def owe(rt, *, email: str | None = None, webhook: str = "") -> None:
    """A new ticket for M-CGW told by e-mail (to `email`) or by webhook (to `webhook`), through notify itself."""
    settings = rt.settings.model_copy(update={"webhook_url": webhook, "mail_host": rt.settings.mail_host if email
                                              else ""})
    ticket = SimpleNamespace(ticket_id=uuid.uuid4(), number="12345-20261125-000001", subject="夜间施工噪音扰民",
                             citizen_phone="13800138000", reply_due=None)
    async with rt.store("tracker").transaction() as tx:
        if email:
            await tx.session.execute(unit_contacts.insert().values(unit_code="M-CGW", email=email))
        await notify(tx, settings, ticket, "M-CGW", "arrived", "新工单：夜间施工噪音扰民")


async def the_delivery(rt):
    async with rt.store("tracker").db.session() as s:
        [row] = (await s.execute(select(deliveries))).all()
    return row


async def due_now(rt, **values) -> None:
    """The back-off (or the lease) has passed."""
    async with rt.store("tracker").db.session() as s:
        await s.execute(update(deliveries).values(next_attempt_at=utcnow() - timedelta(seconds=1), **values))


async def test_a_department_mailbox_that_no_longer_exists_is_given_up_at_once_and_never_sent_again(rt, receivers,
                                                                                                   capsys):
    mail, _, _ = receivers
    await owe(rt, email=GONE)
    worker = DeliveryWorker(rt.store("tracker"), rt.settings)
    assert await worker.deliver_once() == 1
    row = await the_delivery(rt)
    assert row.failed_at is not None and row.delivered_at is None and row.attempts == 1
    assert row.last_error.startswith("收件地址被邮件服务器拒收：550 5.1.1") and "User unknown" in row.last_error
    logged = capsys.readouterr()
    assert "notification delivery given up" in logged.out + logged.err

    await due_now(rt)
    assert await worker.deliver_once() == 0
    assert (await the_delivery(rt)).attempts == 1 and mail.messages == []


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422])
async def test_a_webhook_refused_for_good_is_given_up_at_once(rt, receivers, status):
    _, _, hook = receivers
    await owe(rt, webhook=f"{hook}/{status}")
    worker = DeliveryWorker(rt.store("tracker"), rt.settings, rt.http)
    assert await worker.deliver_once() == 1
    row = await the_delivery(rt)
    assert row.failed_at is not None and row.last_error.startswith(f"消息系统拒收：HTTP {status}")
    await due_now(rt)
    assert await worker.deliver_once() == 0


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_a_webhook_failing_for_now_is_retried_with_back_off(rt, receivers, status):
    _, _, hook = receivers
    await owe(rt, webhook=f"{hook}/{status}")
    worker = DeliveryWorker(rt.store("tracker"), rt.settings, rt.http)
    assert await worker.deliver_once() == 1
    row = await the_delivery(rt)
    assert row.failed_at is None and row.next_attempt_at > utcnow()
    assert row.last_error.startswith(f"消息系统暂时无法接收：HTTP {status}")
    await due_now(rt)
    assert await worker.deliver_once() == 1


async def test_a_delivery_failing_for_now_is_given_up_after_the_configured_hours(rt, receivers):
    _, _, hook = receivers
    await owe(rt, webhook=f"{hook}/503")
    worker = DeliveryWorker(rt.store("tracker"), rt.settings, rt.http)  # JIESU_DELIVERY_GIVE_UP_HOURS=2
    assert await worker.deliver_once() == 1
    first = await the_delivery(rt)
    assert first.failing_since is not None and first.failed_at is None

    await due_now(rt)
    assert await worker.deliver_once() == 1
    assert (await the_delivery(rt)).failing_since == first.failing_since  # the clock runs from the first failure

    await due_now(rt, failing_since=utcnow() - timedelta(hours=1, minutes=59))
    assert await worker.deliver_once() == 1
    assert (await the_delivery(rt)).failed_at is None

    await due_now(rt, failing_since=utcnow() - timedelta(hours=2, minutes=1))
    assert await worker.deliver_once() == 1
    row = await the_delivery(rt)
    assert row.failed_at is not None and row.attempts == 4 and "HTTP 503" in row.last_error
    await due_now(rt)
    assert await worker.deliver_once() == 0


async def test_a_webhook_receiver_that_is_down_is_a_failure_for_now(rt):
    await owe(rt, webhook=f"http://127.0.0.1:{free_port()}/hook")  # nobody listens there
    assert await DeliveryWorker(rt.store("tracker"), rt.settings, rt.http).deliver_once() == 1
    row = await the_delivery(rt)
    assert row.failed_at is None and row.last_error.startswith("无法连接消息系统")


@pytest.mark.parametrize(("service", "table"), [("tracker", "tracker_deliveries"),
                                                 ("intake", "intake_acknowledgements")])
async def test_the_lease_reads_the_rows_still_owed_through_the_pending_index(any_settings, service, table):
    """Alembic does not compare partial indexes' predicates: the migrated index is checked here, and on
    PostgreSQL that the lease's own query (captured as it runs) can use it."""
    from jiesu.db import Database
    from jiesu.mailer import DeliveryLoop
    from jiesu.messaging import ServiceStore
    from jiesu.runtime import load_spec

    url = any_settings.database_url(service)
    await asyncio.to_thread(upgrade, service, url)
    spec = load_spec(service)
    store = ServiceStore(service, Database(url), spec.tables)
    try:
        async with store.db.session() as s:
            if store.db.dialect == "postgresql":
                definition = await s.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                            {"n": f"ix_{table}_pending"})
            else:
                definition = await s.scalar(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                                            {"n": f"ix_{table}_pending"})
        assert "delivered_at IS NULL" in definition and "failed_at IS NULL" in definition

        if store.db.dialect != "postgresql":
            return
        leases = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and "FOR UPDATE" in statement:
                leases.append((statement, parameters))

        event.listen(store.db.engine.sync_engine, "before_cursor_execute", capture)
        loop = DeliveryLoop(store, spec.metadata.tables[table], None, what="test", give_up_after=timedelta(hours=1))
        assert await loop.deliver_once() == 0
        event.remove(store.db.engine.sync_engine, "before_cursor_execute", capture)
        [(statement, parameters)] = leases
        async with store.db.session() as s:
            await s.execute(text("SET LOCAL enable_seqscan = off"))  # as on a large table
            conn = await s.connection()
            plan = "\n".join(r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).all())
        assert f"ix_{table}_pending" in plan, plan
    finally:
        await store.db.dispose()


async def test_a_failure_never_overwrites_a_delivery_another_sender_made_after_the_lease(rt):
    """A send that outlived its lease: meanwhile another tracker took the row and delivered it."""
    from jiesu.mailer import DeliveryLoop, PermanentFailure

    await owe(rt, email="duty@cgw.city.example")
    store = rt.store("tracker")

    async def slow_then_refused(row) -> None:
        async with store.db.session() as s:  # the other sender, done while this one still waited
            await s.execute(update(deliveries).where(deliveries.c.id == row.id).values(delivered_at=utcnow()))
        raise PermanentFailure("收件地址被邮件服务器拒收：550")

    loop = DeliveryLoop(store, deliveries, slow_then_refused, what="test", give_up_after=timedelta(hours=1))
    assert await loop.deliver_once() == 1
    row = await the_delivery(rt)
    assert row.delivered_at is not None and row.failed_at is None and row.last_error is None


async def test_a_batch_of_notices_reads_the_units_mailboxes_once_and_owes_each_its_deliveries(rt, receivers):
    """notify_many (a consumer's batch): one read of unit_contacts for all its units; each notice an e-mail where
    its unit has a mailbox and a webhook call in any case."""
    _, _, hook = receivers
    settings = rt.settings.model_copy(update={"webhook_url": f"{hook}/200"})
    store = rt.store("tracker")
    tickets = [SimpleNamespace(ticket_id=uuid.uuid4(), number=f"12345-20261125-00000{i}", subject="噪音",
                               citizen_phone=None, reply_due=None) for i in range(3)]
    reads = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "tracker_unit_contacts" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    async with store.transaction() as tx:
        await tx.session.execute(unit_contacts.insert().values(unit_code="M-CGW", email="duty@cgw.city.example"))
    event.listen(store.db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with store.transaction() as tx:
            await notify_many(tx, settings, [(tickets[0], "M-CGW", "arrived", "新工单"),
                                             (tickets[1], "D-HD", "arrived", "新工单"),
                                             (tickets[2], "M-CGW", "reminder", "催办"),
                                             (tickets[2], None, "reminder", "无承办单位")])
    finally:
        event.remove(store.db.engine.sync_engine, "before_cursor_execute", capture)
    assert len(reads) == 1, reads
    async with store.db.session() as s:
        owed = (await s.execute(select(notifications.c.number, notifications.c.unit_code, deliveries.c.channel,
                                       deliveries.c.target)
                                .join(notifications, notifications.c.id == deliveries.c.notification_id))).all()
    mailbox, webhook = ("email", "duty@cgw.city.example"), ("webhook", f"{hook}/200")
    assert sorted(owed) == sorted([(tickets[0].number, "M-CGW", *mailbox), (tickets[0].number, "M-CGW", *webhook),
                                   (tickets[1].number, "D-HD", *webhook),
                                   (tickets[2].number, "M-CGW", *mailbox), (tickets[2].number, "M-CGW", *webhook)])

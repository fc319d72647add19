"""重新发送: a department notification or a citizen's receipt that was given up is sent again, once, when the
supervision office (notifications) or an operator (receipts) asks after the fault is put right; each re-send is
audited, and one that was not given up is refused. Sent and long given-up rows are purged. On SQLite and
PostgreSQL, through the pages' own POST routes, with a real SMTP server and webhook receiver on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from functools import partial

import httpx
import pytest
from sqlalchemy import event, select, text, update

from jiesu.migrate import upgrade_all
from jiesu.runtime import Runtime, load_spec
from jiesu.runtime import _purge as runtime_purge
from jiesu.web import create_app
from schemas.enums import Channel, Role
from schemas.events import utcnow
from services.intake import mail, service
from services.intake.store import acknowledgements
from services.tracker import web as tracker_web
from services.tracker.notify import DeliveryWorker, notify, purge_deliveries
from services.tracker.store import deliveries, notifications, ticket_units, tickets, unit_contacts
from tests.integration.test_delivery_failures import GONE, receivers  # noqa: F401 (receivers is a fixture)
from tests.integration.test_intake_acknowledgements import NOBODY, REFUSAL, TZ, form

UNIT = "M-CGW"
NUMBER = "12345-20261125-000001"
FIXED = "duty@cgw.city.example"  # the unit's mailbox as the office corrected it


@contextlib.asynccontextmanager
async def service_app(settings, name: str):
    """One service's pages and API over its migrated database: set up, nothing started (no broker, no loops)."""
    await asyncio.to_thread(upgrade_all, settings, (name, "identity"))
    app = create_app(lambda: Runtime.create(settings, [name], bootstrap="unused:9092"), load_spec(name).routers,
                     start=False, prepare=True)
    async with app.router.lifespan_context(app):
        yield app


async def client_of(app, username: str, role: Role, department: str | None = None) -> httpx.AsyncClient:
    identity = app.state.runtime.identity
    await identity.create_user(username, "resend-test-1", role, department=department, display_name=username)
    token = await identity.create_token(username, "test")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jiesu.test",
                             headers={"Authorization": f"Bearer {token}"})


async def audited(store, action: str) -> list:
    audit = store.tables.audit
    async with store.db.session() as s:
        return (await s.execute(select(audit).where(audit.c.action == action).order_by(audit.c.id))).all()


# --- department notifications (tracker) ------------------------------------------------------


@pytest.fixture
async def tracker(any_settings, receivers):
    _, smtp_port, hook = receivers
    settings = any_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": smtp_port,
                                               "webhook_url": f"{hook}/200"})
    async with service_app(settings, "tracker") as app:
        async with app.state.runtime.store("tracker").transaction() as tx:
            ticket_id = uuid.uuid4()
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number=NUMBER, state="assigned", kind="complaint", urgency="normal",
                subject="夜间施工噪音扰民", citizen_phone="13800138000", confidential=False, lead_code=UNIT,
                lead_name="市城市管理委员会", co_handlers=[], assigned_at=utcnow(), updated_at=utcnow()))
            await tx.session.execute(ticket_units.insert().values(ticket_id=ticket_id, unit_code=UNIT, role="lead"))
            await tx.session.execute(unit_contacts.insert().values(unit_code=UNIT, email=GONE))
        yield app


async def tell(app, *, email: bool = True, webhook: str = "") -> int:
    """The unit told of its new ticket (by notify itself), by e-mail to its mailbox or by webhook: the delivery's id."""
    rt = app.state.runtime
    settings = rt.settings.model_copy(update={"webhook_url": webhook, "mail_host": rt.settings.mail_host if email
                                              else ""})
    async with rt.store("tracker").transaction() as tx:
        row = (await tx.session.execute(select(tickets).where(tickets.c.number == NUMBER))).one()
        await notify(tx, settings, row, UNIT, "arrived", "新工单：夜间施工噪音扰民")
    async with rt.store("tracker").db.session() as s:
        return await s.scalar(select(deliveries.c.id).order_by(deliveries.c.id.desc()).limit(1))


async def delivery(app, delivery_id: int):
    async with app.state.runtime.store("tracker").db.session() as s:
        return (await s.execute(select(deliveries).where(deliveries.c.id == delivery_id))).one()


def worker(app) -> DeliveryWorker:
    rt = app.state.runtime
    return DeliveryWorker(rt.store("tracker"), rt.settings, rt.http)


async def test_a_notification_refused_for_good_is_delivered_once_when_the_office_sends_it_again_after_the_fix(
        tracker, receivers):
    mail_sink, _, _ = receivers
    mail_sink.refused[GONE] = "550 5.1.1 <gone@cgw.city.example>: Recipient address rejected: User unknown"
    delivery_id = await tell(tracker)
    assert await worker(tracker).deliver_once() == 1
    assert (await delivery(tracker, delivery_id)).failed_at is not None and mail_sink.messages == []

    del mail_sink.refused[GONE]  # the mail server's relay settings put right: it takes the mailbox again
    async with await client_of(tracker, "sup", Role.SUPERVISOR) as office:
        page = (await office.get(f"/tracker/tickets/{NUMBER}")).text
        assert f'name="delivery" value="{delivery_id}"' in page and "重新发送" in page
        r = await office.post(f"/tracker/tickets/{NUMBER}/do/resend", data={"delivery": str(delivery_id)})
        assert r.status_code == 303 and r.headers["location"] == f"/tracker/tickets/{NUMBER}?done=resend"
        assert "已重新发送通知。" in (await office.get(r.headers["location"])).text

    row = await delivery(tracker, delivery_id)
    assert (row.failed_at, row.failing_since, row.last_error, row.delivered_at) == (None, None, None, None)
    assert row.attempts == 1 and row.next_attempt_at <= utcnow()  # the attempt it failed at is still counted
    assert await worker(tracker).deliver_once() == 1
    assert await worker(tracker).deliver_once() == 0
    row = await delivery(tracker, delivery_id)
    assert row.delivered_at is not None and row.attempts == 2
    assert [m["To"] for m in mail_sink.messages] == [GONE]  # delivered once
    [entry] = await audited(tracker.state.runtime.store("tracker"), "NotificationResent")
    assert entry.actor == "sup" and entry.details["delivery_id"] == delivery_id
    assert entry.details["attempts"] == 1 and entry.details["unit_code"] == UNIT


async def test_a_notification_goes_again_to_the_mailbox_the_office_corrected_from_the_failed_list(
        tracker, receivers):
    mail_sink, _, _ = receivers
    mail_sink.refused[GONE] = "550 5.1.1 User unknown"
    delivery_id = await tell(tracker)
    await worker(tracker).deliver_once()
    async with await client_of(tracker, "sup", Role.SUPERVISOR) as office:
        r = await office.put(f"/api/v1/tracker/units/{UNIT}/contact", json={"email": FIXED})
        assert r.status_code == 200, r.text
        listed = (await office.get("/tracker/supervision")).text
        assert f'action="/tracker/tickets/{NUMBER}/do/resend"' in listed and "全部重新发送" in listed
        r = await office.post(f"/tracker/tickets/{NUMBER}/do/resend",
                              data={"delivery": str(delivery_id), "back": "/tracker/supervision"})
        assert r.status_code == 303
        assert httpx.URL(r.headers["location"]).params["done"] == f"工单 {NUMBER}：已重新发送通知。"
    assert await worker(tracker).deliver_once() == 1
    assert [m["To"] for m in mail_sink.messages] == [FIXED]


async def test_all_given_up_notifications_are_sent_again_with_one_click(tracker, receivers):
    mail_sink, _, hook = receivers
    mail_sink.refused[GONE] = "550 5.1.1 User unknown"
    by_mail = await tell(tracker)
    by_hook = await tell(tracker, email=False, webhook=f"{hook}/404")  # the messaging system's address was wrong
    assert await worker(tracker).deliver_once() == 2
    del mail_sink.refused[GONE]
    async with await client_of(tracker, "sup", Role.SUPERVISOR) as office:
        r = await office.post("/tracker/sup/deliveries/resend", data={"back": "/tracker/supervision"})
        done = httpx.URL(r.headers["location"]).params["done"]
        assert r.status_code == 303 and done.startswith("已重新发送 2 条通知")
        assert await worker(tracker).deliver_once() == 2  # the webhook now to JIESU_WEBHOOK_URL as it is set
        r = await office.post("/tracker/sup/deliveries/resend", data={"back": "/tracker/supervision"})
        assert httpx.URL(r.headers["location"]).params["refused"] == "没有停止重试的通知，无需重新发送"
    assert {(await delivery(tracker, i)).delivered_at is not None for i in (by_mail, by_hook)} == {True}
    assert len(mail_sink.messages) == 1
    assert len(await audited(tracker.state.runtime.store("tracker"), "NotificationResent")) == 2


async def test_re_sending_a_notification_that_was_not_given_up_is_refused(tracker, receivers):
    mail_sink, _, _ = receivers
    mail_sink.refused.clear()  # the unit's mailbox takes mail
    pending = await tell(tracker)
    async with await client_of(tracker, "sup", Role.SUPERVISOR) as office:
        r = await office.post(f"/tracker/tickets/{NUMBER}/do/resend", data={"delivery": str(pending)})
        assert r.status_code == 409
        assert "没有停止重试（正在发送或已送达），无需重新发送" in r.text and "was not given up" in r.text
        assert await worker(tracker).deliver_once() == 1  # delivered
        r = await office.post(f"/tracker/tickets/{NUMBER}/do/resend",
                              data={"delivery": str(pending), "back": "/tracker/supervision"})
        assert httpx.URL(r.headers["location"]).params["refused"].startswith(f"工单 {NUMBER}：这条通知没有停止重试")
    assert await worker(tracker).deliver_once() == 0 and len(mail_sink.messages) == 1
    assert await audited(tracker.state.runtime.store("tracker"), "NotificationResent") == []


async def test_a_notification_is_sent_again_only_through_its_own_ticket(tracker, receivers):
    """The ticket in the address is read in the same transaction as the delivery: another ticket's, or none,
    is 404; the ticket's id does as well as its number."""
    mail_sink, _, _ = receivers
    mail_sink.refused[GONE] = "550 5.1.1 User unknown"
    delivery_id = await tell(tracker)
    await worker(tracker).deliver_once()
    other = "12345-20261125-000002"
    async with tracker.state.runtime.store("tracker").transaction() as tx:
        await tx.session.execute(tickets.insert().values(
            ticket_id=uuid.uuid4(), number=other, state="assigned", kind="complaint", urgency="normal",
            subject="路灯不亮", confidential=False, lead_code=UNIT, lead_name="市城市管理委员会", co_handlers=[],
            assigned_at=utcnow(), updated_at=utcnow()))
        ticket_id = await tx.session.scalar(select(tickets.c.ticket_id).where(tickets.c.number == NUMBER))
    async with await client_of(tracker, "sup", Role.SUPERVISOR) as office:
        for ref in (other, "12345-20991231-999999", str(uuid.uuid4())):
            r = await office.post(f"/tracker/tickets/{ref}/do/resend", data={"delivery": str(delivery_id)})
            assert r.status_code == 404, ref
        assert (await delivery(tracker, delivery_id)).failed_at is not None
        r = await office.post(f"/tracker/tickets/{ticket_id}/do/resend", data={"delivery": str(delivery_id)})
        assert r.status_code == 303 and r.headers["location"] == f"/tracker/tickets/{NUMBER}?done=resend"
    assert (await delivery(tracker, delivery_id)).failed_at is None


async def test_only_the_supervision_office_may_send_a_notification_again(tracker, receivers):
    mail_sink, _, _ = receivers
    mail_sink.refused[GONE] = "550 5.1.1 User unknown"
    delivery_id = await tell(tracker)
    await worker(tracker).deliver_once()
    async with await client_of(tracker, "cgw", Role.DEPARTMENT, department=UNIT) as unit, \
            await client_of(tracker, "op", Role.OPERATOR) as operator:
        page = (await unit.get(f"/tracker/tickets/{NUMBER}")).text
        assert "通知发送失败" in page and 'name="delivery"' not in page  # the unit sees it, and whom to ask
        for client in (unit, operator):
            r = await client.post(f"/tracker/tickets/{NUMBER}/do/resend", data={"delivery": str(delivery_id)})
            assert r.status_code == 403 and "只有督查室可以重新发送通知" in r.text
            assert (await client.post("/tracker/sup/deliveries/resend")).status_code == 403
    assert (await delivery(tracker, delivery_id)).failed_at is not None


# --- citizens' receipts (intake) --------------------------------------------------------------


@pytest.fixture
async def intake(any_settings, outgoing):
    settings = any_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": outgoing[1]})
    async with service_app(settings, "intake") as app:
        yield app


async def received(app, email: str) -> str:
    store = app.state.runtime.store("intake")
    receipt = await service.accept(store, form(email=email), channel=Channel.ONLINE, operator=None,
                                   idempotency_key=None, tz=TZ)
    return receipt.number


async def the_receipt(app):
    async with app.state.runtime.store("intake").db.session() as s:
        return (await s.execute(select(acknowledgements))).one()


async def test_a_receipt_refused_for_good_is_delivered_once_when_an_operator_sends_it_again(
        intake, outgoing):
    sink, _ = outgoing
    sink.refused[NOBODY.lower()] = REFUSAL
    number = await received(intake, NOBODY.lower())
    receipts = mail.receipts(intake.state.runtime)
    assert await receipts.deliver_once() == 1
    assert (await the_receipt(intake)).failed_at is not None

    del sink.refused[NOBODY.lower()]  # the citizen's mail server takes the mailbox again
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        console = (await operator.get("/intake/console")).text
        assert f'action="/intake/receipts/{number}/resend"' in console and "全部重新发送" in console
        r = await operator.post(f"/intake/receipts/{number}/resend")
        assert r.status_code == 303 and httpx.URL(r.headers["location"]).fragment == "failed-receipts"  # the list
        assert httpx.URL(r.headers["location"]).params["done"].startswith(f"工单 {number} 的受理回执已重新发送")
        assert "已重新发送" in (await operator.get(r.headers["location"])).text
    row = await the_receipt(intake)
    assert (row.failed_at, row.failing_since, row.last_error) == (None, None, None) and row.attempts == 1
    assert await receipts.deliver_once() == 1
    assert await receipts.deliver_once() == 0
    assert (await the_receipt(intake)).delivered_at is not None and len(sink.messages) == 1
    [entry] = await audited(intake.state.runtime.store("intake"), "ReceiptResent")
    assert entry.actor == "op" and entry.ticket_id == row.ticket_id and entry.details["attempts"] == 1


async def test_all_receipts_the_console_lists_as_given_up_are_sent_again_with_one_click(
        intake, outgoing):
    sink, _ = outgoing
    sink.refused.update({"a@example.cn": REFUSAL, "b@example.cn": REFUSAL})
    for address in ("a@example.cn", "b@example.cn"):
        await received(intake, address)
    receipts = mail.receipts(intake.state.runtime)
    assert await receipts.deliver_once() == 2
    sink.refused.clear()
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        r = await operator.post("/intake/receipts/resend")
        assert httpx.URL(r.headers["location"]).params["done"].startswith("已重新发送 2 份受理回执")
        assert await receipts.deliver_once() == 2
        r = await operator.post("/intake/receipts/resend")
        assert httpx.URL(r.headers["location"]).params["refused"] == "没有停止重试的受理回执，无需重新发送"
    assert sorted(m["To"] for m in sink.messages) == ["a@example.cn", "b@example.cn"]


async def test_re_sending_a_receipt_that_was_not_given_up_is_refused(intake, outgoing):
    number = await received(intake, "lina@example.cn")
    async with await client_of(intake, "op", Role.OPERATOR) as operator:
        r = await operator.post(f"/intake/receipts/{number}/resend")
        said = httpx.URL(r.headers["location"]).params
        assert r.status_code == 303 and "没有停止重试（正在发送或已送达），无需重新发送" in said["refused"]
        assert "was not given up" in said["refused_en"]
        page = (await operator.get(r.headers["location"])).text
        assert "无需重新发送" in page and "was not given up" in page
    assert (await the_receipt(intake)).attempts == 0
    assert await audited(intake.state.runtime.store("intake"), "ReceiptResent") == []


async def test_only_operators_may_send_a_receipt_again(intake, outgoing):
    sink, _ = outgoing
    sink.refused[NOBODY.lower()] = REFUSAL
    number = await received(intake, NOBODY.lower())
    await mail.receipts(intake.state.runtime).deliver_once()
    async with await client_of(intake, "disp", Role.DISPATCHER) as dispatcher, \
            await client_of(intake, "sup", Role.SUPERVISOR) as office:
        for client in (dispatcher, office):
            assert (await client.post(f"/intake/receipts/{number}/resend")).status_code == 403
            assert (await client.post("/intake/receipts/resend")).status_code == 403
    assert (await the_receipt(intake)).failed_at is not None


# --- purge --------------------------------------------------------------------------------------

WEEK = timedelta(days=7)


async def test_deliveries_sent_or_given_up_long_ago_are_purged_and_recent_failures_kept(tracker):
    store = tracker.state.runtime.store("tracker")
    ids = [await tell(tracker) for _ in range(5)]
    now = utcnow()
    ages = {  # delivered 8 and 6 days ago; given up 15 and 8 days ago; owed since 30 days
        ids[0]: {"delivered_at": now - timedelta(days=8)}, ids[1]: {"delivered_at": now - timedelta(days=6)},
        ids[2]: {"failed_at": now - timedelta(days=15)}, ids[3]: {"failed_at": now - timedelta(days=8)},
        ids[4]: {"next_attempt_at": now - timedelta(days=30)},
    }
    async with store.db.session() as s:
        for delivery_id, values in ages.items():
            await s.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))
    assert await purge_deliveries(store, WEEK) == 2
    async with store.db.session() as s:
        left = set((await s.execute(select(deliveries.c.id))).scalars())
        told = (await s.execute(select(notifications.c.id))).all()
    assert left == {ids[1], ids[3], ids[4]}  # a failure stays two weeks however short the retention
    assert len(told) == 5  # the units' in-page notifications stay


async def test_the_hourly_purge_of_a_running_tracker_takes_the_deliveries_done_with(tracker):
    """The runtime's hourly purge (outbox, inbox, then the service's own: ServiceSpec.purge) clears them."""
    rt = tracker.state.runtime
    store = rt.store("tracker")
    old, recent = await tell(tracker), await tell(tracker)
    async with store.db.session() as s:
        for delivery_id, age in ((old, timedelta(days=30)), (recent, timedelta(0))):
            await s.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(delivered_at=utcnow() - age))
    await runtime_purge(store, rt.settings, partial(load_spec("tracker").purge, rt))
    async with store.db.session() as s:
        assert set((await s.execute(select(deliveries.c.id))).scalars()) == {recent}


async def test_receipts_sent_or_given_up_long_ago_are_purged_and_recent_failures_kept(intake):
    store = intake.state.runtime.store("intake")
    for i in range(4):
        await received(intake, f"c{i}@example.cn")
    now = utcnow()
    async with store.db.session() as s:
        ids = list((await s.execute(select(acknowledgements.c.id).order_by(acknowledgements.c.id))).scalars())
        for ack_id, values in zip(ids, ({"delivered_at": now - timedelta(days=8)},
                                        {"delivered_at": now - timedelta(days=6)},
                                        {"failed_at": now - timedelta(days=15)},
                                        {"failed_at": now - timedelta(days=8)}), strict=True):
            await s.execute(update(acknowledgements).where(acknowledgements.c.id == ack_id).values(**values))
    await runtime_purge(store, intake.state.runtime.settings, partial(load_spec("intake").purge, intake.state.runtime))
    async with store.db.session() as s:  # the hourly purge (ServiceSpec.purge) by the outbox's retention, 7 days
        assert set((await s.execute(select(acknowledgements.c.id))).scalars()) == {ids[1], ids[3]}


# --- the ticket page's index ----------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_ticket_page_reads_its_failures_through_the_ticket_index_on_postgresql(
        pg_settings, receivers):
    """Two thousand given-up notifications of other tickets: the ticket page's own query (captured as it runs)
    starts from this ticket's notifications, not from every given-up row."""
    _, smtp_port, _ = receivers
    settings = pg_settings.model_copy(update={"mail_host": "127.0.0.1", "mail_port": smtp_port})
    async with service_app(settings, "tracker") as app:
        store = app.state.runtime.store("tracker")
        async with store.db.session() as s:
            others = [{"unit_code": UNIT, "ticket_id": uuid.uuid4(), "number": None, "kind": "arrived",
                       "message": "新工单", "created_at": utcnow()} for _ in range(2000)]
            await s.execute(notifications.insert(), others)
            await s.execute(text(
                "INSERT INTO tracker_deliveries (notification_id, channel, target, body, attempts, next_attempt_at, "
                "failed_at, last_error) SELECT id, 'email', 'x@cgw.city.example', '{}', 1, now(), now(), '550' "
                "FROM tracker_notifications"))
            await s.execute(text("ANALYZE tracker_notifications"))
            await s.execute(text("ANALYZE tracker_deliveries"))
        statements = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if "tracker_deliveries" in statement and "failed_at IS NOT NULL" in statement:
                statements.append((statement, parameters))

        event.listen(store.db.engine.sync_engine, "before_cursor_execute", capture)
        ticket_id = uuid.uuid4()
        async with store.db.session() as s:
            assert await tracker_web.failed_deliveries(s, ticket_id=ticket_id) == []
        event.remove(store.db.engine.sync_engine, "before_cursor_execute", capture)
        [(statement, parameters)] = statements
        async with store.db.session() as s:
            conn = await s.connection()
            plan = "\n".join(r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).all())
    assert "ix_tracker_notifications_ticket" in plan, plan
    assert "ix_tracker_deliveries_failed_notification" in plan, plan

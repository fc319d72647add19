"""Two facts a supervision order (督办单) keeps on itself since tracker_0014, on SQLite and PostgreSQL.

`from_level`: the level its escalation (逾期升级) raised it from, which the bulletin counts it under; before, the
bulletin read it out of the ticket's timeline. `released_at`: since when it no longer binds its unit (its ticket
finished, or returned by the unit, 退单); a released order leaves the partial index the escalation looks in at
every poll, and is back in it when the ticket is dispatched back to its unit, whose order it is again.

Orders are made and escalated as the system does it; instants are Beijing times of November 2026.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

from alembic import command
from sqlalchemy import delete, event, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from jiesu.identity import User
from jiesu.migrate import alembic_config, pending_changes, upgrade
from schemas.enums import Role
from schemas.events import Envelope, TicketMerged, UnitRef
from services.tracker import handlers, reports, stats
from services.tracker.store import supervision_orders, ticket_units, tickets, timeline
from services.tracker.supervision import escalate_overdue_orders
from tests.integration.test_sup_order_gaps import _dispatch_again, _return
from tests.integration.test_tracker_escalation import (
    BEIJING,
    ESCALATED,
    ISSUED,
    TUESDAY_DUE,
    UNIT,
    WORKING_DAYS,
    _dispose,
    _escalate,
    _migrated_runtime,
    _order,
    _order_row,
)

AWAITING = "ix_tracker_supervision_orders_awaiting"
OFFICE = User(id=2, username="sup", display_name="督查室", role=Role.SUPERVISOR)
CGW = UnitRef(code=UNIT, name="市城市管理委员会")


async def test_an_escalated_order_keeps_the_level_it_was_raised_from_and_the_bulletin_reads_it_there(any_settings):
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        _, normal = await _order(rt, 1, ISSUED)
        _, key = await _order(rt, 2, ISSUED, level="key")
        assert (await _order_row(rt, normal)).from_level is None  # not escalated yet

        assert await _escalate(rt, ESCALATED) == 2
        assert [((o := await _order_row(rt, n)).level, o.from_level) for n in (normal, key)] == [
            ("key", "normal"), ("key", "key")]
        async with store.db.session() as s:  # the timeline says the same, and is no longer what the bulletin reads
            said = dict((await s.execute(select(timeline.c.data["order_no"].as_string(),
                                                timeline.c.data["from_level"].as_string()).where(
                timeline.c.event_type == "SupervisionEscalated"))).all())
            await s.execute(delete(timeline).where(timeline.c.event_type == "SupervisionEscalated"))
        assert said == {normal: "normal", key: "key"}

        report = await reports.build(store.db, "monthly", stats.period_of("2026-11", BEIJING),
                                     ESCALATED + dt.timedelta(hours=1), BEIJING)
        assert {row[0]: row[1:] for row in report.table("supervision").rows} == {
            "重点督办": [1, 0, 0, 0], "一般督办": [1, 0, 0, 0], "合计": [2, 0, 0, 0], "其中：逾期升级": [2, 0, 0, 0]}
    finally:
        await _dispose(rt)


async def _index_predicate(session) -> str:
    """The partial index's predicate as the database holds it (built by the migrations, not the models)."""
    if (await session.connection()).dialect.name == "postgresql":
        sql = await session.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": AWAITING})
    else:
        sql = await session.scalar(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": AWAITING})
    return sql.split(" WHERE ", 1)[1]


async def _in_the_index(store, now: dt.datetime) -> set[str]:
    """The orders the partial index yields for a look at `now`: its own predicate, and due by then."""
    async with store.db.session() as s:
        predicate = await _index_predicate(s)
        return set((await s.execute(select(supervision_orders.c.order_no).where(
            text(predicate), supervision_orders.c.due_at <= now))).scalars())


def _index_node(plan: dict) -> dict | None:
    if plan.get("Index Name") == AWAITING:
        return plan
    return next((found for child in plan.get("Plans", []) if (found := _index_node(child))), None)


class _LookOnly:
    """The tracker's store, for an escalation that looks for work and stops before it claims any."""

    class Stop(Exception):
        pass

    def __init__(self, store) -> None:
        self.db = store.db

    def transaction(self):
        raise self.Stop


async def _look_examines(rt, now: dt.datetime) -> int | None:
    """How many orders the escalation's look for work at `now` reads from the partial index: on PostgreSQL the
    index scan's rows, kept and filtered out, as EXPLAIN ANALYZE counts them; on SQLite None, once its plan is
    shown to read that index. The look is the escalation's own statement, captured as it runs."""
    store = rt.store("tracker")
    engine = (store.db.reading_engine or store.db.engine).sync_engine
    looks = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "tracker_supervision_orders" in statement:
            looks.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        await escalate_overdue_orders(_LookOnly(store), rt.state["tracker.clocks"], WORKING_DAYS, now=now)
    except _LookOnly.Stop:
        pass
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = looks
    async with store.db.reading() as s:
        conn = await s.connection()
        if store.db.dialect != "postgresql":
            plan = " ".join(str(r[-1]) for r in (await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)).all())
            assert AWAITING in plan, plan
            return None
        await s.execute(text("SET LOCAL enable_seqscan = off"))  # as on a large table
        [(raw,)] = (await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)).all()
    node = _index_node((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
    assert node is not None, raw
    return node["Actual Rows"] + node.get("Rows Removed by Filter", 0)


async def test_released_orders_leave_the_look_for_work_and_a_returned_one_is_back_once_its_unit_has_the_ticket(
        any_settings):
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    try:
        _, held = await _order(rt, 1, ISSUED)
        returned_number, returned = await _order(rt, 2, ISSUED)
        await _return(rt, returned_number)  # 退单, by the unit
        closed_number, closed = await _order(rt, 3, ISSUED)
        async with store.db.session() as s:  # answered; the return visit closes it (办结)
            await s.execute(update(tickets).where(tickets.c.number == closed_number).values(state="replied"))
        await rt.state["tracker"].record_visit(OFFICE, closed_number, "satisfied")
        merged_number, merged = await _order(rt, 4, ISSUED)
        async with store.db.session() as s:  # a duplicate of another ticket, found while still with the unit
            await s.execute(update(tickets).where(tickets.c.number == merged_number).values(state="assigned"))
            merged_id = await s.scalar(select(tickets.c.ticket_id).where(tickets.c.number == merged_number))
        into = TicketMerged(number=merged_number, into_ticket_id=uuid.uuid4(), into_number="12345-20261101-000001",
                            similarity=0.97)
        async with store.transaction() as tx:
            await handlers.on_merged(tx, Envelope.wrap(into, ticket_id=merged_id, producer="router"), into)

        for order_no in (returned, closed, merged):
            order = await _order_row(rt, order_no)
            assert order.released_at is not None and (order.escalated_at, order.closed_at) == (None, None), order_no
        assert (await _order_row(rt, held)).released_at is None
        assert await _in_the_index(store, ESCALATED) == {held}  # the released are no longer in the index

        # The look reads the index, which holds nothing else: the 3 released orders past their date, waiting in
        # the office's list, are not read at all, neither beside the held one nor once it is escalated.
        examined = await _look_examines(rt, ESCALATED)
        assert await _escalate(rt, ESCALATED) == 1 and (await _order_row(rt, held)).escalated_at == ESCALATED
        examined_after = await _look_examines(rt, ESCALATED + dt.timedelta(minutes=1))
        if store.db.dialect == "postgresql":
            assert (examined, examined_after) == (1, 0)
        assert await _in_the_index(store, TUESDAY_DUE + dt.timedelta(days=3)) == set()

        # Dispatched back to the unit that returned it: its order binds it again, and escalation sees it again.
        await _dispatch_again(rt, returned_number, CGW)
        assert (await _order_row(rt, returned)).released_at is None
        later = TUESDAY_DUE + dt.timedelta(days=4)
        assert await _in_the_index(store, later) == {returned}
        assert await _escalate(rt, later) == 1
        assert ((o := await _order_row(rt, returned)).level, o.escalated_at, o.from_level) == ("key", later, "normal")
        for order_no in (closed, merged):  # finished for good: still released, still open for the office
            order = await _order_row(rt, order_no)
            assert order.released_at is not None and order.escalated_at is None and order.closed_at is None
    finally:
        await _dispose(rt)


# --- tracker_0014 on a database that has orders already -----------------------------------------------------

OTHER = "S-01-03"
RETURNED_AT = dt.datetime(2026, 11, 19, 9, 15, tzinfo=BEIJING)
CLOSED_AT = dt.datetime(2026, 11, 21, 16, 40, tzinfo=BEIJING)


def _ticket(n: int, state: str, lead: str | None, updated_at: dt.datetime) -> dict:
    return dict(ticket_id=uuid.UUID(int=n), number=f"12345-20261118-{n:06d}", state=state, kind="complaint",
                urgency="normal", subject="路灯不亮", confidential=False, lead_code=lead, lead_name=lead,
                co_handlers=[], updated_at=updated_at)


def _order_values(order_no: str, ticket: int, level: str = "normal", **values) -> dict:
    return dict(order_no=order_no, ticket_id=uuid.UUID(int=ticket), level=level, unit_code=UNIT, reason="超期未办",
                due_at=ISSUED + dt.timedelta(days=2), created_at=ISSUED, by="system", **values)


def _escalation_entry(ticket: int, order_no: str, from_level: str) -> dict:
    return dict(ticket_id=uuid.UUID(int=ticket), event_id=uuid.uuid4(), event_type="SupervisionEscalated",
                at=ESCALATED, actor="system", summary=f"督办单 {order_no} 逾期未回复",
                data={"order_no": order_no, "from_level": from_level, "level": "key"})


async def _seed_before_0014(url: str) -> None:
    """Orders as tracker_0013 held them: the new columns do not exist yet, so only the old ones are written."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(tickets.insert(), [
                _ticket(1, "signed_for", UNIT, ISSUED), _ticket(2, "signed_for", UNIT, ISSUED),
                _ticket(3, "returned", None, RETURNED_AT), _ticket(4, "closed", UNIT, CLOSED_AT),
                _ticket(5, "contacted", OTHER, ISSUED)])
            await conn.execute(ticket_units.insert(), [
                dict(ticket_id=uuid.UUID(int=1), unit_code=UNIT, role="lead"),
                dict(ticket_id=uuid.UUID(int=2), unit_code=UNIT, role="lead"),
                dict(ticket_id=uuid.UUID(int=4), unit_code=UNIT, role="lead"),
                dict(ticket_id=uuid.UUID(int=5), unit_code=OTHER, role="lead"),
                dict(ticket_id=uuid.UUID(int=5), unit_code=UNIT, role="co")])  # 协办: UNIT still holds it
            escalated = dict(level="key", escalated_at=ESCALATED, due_at=TUESDAY_DUE)
            for values in (
                    _order_values("DB-1-1", 1) | escalated, _order_values("DB-1-2", 1) | escalated,
                    _order_values("DB-1-3", 1), _order_values("DB-2-1", 2) | escalated,
                    _order_values("DB-3-1", 3), _order_values("DB-3-2", 3, responded_at=ISSUED + dt.timedelta(hours=3),
                                                              response="已处理", responded_by="cgw"),
                    _order_values("DB-4-1", 4), _order_values("DB-5-1", 5)):
                await conn.execute(supervision_orders.insert().values(**values))
            await conn.execute(timeline.insert(), [
                _escalation_entry(1, "DB-1-1", "normal"), _escalation_entry(1, "DB-1-2", "key"),
                dict(ticket_id=uuid.UUID(int=1), event_id=uuid.uuid4(), event_type="SupervisionOrdered", at=ISSUED,
                     actor="system", summary="督办单 DB-1-3", data={"order_no": "DB-1-3", "level": "normal"})])
    finally:
        await engine.dispose()


async def _orders_now(url: str) -> dict[str, tuple]:
    engine = create_async_engine(url)
    try:
        o = supervision_orders.c
        async with AsyncSession(engine) as session:
            rows = (await session.execute(select(o.order_no, o.from_level, o.released_at))).all()
            predicate = await _index_predicate(session)
    finally:
        await engine.dispose()
    return {r.order_no: (r.from_level, r.released_at) for r in rows} | {"index": predicate}


async def test_tracker_0014_fills_the_levels_from_the_timeline_and_marks_the_orders_already_released(unmigrated_settings):
    url = unmigrated_settings.database_url("tracker")
    await asyncio.to_thread(upgrade, "tracker", url, "tracker_0013")
    await _seed_before_0014(url)

    await asyncio.to_thread(upgrade, "tracker", url)
    after = await _orders_now(url)
    assert "released_at IS NULL" in after.pop("index")
    assert after == {
        "DB-1-1": ("normal", None), "DB-1-2": ("key", None),  # each from its own entry on the same ticket
        "DB-1-3": (None, None),  # not escalated, held by its unit
        "DB-2-1": (None, None),  # escalated, but no entry to read: the bulletin keeps its level, as before
        "DB-3-1": (None, RETURNED_AT),  # returned (退单): released when the ticket last changed
        "DB-3-2": (None, None),  # answered: owes nothing, released or not
        "DB-4-1": (None, CLOSED_AT),  # its ticket is finished
        "DB-5-1": (None, None),  # UNIT helps on the ticket (协办): still bound
    }
    assert await asyncio.to_thread(pending_changes, "tracker", url) == []

    await asyncio.to_thread(command.downgrade, alembic_config("tracker", url), "tracker_0013")
    behind = repr(await asyncio.to_thread(pending_changes, "tracker", url))
    assert "from_level" in behind and "released_at" in behind
    await asyncio.to_thread(upgrade, "tracker", url)
    assert await _orders_now(url) | {"index": None} == after | {"index": None}
    assert await asyncio.to_thread(pending_changes, "tracker", url) == []

"""A caller's number finds the caller's tickets however either was written: the look-up the operator console makes
with digits (139 0000 1111 typed, 13900001111 sent), one typed with dashes, brackets or full-width digits, and the
numbers the tracker kept as they were typed before (tracker_0017 makes them plain). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from jiesu.db import Database
from jiesu.identity import User
from jiesu.migrate import upgrade
from schemas.enums import Role
from schemas.events import Citizen, Envelope, TicketReceived, utcnow
from services.tracker import handlers, queries
from jiesu.text import plain_phone
from services.tracker.store import tickets
from tests.integration.test_tracker_escalation import _dispose, _migrated_runtime

OPERATOR = User(id=1, username="op", display_name="话务员", role=Role.OPERATOR)

# As numbers were kept before (intake kept dashes; older ones spaces), and what each is kept as now.
KEPT = {
    "139-0000-1111": "13900001111", "139 0000 1111": "13900001111", "010-1234 5678": "01012345678",
    "(010)12345678": "01012345678", "（０１０）１２３４－５６７８": "01012345678", "+86 139-0000-1111": "+8613900001111",
    "＋８６ １３９００００１１１１": "+8613900001111", "139ー0000ー1111": "13900001111", "13800138000": "13800138000",
    "": "",
}


@pytest.mark.parametrize("typed, plain", [*KEPT.items(), ("139—0000—1111", "13900001111"),
                                          ("139‐0000‐1111", "13900001111"), ("139　0000　1111", "13900001111"),
                                          (" 139-0000 1111\t", "13900001111")])
def test_a_number_is_its_digits_and_leading_plus_however_it_was_typed(typed, plain):
    assert plain_phone(typed) == plain


async def _received(rt, number: str, phone: str) -> None:
    p = TicketReceived(number=number, channel="hotline", kind="complaint", subject="夜间施工噪音",
                       description="楼下工地夜间打桩", source_ref=number, received_at=utcnow(),
                       citizen=Citizen(name="张伟", phone=phone))
    async with rt.store("tracker").transaction() as tx:
        await handlers.on_received(tx, Envelope.wrap(p, ticket_id=uuid.uuid4(), producer="intake"), p)


async def _found(rt, phone: str) -> list[str]:
    async with rt.store("tracker").db.session() as s:
        rows, total = await queries.list_tickets(s, OPERATOR, phone=phone)
    assert total == len(rows)
    return sorted(r.number for r in rows)


async def test_a_look_up_finds_the_caller_however_the_number_was_typed_there_and_here(any_settings):
    rt = await _migrated_runtime(any_settings)
    try:
        await _received(rt, "12345-20261124-000001", "139-0000-1111")  # as intake sent numbers with dashes
        await _received(rt, "12345-20261124-000002", "13900001111")
        await _received(rt, "12345-20261124-000003", "13800138000")
        both = ["12345-20261124-000001", "12345-20261124-000002"]
        for typed in ("13900001111", "139 0000 1111", "139-0000-1111", "(139)0000-1111", "１３９００００１１１１"):
            assert await _found(rt, typed) == both, typed
        async with rt.store("tracker").db.session() as s:
            kept = (await s.execute(select(tickets.c.citizen_phone).where(
                tickets.c.number == "12345-20261124-000001"))).scalar_one()
        assert kept == "13900001111"
        assert await _found(rt, " - ") == []  # no digits: no caller's, and not every ticket
    finally:
        await _dispose(rt)


async def test_the_numbers_kept_before_are_made_plain_by_the_migration(unmigrated_settings):
    url = unmigrated_settings.database_url("tracker")
    await asyncio.to_thread(upgrade, "tracker", url, "tracker_0016")
    db = Database(url)
    now = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    ids = {phone: uuid.uuid4() for phone in (*KEPT, None)}
    try:
        async with db.session() as s:
            await s.execute(tickets.insert(), [
                {"ticket_id": ticket_id, "number": f"12345-20261124-{i:06d}", "state": "received",
                 "citizen_phone": phone, "confidential": False, "co_handlers": [], "updated_at": now}
                for i, (phone, ticket_id) in enumerate(ids.items(), start=1)])
        await asyncio.to_thread(upgrade, "tracker", url)
        async with db.session() as s:
            now_kept = dict((await s.execute(select(tickets.c.ticket_id, tickets.c.citizen_phone))).all())
    finally:
        await db.dispose()
    assert {phone: now_kept[ticket_id] for phone, ticket_id in ids.items()} == {**KEPT, None: None}
    assert all(now_kept[ids[phone]] == plain_phone(phone) for phone in KEPT)  # as the tracker reads them now

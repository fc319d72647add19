"""退单: a ticket a unit hands back belongs to no unit, and runs no clock, until it is dispatched again."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from jiesu.errors import ApiError
from jiesu.identity import User
from schemas.enums import Role
from schemas.events import utcnow
from services.tracker.store import ticket_units, tickets, timers
from tests.integration.test_tracker_escalation import UNIT, _dispose, _migrated_runtime


async def test_a_returned_ticket_has_no_unit_no_deadline_and_its_former_unit_no_longer_sees_it(any_settings):
    rt = await _migrated_runtime(any_settings)
    store = rt.store("tracker")
    staff = User(id=1, username="cgw", display_name="城管委", role=Role.DEPARTMENT, department=UNIT)
    try:
        ticket_id, number, now = uuid.uuid4(), "12345-20261124-000001", utcnow()
        async with store.transaction() as tx:
            await tx.session.execute(tickets.insert().values(
                ticket_id=ticket_id, number=number, state="assigned", kind="complaint", urgency="normal",
                subject="工地夜间施工", citizen_phone="13800138000", confidential=False, lead_code=UNIT,
                lead_name="市城市管理委员会", co_handlers=[{"code": "S-01-03", "name": "解放路街道"}], assigned_at=now,
                sign_for_due=now + dt.timedelta(days=1), reply_due=now + dt.timedelta(days=10),
                warn_at=now + dt.timedelta(days=8), updated_at=now))
            await tx.session.execute(ticket_units.insert().values([
                dict(ticket_id=ticket_id, unit_code=UNIT, role="lead"),
                dict(ticket_id=ticket_id, unit_code="S-01-03", role="co")]))
        await rt.state["tracker"].return_ticket(staff, number, "other_unit", "该工地位于开发区，应由开发区管委会处理")

        async with store.db.session() as s:
            row = (await s.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).one()
            units = (await s.execute(select(ticket_units).where(ticket_units.c.ticket_id == ticket_id))).all()
            pending = (await s.execute(select(timers).where(timers.c.ticket_id == ticket_id,
                                                            timers.c.fired_at.is_(None)))).all()
        assert row.state == "returned" and row.returns_count == 1
        assert (row.lead_code, row.lead_name, row.co_handlers) == (None, None, [])
        assert (row.sign_for_due, row.reply_due, row.warn_at) == (None, None, None)
        assert units == [] and pending == []
        with pytest.raises(ApiError) as hidden:
            await rt.state["tracker"].sign_for(staff, number)
        assert hidden.value.status == 404
    finally:
        await _dispose(rt)

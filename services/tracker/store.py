"""The tracker's own tables: its read model of every ticket and the timeline."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

from jiesu.db import UTCDateTime, UUIDStr
from jiesu.messaging import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata, "tracker")

tickets = Table(
    "tracker_tickets",
    metadata,
    Column("ticket_id", UUIDStr, primary_key=True),
    Column("number", String(21), nullable=True, unique=True),
    Column("state", String(32), nullable=False, index=True),
    Column("channel", String(16), nullable=True),
    Column("kind", String(32), nullable=True),
    Column("urgency", String(16), nullable=True),
    Column("subject", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("citizen_name", String(100), nullable=True),
    Column("citizen_phone", String(32), nullable=True, index=True),
    Column("confidential", Boolean, nullable=False, default=False),
    Column("district", String(32), nullable=True),
    Column("street", String(32), nullable=True),
    Column("address", String(500), nullable=True),
    Column("category", String(64), nullable=True),
    Column("lead_code", String(32), nullable=True, index=True),
    Column("lead_name", String(100), nullable=True),
    Column("co_handlers", JSON, nullable=False, default=list),
    Column("routing", JSON, nullable=True),  # why it went there (rule id / model and score)
    Column("received_at", UTCDateTime, nullable=True),
    Column("assigned_at", UTCDateTime, nullable=True),
    Column("sign_for_due", UTCDateTime, nullable=True),
    Column("contact_due", UTCDateTime, nullable=True),
    Column("reply_due", UTCDateTime, nullable=True, index=True),
    Column("warn_at", UTCDateTime, nullable=True),
    Column("calendar_unconfirmed", Boolean, nullable=False, default=False),
    Column("tracked_event_id", UUIDStr, nullable=True),  # our TicketTracked, re-emitted on reconcile
    Column("tracked_at", UTCDateTime, nullable=True),  # when the first assignment became visible here
    Column("reply", Text, nullable=True),  # 答复 (or the operator's direct answer)
    Column("replied_at", UTCDateTime, nullable=True),
    Column("merged_into", UUIDStr, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_tracker_tickets_lead_state", tickets.c.lead_code, tickets.c.state)

# Which units may see and act on a ticket now: the lead (主办) and co-handlers (协办).
ticket_units = Table(
    "tracker_ticket_units",
    metadata,
    Column("ticket_id", UUIDStr, primary_key=True),
    Column("unit_code", String(32), primary_key=True),
    Column("role", String(8), nullable=False),  # lead | co
)
Index("ix_tracker_ticket_units_unit", ticket_units.c.unit_code)

timeline = Table(
    "tracker_timeline",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    Column("event_id", UUIDStr, nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("data", JSON, nullable=False),
)

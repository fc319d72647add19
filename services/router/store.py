"""The router's own tables."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, Text

from jiesu.db import UTCDateTime, UUIDStr
from jiesu.messaging import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata, "router")

# One row per ticket: what the router knows of it and its current routing decision.
decisions = Table(
    "router_decisions",
    metadata,
    Column("ticket_id", UUIDStr, primary_key=True),
    Column("number", String(21), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # assigned | dispatch | merged
    Column("channel", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("district", String(32), nullable=True),
    Column("street", String(32), nullable=True),
    Column("category", String(64), nullable=True),
    Column("lead_code", String(32), nullable=True),
    Column("co_handlers", JSON, nullable=False),
    Column("reason", JSON, nullable=False),
    Column("suggestions", JSON, nullable=False),
    Column("why", String(500), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("excluded", JSON, nullable=False),  # units that returned it (退单)
    Column("received_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
)
Index("ix_router_decisions_status", decisions.c.status, decisions.c.received_at)

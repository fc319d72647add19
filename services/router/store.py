"""The router's own tables."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text

from jiesu.db import UTCDateTime, UUIDStr
from jiesu.messaging import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata, "router", audit=True)

_ID = BigInteger().with_variant(Integer, "sqlite")

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
    # For duplicate detection (重复件): a keyed hash of the caller's number, never the number itself.
    Column("phone_hash", String(64), nullable=True),
    Column("returns", Integer, nullable=False, server_default="0"),
    Column("closed_at", UTCDateTime, nullable=True),  # from the tracker's TicketClosed
)
Index("ix_router_decisions_status", decisions.c.status, decisions.c.received_at)
Index("ix_router_decisions_phone", decisions.c.phone_hash, decisions.c.received_at)

# Every assignment the router made (first dispatch, re-dispatch after a return, dispatcher's):
# the basis of return rates per unit and per rule.
assignments = Table(
    "router_assignments",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("unit_code", String(32), nullable=False, index=True),
    Column("method", String(16), nullable=False),
    Column("rule_id", String(32), nullable=True, index=True),
    Column("model_version", String(64), nullable=True),
    Column("score", Float, nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("returned_at", UTCDateTime, nullable=True),
    Column("return_reason_code", String(32), nullable=True),
    Column("return_reason", Text, nullable=True),
)

# What dispatchers decided, kept as training data for the classifier.
training_examples = Table(
    "router_training_examples",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=True, unique=True),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(64), nullable=True),
    Column("unit_code", String(32), nullable=False),
    Column("source", String(16), nullable=False),  # dispatcher | return
    Column("decided_by", String(64), nullable=True),
    Column("at", UTCDateTime, nullable=False),
)

# Trained classifiers; the newest row is the one in force (every router instance uses it).
models = Table(
    "router_models",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("trained_by", String(64), nullable=False),
    Column("metadata", JSON, nullable=False, key="metadata_"),
    Column("content", LargeBinary, nullable=False),  # joblib, compressed
)

# The department directory in force and every earlier version: imports and edits are audited.
directory_versions = Table(
    "router_directory_versions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("content", Text, nullable=False),  # the YAML as imported
    Column("summary", Text, nullable=False),  # what changed against the previous version
    Column("imported_by", String(64), nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
)

"""The tracker's own tables: its read model of every ticket and the timeline."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    false,
    text,
)

from jiesu.db import UTCDateTime, UUIDStr
from jiesu.messaging import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata, "tracker", audit=True)

tickets = Table(
    "tracker_tickets",
    metadata,
    Column("ticket_id", UUIDStr, primary_key=True),
    Column("number", String(21), nullable=True, unique=True),
    Column("state", String(32), nullable=False),  # indexed first in ix_tracker_tickets_state_due
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
    Column("lead_code", String(32), nullable=True),  # indexed first in ix_tracker_tickets_lead_state
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
    # The clocks' inputs, so deadlines can be recomputed (domain/sla.py) rather than patched.
    Column("clock_started_at", UTCDateTime, nullable=True),  # assignment, or the reopen (重办) instant
    Column("reopened", Boolean, nullable=False, default=False, server_default=false()),
    Column("extensions", JSON, nullable=True),  # approved extensions, working days each
    Column("pauses", JSON, nullable=True),  # [[start, end], …] ISO instants the clock stood still
    Column("paused_at", UTCDateTime, nullable=True),  # waiting on the citizen or deferred (挂账) since
    # The working state (signed_for, contacted, reopened) a ticket waiting on the citizen, deferred (挂账) or with an
    # extension requested goes back to (added by tracker_0015); NULL otherwise, and for those set aside before.
    Column("resume_to", String(32), nullable=True),
    Column("signed_for_at", UTCDateTime, nullable=True),
    Column("contacted_at", UTCDateTime, nullable=True),
    Column("replied_by", String(64), nullable=True),
    Column("returns_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("reopen_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("dissatisfied_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("visit_due", UTCDateTime, nullable=True),  # 回访 within 3 working days of the reply
    Column("visit_method", String(8), nullable=True),  # phone | link
    Column("visit_attempts", Integer, nullable=False, default=0, server_default=text("0")),
    Column("citizen_rating", String(32), nullable=True),  # what the citizen said through the online link
    Column("outcome", String(32), nullable=True),  # how it was closed
    Column("closed_at", UTCDateTime, nullable=True),
    Column("supervised", Boolean, nullable=False, default=False, server_default=false()),
    # The citizen's files as intake keeps them (filename, content_type, size, sha256), to list and
    # grant downloads of; NULL for tickets received before tracker_0009.
    Column("attachments", JSON, nullable=True),
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


# Timers are rows, never in-memory sleeps: any tracker instance claims what is due.
timers = Table(
    "tracker_timers",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    # sign_for_warning, sign_for_due, contact_due, reply_warning, reply_due, overdue_supervision, return_visit_due
    Column("kind", String(32), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("fired_at", UTCDateTime, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),
)
# Only pending rows are scanned; with a million open tickets this index stays small and hot.
Index("ix_tracker_timers_pending", timers.c.due_at,
      postgresql_where=timers.c.fired_at.is_(None), sqlite_where=timers.c.fired_at.is_(None))

# What a department is told (in the page, by e-mail, by webhook). Never a citizen's phone number.
notifications = Table(
    "tracker_notifications",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("unit_code", String(32), nullable=False),
    Column("ticket_id", UUIDStr, nullable=True),
    Column("number", String(21), nullable=True),
    Column("kind", String(32), nullable=False),  # arrived, warning, overdue, reminder, supervision, reopened, extension
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("read_at", UTCDateTime, nullable=True),
)
Index("ix_tracker_notifications_unit", notifications.c.unit_code, notifications.c.read_at)
# A ticket's notifications (added by tracker_0013), for its page's list of given-up deliveries: a few rows a ticket.
Index("ix_tracker_notifications_ticket", notifications.c.ticket_id)

# Outgoing e-mails and webhook calls, retried with back-off until delivered or given up (jiesu.mailer):
# an outbox of their own.
deliveries = Table(
    "tracker_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("notification_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("channel", String(8), nullable=False),  # email | webhook
    Column("target", String(500), nullable=False),
    Column("body", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    # Added by tracker_0011: since when it has failed, and when it was given up (refused for good, or failing
    # for longer than JIESU_DELIVERY_GIVE_UP_HOURS); a given-up row is never sent again.
    Column("failing_since", UTCDateTime, nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
)
PENDING_DELIVERY = and_(deliveries.c.delivered_at.is_(None), deliveries.c.failed_at.is_(None))
Index("ix_tracker_deliveries_pending", deliveries.c.next_attempt_at,
      postgresql_where=PENDING_DELIVERY, sqlite_where=PENDING_DELIVERY)
# The given-up ones, newest first, for the ticket page and the supervision office: a few rows however many were sent.
Index("ix_tracker_deliveries_failed", deliveries.c.failed_at,
      postgresql_where=deliveries.c.failed_at.isnot(None), sqlite_where=deliveries.c.failed_at.isnot(None))
# The given-up ones of a notification (added by tracker_0013): the ticket page goes from its few notifications to
# their failures, never through every given-up row of every ticket.
Index("ix_tracker_deliveries_failed_notification", deliveries.c.notification_id,
      postgresql_where=deliveries.c.failed_at.isnot(None), sqlite_where=deliveries.c.failed_at.isnot(None))

# Where a department wants its e-mail notifications (set by the supervision office or admin).
unit_contacts = Table(
    "tracker_unit_contacts",
    metadata,
    Column("unit_code", String(32), primary_key=True),
    Column("email", String(200), nullable=False),
)

# The directory's names of the category, district and street codes tickets carry (added by tracker_0012), and of the
# units they are assigned to, as TicketAssigned brings them: the tracker keeps codes, and its bulletins, charts and
# scorecard show names, a unit's too once it holds no ticket.
code_names = Table(
    "tracker_code_names",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

extensions = Table(
    "tracker_extensions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    Column("unit_code", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("working_days", Integer, nullable=False),
    Column("requested_due", UTCDateTime, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("approved", Boolean, nullable=True),  # None while pending
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("note", Text, nullable=True),
)

return_visits = Table(
    "tracker_return_visits",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    Column("outcome", String(32), nullable=False),
    Column("department_caused", Boolean, nullable=True),
    Column("unit_code", String(32), nullable=True),
    Column("comment", Text, nullable=False),
    Column("by", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# One-time links for citizens of online channels to rate the reply themselves.
visit_links = Table(
    "tracker_visit_links",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

supervision_orders = Table(
    "tracker_supervision_orders",
    metadata,
    Column("order_no", String(32), primary_key=True),  # 督办单号
    Column("ticket_id", UUIDStr, nullable=False, index=True),
    Column("level", String(8), nullable=False),  # normal 一般 | key 重点
    Column("unit_code", String(32), nullable=True),
    Column("reason", Text, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("by", String(64), nullable=False),
    # The department's required response (督办回复) and the office's closure (办结销号).
    Column("response", Text, nullable=True),
    Column("responded_at", UTCDateTime, nullable=True),
    Column("responded_by", String(64), nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("closed_by", String(64), nullable=True),
    Column("closing_note", Text, nullable=True),
    # 逾期升级: when the order, unanswered past its date, was escalated (once) and given a new due_at.
    Column("escalated_at", UTCDateTime, nullable=True),
    # The level escalation raised it from (normal 一般 | key 重点), which the bulletin counts it under; NULL until
    # escalated (added by tracker_0014, before which the ticket's timeline alone kept it).
    Column("from_level", String(8), nullable=True),
    # Since when an unanswered order no longer binds its unit (`escalation.released`): set in the transaction that
    # finishes its ticket or takes the ticket from the unit (退单), cleared when the ticket is dispatched back to it.
    Column("released_at", UTCDateTime, nullable=True),
)
Index("ix_tracker_supervision_orders_created", supervision_orders.c.created_at)
# The orders escalation may still claim, by date: the escalator's look, every poll, stays a probe of a few rows.
# Released orders leave it, however many wait in the office's list for an answer or a closure (tracker_0014).
AWAITING_ESCALATION = "escalated_at IS NULL AND responded_at IS NULL AND closed_at IS NULL AND released_at IS NULL"
Index("ix_tracker_supervision_orders_awaiting", supervision_orders.c.due_at,
      postgresql_where=text(AWAITING_ESCALATION), sqlite_where=text(AWAITING_ESCALATION))

# Each assignment of a ticket to a unit, each return (退单) by it, and each move (改派) away from it before it signed
# for the ticket, for the return rate and the scorecard:
# the ticket row only remembers its current lead. Written in the same transaction as the change.
unit_log = Table(
    "tracker_unit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ticket_id", UUIDStr, nullable=False),
    Column("unit_code", String(32), nullable=False),
    Column("kind", String(8), nullable=False),  # assigned | returned | moved
    Column("at", UTCDateTime, nullable=False),
    # A return or a move keeps the clocks the unit held the ticket under, as they stood (the ticket row drops them):
    # its lateness stays on the unit's scorecard (stats.late_return_conditions). NULL on assignments, on returns
    # made before tracker_0016; moves are kept from tracker_0018 on.
    Column("assigned_at", UTCDateTime, nullable=True),
    Column("sign_for_due", UTCDateTime, nullable=True),
    Column("signed_for_at", UTCDateTime, nullable=True),
    Column("reply_due", UTCDateTime, nullable=True),
)
Index("ix_tracker_unit_log_at", unit_log.c.at, unit_log.c.kind, unit_log.c.unit_code)
# The returns the scorecard reads by the period the unit was given the ticket in, index-only.
HELD = "assigned_at IS NOT NULL"
Index("ix_tracker_unit_log_held", unit_log.c.assigned_at, unit_log.c.unit_code, unit_log.c.at, unit_log.c.sign_for_due,
      unit_log.c.signed_for_at, unit_log.c.reply_due, postgresql_where=text(HELD), sqlite_where=text(HELD))

# Periodic roll-up (rollup.py): the report facts of each completed month, so a year is twelve small rows.
rollups = Table(
    "tracker_rollups",
    metadata,
    Column("period_key", String(16), primary_key=True),  # YYYY-MM
    Column("computed_at", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False),
)

# Dashboards read periods of a million rows through these (index-only where possible).
Index("ix_tracker_tickets_received", tickets.c.received_at, tickets.c.channel, tickets.c.kind, tickets.c.district,
      tickets.c.category, tickets.c.state, tickets.c.lead_code, tickets.c.replied_at)
# Covering the scorecard's cohort conditions, so a month's or a year's figures are an index-only scan.
Index("ix_tracker_tickets_assigned", tickets.c.assigned_at, tickets.c.lead_code, tickets.c.state, tickets.c.sign_for_due,
      tickets.c.signed_for_at, tickets.c.reply_due, tickets.c.replied_at, tickets.c.reopen_count, tickets.c.outcome)
Index("ix_tracker_tickets_closed", tickets.c.closed_at, tickets.c.state, tickets.c.outcome)
Index("ix_tracker_tickets_replied", tickets.c.replied_at, tickets.c.lead_code)
Index("ix_tracker_tickets_state_due", tickets.c.state, tickets.c.reply_due)
Index("ix_tracker_return_visits_at", return_visits.c.at, return_visits.c.unit_code, return_visits.c.outcome,
      return_visits.c.department_caused)

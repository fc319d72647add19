"""Intake's own tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    false,
)

from jiesu.db import UTCDateTime, UUIDStr
from jiesu.messaging import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata, "intake", audit=True)

tickets = Table(
    "intake_tickets",
    metadata,
    Column("ticket_id", UUIDStr, primary_key=True),
    Column("number", String(21), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("source_ref", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("citizen_name", String(100), nullable=False),
    Column("citizen_phone", String(32), nullable=False, index=True),
    Column("citizen_email", String(254), nullable=False),
    Column("confidential", Boolean, nullable=False),
    Column("location", JSON, nullable=False),
    Column("category", String(64), nullable=True),
    Column("operator", String(64), nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("event_id", UUIDStr, nullable=False),  # the TicketReceived event, for re-emission
    # What the rest of the system reported back (from tickets.lifecycle), for look-ups and reconciliation.
    Column("state", String(32), nullable=False),
    Column("department", String(100), nullable=True),
    Column("tracked_at", UTCDateTime, nullable=True),
    Column("reconcile_attempts", Integer, nullable=False, default=0),
    Column("last_reconcile_at", UTCDateTime, nullable=True),
    # Added by intake_0002: what each channel brings, and the public side of the progress.
    Column("may_publish", Boolean, nullable=False, default=False, server_default=false()),
    Column("answer", Text, nullable=True),  # 直接办结: the operator's answer on the call
    Column("duplicate_of", UUIDStr, nullable=True),  # 重复件: the open ticket this one repeats
    Column("attachments", JSON, nullable=True),  # metadata as in TicketReceived.attachments
    Column("reply", Text, nullable=True),  # 答复, from TicketReplied: shown to the citizen on look-up
    Column("reply_due", UTCDateTime, nullable=True),
    Column("status_at", UTCDateTime, nullable=True),  # when the tracker last changed the state we show
    Column("closed_at", UTCDateTime, nullable=True),
    # Added by intake_0009: 查询码, the progress look-up's proof for whoever gave no phone number
    # (domain.submission.new_query_code); NULL on tickets from before it.
    Column("query_code", String(8), nullable=True),
    # Added by intake_0011: while the reply clock is paused (待补充材料, 挂账), the state shown before the pause,
    # which ClockResumed brings back.
    Column("resume_to", String(32), nullable=True),
    # Added by intake_0012: the one-time page where the citizen rates the reply (评价), from ReturnVisitDue, for a
    # ticket from an online channel; the progress look-up offers it until the ticket is rated, closed or reopened.
    Column("rating_link", Text, nullable=True),
    # Added by intake_0013: when that link stops working (ReturnVisitDue.link_expires_at; NULL: not said).
    Column("rating_link_expires_at", UTCDateTime, nullable=True),
    # Added by intake_0014: when the citizen rated the reply through that link (ReturnVisitRecorded by the citizen),
    # so that the look-up says the rating arrived while a dissatisfied one waits for the visitor's call; cleared, as
    # the link is, when the ticket is closed or reopened.
    Column("rated_at", UTCDateTime, nullable=True),
    UniqueConstraint("channel", "source_ref", name="uq_intake_tickets_source"),
)
Index("ix_intake_tickets_untracked", tickets.c.received_at, sqlite_where=tickets.c.tracked_at.is_(None),
      postgresql_where=tickets.c.tracked_at.is_(None))

# One row per local day: the last sequence number handed out (工单编号 12345-YYYYMMDD-NNNNNN).
ticket_counters = Table(
    "intake_ticket_counters",
    metadata,
    Column("day", Date, primary_key=True),
    Column("value", Integer, nullable=False),
)

# Fixed-window counters for the public forms and look-ups (per client address, per ticket
# number), and single-use challenge nonces. In the database, so that every intake
# process shares them; old windows go with the hourly purge (bootstrap.purge).
rate_limits = Table(
    "intake_rate_limits",
    metadata,
    Column("bucket", String(200), primary_key=True),
    Column("window_start", UTCDateTime, nullable=False, index=True),
    Column("hits", Integer, nullable=False),
)


def _mail_owed(name: str, *columns: Column) -> Table:
    """A table of mail owed to citizens, one row a message, with `columns` saying what it is: the columns and indexes
    jiesu.mailer.DeliveryLoop sends by. The pending index keeps the lease's look a probe of what is still owed; the
    failed one holds only the given-up rows (refused for good, or failing for longer than
    JIESU_DELIVERY_GIVE_UP_HOURS: never sent again, and kept), a few however many were sent."""
    table = Table(
        name,
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        *columns,
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("delivered_at", UTCDateTime, nullable=True, index=True),  # the purge goes by it
        Column("last_error", Text, nullable=True),
        Column("failing_since", UTCDateTime, nullable=True),  # since when it has failed (intake_0008)
        Column("failed_at", UTCDateTime, nullable=True),  # when it was given up (intake_0008)
    )
    pending = and_(table.c.delivered_at.is_(None), table.c.failed_at.is_(None))
    Index(f"ix_{name}_pending", table.c.next_attempt_at, postgresql_where=pending, sqlite_where=pending)
    given_up = table.c.failed_at.isnot(None)
    Index(f"ix_{name}_failed", table.c.failed_at, postgresql_where=given_up, sqlite_where=given_up)
    return table


# 受理回执: the acknowledgement e-mail owed to a citizen who gave an address, one per ticket,
# written with the ticket and sent by jiesu.mailer's loop (services/intake/mail.py). What the
# mail says (number, subject, address, the letter it answers) is read from the ticket's row.
# The operators' console lists the given-up ones.
acknowledgements = _mail_owed("intake_acknowledgements", Column("ticket_id", UUIDStr, nullable=False, unique=True))

# 评价邀请: the mail that gives a citizen who left an e-mail address the one-time rating link of a reply, one per
# ReturnVisitDue that brought a link, owed in the transaction that applies it (intake_0012). The link is the
# event's (a later reply has its own); the rest of the mail is read from the ticket's row.
rating_invitations = _mail_owed(
    "intake_rating_invitations",
    Column("event_id", UUIDStr, nullable=False, unique=True),  # the ReturnVisitDue: redelivered, owed once
    Column("ticket_id", UUIDStr, nullable=False),
    Column("link", Text, nullable=False),
)

# The department directory's public part (districts and streets, categories), as the router last published it
# (DirectoryPublished): one row, replaced only by a version activated later. Added by intake_0010.
directory = Table(
    "intake_directory",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("version", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),  # the router's number for the version
    Column("activated_at", UTCDateTime, nullable=False),
    Column("content", JSON, nullable=False),  # the DirectoryPublished payload
    Column("received_at", UTCDateTime, nullable=False),
)

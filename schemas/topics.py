"""Kafka topic names, in one place. The key of every message is the ticket id (the directory's: its own id)."""

RECEIVED = "tickets.received"  # intake → router, tracker
ASSIGNED = "tickets.assigned"  # router → tracker, intake (TicketAssigned, DispatchNeeded, TicketMerged)
RETURNED = "tickets.returned"  # tracker → router (TicketReturned)
LIFECYCLE = "tickets.lifecycle"  # tracker → anyone (every other lifecycle event)
RECONCILE = "tickets.reconcile"  # anyone → producers: re-emit what you owe for a ticket
DIRECTORY = "directory.public"  # router → intake (DirectoryPublished): the directory's public part in force

ALL = (RECEIVED, ASSIGNED, RETURNED, LIFECYCLE, RECONCILE, DIRECTORY)


def dlq(topic: str) -> str:
    """Dead-letter topic for a topic: poison messages land there after bounded retries."""
    return f"{topic}.dlq"


ALL_WITH_DLQ = ALL + tuple(dlq(t) for t in ALL)

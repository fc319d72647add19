"""A Kafka record as the consumer sees it (aiokafka's ConsumerRecord, the fields it reads), for feeding
a consumer from memory: the unit tests and bench/hop.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.events import Envelope

_offsets = itertools.count()


@dataclass
class Record:
    value: bytes
    topic: str = "tickets.received"
    partition: int = 0
    offset: int = field(default_factory=lambda: next(_offsets))
    key: bytes = b"k"
    headers: tuple = ()


def records_of(envelopes: Iterable[Envelope], topic: str, partitions: int = 1) -> list[Record]:
    """The records the outbox relay would publish for these envelopes: keyed by ticket, partitioned by it,
    the event type in a header."""
    return [Record(value=e.to_bytes(), topic=topic, partition=e.ticket_id.int % partitions,
                   key=str(e.ticket_id).encode(), headers=(("event_type", e.event_type.encode()),))
            for e in envelopes]

"""A Kafka record as the consumer sees it (aiokafka's ConsumerRecord, the fields it reads), for feeding
a consumer from memory: the unit tests and bench/hop.py."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

_offsets = itertools.count()


@dataclass
class Record:
    value: bytes
    topic: str = "tickets.received"
    partition: int = 0
    offset: int = field(default_factory=lambda: next(_offsets))
    key: bytes = b"k"
    headers: tuple = ()

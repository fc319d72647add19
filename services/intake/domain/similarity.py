"""重复件 detection: does a new call repeat an open ticket of the same caller?

The score is the Jaccard similarity of character bigrams (jiesu.text.similarity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jiesu.text import similarity as jaccard

REPEAT_WINDOW = timedelta(days=30)
REPEAT_THRESHOLD = 0.3
CLOSED_STATES = frozenset({"closed", "merged", "answered_directly"})


@dataclass(frozen=True)
class Earlier:
    """An earlier ticket of the same caller, as intake knows it."""

    ticket_id: object
    number: str
    subject: str
    description: str
    state: str
    received_at: datetime


@dataclass(frozen=True)
class Repeat:
    ticket: Earlier
    similarity: float


def find_repeats(subject: str, description: str, earlier: list[Earlier], *, now: datetime,
                 threshold: float = REPEAT_THRESHOLD, window: timedelta = REPEAT_WINDOW) -> list[Repeat]:
    """Open tickets of the caller within the window whose text is similar, most similar first."""
    text = f"{subject}\n{description}"
    found = []
    for t in earlier:
        if t.state in CLOSED_STATES or now - t.received_at > window:
            continue
        score = jaccard(text, f"{t.subject}\n{t.description}")
        if score >= threshold:
            found.append(Repeat(t, round(score, 3)))
    return sorted(found, key=lambda r: r.similarity, reverse=True)

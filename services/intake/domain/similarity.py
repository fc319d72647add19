"""重复件 detection: does a new call repeat an open ticket of the same caller?

The score is jiesu.text.repeat_score: how surely two tickets of one caller are about the same matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jiesu.text import repeat_score

REPEAT_WINDOW = timedelta(days=30)
# The console warns from this score on; the operator decides with one key, so recall counts more than precision.
# On the 610 labelled real pairs (bench/data/repeat_pairs.csv, python -m bench.repeats) it flags 302 of 336
# repeats (recall 0.90) at precision 0.94; bigram Jaccard ≥ 0.3 flagged 132 (recall 0.39) at precision 0.96.
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
    """Open tickets of the caller within the window about the same matter, likeliest first."""
    found = []
    for t in earlier:
        if t.state in CLOSED_STATES or now - t.received_at > window:
            continue
        score = repeat_score(subject, description, t.subject, t.description or "")
        if score >= threshold:
            found.append(Repeat(t, round(score, 3)))
    return sorted(found, key=lambda r: r.similarity, reverse=True)

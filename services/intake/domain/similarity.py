"""重复件 detection: does a new call repeat an open ticket of the same caller?

Character bigrams suit Chinese: no word segmentation, robust to small rewordings
("楼下工地夜里施工" / "楼下工地夜间施工"). Jaccard of the two bigram sets is the score.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

REPEAT_WINDOW = timedelta(days=30)
REPEAT_THRESHOLD = 0.3
CLOSED_STATES = frozenset({"closed", "merged", "answered_directly"})


def _normalise(text: str) -> str:
    """Letters and digits only, case-folded: punctuation and spacing never decide a match."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold()
                   if unicodedata.category(ch)[0] in ("L", "N"))


def bigrams(text: str) -> frozenset[str]:
    s = _normalise(text)
    if len(s) == 1:
        return frozenset({s})
    return frozenset(s[i:i + 2] for i in range(len(s) - 1))


def jaccard(a: str, b: str) -> float:
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


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

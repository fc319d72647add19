"""本周热点: clusters of similar complaints about the same place and the same matter.

Tickets of the period are grouped by place (street, or district when no street is given)
and category; inside a group, two tickets are linked when their subject + description
are similar — the character-bigram Jaccard (`jiesu.text.bigrams`), of the subjects or of
subject + description, reaches `THRESHOLD` — and clusters are the
connected components (single-link). A hotspot is a cluster of at least `min_size`
tickets; the list is ranked by size, then by how recent the last ticket is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select

from jiesu.text import bigrams
from services.tracker.store import tickets

THRESHOLD = 0.25  # bigram Jaccard at which two complaints are "the same matter"
MAX_PER_GROUP = 400  # newest tickets considered per place+category (keeps the pairwise step bounded)


@dataclass
class Hotspot:
    place: str  # street or district code
    district: str | None
    category: str | None
    tickets: list = field(default_factory=list)  # rows, newest first

    @property
    def size(self) -> int:
        return len(self.tickets)

    @property
    def title(self) -> str:
        """The subject most typical of the cluster: the one sharing most bigrams with the others."""
        grams = [bigrams(f"{r.subject or ''}") for r in self.tickets]
        best = max(range(len(grams)), key=lambda i: sum(len(grams[i] & g) for g in grams))
        return self.tickets[best].subject or ""

    @property
    def last_at(self):
        return max(r.received_at for r in self.tickets if r.received_at)

    @property
    def units(self) -> list[str]:
        return sorted({r.lead_name for r in self.tickets if r.lead_name})


def clusters(rows: list, threshold: float = THRESHOLD) -> list[list]:
    """Single-link clusters of rows (each with subject and description) by text similarity."""
    grams = [bigrams(f"{r.subject or ''}{r.description or ''}") for r in rows]
    heads = [bigrams(r.subject or "") for r in rows]  # a short subject says the matter most densely
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if _similar(grams[i], grams[j], threshold) or _similar(heads[i], heads[j], threshold):
                parent[root(i)] = root(j)
    groups: dict[int, list] = {}
    for i, r in enumerate(rows):
        groups.setdefault(root(i), []).append(r)
    return list(groups.values())


def _similar(a: set, b: set, threshold: float) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= threshold


async def hotspots(session, start: dt.datetime, end: dt.datetime, *, top: int = 5, min_size: int = 2,
                   threshold: float = THRESHOLD) -> list[Hotspot]:
    t = tickets.c
    place = func.coalesce(t.street, t.district)
    where = [t.received_at >= start, t.received_at < end, place.is_not(None), t.state != "merged"]
    groups = (await session.execute(select(place, t.category, func.count()).where(*where)
                                    .group_by(place, t.category).having(func.count() >= min_size)
                                    .order_by(func.count().desc()))).all()
    found: list[Hotspot] = []
    for code, category, count in groups:
        if len(found) >= top and count < found[top - 1].size:
            break  # no cluster in this or any smaller group can make the list
        cat = t.category == category if category is not None else t.category.is_(None)
        rows = (await session.execute(
            select(t.ticket_id, t.number, t.subject, t.description, t.received_at, t.state, t.lead_name, t.district,
                   t.street, t.address, t.category)
            .where(*where, place == code, cat).order_by(t.received_at.desc()).limit(MAX_PER_GROUP))).all()
        for members in clusters(rows, threshold):
            if len(members) >= min_size:
                found.append(Hotspot(code, members[0].district, category, members))
        found.sort(key=lambda h: (-h.size, -h.last_at.timestamp()))
        found = found[: top * 3]
    return found[:top]

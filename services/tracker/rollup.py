"""Periodic roll-up: the report facts (reports.facts) of every completed month, kept in tracker_rollups.

A year's scorecard or annual report is then twelve small rows added up (every count is
additive) instead of a scan of a year of tickets. The current month is always computed
live. A completed month's figures can still move a little (a ticket assigned in October
is replied in November), so `RollupWorker` recomputes the months of this year and last
every `every_seconds` (default 10 minutes) in each tracker instance; a month whose row
is missing or older than `MAX_AGE` is computed on the spot by whoever asks first.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import delete, select

from jiesu.logging import get_logger
from services.tracker import stats
from services.tracker.store import rollups

log = get_logger(__name__)
MAX_AGE = dt.timedelta(hours=1)


def months_of(period: stats.Period, tz) -> list[str]:
    local = period.start.astimezone(tz)
    y, m = local.year, local.month
    out = []
    while True:
        key = f"{y}-{m:02d}"
        if stats.period_of(key, tz).start >= period.end:
            return out
        out.append(key)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


async def month_facts(db, period: stats.Period, now: dt.datetime, tz, *, refresh: bool = False
                      ) -> list[tuple[str, dict]]:
    """(YYYY-MM, facts) for each month of the period: completed months from the roll-up, the rest live.

    The facts are read on a reading session (at a million tickets a year's months take seconds,
    and on SQLite a writing session would hold every write of the tracker meanwhile); completed
    months computed afresh are kept afterwards, in a short transaction of their own.
    """
    async with db.reading() as session:
        out, fresh = await _month_facts(session, period, now, tz, refresh)
    if fresh:
        async with db.session() as s:
            for key, data in fresh:
                await s.execute(delete(rollups).where(rollups.c.period_key == key))
                await s.execute(rollups.insert().values(period_key=key, computed_at=now, data=data))
    return out


async def _month_facts(session, period: stats.Period, now: dt.datetime, tz, refresh: bool
                       ) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """The months' facts, and those of completed months computed here (to keep)."""
    from services.tracker import reports

    keys = months_of(period, tz)
    cached = {} if refresh else {r.period_key: r for r in (await session.execute(
        select(rollups).where(rollups.c.period_key.in_(keys)))).all()}
    out, fresh = [], []
    for key in keys:
        month = stats.period_of(key, tz)
        if month.start > now:
            break
        row = cached.get(key)
        if row is not None and month.end <= row.computed_at and now - row.computed_at < MAX_AGE:
            out.append((key, row.data))
            continue
        data = await reports.facts(session, month, now)
        if month.end <= now:  # completed: keep it for the next reader
            fresh.append((key, data))
        out.append((key, data))
    return out, fresh


async def period_scores(db, period: stats.Period, now: dt.datetime, tz) -> tuple[list, stats.Score]:
    """The scorecard of a multi-month period from its months (a single month is computed directly)."""
    if len(months_of(period, tz)) <= 1:
        async with db.reading() as s:
            return await stats.scorecard(s, period, now)
    parts = [[stats.Score.from_json(x) for x in f["scores"]] for _, f in await month_facts(db, period, now, tz)]
    ranked = stats.combine_scores(parts)
    return ranked, stats.total_of(ranked)


class RollupWorker:
    def __init__(self, store, tz, every_seconds: float = 600) -> None:
        self.store = store
        self.tz = tz
        self.every = every_seconds

    async def refresh(self, now: dt.datetime | None = None) -> int:
        now = now or dt.datetime.now(dt.UTC)
        year = now.astimezone(self.tz).year
        done = 0
        for key in (str(year - 1), str(year)):
            period = stats.period_of(key, self.tz)
            completed = stats.Period(period.start, min(period.end, stats.period_of(
                f"{now.astimezone(self.tz):%Y-%m}", self.tz).start), key, key)
            if completed.end <= completed.start:
                continue
            done += len(await month_facts(self.store.db, completed, now, self.tz, refresh=True))
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away: readers compute on the spot meanwhile
                log.warning("roll-up failed", error=repr(exc))
            await asyncio.sleep(self.every)

"""督办台账: every overdue and at-risk open ticket, and the signal that keeps the page live.

At risk (预警) means the 80 % warning instant has passed but the reply deadline has not;
overdue (超期) means the reply deadline has passed. Paused tickets (waiting on the
citizen, 挂账) are neither: their clock stands still.

`LedgerHub` tells connected pages when the ledger changed. It wakes at once when this
process fires a timer (`timers.FIRED_LISTENERS`), and polls a cheap signature of the
ledger every few seconds anyway, so a ticket that another tracker instance moved, or
whose deadline simply passed, shows up too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, or_, select

from jiesu.logging import get_logger
from services.tracker.stats import RUNNING
from services.tracker.store import tickets

log = get_logger(__name__)

LATENESS = {  # how late, as the filter offers it
    "risk": "预警（未超期）",
    "overdue": "已超期（全部）",
    "d1": "超期 1 天以内",
    "d3": "超期 1–3 天",
    "d3plus": "超期 3 天以上",
}
SORTS = {"due": "按期限（最紧迫在前）", "unit": "按承办单位", "received": "按受理时间"}


@dataclass
class LedgerFilter:
    unit: str = ""
    district: str = ""
    kind: str = ""
    channel: str = ""
    category: str = ""
    late: str = ""
    sort: str = "due"

    def query(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in self.__dict__.items() if v and not (k == "sort" and v == "due")})


def ledger_where(f: LedgerFilter, now: dt.datetime) -> list:
    t = tickets.c
    where = [t.state.in_(RUNNING), t.reply_due.is_not(None), or_(t.reply_due < now, t.warn_at <= now)]
    for column, value in ((t.lead_code, f.unit), (t.district, f.district), (t.kind, f.kind),
                          (t.channel, f.channel), (t.category, f.category)):
        if value:
            where.append(column == value)
    day = dt.timedelta(days=1)
    if f.late == "risk":
        where.append(t.reply_due >= now)
    elif f.late == "overdue":
        where.append(t.reply_due < now)
    elif f.late == "d1":
        where.append(and_(t.reply_due < now, t.reply_due >= now - day))
    elif f.late == "d3":
        where.append(and_(t.reply_due < now - day, t.reply_due >= now - 3 * day))
    elif f.late == "d3plus":
        where.append(t.reply_due < now - 3 * day)
    return where


async def ledger(session, f: LedgerFilter, now: dt.datetime, limit: int = 300) -> tuple[list, dict[str, int]]:
    """The rows (most urgent first unless sorted otherwise) and the counts: overdue, at risk."""
    t = tickets.c
    where = ledger_where(f, now)
    # Sort on expressions, not bare columns: otherwise SQLite walks the whole reply_due index in order
    # (a million past deadlines) instead of picking the few hundred running tickets by state first.
    due = func.coalesce(t.reply_due, t.reply_due)
    order = {"unit": (func.coalesce(t.lead_code, ""), due),
             "received": (func.coalesce(t.received_at, t.received_at).desc(),)}.get(f.sort, (due,))
    rows = (await session.execute(select(tickets).where(*where).order_by(*order, t.ticket_id).limit(limit))).all()
    overdue, risk = (await session.execute(select(
        func.coalesce(func.sum(case((t.reply_due < now, 1), else_=0)), 0),
        func.coalesce(func.sum(case((t.reply_due >= now, 1), else_=0)), 0)).where(*where))).one()
    return rows, {"overdue": int(overdue), "risk": int(risk), "total": int(overdue) + int(risk)}


async def signature(session, now: dt.datetime) -> tuple:
    """Changes whenever a ticket enters or leaves the ledger, or one in it moves."""
    t = tickets.c
    row = (await session.execute(select(
        func.count(), func.sum(case((t.reply_due < now, 1), else_=0)), func.max(t.updated_at))
        .where(*ledger_where(LedgerFilter(), now)))).one()
    return tuple(str(x) for x in row)


@dataclass
class LedgerHub:
    """Fans one change signal out to every open ledger page of this process."""

    store: object
    poll_seconds: float = 2.0
    _subscribers: set[asyncio.Queue] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None
    _last: tuple | None = None

    def notify(self) -> None:
        """Something changed here (a timer fired): look now rather than at the next poll."""
        self._wake.set()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    async def _run(self) -> None:
        while self._subscribers:
            try:
                async with self.store.db.reading() as s:
                    sig = await signature(s, dt.datetime.now(dt.UTC))
                if sig != self._last:
                    self._last = sig
                    for queue in list(self._subscribers):
                        with contextlib.suppress(asyncio.QueueFull):
                            queue.put_nowait(sig)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away: pages keep their last view
                log.warning("ledger poll failed", error=repr(exc))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._task = None

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

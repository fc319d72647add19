"""SLA timers as database rows, claimed by any number of tracker instances.

Whenever a ticket moves, `schedule` replaces its pending timers with the ones its new
state needs (a paused ticket has none; a replied one waits for its return visit).
`TimerLoop` polls for due rows every `timer_poll_seconds` and fires each exactly once:
one UPDATE … RETURNING claims a round of them, its inner select locking the rows with
FOR UPDATE SKIP LOCKED on PostgreSQL, so a second instance takes other rows instead of
waiting (SQLite, one process, serialises writers anyway). Firing and the claim commit
together with the events they emit, so a crash in between fires the timer again, never half.
A timer that its ticket no longer owes, or that a later timer of the ticket also due overtakes (a
tracker back from an outage owes them all at once), is claimed like the others but skipped: the
unit hears only the latest reminder.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime, timedelta
from types import SimpleNamespace

from prometheus_client import Counter
from sqlalchemy import delete, select, update

from jiesu.db import insert_rows
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore, Transaction
from schemas import topics
from schemas.enums import TicketState as S
from schemas.events import DeadlineMissed, DeadlineWarning, Envelope, SupervisionOrdered, UnitRef, utcnow
from services.tracker import notify as notifications
from services.tracker.domain.lifecycle import set_aside_from
from services.tracker.queries import levels_awaiting_answer, tickets_by_id
from services.tracker.store import supervision_orders, tickets, timeline, timers

log = get_logger(__name__)
PRODUCER = "tracker"

SIGN_FOR_WARN_RATIO = 0.8
RETRY_FAILED_TIMER = timedelta(seconds=60)
SKIPPED = Counter("jiesu_tracker_timers_skipped_total",
                  "Timers claimed that neither emitted nor notified: overtaken by a later one also due, or not owed "
                  "in the ticket's state", ["kind", "why"])

# States in which the department owes a reply and its clock runs.
RUNNING = frozenset({S.SIGNED_FOR, S.CONTACTED, S.REOPENED, S.EXTENSION_REQUESTED})
# States in which an urgent ticket's department may not yet have recorded its call to the citizen, and is chased
# for it (催办) when the contact clock runs out. An extension request (延期申请) stops no clock (RUNNING): asked
# before the call, the call is still owed meanwhile; asked after it, or on a 重办 (no contact clock), none is.
AWAITING_CONTACT = frozenset({S.ASSIGNED, S.SIGNED_FOR, S.EXTENSION_REQUESTED})
# The states whose timers stand for successive moments of one ticket's clocks (签收, 联系市民, 答复, 督办), so that a
# later one overtakes an earlier one (`due_after`).
_LADDER_STATES = frozenset({S.ASSIGNED.value, *(s.value for s in RUNNING)})


def awaiting_contact(state: S, t) -> bool:
    """Whether a ticket in `state` (`t`: its row) still owes its call to the citizen: in AWAITING_CONTACT and, with
    an extension pending, asked from 已签收 (lifecycle.set_aside_from)."""
    if state == S.EXTENSION_REQUESTED:
        contacted = getattr(t, "contacted_at", None) is not None
        return set_aside_from(getattr(t, "resume_to", None), contacted) == S.SIGNED_FOR
    return state in AWAITING_CONTACT


def wanted_timers(state: str, t, calendar) -> list[tuple[str, datetime]]:
    """The timers a ticket in `state` needs, from its deadlines (attributes of `t`)."""
    state = S(state)
    out: list[tuple[str, datetime]] = []
    if state == S.ASSIGNED and t.sign_for_due:
        start = getattr(t, "clock_started_at", None) or getattr(t, "received_at", None)
        if start is not None and start < t.sign_for_due:
            # 80 % of the sign-for window, in working time (urgent matters count wall time, which the
            # working-time measure would stretch past the deadline, so fall back to that).
            used = calendar.working_seconds_between(start, t.sign_for_due) * SIGN_FOR_WARN_RATIO
            warn = calendar.add_working_seconds(start, used) if used > 0 else None
            if warn is None or warn >= t.sign_for_due:
                warn = start + (t.sign_for_due - start) * SIGN_FOR_WARN_RATIO
            out.append(("sign_for_warning", warn))
        out.append(("sign_for_due", t.sign_for_due))
    if awaiting_contact(state, t) and getattr(t, "contact_due", None):  # urgent matters: call the citizen first
        out.append(("contact_due", t.contact_due))
    if (state == S.ASSIGNED or state in RUNNING) and t.reply_due:
        if t.warn_at and t.warn_at < t.reply_due:
            out.append(("reply_warning", t.warn_at))
        out.append(("reply_due", t.reply_due))
        out.append(("overdue_supervision", calendar.add_working_days(t.reply_due, 1)))
    if state == S.REPLIED and getattr(t, "visit_due", None):
        out.append(("return_visit_due", t.visit_due))
    return out


def owed(kind: str, t) -> bool:
    """Whether a ticket (`t`: its row) in its state still owes what a timer of `kind` stands for: a sign-for
    reminder only until it is signed for, a reply reminder while its clock runs, and so on."""
    state = S(t.state)
    if kind in ("sign_for_warning", "sign_for_due"):
        return state == S.ASSIGNED
    if kind == "contact_due":
        return awaiting_contact(state, t)
    if kind in ("reply_warning", "reply_due", "overdue_supervision"):
        return state == S.ASSIGNED or state in RUNNING
    return kind == "return_visit_due" and state == S.REPLIED


def due_after(kind: str, due_at: datetime, t, calendar, now: datetime) -> list[str]:
    """The kinds of the timers a ticket (`t`: its row) needs that stand for a later moment than its timer of `kind`
    (due at `due_at`) and are due by `now` as well, the latest last: what overtakes that timer. Its own moment is
    read from the ticket's deadlines too, as a timer retried a minute on is still the same reminder."""
    if t.state not in _LADDER_STATES:
        return []
    wanted = dict(wanted_timers(t.state, t, calendar))
    mine = wanted.get(kind, due_at)  # a 签收预警 whose start is unknown is not re-timed, yet owed
    return [k for at, k in sorted((at, k) for k, at in wanted.items() if mine < at <= now)]


async def schedule(tx: Transaction, ticket_id, state: str, t, calendar) -> None:
    """Replace the ticket's pending timers with those its state needs.

    A timer of a kind that already fired for the same instant or a later one is not created
    again, so moving a ticket back and forth never repeats a warning or a reminder. "Or a
    later one": a timer that failed was retried a minute on, and fired at that later instant.
    """
    await tx.session.execute(delete(timers).where(timers.c.ticket_id == ticket_id, timers.c.fired_at.is_(None)))
    wanted = wanted_timers(state, t, calendar)
    if not wanted:
        return
    fired: dict[str, datetime] = {}
    for kind, due in (await tx.session.execute(
            select(timers.c.kind, timers.c.due_at).where(timers.c.ticket_id == ticket_id,
                                                         timers.c.fired_at.is_not(None)))).all():
        fired[kind] = max(due, fired.get(kind, due))
    rows = [{"ticket_id": ticket_id, "kind": kind, "due_at": due} for kind, due in wanted
            if kind not in fired or due > fired[kind]]
    if rows:
        await insert_rows(tx.session, timers, rows)


async def schedule_many(tx: Transaction, due: list[tuple], calendar) -> None:
    """`schedule` for a run of tickets, each (ticket id, state, deadlines, fresh).

    A fresh ticket (its first assignment) never had timers, so there is nothing to replace
    or compare: the timers of all fresh tickets go in with one insert.
    """
    rows = []
    for ticket_id, state, t, fresh in due:
        if fresh:
            rows.extend({"ticket_id": ticket_id, "kind": kind, "due_at": at}
                        for kind, at in wanted_timers(state, t, calendar))
        else:
            await schedule(tx, ticket_id, state, t, calendar)
    if rows:
        await insert_rows(tx.session, timers, rows)


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(asyncio.get_running_loop()) % 100000}"


class TimerLoop:
    def __init__(self, store: ServiceStore, clocks, *, name: str | None = None, batch: int = 100,
                 on_fired=None) -> None:
        self.store = store
        self.clocks = clocks
        self.name = name
        self.batch = batch
        self.on_fired = on_fired  # told after a round that fired something (the live supervision ledger)

    async def run(self, poll_seconds: float) -> None:
        self.name = self.name or instance_name()
        clock = asyncio.get_running_loop().time
        while True:
            started = clock()
            try:
                fired = await self.fire_due()
                if fired and self.on_fired:
                    self.on_fired()
                if fired < self.batch:
                    # Caught up: look again one poll after this round began, so that the time a
                    # round takes is not added to the lag of the timers falling due meanwhile.
                    await asyncio.sleep(max(0.0, started + poll_seconds - clock()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away or a conflict: try again next round
                log.warning("timer round failed", error=repr(exc))
                await asyncio.sleep(poll_seconds)

    async def fire_due(self, now: datetime | None = None) -> int:
        """Claim and fire the timers due by `now`; answers how many this instance fired.

        A round is one transaction whose cost grows with what it owes (events, notices),
        not with its bookkeeping: one statement claims it, one reads its tickets, and the
        timers fire without a savepoint each. If any of them fails, the round is rolled back
        and done again one savepoint per timer, so the bad one waits and the others fire,
        as the idempotent consumer retries a failed batch record by record.
        """
        now = now or utcnow()
        try:
            return await self._round(now, one_by_one=False)
        except Exception as exc:  # noqa: BLE001 - nothing of the round was kept; the next try isolates the culprit
            log.info("timer round failed; firing one by one", error=repr(exc))
            return await self._round(now, one_by_one=True)

    async def _round(self, now: datetime, *, one_by_one: bool) -> int:
        name = self.name or instance_name()
        async with self.store.transaction() as tx:
            postgres = tx.session.bind.dialect.name == "postgresql"
            claimed = (await tx.session.execute(claim(now, name, self.batch, postgres=postgres))).all()
            due = sorted(claimed, key=lambda timer: (timer.due_at, timer.id))
            rows = await tickets_by_id(tx.session, {timer.ticket_id for timer in due})
            if not one_by_one:
                for timer in due:
                    await self._fire(tx, timer, rows.get(timer.ticket_id), now)
                return len(due)
            fired = 0
            for timer in due:
                fired += await self._fire_alone(tx, timer, rows.get(timer.ticket_id), now)
            return fired

    async def _fire_alone(self, tx: Transaction, timer, row, now: datetime) -> bool:
        """Fire in a savepoint; a timer that fails is put back a minute later (and logged), not lost."""
        try:
            async with tx.session.begin_nested():
                await self._fire(tx, timer, row, now)
            return True
        except Exception as exc:  # noqa: BLE001 - retried a minute later, and logged
            log.error("timer failed; retrying later", timer=timer.id, kind=timer.kind,
                      ticket_id=str(timer.ticket_id), error=repr(exc))
            await tx.session.execute(update(timers).where(timers.c.id == timer.id).values(
                fired_at=None, claimed_by=None, claimed_at=None, due_at=now + RETRY_FAILED_TIMER))
            return False

    async def _fire(self, tx: Transaction, timer, row, now: datetime) -> None:
        """Do what `timer` stands for to its ticket `row` (as it was when the round began), if still owed; a timer
        whose reminder means nothing any more is dropped, and recorded as skipped (`_skip`)."""
        if row is None:
            _skip(tx, timer, "no_ticket")
        elif not owed(timer.kind, row):
            _skip(tx, timer, "not_owed")
        elif later := await self._overtaken_by(tx, timer, row, now):
            _skip(tx, timer, "overtaken", by=later)
        elif not await self._speak(tx, timer, row, now):  # an order of the ticket awaits its answer (or a kind unknown)
            _skip(tx, timer, "order_awaiting" if timer.kind == "overdue_supervision" else "not_owed")

    async def _overtaken_by(self, tx: Transaction, timer, row, now: datetime) -> str | None:
        """The kind of the ticket's latest timer that is due by `now` too and stands for a later moment than
        `timer`, or None. A tracker back from an outage owes a ticket several of them at once (签收预警, 签收催办,
        答复预警, 答复超期, the overdue order): only the latest still means something, and the unit hears only it.
        Read from the deadlines the ticket's state needs timers for (`wanted_timers`), whether their rows fired
        already, wait in this round or in the next. The overdue order does not overtake while an order of the
        ticket awaits its answer: it orders nothing then, and the reminder before it speaks."""
        later = due_after(timer.kind, timer.due_at, row, self.clocks.calendar, now)
        if later and later[-1] == "overdue_supervision" and (
                await levels_awaiting_answer(tx.session, [row.ticket_id])).get(row.ticket_id):
            later.pop()
        return later[-1] if later else None

    async def _speak(self, tx: Transaction, timer, row, now: datetime) -> bool:
        """Emit and notify what `timer` stands for, owed by the ticket's state (`owed`); answers whether it did."""
        unit = UnitRef(code=row.lead_code, name=row.lead_name or row.lead_code) if row.lead_code else None
        kind = timer.kind
        settings = self.clocks.settings
        if kind == "sign_for_warning":
            await _emit(tx, row, DeadlineWarning(clock="sign_for", due_at=row.sign_for_due, unit=unit),
                        "签收时限将到，预警", {"clock": "sign_for"})
            await notifications.notify(tx, settings, row, row.lead_code, "warning",
                                       f"预警：工单 {row.number} 尚未签收，签收时限即将到期。")
        elif kind == "sign_for_due":
            await _emit(tx, row, DeadlineMissed(clock="sign_for", due_at=timer.due_at, unit=unit),
                        "签收超时，已催办", {"clock": "sign_for"})
            await notifications.notify(tx, settings, row, row.lead_code, "reminder",
                                       f"催办：工单 {row.number} 已超过签收时限，请立即签收。")
        elif kind == "contact_due":
            await _emit(tx, row, DeadlineMissed(clock="contact", due_at=timer.due_at, unit=unit),
                        "紧急工单联系市民超时，已催办", {"clock": "contact"})
            await notifications.notify(tx, settings, row, row.lead_code, "reminder",
                                       f"催办：紧急工单 {row.number} 已超过联系市民时限，请立即与市民联系。")
        elif kind == "reply_warning":
            await _emit(tx, row, DeadlineWarning(clock="reply", due_at=timer.due_at, unit=unit),
                        "答复时限已用 80%，预警", {"clock": "reply"})
            await notifications.notify(tx, settings, row, row.lead_code, "warning",
                                       f"预警：工单 {row.number} 答复时限已用去 80%，请抓紧办理。")
        elif kind == "reply_due":
            await _emit(tx, row, DeadlineMissed(clock="reply", due_at=timer.due_at, unit=unit),
                        "答复超期，已催办", {"clock": "reply"})
            await notifications.notify(tx, settings, row, row.lead_code, "overdue",
                                       f"催办：工单 {row.number} 已超过答复期限，请尽快答复。")
        elif kind == "overdue_supervision":
            if (await levels_awaiting_answer(tx.session, [row.ticket_id])).get(row.ticket_id):
                # An order of the ticket awaits its answer already (the office ordered before the deadline, or the
                # deadline moved on since): escalation presses that one when late, a second would only stack on it.
                return False
            # Due a working day after the deadline; later when the tracker was down: say how late it really is.
            late = max(1, self.clocks.calendar.working_days_between(row.reply_due, now)) if row.reply_due else 1
            await order_supervision(tx, self.clocks, row, level="normal", by="system",
                                    reason=f"超期 {late} 个工作日仍未答复", now=now)
        elif kind == "return_visit_due":
            await tx.session.execute(timeline.insert().values(
                ticket_id=row.ticket_id, event_id=_uuid(), event_type="ReturnVisitOverdue", at=now, actor="system",
                summary="回访已超过 3 个工作日，请尽快回访", data={}))
        else:
            return False
        return True


def _skip(tx: Transaction, timer, why: str, *, by: str | None = None) -> None:
    """A claimed timer that neither emits nor notifies: logged with why (`overtaken` by the later timer `by`,
    `not_owed` in the ticket's state, `order_awaiting` its answer) and counted once its round commits. Its row
    stays fired, so that no move of the ticket brings it back (`schedule`)."""
    def record() -> None:
        log.info("timer skipped", timer=timer.id, kind=timer.kind, ticket_id=str(timer.ticket_id), why=why,
                 overtaken_by=by)
        SKIPPED.labels(kind=timer.kind, why=why).inc()

    tx.after_commit(record)


def claim(now: datetime, name: str, batch: int, *, postgres: bool):
    """One statement that marks up to `batch` timers due by `now` as fired by `name` and answers them.

    On PostgreSQL the inner select locks its rows with SKIP LOCKED, so concurrent instances
    claim disjoint rounds without waiting for each other; SQLite serialises writers anyway.
    """
    due = (select(timers.c.id).where(timers.c.fired_at.is_(None), timers.c.due_at <= now)
           .order_by(timers.c.due_at).limit(batch))
    if postgres:
        due = due.with_for_update(skip_locked=True)
    return (update(timers).where(timers.c.id.in_(due)).values(fired_at=now, claimed_by=name, claimed_at=now)
            .returning(*timers.c))


async def _emit(tx: Transaction, row, payload, summary: str, data: dict, actor: str = "system",
                audit_details: dict | None = None) -> Envelope:
    envelope = Envelope.wrap(payload, ticket_id=row.ticket_id, producer=PRODUCER)
    await tx.emit(topics.LIFECYCLE, envelope, audit_details=audit_details)
    await tx.session.execute(timeline.insert().values(
        ticket_id=row.ticket_id, event_id=envelope.event_id, event_type=envelope.event_type,
        at=envelope.occurred_at, actor=actor, summary=summary, data=data))
    return envelope


def _uuid():
    from schemas.events import new_event_id

    return new_event_id()


async def order_supervision(tx: Transaction, clocks, row, *, level: str, by: str, reason: str,
                            now: datetime | None = None) -> str:
    """督办单: number it, give it its own deadline (2 working days), tell the department."""
    now = now or utcnow()
    count = len((await tx.session.execute(select(supervision_orders.c.order_no).where(
        supervision_orders.c.ticket_id == row.ticket_id))).all())
    order_no = f"DB-{(row.number or str(row.ticket_id))[6:]}-{count + 1}"
    due = clocks.calendar.add_working_days(now, 2)
    await tx.session.execute(supervision_orders.insert().values(
        order_no=order_no, ticket_id=row.ticket_id, level=level, unit_code=row.lead_code, reason=reason, due_at=due,
        created_at=now, by=by))
    await tx.session.execute(update(tickets).where(tickets.c.ticket_id == row.ticket_id).values(supervised=True))
    unit = UnitRef(code=row.lead_code, name=row.lead_name or row.lead_code) if row.lead_code else None
    label = "重点督办" if level == "key" else "一般督办"
    await _emit(tx, row, SupervisionOrdered(order_no=order_no, level=level, unit=unit, due_at=due, reason=reason,
                                            by=by), f"督办单 {order_no}（{label}）：{reason}",
                {"order_no": order_no, "level": level}, actor=by,
                # As answering and closing an order are audited; not the reason, which may name the citizen.
                audit_details={"order_no": order_no, "number": row.number, "level": level, "unit_code": row.lead_code,
                               "due_at": due.isoformat(), "by": by})
    await notifications.notify(tx, clocks.settings, with_order_due(row, due), row.lead_code, "supervision",
                               f"督办：工单 {row.number} 已列入{label}（{order_no}），原因：{sentence(reason)}")
    return order_no


def sentence(text: str) -> str:
    """Someone's text closed with one 。 (a reason that ends in 。 ！ ？ or . gets no second stop)."""
    return text.strip().rstrip("。．.！!？?") + "。"


def with_order_due(row, due_at: datetime):
    """The ticket's row as a notice about one of its supervision orders must read it: the answer date the notice
    carries (reply_due in the webhook, 答复期限 in the mail) is the order's, not the ticket's own."""
    return SimpleNamespace(**{**row._asdict(), "reply_due": due_at})

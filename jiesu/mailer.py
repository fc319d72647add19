"""Outgoing e-mail, and the loop that sends what a service owes until it goes through.

A service writes one row per message it owes in the same transaction as the change that
caused it, so a crash before sending loses nothing. `DeliveryLoop` sends those rows and
retries with back-off, so a mail server that is down loses nothing either. Any number of
processes may run a loop over one table: a row is leased (its next attempt pushed into
the future) in a short transaction, sent outside any transaction, then marked delivered
or given its back-off. Such a table has the columns `id`, `attempts`, `next_attempt_at`,
`delivered_at` and `last_error`.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Table, select, update

from jiesu.config import Settings
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore
from schemas.events import utcnow

log = get_logger(__name__)


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s … capped at one hour."""
    return timedelta(seconds=min(2 ** max(attempts, 1), 3600))


def public_base_url(settings: Settings) -> str:
    """Where citizens and staff reach the pages a mail links to (JIESU_PUBLIC_URL, else this server)."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def send_mail(settings: Settings, msg: EmailMessage) -> None:
    """Hand one message to the configured mail server (JIESU_MAIL_HOST); blocking, so run it in a thread."""
    if msg["From"] is None:
        msg["From"] = settings.mail_from
    with smtplib.SMTP(settings.mail_host, settings.mail_port, timeout=10) as smtp:
        smtp.send_message(msg)


class DeliveryLoop:
    """Sends the due rows of `table` with `send` until each has gone through once."""

    LEASE = timedelta(seconds=60)  # longer than any one send takes: a crashed sender's rows come back after it

    def __init__(self, store: ServiceStore, table: Table, send: Callable[[Any], Awaitable[None]], *,
                 what: str) -> None:
        self.store = store
        self.table = table
        self.send = send
        self.what = what  # for the log: "notification delivery", "acknowledgement" …

    async def run(self, poll_seconds: float = 1.0) -> None:
        while True:
            try:
                if await self.deliver_once() == 0:
                    await asyncio.sleep(poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again later
                log.warning(f"{self.what} round failed", error=repr(exc))
                await asyncio.sleep(poll_seconds)

    async def deliver_once(self, limit: int = 20) -> int:
        """Send up to `limit` due rows; return how many were tried."""
        table = self.table
        rows = await self._lease(limit)
        for row in rows:
            try:
                await self.send(row)
            except Exception as exc:  # noqa: BLE001 - recorded and retried
                async with self.store.transaction() as tx:
                    await tx.session.execute(update(table).where(table.c.id == row.id).values(
                        last_error=repr(exc)[:1000], next_attempt_at=utcnow() + backoff(row.attempts + 1)))
                log.warning(f"{self.what} failed", table=table.name, row=row.id, attempts=row.attempts + 1,
                            error=repr(exc)[:200])
            else:
                async with self.store.transaction() as tx:
                    await tx.session.execute(update(table).where(table.c.id == row.id).values(
                        delivered_at=utcnow(), last_error=None))
        return len(rows)

    async def _lease(self, limit: int) -> list:
        table, now = self.table, utcnow()
        async with self.store.transaction() as tx:
            stmt = (select(table).where(table.c.delivered_at.is_(None), table.c.next_attempt_at <= now)
                    .order_by(table.c.next_attempt_at).limit(limit))
            if tx.session.bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await tx.session.execute(stmt)).all()
            for row in rows:
                await tx.session.execute(update(table).where(table.c.id == row.id).values(
                    next_attempt_at=now + self.LEASE, attempts=row.attempts + 1))
        return rows

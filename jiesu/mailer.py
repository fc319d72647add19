"""Outgoing e-mail, and the loop that sends what a service owes until it goes through or is given up.

A service writes one row per message it owes in the same transaction as the change that
caused it, so a crash before sending loses nothing. `DeliveryLoop` sends those rows and
retries with back-off, so a mail server that is down loses nothing either. A receiver that
refuses a message for good (an unknown mailbox, HTTP 404) is not asked again, and one that
keeps failing for now is asked for JIESU_DELIVERY_GIVE_UP_HOURS at most: such a row is given
up (`failed_at`) with its last error, which the pages show to the staff who can act on it.
Any number of processes may run a loop over one table: a row is leased (its next attempt
pushed into the future) in a short transaction, sent outside any transaction, then marked
delivered or given its back-off. Such a table has the columns `id`, `attempts`,
`next_attempt_at`, `delivered_at`, `failing_since`, `failed_at` and `last_error`, and a
partial index on `next_attempt_at` of the rows neither delivered nor failed.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from sqlalchemy import Table, select, update

from jiesu.config import Settings
from jiesu.db import delete_in_chunks
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


class DeliveryError(Exception):
    """A send that did not go through, worth trying again later; its text says why in words staff read
    (Chinese, with the receiver's own answer), and is what the pages show once the row is given up."""


class PermanentFailure(DeliveryError):
    """The receiver refused the message for good (SMTP 5xx, HTTP 4xx): asking again gets the same answer."""


def send_mail(settings: Settings, msg: EmailMessage) -> None:
    """Hand one message to the configured mail server (JIESU_MAIL_HOST); blocking, so run it in a thread.

    Raises PermanentFailure when the server answers 5xx for the sender, a recipient or the
    message, DeliveryError when it may take it later (4xx, no connection, a timeout). The reason
    leaves out the recipients' addresses, which servers quote in their answers: it is shown
    where a citizen's address may not be.
    """
    if msg["From"] is None:
        msg["From"] = settings.mail_from
    where = f"{settings.mail_host}:{settings.mail_port}"
    try:
        smtp = smtplib.SMTP(settings.mail_host, settings.mail_port, timeout=10)
    except smtplib.SMTPConnectError as exc:  # it greeted with a refusal: the server's matter, not the message's
        raise DeliveryError(f"邮件服务器 {where} 拒绝连接：{_answer(exc)}") from exc
    except OSError as exc:
        raise DeliveryError(f"无法连接邮件服务器 {where}：{_os_error(exc)}") from exc
    hidden = _recipients(msg)
    try:
        smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        answers = "；".join(f"{code} {_text(reply)}" for code, reply in exc.recipients.values())
        if all(code >= 500 for code, _ in exc.recipients.values()):
            raise PermanentFailure(_hide(f"收件地址被邮件服务器拒收：{answers}", hidden)) from exc
        raise DeliveryError(_hide(f"收件地址暂时被邮件服务器拒收：{answers}", hidden)) from exc
    except smtplib.SMTPHeloError as exc:  # refuses this system, not this message: retried
        raise DeliveryError(f"邮件服务器 {where} 拒绝本系统：{_answer(exc)}") from exc
    except smtplib.SMTPResponseException as exc:  # the sender (SMTPSenderRefused) or the message (SMTPDataError)
        what = "发件地址" if isinstance(exc, smtplib.SMTPSenderRefused) else "邮件"
        if exc.smtp_code >= 500:
            raise PermanentFailure(_hide(f"{what}被邮件服务器拒收：{_answer(exc)}", hidden)) from exc
        raise DeliveryError(_hide(f"{what}暂时被邮件服务器拒收：{_answer(exc)}", hidden)) from exc
    except smtplib.SMTPNotSupportedError as exc:  # an address in Chinese characters and a server without SMTPUTF8
        raise PermanentFailure(f"邮件服务器 {where} 不支持中文等非英文字符的邮箱地址") from exc
    except OSError as exc:  # SMTPServerDisconnected, a timeout, a reset connection
        raise DeliveryError(f"与邮件服务器 {where} 的连接中断：{_os_error(exc)}") from exc
    finally:
        _quit(smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; the message's fate was settled by the answer to it, so a failing QUIT changes nothing
    (smtplib's context manager would raise on it, and a delivered message would be sent again)."""
    try:
        smtp.quit()
    except OSError:
        smtp.close()


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _answer(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _os_error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "超时"
    return f"{type(exc).__name__} {exc}".strip()


def _recipients(msg: EmailMessage) -> list[str]:
    return [addr for _, addr in getaddresses([str(v) for f in ("To", "Cc", "Bcc") for v in msg.get_all(f, [])])
            if addr]


def _hide(text: str, addresses: list[str]) -> str:
    for addr in addresses:
        text = re.sub(re.escape(addr), "收件地址", text, flags=re.IGNORECASE)
    return text


# A given-up row stays at least this long, however short the outbox's retention: past the longest holiday (国庆,
# 8 days) and the days after it, so that whoever can put it right is back to see it, and the record that it never
# arrived outlives the pages that list it.
GIVEN_UP_KEPT = timedelta(days=14)


async def purge_done(store: ServiceStore, table: Table, retention: timedelta, *,
                     delivered_order: Any = None) -> tuple[int, int]:
    """Drop a delivery table's rows delivered longer ago than `retention`, and those given up longer ago than that
    (at least GIVEN_UP_KEPT): (delivered, given up). `delivered_order`: the column the delivered go by, oldest first
    (delivered_at, unless the table has no index on it and its id follows time as well)."""
    c, now = table.c, utcnow()
    sent = await delete_in_chunks(store.db, table, c.delivered_at < now - retention,
                                  oldest_first=c.delivered_at if delivered_order is None else delivered_order)
    given_up = await delete_in_chunks(store.db, table, c.failed_at < now - max(retention, GIVEN_UP_KEPT),
                                      oldest_first=c.failed_at)
    return sent, given_up


async def requeue(session, table: Table, row_id: int, **values: Any) -> bool:
    """A given-up row due again now, its failure clock and reason cleared (the attempts count stays), with `values`
    (a new target, say); False when it was not given up (sent meanwhile, or already requeued)."""
    c = table.c
    result = await session.execute(update(table).where(c.id == row_id, c.failed_at.isnot(None)).values(
        failed_at=None, failing_since=None, last_error=None, next_attempt_at=utcnow(), **values))
    return bool(result.rowcount)


class DeliveryLoop:
    """Sends the due rows of `table` with `send` until each has gone through once or is given up."""

    LEASE = timedelta(seconds=60)  # longer than any one send takes: a crashed sender's rows come back after it
    LOGGED = ("ticket_id", "notification_id", "channel")  # whichever of these a table has: what a log line names

    def __init__(self, store: ServiceStore, table: Table, send: Callable[[Any], Awaitable[None]], *,
                 what: str, give_up_after: timedelta) -> None:
        self.store = store
        self.table = table
        self.send = send
        self.what = what  # for the log: "notification delivery", "acknowledgement" …
        self.give_up_after = give_up_after  # of failing for now (JIESU_DELIVERY_GIVE_UP_HOURS)

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
            except Exception as exc:  # noqa: BLE001 - recorded, and retried unless given up
                await self._failed(row, exc)
            else:
                async with self.store.transaction() as tx:
                    await tx.session.execute(update(table).where(table.c.id == row.id).values(
                        delivered_at=utcnow(), last_error=None))
        return len(rows)

    async def _failed(self, row, exc: Exception) -> None:
        """Back off; or give up, at once on a refusal for good, after `give_up_after` of failing for now."""
        table, now = self.table, utcnow()
        error = (str(exc) if isinstance(exc, DeliveryError) else repr(exc))[:1000]
        since = row.failing_since or now
        permanent = isinstance(exc, PermanentFailure)
        values = {"last_error": error, "failing_since": since}
        if permanent or now - since >= self.give_up_after:
            values["failed_at"] = now
        else:
            values["next_attempt_at"] = now + backoff(row.attempts + 1)
        async with self.store.transaction() as tx:  # never over a delivery another sender made after our lease
            await tx.session.execute(update(table).where(table.c.id == row.id, table.c.delivered_at.is_(None))
                                     .values(**values))
        fields = {name: str(row._mapping[name]) for name in self.LOGGED if name in row._mapping}
        fields.update(table=table.name, row=row.id, attempts=row.attempts + 1, error=error[:200])
        if "failed_at" in values:  # nobody will try it again: the row's last_error is the record
            log.warning(f"{self.what} given up", refused_for_good=permanent, failing_since=since.isoformat(),
                        **fields)
        else:
            log.warning(f"{self.what} failed", **fields)

    async def _lease(self, limit: int) -> list:
        table, now = self.table, utcnow()
        async with self.store.transaction() as tx:
            stmt = (select(table).where(table.c.delivered_at.is_(None), table.c.failed_at.is_(None),
                                        table.c.next_attempt_at <= now)
                    .order_by(table.c.next_attempt_at).limit(limit))
            if tx.session.bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await tx.session.execute(stmt)).all()
            for row in rows:
                await tx.session.execute(update(table).where(table.c.id == row.id).values(
                    next_attempt_at=now + self.LEASE, attempts=row.attempts + 1))
        return rows

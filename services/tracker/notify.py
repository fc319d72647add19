"""Telling departments: in the page, by e-mail and by a signed webhook.

`notify` runs inside the transaction that caused it: it writes the in-page notification
and one delivery row per outside channel. `DeliveryWorker` sends those rows and retries
with back-off until they go through, so a mail server or webhook receiver that is down
loses nothing; a receiver that refuses one for good, or keeps failing for longer than
JIESU_DELIVERY_GIVE_UP_HOURS, has it given up and shown to the office and the unit
(jiesu.mailer). Once the mail server, the unit's address or the messaging system is put right,
the supervision office sends given-up ones again (`resend_delivery`, `resend_all`). Sent and
given-up rows are purged after the outbox's retention (`purge_deliveries`). Citizen phone
numbers never leave in a notification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from datetime import timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import select

from jiesu import audit
from jiesu.config import Settings
from jiesu.db import insert_rows
from jiesu.errors import ApiError
from jiesu.logging import get_logger
from jiesu.mailer import (DeliveryError, DeliveryLoop, PermanentFailure, public_base_url, purge_done, requeue,
                          send_mail)
from jiesu.messaging import ServiceStore, Transaction
from jiesu.privacy import redact_phones
from jiesu.web import LONG_DATE, localtime
from schemas.events import utcnow
from services.tracker.store import deliveries, notifications, unit_contacts

KIND_LABELS = {
    "arrived": "新工单", "warning": "即将到期", "overdue": "已超期催办", "reminder": "催办", "supervision": "督办",
    "reopened": "重办", "extension": "延期审批结果", "returned": "退单", "repeat": "重复件",
}
SIGNATURE_HEADER = "X-Jiesu-Signature"

log = get_logger(__name__)


def scrub(text: str, phone: str | None = None) -> str:
    """The text with the citizen's own number, and anything shaped like a phone number, replaced by ***."""
    if phone:
        text = text.replace(phone, "***")
    return redact_phones(text)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _notification(row, unit_code: str, kind: str, message: str, now) -> dict:
    """The in-page notification's row; the citizen's number never in it."""
    return dict(unit_code=unit_code, ticket_id=row.ticket_id, number=row.number, kind=kind,
                message=scrub(message, row.citizen_phone), created_at=now)


async def notify(tx: Transaction, settings: Settings | None, row, unit_code: str | None, kind: str,
                 message: str) -> None:
    """Tell `unit_code` about `row` (a ticket); nothing when there is no unit."""
    await notify_many(tx, settings, [(row, unit_code, kind, message)])


async def notify_many(tx: Transaction, settings: Settings | None, notices: list[tuple]) -> None:
    """Tell each (row, unit_code, kind, message): the in-page notifications, and one delivery per outside channel
    (`_destinations`, read once for the whole batch). One insert when nothing goes outside the page."""
    notices = [notice for notice in notices if notice[1]]
    if not notices:
        return
    now = utcnow()
    if settings is None or not (settings.mail_host or settings.webhook_url):
        await insert_rows(tx.session, notifications, [_notification(row, unit_code, kind, message, now)
                                                      for row, unit_code, kind, message in notices])
        return
    destinations = await _destinations(tx, settings, {unit_code for _, unit_code, _, _ in notices})
    for row, unit_code, kind, message in notices:  # deliveries need each notification's id
        values = _notification(row, unit_code, kind, message, now)
        result = await tx.session.execute(notifications.insert().values(**values))
        notification_id = result.inserted_primary_key[0]
        body = {
            "notification_id": notification_id, "kind": kind, "kind_label": KIND_LABELS.get(kind, kind),
            "unit": unit_code, "ticket_id": str(row.ticket_id), "number": row.number,
            "subject": scrub(row.subject or "", row.citizen_phone), "message": values["message"],
            "reply_due": row.reply_due.isoformat() if row.reply_due else None,
            "url": f"{public_base_url(settings)}/tracker/tickets/{row.number or row.ticket_id}",
            "at": now.isoformat(),
        }
        for channel, target in destinations[unit_code].items():
            await tx.session.execute(deliveries.insert().values(
                notification_id=notification_id, channel=channel, target=target, body=body, attempts=0,
                next_attempt_at=now))


async def _destinations(tx: Transaction, settings: Settings, units: set[str]) -> dict[str, dict[str, str]]:
    """Where each unit's notifications go today, by channel: its e-mail address (when a mail server is set) and the
    messaging system. A channel left out goes nowhere. Read as set now, not as when a notification was first owed,
    so a resend goes to the very thing put right after a refusal."""
    emails = {}
    if settings.mail_host and units:
        emails = dict((await tx.session.execute(select(unit_contacts.c.unit_code, unit_contacts.c.email)
                                                .where(unit_contacts.c.unit_code.in_(units)))).all())
    return {unit: {channel: where for channel, where in (("email", emails.get(unit)), ("webhook", settings.webhook_url))
                   if where}
            for unit in units}


class DeliveryWorker:
    """Sends pending e-mails and webhook calls (jiesu.mailer's loop); any number of tracker instances may run one.

    A delivery refused for good (an unknown mailbox, HTTP 404) or failing for longer than
    JIESU_DELIVERY_GIVE_UP_HOURS is given up: the ticket page and the supervision office's page show it.
    """

    def __init__(self, store: ServiceStore, settings: Settings, http=None) -> None:
        self.store = store
        self.settings = settings
        self.http = http
        self.loop = DeliveryLoop(store, deliveries, self._send, what="notification delivery",
                                 give_up_after=timedelta(hours=settings.delivery_give_up_hours))

    async def run(self, poll_seconds: float = 1.0) -> None:
        """Send for ever (the rows done with go with the runtime's hourly purge: `purge_deliveries`)."""
        await self.loop.run(poll_seconds)

    async def deliver_once(self, limit: int = 20) -> int:
        return await self.loop.deliver_once(limit)

    async def _send(self, row) -> None:
        body = row.body if isinstance(row.body, dict) else json.loads(row.body)
        if row.channel == "email":
            await asyncio.to_thread(self._send_mail, row.target, body)
        else:
            await self._post(row.target, body, row.id)

    def _send_mail(self, to: str, body: dict) -> None:
        msg = EmailMessage()
        msg["Subject"] = f"【接诉即办】{body['kind_label']}：{body['number']} {body['subject']}"[:200]
        msg["From"] = self.settings.mail_from
        msg["To"] = to
        msg["Message-ID"] = f"<jiesu-{body['notification_id']}@{socket.gethostname()}>"
        msg.set_content(f"{body['message']}\n\n工单编号：{body['number']}\n诉求：{body['subject']}\n"
                        f"答复期限：{localtime(body.get('reply_due'), LONG_DATE, ZoneInfo(self.settings.timezone))}\n办理入口：{body['url']}\n\n"
                        f"本邮件由接诉即办系统自动发送。")
        send_mail(self.settings, msg)


    async def _post(self, url: str, body: dict, delivery_id: int) -> None:
        """POST the signed body. A 4xx answer is a refusal for good (PermanentFailure): the receiver will
        not take this body at this address however often it is sent, except 408 and 429, which ask for
        later, as 5xx and no answer at all do."""
        import httpx

        raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Jiesu-Delivery": str(delivery_id)}
        if self.settings.webhook_secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.webhook_secret, raw)
        try:
            if self.http is not None:
                response = await self.http.post(url, content=raw, headers=headers)
            else:
                async with httpx.AsyncClient(timeout=10) as client:
                    response = await client.post(url, content=raw, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"消息系统超时未应答（{type(exc).__name__}）") from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"无法连接消息系统：{type(exc).__name__} {exc}".strip()) from exc
        status = response.status_code
        if 400 <= status < 500 and status not in (408, 429):
            raise PermanentFailure(f"消息系统拒收：HTTP {status} {response.reason_phrase}".strip())
        if status >= 300:
            raise DeliveryError(f"消息系统暂时无法接收：HTTP {status} {response.reason_phrase}".strip())


# --- sending again what was given up, and purging what is done with -------------------------


def _given_up(*where):
    """The deliveries (with their notification's unit and ticket) that `resend_delivery` and `resend_all` send again."""
    d, n = deliveries.c, notifications.c
    return (select(d.id, d.channel, d.attempts, d.failed_at, n.unit_code, n.ticket_id, n.number)
            .join(notifications, n.id == d.notification_id).where(*where))


async def resend_delivery(store: ServiceStore, settings: Settings, delivery_id: int, *, ticket_id=None):
    """Queue one given-up delivery (of `ticket_id`, when given: a value or a scalar subquery) to be sent again now;
    refused when there is no such delivery (of that ticket), when it was not given up, or when it has nowhere to go.
    The delivery with its notification's unit, ticket id and number."""
    async with store.transaction() as tx:
        stmt = _given_up(deliveries.c.id == delivery_id)
        if ticket_id is not None:
            stmt = stmt.where(notifications.c.ticket_id == ticket_id)
        row = (await tx.session.execute(stmt)).first()
        if row is None:
            raise ApiError(404, "delivery_not_found", "未找到这条通知，可能已过保存期限被清理；请刷新页面",
                           "No such notification delivery; it may have been purged. Reload the page")
        if row.failed_at is None:
            raise ApiError(409, "delivery_not_given_up",
                           "这条通知没有停止重试（正在发送或已送达），无需重新发送；请刷新页面查看最新情况",
                           "This notification was not given up (it is being sent or was delivered); "
                           "reload the page to see where it stands")
        targets = await _targets(tx, settings, [row])
        if row.id not in targets:
            zh, en = _NOWHERE[row.channel]
            raise ApiError(409, "delivery_target_missing", zh.format(unit=row.unit_code), en.format(unit=row.unit_code))
        await _requeue(tx, [row], targets)
    return row


async def resend_all(store: ServiceStore, settings: Settings) -> tuple[int, int]:
    """Queue every given-up delivery to be sent again now: (how many, how many have nowhere to go)."""
    async with store.transaction() as tx:
        rows = (await tx.session.execute(_given_up(deliveries.c.failed_at.isnot(None)))).all()
        targets = await _targets(tx, settings, rows)
        return await _requeue(tx, [r for r in rows if r.id in targets], targets), len(rows) - len(targets)


_NOWHERE = {  # a given-up delivery whose channel has no address now
    "email": ("单位 {unit} 已没有通知邮箱，无法重新发送；请先设置该单位的通知邮箱（或未配置发信服务器 JIESU_MAIL_HOST）",
              "Unit {unit} has no notification e-mail address (or no mail server is configured): set it first"),
    "webhook": ("未配置消息系统地址（JIESU_WEBHOOK_URL），无法重新发送；请管理员先配置",
                "No messaging system is configured (JIESU_WEBHOOK_URL): ask an administrator to set it first"),
}


async def _targets(tx: Transaction, settings: Settings, rows) -> dict[int, str]:
    """Where each delivery goes now (`_destinations`, as `notify` would send it today). Absent: nowhere."""
    destinations = await _destinations(tx, settings, {row.unit_code for row in rows})
    return {row.id: where for row in rows if (where := destinations[row.unit_code].get(row.channel))}


async def _requeue(tx: Transaction, rows, targets: dict[int, str]) -> int:
    """Due again now, to where it goes today (jiesu.mailer.requeue); the audit trail says who sent it again, when,
    and how it stood."""
    requeued = 0
    for row in rows:
        if await requeue(tx.session, deliveries, row.id, target=targets[row.id]):
            requeued += 1
            tx.append(tx.tables.audit, audit.entry("NotificationResent", ticket_id=row.ticket_id, details={
                "delivery_id": row.id, "channel": row.channel, "unit_code": row.unit_code, "attempts": row.attempts,
                "failed_at": row.failed_at.isoformat()}))
    return requeued


async def purge_deliveries(store: ServiceStore, retention: timedelta) -> int:
    """Drop e-mails and webhook calls delivered longer ago than the retention, and given-up ones given up longer
    ago than that (at least jiesu.mailer.GIVEN_UP_KEPT); the in-page notification stays."""
    sent, given_up = await purge_done(store, deliveries, retention, delivered_order=deliveries.c.id)
    if sent or given_up:
        log.info("purged deliveries", delivered=sent, given_up=given_up)
    return sent + given_up

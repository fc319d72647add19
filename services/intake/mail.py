"""Letters by e-mail: an SMTP listener that turns each message into a ticket (channel email).

Run behind the city's mail server, which relays the mayor's mailbox address here
(JIESU_SMTP_LISTEN_PORT, 0 = off). Each message is accepted once: a retry of the same
Message-ID answers with the ticket already created. The SMTP reply says what happened:
250 with the ticket number, 550 for a letter that cannot become a ticket (the sender's
server bounces it with the reason), 451 when intake cannot store it now (the sender's
server retries later).

Whoever gives an e-mail address (here, or on a web form) gets a receipt (受理回执) by mail
with the ticket number and where to look up progress, once per ticket: the ticket's
transaction owes it as a row of intake_acknowledgements, and `acknowledger` sends those
rows with jiesu.mailer's retrying loop. A letter's receipt answers the letter (In-Reply-To),
so that it sits in the citizen's thread. A receipt the citizen's mail server refuses for good
(a mistyped address), or that fails for too long, is given up and shown to the operators (on
their console, and in intake's record of the ticket), who send it again once the address or the
mail server is put right (`resend_receipt`, `resend_receipts`). Receipts sent or given up are
purged after the outbox's retention (`purge_acknowledgements`).

When a unit replies to a ticket from an online channel, the tracker makes a one-time link where the citizen rates the
reply (评价); a citizen who left an address is sent it the same way (`rating_invitation`, `inviter`), once per link,
and one given up is listed and sent again as a receipt is (INVITATIONS).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.smtp import SMTP
from pydantic import ValidationError
from sqlalchemy import Table, select

from jiesu import audit
from jiesu.config import Settings
from jiesu.errors import ApiError
from jiesu.logging import get_logger
from jiesu.mailer import DeliveryLoop, public_base_url, purge_done, requeue, send_mail
from jiesu.messaging import ServiceStore
from jiesu.privacy import mask_contact_in
from jiesu.runtime import Runtime
from jiesu.web import LONG_DATE, localtime
from schemas.enums import STATE_LABELS, Channel
from services.intake import files, service
from services.intake.domain import attachments as attachment_rules
from services.intake.domain import letters
from services.intake.domain.submission import MAX_DESCRIPTION, MAX_SUBJECT, TicketSubmission, show_query_code
from services.intake.store import acknowledgements, rating_invitations, tickets

log = get_logger(__name__)
LETTER_REF = "msgid:"  # a letter's source_ref: this and its Message-ID, one ticket per letter
MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # five 5 MB attachments, base64-encoded, and the text
RECENT_FAILURES = timedelta(days=7)  # mail to citizens given up this recently is listed on the operators' console


class LetterHandler:
    """aiosmtpd handler: DATA → letters.parse → service.accept."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        try:
            letter = letters.parse(raw)
        except Exception as exc:  # noqa: BLE001 - an unreadable message is the sender's problem
            log.warning("unreadable mail", error=repr(exc))
            return "550 5.6.0 Message could not be read"
        if not letter.body.strip():
            return "550 5.6.0 The letter has no text; write the matter in the body of the mail"
        if len(letter.body) > MAX_DESCRIPTION:
            return f"552 5.3.4 The letter is longer than {MAX_DESCRIPTION} characters; send it as an attachment"
        checked = []
        for name, data in letter.attachments[:attachment_rules.MAX_FILES]:
            try:
                checked.append(attachment_rules.check(name, data))
            except attachment_rules.AttachmentRejected as exc:
                log.warning("mail attachment refused", message_id=letter.message_id, reason=exc.en)
        subject = letter.subject if len(letter.subject) <= MAX_SUBJECT else letter.subject[:MAX_SUBJECT - 1] + "…"
        try:
            sub = TicketSubmission(kind=letter.kind, subject=subject, description=letter.body,
                                   citizen={"name": letter.name, "email": letter.email},
                                   source_ref=LETTER_REF + letter.message_id)
        except ValidationError as exc:
            return f"550 5.6.0 Letter refused: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"[:500]
        try:
            kept = await files.keep(self.rt.settings, checked)
            receipt = await service.accept(self.rt.store("intake"), sub, channel=Channel.EMAIL, operator=None,
                                           idempotency_key=None, tz=ZoneInfo(self.rt.settings.timezone),
                                           attachments=kept)
        except Exception as exc:  # noqa: BLE001 - database or disk trouble: the sender retries
            log.error("mail not stored", message_id=letter.message_id, error=repr(exc))
            return "451 4.3.0 Temporarily unable to accept the letter; try again later"
        log.info("letter by e-mail", number=receipt.number, retry=receipt.duplicate_request)
        return f"250 2.0.0 Accepted as ticket {receipt.number}"


def _letter_id(ticket) -> str | None:
    """The Message-ID of the letter a ticket came from, as a header value: what its receipt answers.
    None for other channels, and for a letter that had none (letters.parse made up a digest)."""
    message_id = ticket.source_ref.removeprefix(LETTER_REF)
    if ticket.channel != Channel.EMAIL.value or message_id.startswith("sha256:"):
        return None
    return f"<{message_id}>"


async def start(rt: Runtime, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    handler = LetterHandler(rt)
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, hostname="jiesu-intake", ident="jiesu intake",
                     enable_SMTPUTF8=True),
        host, port)


def listener(rt: Runtime):
    """The background job: serve until the service stops."""

    async def serve() -> None:
        server = await start(rt, rt.settings.smtp_listen_host, rt.settings.smtp_listen_port)
        log.info("smtp listener started", host=rt.settings.smtp_listen_host, port=rt.settings.smtp_listen_port)
        try:
            await asyncio.Event().wait()
        finally:
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except (TimeoutError, asyncio.CancelledError):
                pass

    return serve


# --- mail to citizens ------------------------------------------------------------------


def _to_citizen(ticket, subject: str, message_id: str, text: str) -> EmailMessage:
    """A mail in Chinese to the citizen of a ticket (its intake_tickets row), threaded under the letter if any.
    `message_id`: the same on every retry of the mail, so that a mail sent twice is seen as one."""
    answers = _letter_id(ticket)
    msg = EmailMessage()
    msg["Subject"] = f"{'Re: ' if answers else ''}{subject}"[:200]
    msg["To"] = ticket.citizen_email
    msg["Message-ID"] = f"<{message_id}@{socket.gethostname()}>"
    if answers:
        msg["In-Reply-To"] = answers
        msg["References"] = answers
    msg.set_content(f"{ticket.citizen_name or '市民朋友'}，您好：\n\n{text}\n\n本邮件由12345接诉即办系统自动发送，请勿直接回复。")
    return msg


def _progress_page(settings: Settings, ticket) -> str:
    return f"{public_base_url(settings)}/intake/progress?number={ticket.number}"


# --- receipts (受理回执) --------------------------------------------------------------


def acknowledgement(settings: Settings, ticket) -> EmailMessage:
    """The receipt for a ticket (its intake_tickets row), in Chinese, threaded under the letter if any."""
    received = localtime(ticket.received_at, LONG_DATE, ZoneInfo(settings.timezone))
    code = show_query_code(ticket.query_code)
    if ticket.citizen_phone:
        lookup = "凭工单编号和联系电话后四位查询" + ("，或凭工单编号和查询码查询" if code else "")
    elif code:
        lookup = "凭工单编号和查询码查询"
    else:  # a ticket from before query codes, without a phone number: the look-up page cannot find it
        lookup = "您未留联系电话，可拨打12345热线报工单编号查询"
    return _to_citizen(
        ticket, f"【受理回执】{ticket.number} {ticket.subject}", f"jiesu-ack-{ticket.ticket_id}",
        f"您反映的事项已受理，我们将转交承办单位办理。请记下工单编号{'和查询码' if code else ''}，查询进度时需要。\n\n"
        f"工单编号：{ticket.number}\n" + (f"查询码：{code}\n" if code else "") +
        f"诉求：{ticket.subject}\n受理时间：{received}\n\n"
        f"查询办理进度：{_progress_page(settings, ticket)}\n（{lookup}）")


def receipts(rt: Runtime) -> DeliveryLoop:
    """The loop that sends the receipts owed, each built from its ticket's row when it is sent."""
    store, settings = rt.store("intake"), rt.settings

    async def send(row) -> None:
        async with store.db.session() as s:
            ticket = (await s.execute(select(tickets).where(tickets.c.ticket_id == row.ticket_id))).one()
        await asyncio.to_thread(send_mail, settings, acknowledgement(settings, ticket))

    return DeliveryLoop(store, acknowledgements, send, what="acknowledgement",
                        give_up_after=timedelta(hours=settings.delivery_give_up_hours))


def acknowledger(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """The background job: send the receipts owed, retrying with back-off until each goes through once or is
    given up (refused for good, or failing for longer than JIESU_DELIVERY_GIVE_UP_HOURS)."""
    async def run() -> None:
        await receipts(rt).run(max(rt.settings.outbox_poll_seconds, 0.5))

    return run


# --- rating invitations (评价邀请) -----------------------------------------------------


def rating_invitation(settings: Settings, ticket, invitation) -> EmailMessage:
    """The mail that gives the citizen of a ticket the one-time link where they rate its reply (评价): the reply,
    the link (`invitation`, its intake_rating_invitations row) and the progress page, which offers it too."""
    unit = f"承办单位{ticket.department}" if ticket.department else "承办单位"
    return _to_citizen(
        ticket, f"【请评价】{ticket.number} {ticket.subject}", f"jiesu-rate-{invitation.event_id}",
        f"您反映的事项已办理，{unit}答复如下：\n\n工单编号：{ticket.number}\n诉求：{ticket.subject}\n"
        f"答复：\n{ticket.reply or ''}\n\n"
        f"请打开下面的链接，对办理结果作出评价（满意、基本满意或不满意），链接仅可使用一次：\n{invitation.link}\n\n"
        f"也可以在办理进度查询页面查看答复并评价：{_progress_page(settings, ticket)}")


def invitations(rt: Runtime) -> DeliveryLoop:
    """The loop that sends the rating invitations owed, each built from its ticket's row when it is sent. One whose
    link the ticket no longer offers (rated on the progress page meanwhile, closed by a visitor's call, reopened)
    is done with unsent: the link would only say it can no longer be used."""
    store, settings = rt.store("intake"), rt.settings

    async def send(row) -> None:
        async with store.db.session() as s:
            ticket = (await s.execute(select(tickets).where(tickets.c.ticket_id == row.ticket_id))).one()
        if service.rating(ticket)[1] != row.link:
            log.info("rating invitation no longer due", ticket_id=str(row.ticket_id), state=ticket.state)
            return
        await asyncio.to_thread(send_mail, settings, rating_invitation(settings, ticket, row))

    return DeliveryLoop(store, rating_invitations, send, what="rating invitation",
                        give_up_after=timedelta(hours=settings.delivery_give_up_hours))


def inviter(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """The background job: send the rating invitations owed, as `acknowledger` sends the receipts."""
    async def run() -> None:
        await invitations(rt).run(max(rt.settings.outbox_poll_seconds, 0.5))

    return run


async def purge_invitations(store: ServiceStore, retention: timedelta) -> int:
    """Drop rating invitations sent or given up, as `purge_acknowledgements` does receipts."""
    return sum(await purge_done(store, rating_invitations, retention))


async def purge_acknowledgements(store: ServiceStore, retention: timedelta) -> int:
    """Drop receipts sent longer ago than the retention: the ticket keeps its own record. A given-up receipt, the
    record that the citizen was never told the ticket number, is kept as long, and at least
    jiesu.mailer.GIVEN_UP_KEPT (past the console's RECENT_FAILURES)."""
    return sum(await purge_done(store, acknowledgements, retention))


# --- mail to citizens given up, which operators follow up and send again ---------------------------


def _always_needed(row) -> None:
    """A receipt is worth sending as long as it is kept: the citizen still needs the ticket number."""
    return None


@dataclass(frozen=True)
class CitizenMail:
    """A kind of mail to citizens that the operators' console lists once it is given up, to be sent again."""

    table: Table  # its rows, one a mail (store._mail_owed)
    key: str  # in the console's forms and in error codes
    zh: str  # what operators call it
    en: str
    resent: str  # the audit trail's action when one is sent again
    # Why a given-up mail (its row, with its ticket's columns: _TICKET_COLUMNS) need no longer be sent, in Chinese
    # and English; None while it is still worth sending. One that is not is neither listed nor sent again.
    no_longer_needed: Callable[[Any], tuple[str, str] | None] = _always_needed


def _invitation_no_longer_needed(row) -> tuple[str, str] | None:
    """Why the rating invitation `row` need not be sent again: its link is no longer the one the ticket offers
    (`invitations` would be done with it unsent)."""
    status, link = service.rating(row)
    if link == row.link:
        return None
    if status == "offered":
        return "工单已有新的答复和评价链接", "a later reply brought a new rating link"
    if status == "expired":
        return "评价链接已过期，改由回访员电话回访", "the rating link expired; a visitor calls the citizen instead"
    if status == "received" or row.rated_at is not None:
        return "市民已评价", "the citizen has rated the reply"
    label = STATE_LABELS.get(row.state, row.state)
    return f"工单现为“{label}”，不再等待评价", f"the ticket is now {row.state} and no longer waits for a rating"


RECEIPTS = CitizenMail(acknowledgements, "receipt", "受理回执", "receipt", "ReceiptResent")
# A given-up invitation leaves the link on the progress page (by the query code), and the visitor follows up the
# unrated; once the address or the mail server is put right it may still be sent, as long as the ticket offers its
# link: one rated, closed, reopened, expired or replied to again since is neither listed nor sent again.
INVITATIONS = CitizenMail(rating_invitations, "invitation", "评价邀请", "rating invitation", "RatingInvitationResent",
                          _invitation_no_longer_needed)
CITIZEN_MAIL = {kind.key: kind for kind in (RECEIPTS, INVITATIONS)}
# What of a ticket the console shows beside a given-up mail, and what says whether it is still needed.
_TICKET_COLUMNS = (tickets.c.number, tickets.c.subject, tickets.c.citizen_name, tickets.c.citizen_phone,
                   tickets.c.citizen_email, tickets.c.state, tickets.c.rating_link, tickets.c.rating_link_expires_at,
                   tickets.c.rated_at)


def _given_up(kind: CitizenMail):
    """The given-up mail of `kind`, each row with its ticket's _TICKET_COLUMNS."""
    return (select(kind.table, *_TICKET_COLUMNS).join(tickets, tickets.c.ticket_id == kind.table.c.ticket_id)
            .where(kind.table.c.failed_at.is_not(None)))


async def resend_receipt(store: ServiceStore, settings: Settings, number: str, kind: CitizenMail = RECEIPTS) -> None:
    """Queue the given-up receipt (or other `kind` of mail) of ticket `number` to be sent again now, to the address the
    ticket has now; refused when it was not given up, or is no longer needed (an invitation whose link the ticket no
    longer offers). A ticket has one receipt, and an invitation for each reply with a link: the latest is the one that
    counts."""
    _can_send(settings, kind)
    table = kind.table
    async with store.transaction() as tx:
        row = (await tx.session.execute(
            select(table, *_TICKET_COLUMNS).join(tickets, tickets.c.ticket_id == table.c.ticket_id)
            .where(tickets.c.number == number).order_by(table.c.id.desc()).limit(1))).first()
        if row is None:
            raise ApiError(404, f"{kind.key}_not_found", f"工单 {number} 没有待发或停止重试的{kind.zh}（可能已过保存期限）",
                           f"Ticket {number} has no {kind.en} to send (it may have been purged)")
        if row.failed_at is None:
            raise ApiError(409, f"{kind.key}_not_given_up",
                           f"工单 {number} 的{kind.zh}没有停止重试（正在发送或已送达），无需重新发送；请刷新页面查看",
                           f"The {kind.en} of ticket {number} was not given up (it is being sent or was delivered); "
                           "reload the page")
        if why := kind.no_longer_needed(row):
            raise ApiError(409, f"{kind.key}_no_longer_needed",
                           f"工单 {number} 的{kind.zh}无需重新发送：{why[0]}。",
                           f"The {kind.en} of ticket {number} need not be sent again: {why[1]}.")
        await _requeue(tx, kind, [row])


async def resend_receipts(store: ServiceStore, settings: Settings, since, kind: CitizenMail = RECEIPTS) -> int:
    """Queue again every receipt (or other `kind` of mail) given up since `since` and still needed, as the console
    lists them; how many."""
    _can_send(settings, kind)
    async with store.transaction() as tx:
        rows = (await tx.session.execute(_given_up(kind).where(kind.table.c.failed_at >= since))).all()
        return await _requeue(tx, kind, [row for row in rows if not kind.no_longer_needed(row)])


def _can_send(settings: Settings, kind: CitizenMail) -> None:
    if not settings.mail_host:  # nothing would send it: the mail loops run only with a mail server
        raise ApiError(409, "mail_not_configured",
                       f"未配置发信服务器（JIESU_MAIL_HOST），无法发送{kind.zh}；请管理员先配置",
                       "No mail server is configured (JIESU_MAIL_HOST): ask an administrator to set it first")


async def _requeue(tx, kind: CitizenMail, rows) -> int:
    """Due again now (jiesu.mailer.requeue); the audit trail says who sent it again, when, and how it stood."""
    requeued = 0
    for row in rows:
        if await requeue(tx.session, kind.table, row.id):
            requeued += 1
            tx.append(tx.tables.audit, audit.entry(kind.resent, ticket_id=row.ticket_id, details={
                "attempts": row.attempts, "failed_at": row.failed_at.isoformat()}))
    return requeued


# --- what operators see of receipts ----------------------------------------------------

RECEIPT_LABELS = {"sending": "发送中", "sent": "已发送", "failed": "发送失败，已停止重试"}


def receipt_status(ack, ticket) -> dict:
    """How a ticket's receipt stands (its intake_acknowledgements row), for operators.

    These views show no contact data, so the citizen's address and number are masked out of
    the mail server's answer, which often quotes the address it refused.
    """
    status = "sent" if ack.delivered_at else "failed" if ack.failed_at else "sending"
    return {"status": status, "status_label": RECEIPT_LABELS[status], "attempts": ack.attempts,
            "error": _masked(ack.last_error, ticket),
            "failed_at": ack.failed_at.isoformat() if ack.failed_at else None}


def _masked(text: str | None, ticket) -> str | None:
    if text and ticket.citizen_email:
        text = re.sub(re.escape(ticket.citizen_email), "***", text, flags=re.IGNORECASE)
    return mask_contact_in(text, ticket.citizen_name, ticket.citizen_phone)


async def receipt_of(session, ticket) -> dict | None:
    """The receipt of one ticket; None when none was owed (no address, no mail server) or it was sent and purged."""
    ack = (await session.execute(select(acknowledgements)
                                 .where(acknowledgements.c.ticket_id == ticket.ticket_id))).first()
    return receipt_status(ack, ticket) if ack else None


async def failed_receipts(store: ServiceStore, since, limit: int = 20, kind: CitizenMail = RECEIPTS) -> list[dict]:
    """The receipts (or other `kind` of mail) given up since `since` and still needed, newest first, with what an
    operator needs to follow up the ticket: never the citizen's address or number (the ticket's page shows them to
    whoever may see them).

    Whether one is still needed is the ticket's to say (an invitation's link), so all those given up since `since`
    are read and the first `limit` still needed kept: mail given up within days (RECENT_FAILURES) is a handful."""
    table = kind.table
    async with store.db.reading() as s:
        rows = (await s.execute(_given_up(kind).where(table.c.failed_at >= since)
                                .order_by(table.c.failed_at.desc()))).all()
    needed = [r for r in rows if not kind.no_longer_needed(r)][:limit]
    return [{"number": r.number, "subject": _masked(r.subject, r), **receipt_status(r, r)} for r in needed]

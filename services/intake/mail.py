"""Letters by e-mail: an SMTP listener that turns each message into a ticket (channel email).

Run behind the city's mail server, which relays the mayor's mailbox address here
(JIESU_SMTP_LISTEN_PORT, 0 = off). Each message is accepted once: a retry of the same
Message-ID answers with the ticket already created. The SMTP reply says what happened:
250 with the ticket number, 550 for a letter that cannot become a ticket (the sender's
server bounces it with the reason), 451 when intake cannot store it now (the sender's
server retries later).
"""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from aiosmtpd.smtp import SMTP
from pydantic import ValidationError

from jiesu.logging import get_logger
from jiesu.runtime import Runtime
from schemas.enums import Channel
from services.intake import files, service
from services.intake.domain import attachments as attachment_rules
from services.intake.domain import letters
from services.intake.domain.submission import MAX_DESCRIPTION, MAX_SUBJECT, TicketSubmission

log = get_logger(__name__)
MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # five 5 MB attachments, base64-encoded, and the text


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
                                   source_ref=f"msgid:{letter.message_id}")
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

"""A real SMTP server on a loopback port that keeps the mail it takes, for the tests that send mail.

One sink serves every such test; what a test needs the server to refuse or fail is said through the
sink's parameters (and may be changed while the test runs): a recipient refused for good, the next
messages failing for now, or any step of the conversation answered as told.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from jiesu.embedded_broker import free_port


class MailSink:
    """An aiosmtpd handler that keeps each message it takes, parsed, in `messages`.

    refused: a recipient address → the answer to its RCPT (e.g. a 550 for a mailbox that no longer exists).
    failures: how many of the next messages to answer 451 (the server failing for now) before taking them.
    answers: a step ("EHLO", "MAIL", "RCPT", "DATA", "QUIT") → the answer to every such command; RCPT's
    answer may name the recipient as {address}. An EHLO answer is given to HELO too.
    given: each answer it gave as told by `answers`, as (command, answer) in order, so that a test can see the
    client reached the step it meant to answer.
    """

    def __init__(self, *, refused: dict[str, str] | None = None, failures: int = 0,
                 answers: dict[str, str] | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.refused: dict[str, str] = dict(refused or {})
        self.failures = failures
        self.answers: dict[str, str] = dict(answers or {})
        self.given: list[tuple[str, str]] = []

    def _gave(self, command: str, answer: str) -> str:
        self.given.append((command, answer))
        return answer

    # aiosmtpd's handler hooks: each does what aiosmtpd does without it unless told otherwise.

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        if "EHLO" in self.answers:
            return [self._gave("EHLO", self.answers["EHLO"])]
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):  # noqa: N802
        if "EHLO" in self.answers:
            return self._gave("HELO", self.answers["EHLO"])
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        if "MAIL" in self.answers:
            return self._gave("MAIL", self.answers["MAIL"])
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if "RCPT" in self.answers:
            return self._gave("RCPT", self.answers["RCPT"].format(address=address))
        if address in self.refused:
            return self.refused[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if "DATA" in self.answers:
            return self._gave("DATA", self.answers["DATA"])
        if self.failures:
            self.failures -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        if "QUIT" in self.answers:
            return self._gave("QUIT", self.answers["QUIT"])
        return "221 Bye"


@contextlib.contextmanager
def mail_server(sink: MailSink | None = None, *, smtputf8: bool = True) -> Iterator[tuple[MailSink, int]]:
    """`sink` (a new one if none) listening on a free loopback port until the block ends: yields it and the port.

    smtputf8=False is a server that does not take addresses in Chinese characters (no SMTPUTF8).
    """
    sink = sink if sink is not None else MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()

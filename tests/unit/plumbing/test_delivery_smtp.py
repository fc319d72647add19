"""send_mail tells a refusal for good from a failure for now, through a real SMTP conversation.

A 5xx answer to the sender, the recipient or the message is permanent (PermanentFailure): the
loop gives the row up at once. A 4xx answer, no server and a broken connection are worth
another try (DeliveryError). The reason is in Chinese, keeps the server's own answer, and
never quotes the recipient's address, which the pages may not show.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from jiesu.config import Settings
from jiesu.embedded_broker import free_port
from jiesu.mailer import DeliveryError, PermanentFailure, send_mail
from tests.smtp_sink import mail_server

ADDRESS = "Li.Na@Example.cn"


@pytest.fixture
def server():
    """A mail server that answers each step (`answers`) as a test tells it, and the settings that send to it."""
    with mail_server() as (sink, port):
        yield sink, Settings(mail_host="127.0.0.1", mail_port=port, mail_from="12345@city.example", _env_file=None)


def receipt() -> EmailMessage:
    msg = EmailMessage()
    msg["To"] = ADDRESS
    msg["Subject"] = "【受理回执】12345-20261125-000001 路灯不亮"
    msg.set_content("您反映的事项已受理。")
    return msg


@pytest.mark.parametrize(("step", "answer", "says"), [
    ("RCPT", "550 5.1.1 <{address}>: Recipient address rejected: User unknown",
     "收件地址被邮件服务器拒收：550 5.1.1 <收件地址>: Recipient address rejected: User unknown"),
    ("MAIL", "553 5.7.1 Sender address rejected: not owned by user",
     "发件地址被邮件服务器拒收：553 5.7.1 Sender address rejected: not owned by user"),
    ("DATA", "554 5.7.1 Message rejected as spam", "邮件被邮件服务器拒收：554 5.7.1 Message rejected as spam"),
])
def test_a_5xx_answer_is_a_refusal_for_good_that_does_not_quote_the_address(server, step, answer, says):
    sink, settings = server
    sink.answers[step] = answer
    with pytest.raises(PermanentFailure) as refused:
        send_mail(settings, receipt())
    assert str(refused.value) == says and sink.given == [(step, answer.format(address=ADDRESS))]


@pytest.mark.parametrize(("step", "answer"), [
    ("RCPT", "450 4.2.0 <{address}>: Recipient address rejected: Greylisted, try again"),
    ("MAIL", "451 4.3.0 Sender verification in progress"),
    ("DATA", "452 4.3.1 Insufficient system storage"),
])
def test_a_4xx_answer_is_a_failure_for_now(server, step, answer):
    sink, settings = server
    sink.answers[step] = answer
    with pytest.raises(DeliveryError) as deferred:
        send_mail(settings, receipt())
    assert not isinstance(deferred.value, PermanentFailure)
    assert answer[:3] in str(deferred.value) and ADDRESS.lower() not in str(deferred.value).lower()
    assert sink.given == [(step, answer.format(address=ADDRESS))]


def test_a_mail_server_that_refuses_this_system_is_a_failure_for_now(server):
    """5xx to EHLO and HELO says nothing about the message: every message would be refused alike until the
    server is put right, and they should go out then."""
    sink, settings = server
    sink.answers["EHLO"] = answer = "554 5.7.1 Client host rejected: not in the relay list"
    with pytest.raises(DeliveryError) as refused:
        send_mail(settings, receipt())
    assert not isinstance(refused.value, PermanentFailure) and "554" in str(refused.value)
    assert sink.given == [("EHLO", answer), ("HELO", answer)]


def test_an_address_in_chinese_characters_to_a_server_without_smtputf8_is_refused_for_good():
    msg = receipt()
    msg.replace_header("To", "李娜@例子.中国")
    with mail_server(smtputf8=False) as (_, port), pytest.raises(PermanentFailure) as refused:
        send_mail(Settings(mail_host="127.0.0.1", mail_port=port, _env_file=None), msg)
    assert "不支持中文等非英文字符的邮箱地址" in str(refused.value) and "李娜" not in str(refused.value)


def test_no_mail_server_is_a_failure_for_now():
    settings = Settings(mail_host="127.0.0.1", mail_port=free_port(), _env_file=None)  # nobody listens there
    with pytest.raises(DeliveryError) as unreachable:
        send_mail(settings, receipt())
    assert not isinstance(unreachable.value, PermanentFailure)
    assert "无法连接邮件服务器" in str(unreachable.value)


def test_a_refused_goodbye_after_the_message_was_taken_is_no_failure(server):
    """smtplib's context manager raises on a QUIT answered 5xx: the message, already taken, would be
    recorded as refused for good (or sent again)."""
    sink, settings = server
    sink.answers["QUIT"] = "554 5.0.0 Bye yourself"
    send_mail(settings, receipt())
    assert len(sink.messages) == 1 and sink.given == [("QUIT", "554 5.0.0 Bye yourself")]

"""Letters by e-mail: real mail sent with smtplib to intake's SMTP listener becomes a ticket, once."""

import asyncio
import hashlib
import smtplib
from email.header import Header
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import httpx
import pytest

from jiesu.config import Settings
from jiesu.embedded_broker import free_port
from schemas.enums import Role

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF"


@pytest.fixture
def sqlite_settings(tmp_path):
    """The live system with the SMTP listener on (JIESU_SMTP_LISTEN_PORT)."""
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    smtp_listen_port=free_port(), _env_file=None)


async def send(live, msg) -> tuple[int, str]:
    """Send with smtplib (in a thread: the listener runs on this event loop) and return the DATA reply."""
    def deliver():
        with smtplib.SMTP(live.settings.smtp_listen_host, live.settings.smtp_listen_port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("sender@example.cn")
            smtp.rcpt("mayor@jiangcheng.gov.cn")
            return smtp.data(msg.as_bytes())
    for _ in range(100):  # the listener starts with the service
        try:
            code, reply = await asyncio.to_thread(deliver)
            return code, reply.decode()
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
    raise AssertionError("SMTP listener not running")


async def tracker_ticket(live, number):
    token = await live.user("sup", Role.SUPERVISOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(300):
            r = await client.get(f"/api/v1/tracker/tickets/{number}")
            if r.status_code == 200:
                return r.json()
            await asyncio.sleep(0.05)
    raise AssertionError(f"{number} never reached the tracker")


def number_of(reply: str) -> str:
    return reply.rsplit(" ", 1)[-1]


async def test_a_plain_utf8_letter_becomes_a_ticket_and_a_resend_does_not_make_another(live):
    m = EmailMessage()
    m["From"] = "张伟 <zhangwei@example.cn>"
    m["To"] = "mayor@jiangcheng.gov.cn"
    m["Subject"] = "投诉：解放路工地夜间施工"
    m["Message-ID"] = "<letter-0001@example.cn>"
    m.set_content("市长您好：\n解放路18号工地每晚施工到凌晨，严重扰民。")
    code, reply = await send(live, m)
    assert code == 250 and "Accepted as ticket 12345-" in reply
    t = await tracker_ticket(live, number_of(reply))
    assert t["channel"] == "email" and t["subject"] == "投诉：解放路工地夜间施工"
    assert t["description"] == "市长您好：\n解放路18号工地每晚施工到凌晨，严重扰民。"
    code, again = await send(live, m)
    assert code == 250 and number_of(again) == number_of(reply)


async def test_an_html_letter_is_read_as_text(live):
    m = MIMEText("<html><body><p>公园的<b>健身器材</b>坏了</p><p>请尽快维修</p></body></html>", "html", "utf-8")
    m["Subject"] = Header("公园健身器材损坏", "utf-8")
    m["From"] = "citizen@example.cn"
    code, reply = await send(live, m)
    assert code == 250
    assert (await tracker_ticket(live, number_of(reply)))["description"] == "公园的健身器材坏了\n\n请尽快维修"


async def test_a_gb18030_letter_keeps_its_chinese(live):
    m = MIMEText("镕基路路灯不亮已经一周", "plain", "gb18030")
    m["Subject"] = Header("咨询路灯维修进度", "gb18030")
    m["From"] = "reader@example.cn"
    code, reply = await send(live, m)
    assert code == 250
    t = await tracker_ticket(live, number_of(reply))
    assert (t["subject"], t["description"], t["kind"]) == ("咨询路灯维修进度", "镕基路路灯不亮已经一周", "consultation")


async def test_a_multipart_letter_keeps_its_attachment_with_a_checksum(live):
    m = MIMEMultipart()
    m["Subject"] = Header("举报违法建设", "utf-8")
    m["From"] = "whistle@example.cn"
    m["Message-ID"] = "<with-pdf@example.cn>"
    m.attach(MIMEText("幸福里小区楼顶私搭乱建，见附件照片说明。", "plain", "utf-8"))
    part = MIMEApplication(PDF, Name="说明.pdf")
    part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "说明.pdf"))
    m.attach(part)
    evil = MIMEApplication(b"MZ\x90\x00", Name="setup.exe")
    evil.add_header("Content-Disposition", "attachment", filename="setup.exe")
    m.attach(evil)
    code, reply = await send(live, m)
    assert code == 250
    number = number_of(reply)
    await tracker_ticket(live, number)
    op = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {op}"}) as client:
        mine = (await client.get(f"/api/v1/intake/tickets/{number}")).json()
    assert mine["kind"] == "report"
    assert mine["attachments"] == [{"filename": "说明.pdf", "content_type": "application/pdf", "size": len(PDF),
                                    "sha256": hashlib.sha256(PDF).hexdigest()}]  # the .exe was not kept


async def test_an_empty_letter_is_bounced_with_a_reason(live):
    m = EmailMessage()
    m["Subject"] = "空信"
    m.set_content("   ")
    code, reply = await send(live, m)
    assert code == 550 and "no text" in reply

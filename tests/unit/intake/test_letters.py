"""E-mail letters: plain, HTML, multipart with attachments, UTF-8 and GB18030, read into one letter."""

import base64
from email import encoders
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from schemas.enums import Kind
from services.intake.domain.letters import NO_SUBJECT, html_to_text, parse


def test_plain_utf8_letter_with_sender_and_message_id():
    m = EmailMessage()
    m["From"] = "张伟 <zhangwei@example.cn>"
    m["Subject"] = "关于解放路夜间施工的投诉"
    m["Message-ID"] = "<abc123@example.cn>"
    m.set_content("市长您好：\n解放路18号工地每晚施工到凌晨。")
    letter = parse(m.as_bytes())
    assert letter.subject == "关于解放路夜间施工的投诉"
    assert letter.body == "市长您好：\n解放路18号工地每晚施工到凌晨。"
    assert (letter.name, letter.email, letter.message_id) == ("张伟", "zhangwei@example.cn", "abc123@example.cn")
    assert letter.kind == Kind.COMPLAINT


def test_gb2312_declared_letter_holding_gbk_characters_is_read_as_gb18030():
    text = "镕基路的路灯坏了"  # 镕 is in GBK, not in GB2312
    m = MIMEText("", "plain", "gb2312")
    m.set_payload(text.encode("gb18030"))
    encoders.encode_base64(m)
    m["Subject"] = "=?gb18030?b?" + base64.b64encode("咨询路灯维修".encode("gb18030")).decode() + "?="
    letter = parse(m.as_bytes())
    assert letter.body == text
    assert letter.subject == "咨询路灯维修"
    assert letter.kind == Kind.CONSULTATION


def test_html_only_letter_becomes_readable_text_without_markup_or_scripts():
    m = MIMEText("<html><head><style>p{}</style></head><body><p>第一段&amp;说明</p><script>alert(1)</script>"
                 "<div>第二段</div></body></html>", "html", "utf-8")
    letter = parse(m.as_bytes())
    assert letter.body == "第一段&说明\n\n第二段"
    assert "<" not in letter.body and "alert" not in letter.body


def test_multipart_prefers_plain_text_and_collects_attachments():
    m = MIMEMultipart("mixed")
    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText("纯文本正文", "plain", "utf-8"))
    alt.attach(MIMEText("<p>HTML 正文</p>", "html", "utf-8"))
    m.attach(alt)
    from email.mime.application import MIMEApplication

    part = MIMEApplication(b"%PDF-1.7 test", Name="材料.pdf")
    part["Content-Disposition"] = 'attachment; filename="材料.pdf"'
    m.attach(part)
    letter = parse(m.as_bytes())
    assert letter.body == "纯文本正文"
    assert letter.attachments == [("材料.pdf", b"%PDF-1.7 test")]


def test_a_letter_without_subject_or_message_id_gets_a_placeholder_and_a_stable_digest():
    raw = b"From: a@example.cn\r\n\r\nhello"
    first, second = parse(raw), parse(raw)
    assert first.subject == NO_SUBJECT
    assert first.message_id == second.message_id and first.message_id.startswith("sha256:")


def test_information_requests_are_recognised_by_the_subject():
    m = EmailMessage()
    m["Subject"] = "政府信息公开申请：2025年道路维修预算"
    m.set_content("申请公开……")
    assert parse(m.as_bytes()).kind == Kind.INFORMATION_REQUEST


def test_html_to_text_keeps_line_structure():
    assert html_to_text("a<br>b<p>c</p>") == "a\nb\nc"

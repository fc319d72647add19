"""Letters that arrive by e-mail (市长信箱), read into what intake needs.

Chinese mail comes as plain text or HTML, often multipart, in UTF-8 or in GB2312/GBK/
GB18030 (declared as any of them, and GB2312-declared mail often holds GBK characters:
every GB charset is read as GB18030, its superset).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from html.parser import HTMLParser

from schemas.enums import Kind

_GB = {"gb2312", "gbk", "gb18030", "x-gbk", "euc-cn", "cp936", "hz-gb-2312"}
NO_SUBJECT = "（无主题）"


@dataclass
class Letter:
    message_id: str  # the mail's own reference; a digest of the bytes when it has none
    subject: str
    body: str
    name: str
    email: str
    attachments: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def kind(self) -> Kind:
        """What the letter asks for, as far as the subject says; otherwise a complaint (5 working days)."""
        text = self.subject
        if "信息公开" in text:
            return Kind.INFORMATION_REQUEST
        for word, kind in (("咨询", Kind.CONSULTATION), ("建议", Kind.SUGGESTION), ("表扬", Kind.PRAISE),
                           ("感谢", Kind.PRAISE), ("举报", Kind.REPORT), ("求助", Kind.HELP)):
            if word in text:
                return kind
        return Kind.COMPLAINT


class _Text(HTMLParser):
    """HTML to readable text: block elements become line breaks, scripts and styles vanish."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode(part: EmailMessage) -> str:
    raw = part.get_payload(decode=True) or b""
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset in _GB:
        charset = "gb18030"
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        for fallback in ("utf-8", "gb18030"):
            try:
                return raw.decode(fallback)
            except UnicodeDecodeError:
                continue
        return raw.decode("utf-8", errors="replace")


def _header(msg: EmailMessage, name: str) -> str:
    try:
        value = msg.get(name)
        return str(value).strip() if value is not None else ""
    except (ValueError, IndexError):  # a malformed header: keep what can be read
        raw = msg.get_all(name, failobj=[""])[0] if hasattr(msg, "get_all") else ""
        return str(raw).strip()


def parse(data: bytes) -> Letter:
    msg: EmailMessage = message_from_bytes(data, policy=policy.default)  # type: ignore[assignment]
    plain: list[str] = []
    html: list[str] = []
    attachments: list[tuple[str, bytes]] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if filename or disposition == "attachment":
            attachments.append((filename or "附件", part.get_payload(decode=True) or b""))
        elif part.get_content_type() == "text/plain":
            plain.append(_decode(part))
        elif part.get_content_type() == "text/html":
            html.append(_decode(part))
    body = "\n\n".join(p.strip("\r\n") for p in plain if p.strip()) or \
        "\n\n".join(html_to_text(h) for h in html if h.strip())
    subject = re.sub(r"\s+", " ", _header(msg, "Subject")).strip() or NO_SUBJECT
    addresses = getaddresses([_header(msg, "Reply-To") or _header(msg, "From")])
    name, email = addresses[0] if addresses else ("", "")
    message_id = _header(msg, "Message-ID").strip("<> ") or "sha256:" + hashlib.sha256(data).hexdigest()
    return Letter(message_id=message_id[:180], subject=subject, body=body.replace("\r\n", "\n"),
                  name=name.strip()[:100], email=email.strip()[:254], attachments=attachments)

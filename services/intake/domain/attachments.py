"""Which attachments a letter may carry, decided from the bytes, never from what the sender claims.

Files are kept for the departments to read, never served as web pages or run: the
allow-list is of document and image types only, each checked against its signature.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILES = 5
MAX_TOTAL_BYTES = MAX_FILES * MAX_FILE_BYTES

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# extension → (content type, accepted leading bytes; None = text, checked separately)
ALLOWED: dict[str, tuple[str, tuple[bytes, ...] | None]] = {
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".gif": ("image/gif", (b"GIF87a", b"GIF89a")),
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".doc": ("application/msword", (_OLE,)),
    ".xls": ("application/vnd.ms-excel", (_OLE,)),
    ".docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (_ZIP,)),
    ".xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (_ZIP,)),
    ".ofd": ("application/ofd", (_ZIP,)),
    ".txt": ("text/plain", None),
}
ALLOWED_LABEL = "jpg、png、gif、pdf、doc、docx、xls、xlsx、ofd、txt"


class AttachmentRejected(ValueError):
    def __init__(self, filename: str, zh: str, en: str) -> None:
        super().__init__(f"{filename}: {en}")
        self.filename = filename
        self.zh = zh
        self.en = en


@dataclass(frozen=True)
class CheckedFile:
    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes


def safe_filename(name: str) -> str:
    """The sender's file name without any path, control characters or surprises, at most 255 bytes."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f<>:\"|?*]", "_", name).strip(" .") or "附件"
    while len(name.encode()) > 255:
        stem, ext = os.path.splitext(name)
        name = stem[:-1] + ext
    return name


def _looks_like_text(data: bytes) -> bool:
    if b"\x00" in data[:4096]:
        return False
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<script", b"<svg", b"<?xml")):
        return False  # markup in disguise: never kept as "text"
    for encoding in ("utf-8", "gb18030"):
        try:
            data.decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    return False


def check(filename: str, data: bytes) -> CheckedFile:
    name = safe_filename(filename)
    ext = os.path.splitext(name)[1].lower()
    if ext not in ALLOWED:
        raise AttachmentRejected(name, f"附件“{name}”的类型不允许，只接受 {ALLOWED_LABEL}",
                                 f"Attachment '{name}': file type not allowed (allowed: {ALLOWED_LABEL})")
    if not data:
        raise AttachmentRejected(name, f"附件“{name}”是空文件", f"Attachment '{name}' is empty")
    if len(data) > MAX_FILE_BYTES:
        raise AttachmentRejected(name, f"附件“{name}”超过 {MAX_FILE_BYTES // 1024 // 1024} MB",
                                 f"Attachment '{name}' is larger than {MAX_FILE_BYTES // 1024 // 1024} MB")
    content_type, signatures = ALLOWED[ext]
    ok = _looks_like_text(data) if signatures is None else data.startswith(signatures)
    if not ok:
        raise AttachmentRejected(name, f"附件“{name}”的内容与扩展名不符",
                                 f"Attachment '{name}': the content does not match its extension")
    return CheckedFile(name, content_type, len(data), hashlib.sha256(data).hexdigest(), data)


def check_all(files: list[tuple[str, bytes]]) -> list[CheckedFile]:
    if len(files) > MAX_FILES:
        raise AttachmentRejected("", f"附件最多 {MAX_FILES} 个", f"At most {MAX_FILES} attachments")
    return [check(name, data) for name, data in files]

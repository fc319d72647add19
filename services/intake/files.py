"""Where attachments are kept: content-addressed files outside the web root.

`<attachments_dir>/<sha256[:2]>/<sha256>`, no extension, never executable, never served by
the web server: a department opens them through the ticket, not through a URL guess.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jiesu.config import Settings
from schemas.events import Attachment
from services.intake.domain.attachments import CheckedFile


def attachments_dir(settings: Settings) -> Path:
    return Path(settings.attachments_dir or settings.data_dir / "attachments").resolve()


def _write(root: Path, f: CheckedFile) -> None:
    folder = root / f.sha256[:2]
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    target = folder / f.sha256
    if target.exists():
        return  # the same bytes are already kept
    tmp = folder / f".{f.sha256}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "wb") as out:
        out.write(f.data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)


async def keep(settings: Settings, files: list[CheckedFile]) -> list[Attachment]:
    """Store the files (before the ticket is written: a failure leaves only harmless orphans)."""
    root = attachments_dir(settings)
    for f in files:
        await asyncio.to_thread(_write, root, f)
    return [Attachment(filename=f.filename, content_type=f.content_type, size=f.size, sha256=f.sha256)
            for f in files]


def path_of(settings: Settings, sha256: str) -> Path:
    return attachments_dir(settings) / sha256[:2] / sha256

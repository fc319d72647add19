"""Hiding citizens' contact details: a known name or number, and any phone number in free text.

Logs, notifications, exports and the views of roles that may not see a citizen's contact all
mask through here. One pattern finds phone numbers in text:

- mainland mobiles (1[3-9]x, 11 digits), also written 138 0013 8000 or 138-0013-8000, with
  an optional +86 / 0086 / 86 prefix;
- landlines with an area code: 010-12345678, 0755 1234 5678, (021)12345678, +86 10 12345678,
  with an optional extension (-123, 转123, ext 123);
- a local number without area code (62345678) only right after a word that says it is a
  phone number (电话, 座机, 手机, tel …): a bare 7–8 digit figure is as often an amount or a date.

A number glued to letters or digits, or joined by a hyphen to hex digits, is left alone, so
ticket numbers (12345-20261122-000123), UUIDs, ISO dates and timestamps, 12345 itself and
amounts survive.
"""

from __future__ import annotations

import functools
import re

_AREA = r"(?:10|2\d|[3-9]\d{2})"  # area code without its leading 0: 10 Beijing, 2x, then 3xx–9xx
_SEP = r"[- ]?"

PHONE = re.compile(
    rf"""
    (?<![0-9A-Za-z])(?<![0-9A-Fa-f]-)      # not inside a word, a longer number or a hex code (UUID)
    (?:
        (?P<label>(?:电话|座机|固话|手机|(?i:tel|phone))[\s:：是为]{{0,3}})
        (?P<local>[2-9]\d{{2,3}}{_SEP}\d{{4}})
    |
        (?:(?:\+|00)86{_SEP}|86)?
        (?P<mobile>1[3-9]\d(?:{_SEP}\d{{4}}){{2}})
    |
        (?P<landline>
            (?:(?:\+|00)86{_SEP}(?:{_AREA}|\({_AREA}\))|\(0{_AREA}\)|（0{_AREA}）|0{_AREA})
            {_SEP}\d{{3,4}}{_SEP}\d{{4}}
        )
        (?:(?:-|转|\s?(?:ext\.?|x)\s?)\d{{1,5}})?   # extension
    )
    (?![0-9A-Za-z])(?!-[0-9A-Fa-f])
    """,
    re.VERBOSE,
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _masked(match: re.Match) -> str:
    if match.group("local"):
        return match.group("label") + "****" + _digits(match.group("local"))[-4:]
    if match.group("mobile"):
        digits = _digits(match.group("mobile"))
    else:
        digits = _digits(re.sub(r"^(?:\+|00)86", "", match.group("landline")))
        digits = digits if digits.startswith("0") else "0" + digits  # +86 10 … is 010 …
    return digits[:3] + "****" + digits[-4:]


@functools.lru_cache(maxsize=1024)
def _known_number(phone: str) -> re.Pattern:
    """One known number in free text as written, its digits spaced by any spaces, dashes or brackets (138 0013-8000,
    (010)12345678 for 01012345678), and not inside a longer run of digits."""
    if len(_digits(phone)) < 5:  # too short to tell from any other figure: only as it was kept
        return re.compile(re.escape(phone))
    spaced = r"[\s\-\u2010-\u2015\u2212\uff0d()（）]*".join(re.escape(ch) for ch in phone)
    return re.compile(rf"(?<!\d){spaced}(?!\d)")


def mask_phones(text: str) -> str:
    """Every phone number in `text` shown as its first three and last four digits: 138****8000, 010****5678."""
    return PHONE.sub(_masked, text)


def redact_phones(text: str) -> str:
    """Every phone number in `text` replaced by *** (for what leaves the system: e-mail, webhooks)."""
    return PHONE.sub(lambda m: (m.group("label") or "") + "***", text)


def mask_phone(phone: str | None) -> str:
    """One known number, masked: 138****8000 for a mobile, only the last four digits of a shorter number."""
    if not phone:
        return ""
    if len(phone) >= 11:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * (len(phone) - 4) + phone[-4:] if len(phone) > 4 else "*" * len(phone)


def mask_name(name: str | None) -> str:
    """张** for 张三丰: the family name stays, so that staff can still say 张先生 / 张女士."""
    return (name[0] + "*" * (len(name) - 1)) if name else ""


def mask_contact_in(text: str | None, name: str | None, phone: str | None) -> str | None:
    """Free text (subject, description, notes) as a reader who may not see the citizen's contact reads it:
    the citizen's name and number, and any other phone number, masked."""
    if not text:
        return text
    text = mask_phones(text)
    if phone:  # however unusually it was written down, spaced or not (the number is kept as its digits)
        text = _known_number(phone).sub(mask_phone(phone), text)
    if name and len(name) > 1:  # a one-character "name" would mask that character everywhere
        text = text.replace(name, mask_name(name))
    return text

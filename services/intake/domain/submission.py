"""What a channel submits, validated once for every channel, and turned into TicketReceived."""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.enums import Channel, Kind, Urgency
from jiesu.text import plain_dashes, plain_phone
from schemas.events import Attachment, Citizen, Location, TicketReceived

# A phone number as stored: its digits, and a leading + for an international number.
PHONE = re.compile(r"^\+?[0-9]{5,31}$")
MAX_SUBJECT = 200
MAX_DESCRIPTION = 100_000  # the request size limit (256 kB) is what usually binds
NUMBER_PATTERN = r"^12345-\d{8}-\d{6}$"
def plain(text: str) -> str:
    """What a citizen typed or pasted into a look-up, as it is stored: full-width digits and letters made plain
    (NFKC), every run of dashes (－, —, ‐, a Chinese keyboard's ——) one hyphen, and no spaces at all."""
    return re.sub(r"-+", "-", re.sub(r"\s+", "", plain_dashes(text)))


def read_number(text: str) -> str | None:
    """A ticket number as a citizen typed it, or None if it cannot be one: its own three groups (12345, the day, the
    sequence) with any run of dashes and spaces between them (12345 20261125 000003, 12345——20261125——000003), or its
    19 digits alone (1234520261125000003). Digits split anywhere else (1234-520261125-000003) are not a number."""
    groups = re.split(r"[-\s]+", plain_dashes(text).strip())
    if len(groups) == 1 and len(groups[0]) == 19:
        digits = groups[0]
        groups = [digits[:5], digits[5:13], digits[13:]]
    number = "-".join(groups)
    return number if re.match(NUMBER_PATTERN, number, re.ASCII) else None


# 查询码: eight characters a citizen gets with the ticket number, so that whoever gave no phone number
# (many letters give only an e-mail address) can still look up the progress. No 0/O or 1/I to misread;
# 32 symbols, 40 bits: with intake's ten failed look-ups a number a day, guessing one takes 10^11 days.
QUERY_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
QUERY_CODE_LENGTH = 8


def new_query_code() -> str:
    return "".join(secrets.choice(QUERY_CODE_ALPHABET) for _ in range(QUERY_CODE_LENGTH))


def show_query_code(code: str | None) -> str:
    """As printed for people: two groups of four (ABCD-EFGH)."""
    return f"{code[:4]}-{code[4:]}" if code else ""


def read_query_code(text: str) -> str | None:
    """What a citizen typed, as stored: plain, upper case, without the hyphen; None if it cannot be one."""
    code = plain(text).replace("-", "").upper()
    if len(code) != QUERY_CODE_LENGTH or any(ch not in QUERY_CODE_ALPHABET for ch in code):
        return None
    return code


class CitizenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=100, description="姓名 (may be empty: anonymous)")
    phone: str = Field(default="", max_length=32, description="联系电话")
    email: str = Field(default="", max_length=254)
    confidential: bool = Field(default=False, description="保密: departments see a masked contact")

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        phone = plain_phone(v)
        if v.strip() and not PHONE.match(phone):
            raise PydanticCustomError("phone_format", "phone number may contain digits (spaced by spaces, '-' or "
                                                      "brackets) and a leading '+' only, at least 5 digits")
        return phone


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    district: str | None = Field(default=None, max_length=32, description="district code from the directory")
    street: str | None = Field(default=None, max_length=32, description="street/town code from the directory")
    address: str = Field(default="", max_length=500)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    latitude: float | None = Field(default=None, ge=-90, le=90)


# A required text left empty: the error's English and Chinese (jiesu.errors reads the Chinese from its context).
REQUIRED = {"subject": ("Please enter the subject", "请填写标题"),
            "description": ("Please enter the description", "请填写诉求内容"),
            "answer": ("Please enter the answer given on the call", "请填写通话中给出的答复")}


class TicketSubmission(BaseModel):
    """A new request as any channel hands it to intake."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind = Field(description="咨询 consultation / 求助 help / 投诉 complaint / 举报 report / 建议 suggestion / "
                                   "表扬 praise / 信息公开申请 information_request")
    urgency: Urgency = Urgency.NORMAL
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT)
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION)
    citizen: CitizenIn = CitizenIn()
    location: LocationIn = LocationIn()
    category: str | None = Field(default=None, max_length=64, description="category code, if the operator chose one")
    suggested_unit: str | None = Field(default=None, max_length=32,
                                       description="unit code the operator chose over the router's suggestion")
    source_ref: str | None = Field(default=None, max_length=200,
                                   description="the channel's own reference (call id, Message-ID…): retries with the "
                                               "same reference return the same ticket")
    answer: str | None = Field(default=None, max_length=MAX_DESCRIPTION,
                               description="直接办结: the answer given on the call; the ticket is closed at once")
    duplicate_of_number: str | None = Field(default=None, pattern=NUMBER_PATTERN,
                                            description="重复件: the open ticket this request repeats")
    may_publish: bool = Field(default=False, description="the writer agrees that the letter and reply may be "
                                                         "published (mailbox, online messages)")

    @field_validator("subject", "description", "answer", mode="before")
    @classmethod
    def _required(cls, v, info: ValidationInfo):
        # Empty or only spaces is a field left unfilled (必填), not text too short; before the length check,
        # which would say "too short". Text is otherwise stored exactly as given.
        if isinstance(v, str) and not v.strip():
            en, zh = REQUIRED[info.field_name]
            raise PydanticCustomError("missing", en, {"zh": zh})
        return v

    # A field that cannot go with one before it (fields are validated in order: `info.data` has the earlier ones) is
    # refused by its own name, its Chinese in the error's context as REQUIRED's, so the form marks that field.

    @field_validator("answer")
    @classmethod
    def _not_urgent(cls, v: str | None, info: ValidationInfo) -> str | None:
        # 紧急 is dispatched at once to a unit that must call the citizen; answered on the call it never would be.
        if v is not None and info.data.get("urgency") == Urgency.URGENT:
            raise PydanticCustomError(
                "urgent_answered_directly",
                "An urgent matter must be dispatched to a unit, not answered directly: untick 直接办结",
                {"zh": "紧急事项须派单办理，不能直接办结：请取消“直接办结”"})
        return v

    @field_validator("duplicate_of_number")
    @classmethod
    def _answer_or_duplicate(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("answer") is not None:
            raise PydanticCustomError(
                "answered_and_duplicate",
                "A call answered directly (直接办结) cannot also be attached to another ticket: untick 直接办结, "
                "or do not attach it",
                {"zh": "直接办结的来电不能同时并入其他工单：请取消“直接办结”，或不并入"})
        return v


def format_number(day: date, sequence: int) -> str:
    """工单编号: 12345-YYYYMMDD-NNNNNN, the sequence restarting each local day."""
    if not 1 <= sequence <= 999_999:
        raise ValueError("ticket sequence out of range for one day")
    return f"12345-{day:%Y%m%d}-{sequence:06d}"


def to_event(sub: TicketSubmission, *, number: str, channel: Channel, received_at: datetime, operator: str | None,
             source_ref: str, attachments: list[Attachment] | None = None,
             duplicate_of: UUID | None = None) -> TicketReceived:
    return TicketReceived(
        number=number,
        channel=channel,
        kind=sub.kind,
        urgency=sub.urgency,
        subject=sub.subject,
        description=sub.description,
        citizen=Citizen(**sub.citizen.model_dump()),
        location=Location(**sub.location.model_dump()),
        category=sub.category,
        suggested_unit=sub.suggested_unit,
        attachments=attachments or [],
        received_at=received_at,
        operator=operator,
        source_ref=source_ref,
        answer=sub.answer,
        duplicate_of=duplicate_of,
        duplicate_of_number=sub.duplicate_of_number if duplicate_of else None,
    )


class Receipt(BaseModel):
    """What intake answers: the number to read back to the caller."""

    ticket_id: UUID
    number: str
    query_code: str | None = Field(default=None, description="查询码: with the number, looks up the progress "
                                   "without a phone number (tickets from before it existed have none)")
    received_at: datetime
    duplicate_request: bool = Field(description="true when this was a retry of an earlier submission")

"""The contract between services: the event envelope and every event payload.

Every message on a topic is one `Envelope` serialised as JSON. `payload` is validated
against the model registered for (`event_type`, `schema_version`). Adding an optional
field to a payload is compatible; anything else is a new version, registered beside the
old one so consumers accept both while producers move over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.enums import Channel, Kind, TicketState, Urgency

__all__ = [
    "Envelope",
    "EventPayload",
    "UnknownEvent",
    "PAYLOADS",
    "new_event_id",
    "utcnow",
]


def new_event_id() -> UUID:
    """A UUIDv7: unique, and sortable by creation time."""
    return UUID(str(uuid_utils.uuid7()))


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class EventPayload(_Model):
    """Base of every payload; subclasses set `event_type` and `schema_version`."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


PAYLOADS: dict[tuple[str, int], type[EventPayload]] = {}


def _register(cls: type[EventPayload]) -> type[EventPayload]:
    PAYLOADS[(cls.event_type, cls.schema_version)] = cls
    return cls


class UnknownEvent(ValueError):
    """An envelope whose type or version no model is registered for."""


class Envelope(_Model):
    event_id: UUID
    event_type: str = Field(min_length=1, max_length=64)
    schema_version: int = Field(ge=1)
    occurred_at: datetime
    ticket_id: UUID
    producer: str = Field(min_length=1, max_length=64)
    trace_id: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone (UTC)")
        return v.astimezone(UTC)

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        ticket_id: UUID,
        producer: str,
        trace_id: str | None = None,
        event_id: UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        event_id = event_id or new_event_id()
        return cls(
            event_id=event_id,
            event_type=payload.event_type,
            schema_version=payload.schema_version,
            occurred_at=occurred_at or utcnow(),
            ticket_id=ticket_id,
            producer=producer,
            trace_id=trace_id or event_id.hex,
            payload=payload.model_dump(mode="json"),
        )

    def parsed(self) -> EventPayload:
        """The payload as its registered model; raises UnknownEvent or ValidationError."""
        model = PAYLOADS.get((self.event_type, self.schema_version))
        if model is None:
            raise UnknownEvent(f"no payload model for {self.event_type} v{self.schema_version}")
        return model.model_validate(self.payload)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return cls.model_validate_json(data)


# --- shared value objects -------------------------------------------------------------


class Citizen(_Model):
    name: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=32)
    email: str = Field(default="", max_length=254)
    confidential: bool = False  # 保密: departments see a masked contact


class Location(_Model):
    district: str | None = Field(default=None, max_length=32)  # directory code
    street: str | None = Field(default=None, max_length=32)  # directory code
    address: str = Field(default="", max_length=500)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    latitude: float | None = Field(default=None, ge=-90, le=90)


class Attachment(_Model):
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=127)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class UnitRef(_Model):
    code: str = Field(max_length=32)
    name: str = Field(max_length=100)


class RoutingReason(_Model):
    """Why a ticket went where it went: explainable routing."""

    method: Literal["rule", "model", "operator", "dispatcher", "directory", "reroute"]
    rule_id: str | None = None
    model_version: str | None = None
    score: float | None = None
    category: str | None = None
    top_features: list[str] = Field(default_factory=list)
    note: str = Field(default="", max_length=500)
    by: str | None = Field(default=None, max_length=64)  # the user who decided, for method "dispatcher"


class Suggestion(_Model):
    unit: UnitRef
    category: str | None = None
    score: float
    reason: str = Field(default="", max_length=500)


# --- payloads ------------------------------------------------------------------------


@_register
class TicketReceived(EventPayload):
    event_type: ClassVar[str] = "TicketReceived"
    number: str = Field(pattern=r"^12345-\d{8}-\d{6}$")  # 工单编号
    channel: Channel
    kind: Kind
    urgency: Urgency = Urgency.NORMAL
    subject: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=100_000)
    citizen: Citizen
    location: Location = Location()
    category: str | None = Field(default=None, max_length=64)  # chosen by the operator, if any
    suggested_unit: str | None = Field(default=None, max_length=32)  # operator's override
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    received_at: datetime
    operator: str | None = Field(default=None, max_length=64)
    source_ref: str = Field(min_length=1, max_length=200)  # idempotency key
    # 直接办结: the operator answered on the call; the ticket is closed at once and never dispatched.
    answer: str | None = Field(default=None, max_length=20000)
    # 重复件: the operator attached this call to an open ticket of the same citizen and matter.
    duplicate_of: UUID | None = None
    duplicate_of_number: str | None = Field(default=None, max_length=21)


@_register
class TicketAssigned(EventPayload):
    event_type: ClassVar[str] = "TicketAssigned"
    number: str
    kind: Kind
    urgency: Urgency = Urgency.NORMAL
    lead: UnitRef  # 主办
    co_handlers: list[UnitRef] = Field(default_factory=list)  # 协办
    category: str | None = None
    reason: RoutingReason
    attempt: int = Field(default=1, ge=1)  # 1 = first dispatch, 2+ = after returns
    # The directory's names of this ticket's category, district and street codes, for the services that keep
    # codes but not the directory (the tracker's bulletins and charts). Events from before it carry none.
    names: dict[str, str] = Field(default_factory=dict)
    # The district routing placed the ticket in: the citizen's, else the one the street lies in when the citizen
    # named only a street, so the tracker counts it there and not under 未注明. Events from before it carry none.
    district: str | None = Field(default=None, max_length=32)


@_register
class DispatchNeeded(EventPayload):
    event_type: ClassVar[str] = "DispatchNeeded"
    number: str
    attempt: int = Field(default=1, ge=1)
    suggestions: list[Suggestion] = Field(default_factory=list, max_length=10)
    why: str = Field(max_length=500)
    # As TicketAssigned.names: a ticket waiting for a dispatcher is counted too (the bulletin's 按区域 says 江城区,
    # not D-01). Events from before it carry none.
    names: dict[str, str] = Field(default_factory=dict)


@_register
class TicketTracked(EventPayload):
    """The tracker holds the assignment: end-to-end acknowledgement for reconciliation."""

    event_type: ClassVar[str] = "TicketTracked"
    number: str
    state: TicketState
    lead: UnitRef | None = None
    reply_due: datetime | None = None
    merged_into: UUID | None = None  # 重复件: the ticket this one was merged into (state merged)


@_register
class TicketAccepted(EventPayload):
    """签收: the department signed for the ticket."""

    event_type: ClassVar[str] = "TicketAccepted"
    unit: UnitRef
    by: str


@_register
class TicketReturned(EventPayload):
    """退单: the department sends the ticket back as not its responsibility."""

    event_type: ClassVar[str] = "TicketReturned"
    number: str
    unit: UnitRef
    reason_code: str = Field(max_length=32)
    reason: str = Field(min_length=1, max_length=2000)
    by: str
    returns_so_far: int = Field(ge=1)
    subject: str = ""
    description: str = ""


@_register
class ExtensionRequested(EventPayload):
    event_type: ClassVar[str] = "ExtensionRequested"
    unit: UnitRef
    reason: str = Field(min_length=1, max_length=2000)
    requested_due: datetime
    by: str


@_register
class ExtensionDecided(EventPayload):
    event_type: ClassVar[str] = "ExtensionDecided"
    approved: bool
    new_due: datetime | None = None
    note: str = ""
    by: str


@_register
class TicketReplied(EventPayload):
    """答复: the department reports what it did."""

    event_type: ClassVar[str] = "TicketReplied"
    unit: UnitRef
    reply: str = Field(min_length=1, max_length=20000)
    by: str


@_register
class DeadlineWarning(EventPayload):
    event_type: ClassVar[str] = "DeadlineWarning"
    clock: Literal["sign_for", "contact", "reply"]
    due_at: datetime
    unit: UnitRef | None = None


@_register
class DeadlineMissed(EventPayload):
    event_type: ClassVar[str] = "DeadlineMissed"
    clock: Literal["sign_for", "contact", "reply"]
    due_at: datetime
    unit: UnitRef | None = None


@_register
class SupervisionOrdered(EventPayload):
    """督办单: formal escalation by the supervision office."""

    event_type: ClassVar[str] = "SupervisionOrdered"
    order_no: str
    level: Literal["normal", "key"]  # 一般 / 重点
    unit: UnitRef | None = None
    due_at: datetime
    reason: str
    by: str


@_register
class ReturnVisitDue(EventPayload):
    event_type: ClassVar[str] = "ReturnVisitDue"
    due_at: datetime
    method: Literal["phone", "link"]
    # For method "link": the one-time page where the citizen rates the reply (send it to them), and when it stops
    # working (None from trackers before this field: offer it until the ticket is rated, closed or reopened).
    link: str | None = None
    link_expires_at: datetime | None = None


# ReturnVisitRecorded.by when the citizen rated the reply through the one-time link (no user is named so).
RATED_BY_CITIZEN = "citizen"


@_register
class ReturnVisitRecorded(EventPayload):
    """回访 recorded: `by` is the visitor's user name, or RATED_BY_CITIZEN when the citizen rated through the link."""

    event_type: ClassVar[str] = "ReturnVisitRecorded"
    outcome: Literal["satisfied", "basically_satisfied", "dissatisfied", "unreachable"]
    department_caused: bool | None = None
    comment: str = Field(default="", max_length=2000)
    by: str


@_register
class TicketReopened(EventPayload):
    event_type: ClassVar[str] = "TicketReopened"
    unit: UnitRef
    reason: str
    reply_due: datetime


@_register
class TicketClosed(EventPayload):
    event_type: ClassVar[str] = "TicketClosed"
    outcome: Literal[
        "satisfied", "basically_satisfied", "dissatisfied", "unreachable", "answered_directly", "merged"
    ]


@_register
class TicketMerged(EventPayload):
    """重复件: this ticket follows an earlier open ticket of the same citizen and matter."""

    event_type: ClassVar[str] = "TicketMerged"
    number: str
    into_ticket_id: UUID
    into_number: str
    similarity: float = Field(ge=0, le=1)


@_register
class ReconcileRequested(EventPayload):
    """Ask every producer to re-emit what it has already emitted for a ticket.

    Sent when a ticket is stuck (accepted by intake but not tracked after a while):
    the broker may have lost a message. Re-emitted events keep their event_id, so
    idempotent consumers apply each at most once.
    """

    event_type: ClassVar[str] = "ReconcileRequested"
    number: str
    stuck_since: datetime
    requested_by: str


@_register
class CitizenContacted(EventPayload):
    """联系市民: the department recorded talking to the citizen."""

    event_type: ClassVar[str] = "CitizenContacted"
    unit: UnitRef
    note: str = Field(default="", max_length=2000)
    by: str


@_register
class ClockPaused(EventPayload):
    """The reply clock stopped: waiting on the citizen (补充材料) or deferred (挂账)."""

    event_type: ClassVar[str] = "ClockPaused"
    reason: Literal["waiting_citizen", "deferred"]
    note: str = Field(default="", max_length=2000)
    expected_until: datetime | None = None
    by: str


@_register
class ClockResumed(EventPayload):
    event_type: ClassVar[str] = "ClockResumed"
    reply_due: datetime
    by: str


@_register
class CoHandlerNoted(EventPayload):
    """协办意见: a co-handling unit's contribution, for the lead unit to use in its reply."""

    event_type: ClassVar[str] = "CoHandlerNoted"
    unit: UnitRef
    note: str = Field(min_length=1, max_length=4000)
    by: str


# The envelope's `ticket_id` (so the Kafka key) of every DirectoryPublished: one key keeps the versions in order.
DIRECTORY_ID = uuid5(NAMESPACE_URL, "jiesu:directory")


# As the directory has them: no limits of their own, so that any directory the router accepts can be published.
class PublicStreet(_Model):
    code: str
    name: str


class PublicDistrict(_Model):
    code: str
    name: str
    streets: list[PublicStreet] = Field(default_factory=list)


class PublicCategory(_Model):
    code: str
    name: str
    parent: str | None = None


@_register
class DirectoryPublished(EventPayload):
    """The public part of the department directory in force (部门目录): districts and their streets, and the
    category taxonomy, for the services that check or show codes but do not own the directory (intake's
    validation and its Open311 service list). The router sends it whenever another version comes into force,
    and again at start; `activated_at` orders versions (a consumer keeps the latest it has seen)."""

    event_type: ClassVar[str] = "DirectoryPublished"
    version: str = Field(min_length=1, max_length=64)  # the directory's own version label (router_directory_versions)
    version_id: int = Field(ge=1)  # the router's number for the version (router_directory_versions.id)
    activated_at: datetime  # when the version came into force
    city: str = ""
    districts: list[PublicDistrict] = Field(default_factory=list)
    categories: list[PublicCategory] = Field(default_factory=list)


def parse(data: bytes) -> tuple[Envelope, EventPayload]:
    """Decode a message; raises ValidationError or UnknownEvent for poison."""
    envelope = Envelope.from_bytes(data)
    return envelope, envelope.parsed()


__all__ += [name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, BaseModel)]
__all__ += ["parse", "ValidationError", "DIRECTORY_ID"]

"""SLA deadlines (办理时限) of a ticket: sign-for, contact, reply and the 80 % warning.

Pure functions over a `SlaPolicy` (what the rules are, loadable from config) and a
`WorkingCalendar` (which time counts). Deadlines are recomputed from their inputs —
receipt time, approved extensions, pauses — rather than patched, so extending a paused
ticket or pausing an extended one gives the same answer in any order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from services.tracker.domain.calendar import UTC, WorkingCalendar, require_aware

# Plain strings equal to the values of the enums in schemas/enums.py, so this module
# does not depend on the schemas package (a StrEnum member works wherever these do).
KINDS: tuple[str, ...] = (
    "consultation",  # 咨询
    "help",  # 求助
    "complaint",  # 投诉
    "report",  # 举报
    "suggestion",  # 建议
    "praise",  # 表扬
    "information_request",  # 政府信息公开申请
)
URGENCIES: tuple[str, ...] = ("normal", "urgent")


class SlaPolicyError(ValueError):
    """The SLA configuration is wrong; the message says where, in Chinese and English."""


# Why a matter whose rule allows no extension at all is refused one (by default: urgent matters and 重办).
NONE_ALLOWED = ("该事项不能延期。", "This matter cannot be extended.")


class ExtensionNotAllowed(ValueError):
    """An extension (延期) the rules do not allow; `zh` and `en` say why, for the person who asked."""

    def __init__(self, zh: str, en: str) -> None:
        self.zh = zh
        self.en = en
        super().__init__(f"{zh} / {en}")


class Unit(StrEnum):
    CLOCK_HOURS = "clock_hours"  # wall time: urgent matters do not wait for Monday
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


@dataclass(frozen=True)
class Duration:
    amount: float
    unit: Unit

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, (int, float)):
            raise SlaPolicyError(f"时限必须是数字 / A time limit must be a number, got {self.amount!r}")
        if self.amount <= 0:
            raise SlaPolicyError(f"时限必须大于 0 / A time limit must be positive, got {self.amount!r}")
        if self.unit is Unit.WORKING_DAYS and int(self.amount) != self.amount:
            raise SlaPolicyError(
                f"工作日数必须是整数 / Working days must be a whole number, got {self.amount!r}"
            )

    @property
    def uses_calendar(self) -> bool:
        return self.unit is not Unit.CLOCK_HOURS

    def after(self, calendar: WorkingCalendar, start: dt.datetime) -> dt.datetime:
        """The instant this much time after `start`, counted in this duration's unit."""
        if self.unit is Unit.WORKING_DAYS:
            return calendar.add_working_days(start, int(self.amount))
        if self.unit is Unit.WORKING_HOURS:
            return calendar.add_working_hours(start, self.amount)
        require_aware(start, "start")
        return start.astimezone(UTC) + dt.timedelta(hours=self.amount)


def clock_hours(amount: float) -> Duration:
    return Duration(amount, Unit.CLOCK_HOURS)


def working_hours(amount: float) -> Duration:
    return Duration(amount, Unit.WORKING_HOURS)


def working_days(amount: int) -> Duration:
    return Duration(amount, Unit.WORKING_DAYS)


@dataclass(frozen=True)
class SlaRule:
    """The clocks for one (kind, urgency).

    Extensions (延期) need approval and are counted in working days: at most
    `max_extensions` of them, each at most `max_extension_working_days`, and the reply
    time including them at most `max_total_working_days` (None: no such limit).
    """

    reply: Duration
    sign_for: Duration = working_hours(2)  # 签收
    contact: Duration | None = None  # first contact with the citizen, urgent matters only
    max_extensions: int = 0
    max_extension_working_days: int | None = None
    max_total_working_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_extensions", "max_extension_working_days", "max_total_working_days"):
            value = getattr(self, name)
            if value is None and name != "max_extensions":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SlaPolicyError(
                    f"{name} 必须是非负整数 / {name} must be a whole number ≥ 0, got {value!r}"
                )
        if self.max_extensions and self.reply.unit is not Unit.WORKING_DAYS:
            raise SlaPolicyError(
                "只有按工作日计的答复时限可以延期 / "
                "Only a reply time counted in working days can be extended."
            )
        total = self.max_total_working_days
        if total is not None and self.reply.unit is Unit.WORKING_DAYS and total < self.reply.amount:
            raise SlaPolicyError(
                "max_total_working_days 不能小于答复时限 / "
                "max_total_working_days must not be less than the reply time."
            )


def _default_rules() -> dict[tuple[str, str], SlaRule]:
    # "Complex matters — up to 15 working days after an approved extension": read as
    # 15 working days in all from receipt, so one extension of up to 10 on a 5-day matter.
    complex_matter = {"max_extensions": 1, "max_total_working_days": 15}
    normal = {
        "consultation": SlaRule(reply=working_days(1), **complex_matter),
        "suggestion": SlaRule(reply=working_days(1), **complex_matter),
        "help": SlaRule(reply=working_days(5), **complex_matter),
        "complaint": SlaRule(reply=working_days(5), **complex_matter),
        "report": SlaRule(reply=working_days(5), **complex_matter),
        # Praise needs no urgent action, but the department still has to pass the
        # commendation on to the person praised and tell the citizen it did; that is
        # ordinary department work, so it gets the ordinary 5 working days.
        "praise": SlaRule(reply=working_days(5), **complex_matter),
        # Statutory (政府信息公开条例 art. 33): 20 working days, extendable once by at most 20.
        "information_request": SlaRule(
            reply=working_days(20), max_extensions=1, max_extension_working_days=20
        ),
    }
    # Urgent (safety, water, power, gas, heating): wall-clock hours, any kind. Sign-for
    # uses the same 2 hours on the clock, since a night call cannot wait for office hours.
    urgent = SlaRule(reply=clock_hours(24), sign_for=clock_hours(2), contact=clock_hours(2))
    rules = {(kind, "normal"): rule for kind, rule in normal.items()}
    rules.update({(kind, "urgent"): urgent for kind in KINDS})
    return rules


@dataclass(frozen=True)
class SlaPolicy:
    """SLA rules per (kind, urgency), the warning ratio and the reopen (重办) time."""

    rules: Mapping[tuple[str, str], SlaRule]
    warn_ratio: float = 0.8
    reopen: Duration = working_days(3)

    def __post_init__(self) -> None:
        missing = [(k, u) for k in KINDS for u in URGENCIES if (k, u) not in self.rules]
        if missing:
            raise SlaPolicyError(f"缺少时限规则 / Missing SLA rules for {missing}")
        if isinstance(self.warn_ratio, bool) or not 0 < self.warn_ratio <= 1:
            raise SlaPolicyError(
                f"warn_ratio 必须在 0 到 1 之间 / warn_ratio must be in (0, 1], got {self.warn_ratio!r}"
            )
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))

    @classmethod
    def default(cls) -> SlaPolicy:
        """Beijing and Shanghai practice as described in DESIGN.md "Deadlines"."""
        return cls(rules=_default_rules())

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object] | None) -> SlaPolicy:
        """Build a policy from config, on top of the defaults.

        Shape (every key optional; only what differs from the default needs writing)::

            warn_ratio: 0.8
            reopen: {working_days: 3}
            rules:
              complaint:
                normal: {reply: {working_days: 7}, max_total_working_days: 20}
                urgent: {contact: {clock_hours: 1}}

        Durations are a mapping with one key: clock_hours, working_hours or working_days.
        """
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            raise SlaPolicyError("时限配置必须是映射 / The SLA configuration must be a mapping.")
        _reject_unknown(raw, {"warn_ratio", "reopen", "rules"}, "SLA configuration")
        default = cls.default()
        rules = dict(default.rules)
        rules_raw = raw.get("rules") or {}
        if not isinstance(rules_raw, Mapping):
            raise SlaPolicyError("rules 必须是映射 / 'rules' must be a mapping of kinds.")
        for kind, per_urgency in rules_raw.items():
            if kind not in KINDS:
                raise SlaPolicyError(
                    f"未知的诉求类型“{kind}”，可选：{', '.join(KINDS)} / "
                    f"Unknown kind '{kind}'; use one of {', '.join(KINDS)}."
                )
            if not isinstance(per_urgency, Mapping):
                raise SlaPolicyError(f"rules.{kind} 必须是映射 / rules.{kind} must be a mapping.")
            for urgency, fields in per_urgency.items():
                if urgency not in URGENCIES:
                    raise SlaPolicyError(
                        f"未知的紧急程度“{urgency}”，可选：{', '.join(URGENCIES)} / "
                        f"Unknown urgency '{urgency}'; use one of {', '.join(URGENCIES)}."
                    )
                where = f"rules.{kind}.{urgency}"
                rules[(kind, urgency)] = _parse_rule(rules[(kind, urgency)], fields, where)
        warn_ratio = raw.get("warn_ratio", default.warn_ratio)
        if not isinstance(warn_ratio, (int, float)):
            raise SlaPolicyError(f"warn_ratio 必须是数字 / warn_ratio must be a number, got {warn_ratio!r}")
        reopen = default.reopen
        if "reopen" in raw:
            reopen = _parse_duration(raw["reopen"], "reopen")
        return cls(rules=rules, warn_ratio=float(warn_ratio), reopen=reopen)

    def rule_for(self, kind: str, urgency: str) -> SlaRule:
        try:
            return self.rules[(kind, urgency)]
        except KeyError:
            raise SlaPolicyError(
                f"没有“{kind}/{urgency}”的时限规则 / No SLA rule for kind '{kind}', urgency '{urgency}'."
            ) from None


def _reject_unknown(raw: Mapping[str, object], allowed: set[str], where: str) -> None:
    unknown = sorted(map(str, set(raw) - allowed))
    if unknown:
        raise SlaPolicyError(
            f"{where} 中有未知字段：{', '.join(unknown)} / Unknown fields in {where}: "
            f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
        )


def _parse_duration(raw: object, where: str) -> Duration:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SlaPolicyError(
            f"{where} 应写成一个键的映射，如 {{working_days: 5}} / "
            f"{where} must be a one-key mapping such as {{working_days: 5}}."
        )
    ((unit, amount),) = raw.items()
    try:
        unit = Unit(unit)
    except ValueError:
        raise SlaPolicyError(
            f"{where} 的单位“{unit}”无效，可选：{', '.join(Unit)} / "
            f"Unknown unit '{unit}' in {where}; use one of {', '.join(Unit)}."
        ) from None
    return Duration(amount, unit)  # type: ignore[arg-type]  # validated in __post_init__


def _parse_rule(base: SlaRule, raw: object, where: str) -> SlaRule:
    if not isinstance(raw, Mapping):
        raise SlaPolicyError(f"{where} 必须是映射 / {where} must be a mapping.")
    names = {f.name for f in dataclasses.fields(SlaRule)}
    _reject_unknown(raw, names, where)
    changes: dict[str, object] = {}
    for name, value in raw.items():
        if name in ("reply", "sign_for"):
            changes[name] = _parse_duration(value, f"{where}.{name}")
        elif name == "contact":
            changes[name] = None if value is None else _parse_duration(value, f"{where}.{name}")
        else:
            changes[name] = value
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pause:
    """A stretch while the clock is stopped, waiting on the citizen (补充材料)."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        require_aware(self.start, "pause start")
        require_aware(self.end, "pause end")
        if self.end <= self.start:
            raise ValueError(f"a pause must end after it starts: {self.start} → {self.end}")
        # UTC, so that wall-time arithmetic on them is exact.
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))


@dataclass(frozen=True)
class Deadlines:
    """When each clock of one ticket runs out (all UTC).

    `calendar_unconfirmed` is True when any working-time deadline crossed a year whose
    official schedule was not known: the dashboard must show it as provisional.
    """

    received_at: dt.datetime
    kind: str
    urgency: str
    sign_for_due: dt.datetime
    contact_due: dt.datetime | None
    reply_due: dt.datetime
    warn_at: dt.datetime
    calendar_unconfirmed: bool
    reopened: bool = False
    extensions: tuple[int, ...] = ()
    pauses: tuple[Pause, ...] = field(default=())


def shift_for_pauses(
    calendar: WorkingCalendar,
    start: dt.datetime,
    due: dt.datetime,
    pauses: Iterable[Pause],
    *,
    clock_time: bool = False,
) -> dt.datetime:
    """The due instant after the clock was stopped during `pauses`.

    At the start of each pause the time left until `due` is measured (working time, or
    wall time with `clock_time`), and the same amount is counted again from the resume
    instant. A pause that starts after the due instant restores nothing: the ticket was
    already overdue. Overlapping pauses count once; time before `start` is ignored.
    """
    require_aware(start, "start")
    require_aware(due, "due")
    current = due.astimezone(UTC)
    stopped_until = start.astimezone(UTC)
    for pause in sorted(pauses, key=lambda p: p.start):
        begin = max(pause.start, stopped_until)
        if pause.end <= begin:
            continue
        stopped_until = pause.end
        if begin >= current:
            continue
        if clock_time:
            current = pause.end.astimezone(UTC) + (current - begin)
        else:
            left = calendar.working_seconds_between(begin, current)
            if left > 0:
                current = calendar.add_working_seconds(pause.end, left)
    return current


def compute_deadlines(
    policy: SlaPolicy,
    calendar: WorkingCalendar,
    received_at: dt.datetime,
    kind: str,
    urgency: str,
    *,
    extensions: Sequence[int] = (),
    pauses: Sequence[Pause] = (),
    reopened: bool = False,
) -> Deadlines:
    """All deadlines of a ticket received (or, with `reopened`, reopened) at `received_at`.

    The warning falls when `policy.warn_ratio` of the reply time is used, measured in the
    reply's own unit: working time for working-day rules, so a weekend does not eat into
    the warning. Pauses shift the reply and the warning; sign-for and contact happen
    before anyone waits on the citizen, so they do not move.
    """
    require_aware(received_at, "received_at")
    received_at = received_at.astimezone(UTC)
    rule = _rule(policy, kind, urgency, reopened)
    _check_extensions(rule, tuple(extensions))

    reply = rule.reply
    if extensions:
        reply = working_days(int(reply.amount) + sum(extensions))
    base_reply_due = reply.after(calendar, received_at)
    clock_time = not reply.uses_calendar
    if clock_time:
        base_warn_at = received_at + (base_reply_due - received_at) * policy.warn_ratio
    else:
        used = calendar.working_seconds_between(received_at, base_reply_due) * policy.warn_ratio
        base_warn_at = calendar.add_working_seconds(received_at, used)

    sign_for_due = rule.sign_for.after(calendar, received_at)
    contact_due = rule.contact.after(calendar, received_at) if rule.contact else None
    reply_due = shift_for_pauses(calendar, received_at, base_reply_due, pauses, clock_time=clock_time)
    warn_at = shift_for_pauses(calendar, received_at, base_warn_at, pauses, clock_time=clock_time)

    calendar_dues = [sign_for_due] if rule.sign_for.uses_calendar else []
    if rule.contact is not None and rule.contact.uses_calendar and contact_due is not None:
        calendar_dues.append(contact_due)
    if reply.uses_calendar:
        calendar_dues += [reply_due, warn_at]
    return Deadlines(
        received_at=received_at,
        kind=kind,
        urgency=urgency,
        sign_for_due=sign_for_due,
        contact_due=contact_due,
        reply_due=reply_due,
        warn_at=warn_at,
        calendar_unconfirmed=any(calendar.spans_unconfirmed(received_at, d) for d in calendar_dues),
        reopened=reopened,
        extensions=tuple(extensions),
        pauses=tuple(pauses),
    )


def _rule(policy: SlaPolicy, kind: str, urgency: str, reopened: bool) -> SlaRule:
    rule = policy.rule_for(kind, urgency)
    if reopened:
        # 重办: back to the same department with the reopen time; no contact clock, no extension.
        rule = SlaRule(reply=policy.reopen, sign_for=rule.sign_for)
    return rule


def extension_refusal(
    policy: SlaPolicy, kind: str, urgency: str, *, reopened: bool = False, extensions: Sequence[int] = ()
) -> ExtensionNotAllowed | None:
    """Why the rules refuse any further extension (延期) of such a ticket, whatever it asks for, or None while one
    of a working day would still be allowed: urgent matters and 重办 take none by default, and a matter whose
    extensions are used up takes no more. The refusal is the one `extend` would raise."""
    try:
        _check_extensions(_rule(policy, kind, urgency, reopened), (*extensions, 1))
    except ExtensionNotAllowed as refusal:
        return refusal
    return None


def _check_extensions(rule: SlaRule, extensions: tuple[int, ...]) -> None:
    if not extensions:
        return
    if len(extensions) > rule.max_extensions:
        if rule.max_extensions == 0:
            raise ExtensionNotAllowed(*NONE_ALLOWED)
        raise ExtensionNotAllowed(
            f"该事项最多延期 {rule.max_extensions} 次，已用完。",
            f"This matter can be extended at most {rule.max_extensions} time(s); none is left.",
        )
    for days in extensions:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ExtensionNotAllowed(
                f"延期天数必须是正整数，收到 {days!r}。",
                f"An extension must be a positive whole number of working days, got {days!r}.",
            )
        limit = rule.max_extension_working_days
        if limit is not None and days > limit:
            raise ExtensionNotAllowed(
                f"每次延期最多 {limit} 个工作日，申请了 {days} 个。",
                f"An extension is at most {limit} working days; {days} were requested.",
            )
    total = rule.max_total_working_days
    if total is not None and rule.reply.amount + sum(extensions) > total:
        raise ExtensionNotAllowed(
            f"延期后总时限不能超过 {total} 个工作日。",
            f"With extensions the reply time may not exceed {total} working days.",
        )


def extend(
    policy: SlaPolicy, calendar: WorkingCalendar, deadlines: Deadlines, approved_working_days: int
) -> Deadlines:
    """Deadlines after an approved extension (延期) of `approved_working_days`.

    Raises ExtensionNotAllowed when the rule forbids it, e.g. a second extension of an
    information request, or more than 20 working days for one.
    """
    return compute_deadlines(
        policy,
        calendar,
        deadlines.received_at,
        deadlines.kind,
        deadlines.urgency,
        extensions=(*deadlines.extensions, approved_working_days),
        pauses=deadlines.pauses,
        reopened=deadlines.reopened,
    )


def add_pause(
    policy: SlaPolicy,
    calendar: WorkingCalendar,
    deadlines: Deadlines,
    start: dt.datetime,
    end: dt.datetime,
) -> Deadlines:
    """Deadlines after the clock stood still from `start` until the citizen answered at `end`."""
    return compute_deadlines(
        policy,
        calendar,
        deadlines.received_at,
        deadlines.kind,
        deadlines.urgency,
        extensions=deadlines.extensions,
        pauses=(*deadlines.pauses, Pause(start, end)),
        reopened=deadlines.reopened,
    )


def reopen_deadlines(
    policy: SlaPolicy,
    calendar: WorkingCalendar,
    reopened_at: dt.datetime,
    kind: str,
    urgency: str,
) -> Deadlines:
    """Deadlines of a ticket reopened (重办) after a dissatisfied return visit.

    The department gets `policy.reopen` (3 working days by default) counted like any
    working-day deadline from the reopen instant: that day does not count.
    """
    return compute_deadlines(policy, calendar, reopened_at, kind, urgency, reopened=True)

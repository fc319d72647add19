"""The ticket lifecycle as a pure state machine (no I/O).

A department or the hotline acts on a ticket; the action is allowed only from certain
states. `next_state` answers the new state, or refuses with a message a person can act
on. The two tables below are the whole lifecycle: read them to know what can happen when.
"""

from __future__ import annotations

from enum import StrEnum

from schemas.enums import STATE_LABELS, TicketState as S


class Action(StrEnum):
    RECEIVE = "receive"  # 受理
    NEED_DISPATCH = "need_dispatch"  # 待人工派单
    ASSIGN = "assign"  # 派单 / 改派
    SIGN_FOR = "sign_for"  # 签收
    CONTACT = "contact"  # 联系市民
    WAIT_CITIZEN = "wait_citizen"  # 待补充材料 (clock pauses)
    RESUME = "resume"  # 材料已补充 (clock resumes)
    REQUEST_EXTENSION = "request_extension"  # 延期申请
    DECIDE_EXTENSION = "decide_extension"  # 延期审批
    DEFER = "defer"  # 挂账
    RETURN = "return"  # 退单
    REPLY = "reply"  # 答复
    VISIT_CLOSE = "visit_close"  # 回访: satisfied / basically satisfied / unreachable
    REOPEN = "reopen"  # 重办
    MERGE = "merge"  # 重复件合并
    ANSWER_DIRECTLY = "answer_directly"  # 直接办结


ACTION_LABELS = {
    Action.RECEIVE: "受理", Action.NEED_DISPATCH: "转人工派单", Action.ASSIGN: "派单", Action.SIGN_FOR: "签收",
    Action.CONTACT: "联系市民", Action.WAIT_CITIZEN: "待补充材料", Action.RESUME: "恢复办理",
    Action.REQUEST_EXTENSION: "申请延期", Action.DECIDE_EXTENSION: "延期审批", Action.DEFER: "挂账",
    Action.RETURN: "退单", Action.REPLY: "答复", Action.VISIT_CLOSE: "回访办结", Action.REOPEN: "重办",
    Action.MERGE: "合并重复件", Action.ANSWER_DIRECTLY: "直接办结",
}

_WORKING = (S.SIGNED_FOR, S.CONTACTED, S.REOPENED)  # the department holds it and is working on it

# Done while set aside, without ending that: the call to the citizen while an extension request (延期申请) waits for
# the office, since no clock stops for a request and an urgent matter's call is still owed (timers.awaiting_contact).
# The ticket stays 延期申请, so the office can still decide; the working state the decision takes it back to moves on
# as the action moves a working ticket (asked from 已签收, it goes back to 已联系): the caller keeps that in resume_to.
KEEPS_SET_ASIDE: frozenset[tuple[S, Action]] = frozenset({(S.EXTENSION_REQUESTED, Action.CONTACT)})

TRANSITIONS: dict[tuple[S, Action], S] = {
    (S.RECEIVED, Action.NEED_DISPATCH): S.DISPATCHING,
    (S.RECEIVED, Action.ASSIGN): S.ASSIGNED,
    (S.RECEIVED, Action.MERGE): S.MERGED,
    (S.RECEIVED, Action.ANSWER_DIRECTLY): S.ANSWERED_DIRECTLY,
    (S.DISPATCHING, Action.ASSIGN): S.ASSIGNED,
    (S.DISPATCHING, Action.MERGE): S.MERGED,
    (S.RETURNED, Action.ASSIGN): S.ASSIGNED,
    (S.RETURNED, Action.NEED_DISPATCH): S.DISPATCHING,
    (S.ASSIGNED, Action.SIGN_FOR): S.SIGNED_FOR,
    (S.ASSIGNED, Action.RETURN): S.RETURNED,
    (S.ASSIGNED, Action.ASSIGN): S.ASSIGNED,  # re-dispatch before sign-for (dispatcher correction)
    (S.ASSIGNED, Action.MERGE): S.MERGED,
    (S.SIGNED_FOR, Action.RETURN): S.RETURNED,
    (S.REOPENED, Action.SIGN_FOR): S.SIGNED_FOR,
    **{(s, Action.CONTACT): S.CONTACTED for s in _WORKING},
    **{(s, Action.WAIT_CITIZEN): S.WAITING_CITIZEN for s in _WORKING},
    # Whether the rules allow an extension at all is the SLA policy's (urgent matters and 重办 take none, a 重办
    # signed for again too), asked by the action and the page alike: actions.extension_refused.
    **{(s, Action.REQUEST_EXTENSION): S.EXTENSION_REQUESTED for s in _WORKING},
    **{(s, a): s for s, a in KEEPS_SET_ASIDE},
    **{(s, Action.DEFER): S.DEFERRED for s in _WORKING},
    **{(s, Action.REPLY): S.REPLIED for s in (*_WORKING, S.DEFERRED)},
    (S.REPLIED, Action.VISIT_CLOSE): S.CLOSED,
    (S.REPLIED, Action.REOPEN): S.REOPENED,
}

# Set aside and taken up again: waiting on the citizen (待补充材料), an extension request (延期申请) and 挂账 end
# in the working state the ticket was set aside from (one of _WORKING): signed for, contacted or 重办 as it was.
# The ticket keeps that state (tickets.resume_to) and `next_state` is told it.
BACK_TO_WORK: tuple[tuple[S, Action], ...] = (
    (S.WAITING_CITIZEN, Action.RESUME),
    (S.EXTENSION_REQUESTED, Action.DECIDE_EXTENSION),
    (S.DEFERRED, Action.RESUME),
)

TERMINAL = frozenset({S.CLOSED, S.MERGED, S.ANSWERED_DIRECTLY})
OPEN = frozenset(set(S) - TERMINAL)
# Received and not yet with a unit: just received, waiting for a dispatcher (待派单), returned awaiting re-dispatch.
# The one definition: `escalation.released`, `stats.AWAITING_DISPATCH` and `stats.NOT_THE_UNITS` are made from it.
AWAITING_DISPATCH = frozenset({S.RECEIVED, S.DISPATCHING, S.RETURNED})


class TransitionRefused(ValueError):
    def __init__(self, state: S, action: Action) -> None:
        self.state = state
        self.action = action
        self.zh = f"工单当前状态为“{STATE_LABELS[state]}”，不能执行“{ACTION_LABELS[action]}”"
        self.en = f"A ticket in state '{state.value}' cannot take the action '{action.value}'"
        super().__init__(self.en)


def next_state(state: S, action: Action, *, resume_to: S | None = None) -> S:
    """The state `action` takes a ticket in `state` to. An action in BACK_TO_WORK takes it back to `resume_to`, the
    working state it was set aside from, which the caller must give; every other action ignores `resume_to`."""
    if (state, action) in BACK_TO_WORK:
        if resume_to not in _WORKING:
            raise ValueError(f"'{action.value}' from '{state.value}' goes back to a working state, not {resume_to!r}")
        return resume_to
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise TransitionRefused(state, action) from None


def set_aside_from(resume_to: str | None, contacted: bool) -> S:
    """The working state a ticket set aside (待补充材料, 延期申请, 挂账) goes back to: the one it was set aside from,
    `resume_to` as the ticket keeps it. A ticket set aside before the tracker kept that (tracker_0015) goes back to
    已联系 once the citizen was `contacted`, else to 已签收, where its contact clock (urgent matters) still runs."""
    if resume_to:
        return S(resume_to)
    return S.CONTACTED if contacted else S.SIGNED_FOR


def allowed_actions(state: S) -> list[Action]:
    return [a for (s, a) in (*TRANSITIONS, *BACK_TO_WORK) if s == state]


# Who may take each action. Events from the router and intake act as "system"; a citizen
# rating an online reply acts as "citizen". Admin may do everything.
SYSTEM, CITIZEN = "system", "citizen"
ACTORS: dict[Action, frozenset[str]] = {
    Action.RECEIVE: frozenset({SYSTEM}),
    Action.NEED_DISPATCH: frozenset({SYSTEM}),
    Action.ASSIGN: frozenset({SYSTEM}),
    Action.MERGE: frozenset({SYSTEM}),
    Action.ANSWER_DIRECTLY: frozenset({SYSTEM}),
    Action.SIGN_FOR: frozenset({"department"}),
    Action.CONTACT: frozenset({"department"}),
    Action.WAIT_CITIZEN: frozenset({"department"}),
    Action.RESUME: frozenset({"department", "supervisor"}),  # the office may lift a deferral (挂账)
    Action.REQUEST_EXTENSION: frozenset({"department"}),
    Action.DECIDE_EXTENSION: frozenset({"supervisor"}),
    Action.DEFER: frozenset({"department"}),
    Action.RETURN: frozenset({"department"}),
    Action.REPLY: frozenset({"department"}),
    Action.VISIT_CLOSE: frozenset({"visitor", "supervisor", CITIZEN}),
    Action.REOPEN: frozenset({"visitor", "supervisor"}),
}


class ActionNotPermitted(PermissionError):
    def __init__(self, role: str, action: Action) -> None:
        self.role = role
        self.action = action
        self.zh = f"您的角色不能执行“{ACTION_LABELS[action]}”"
        self.en = f"The role '{role}' may not take the action '{action.value}'"
        super().__init__(self.en)


def may(role: str, action: Action) -> bool:
    return role == "admin" or role in ACTORS[action]


def decide(state: S, action: Action, role: str, *, resume_to: S | None = None) -> S:
    """`next_state` for a person or system acting in `role`: the role first, then the state."""
    if not may(role, action):
        raise ActionNotPermitted(role, action)
    return next_state(state, action, resume_to=resume_to)

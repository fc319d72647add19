"""Enumerations shared by every service: the vocabulary of a ticket."""

from enum import StrEnum


class Channel(StrEnum):
    """Where a request came in."""

    HOTLINE = "hotline"  # 12345 热线电话
    MAILBOX = "mailbox"  # 市长信箱
    ONLINE = "online"  # 网上留言
    OPEN311 = "open311"  # Open311 GeoReport v2 clients
    EMAIL = "email"  # 电子邮件 (letters forwarded by the city's mail server)
    IN_PERSON = "in_person"  # 来访
    OTHER = "other"


# Channels whose citizens are reached online: a reply to them comes with the one-time rating link (评价); the others'
# citizens are called back (回访 by phone).
ONLINE_CHANNELS = frozenset({Channel.ONLINE, Channel.OPEN311, Channel.MAILBOX, Channel.EMAIL})


class Kind(StrEnum):
    """What the citizen wants; deadlines differ by kind."""

    CONSULTATION = "consultation"  # 咨询
    HELP = "help"  # 求助
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报
    SUGGESTION = "suggestion"  # 建议
    PRAISE = "praise"  # 表扬
    INFORMATION_REQUEST = "information_request"  # 政府信息公开申请


class Urgency(StrEnum):
    NORMAL = "normal"  # 普通
    URGENT = "urgent"  # 紧急


class TicketState(StrEnum):
    """The tracker's lifecycle states (工单状态)."""

    RECEIVED = "received"  # 已受理, not yet routed
    DISPATCHING = "dispatching"  # 待派单: waiting for a dispatcher
    ASSIGNED = "assigned"  # 已派单, not yet signed for
    SIGNED_FOR = "signed_for"  # 已签收
    CONTACTED = "contacted"  # 已联系
    WAITING_CITIZEN = "waiting_citizen"  # 待补充材料 (clock paused)
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请中
    DEFERRED = "deferred"  # 挂账
    RETURNED = "returned"  # 已退单, back with the router
    REPLIED = "replied"  # 已答复, return visit pending
    REOPENED = "reopened"  # 重办
    CLOSED = "closed"  # 已办结
    MERGED = "merged"  # 重复件, merged into another ticket
    ANSWERED_DIRECTLY = "answered_directly"  # 直接办结


class Role(StrEnum):
    OPERATOR = "operator"  # 话务员
    DISPATCHER = "dispatcher"  # 派单员
    DEPARTMENT = "department"  # 承办单位工作人员
    VISITOR = "visitor"  # 回访员
    SUPERVISOR = "supervisor"  # 督查室
    ADMIN = "admin"  # 系统管理员


KIND_LABELS = {
    Kind.CONSULTATION: "咨询",
    Kind.HELP: "求助",
    Kind.COMPLAINT: "投诉",
    Kind.REPORT: "举报",
    Kind.SUGGESTION: "建议",
    Kind.PRAISE: "表扬",
    Kind.INFORMATION_REQUEST: "信息公开申请",
}
CHANNEL_LABELS = {
    Channel.HOTLINE: "热线电话",
    Channel.MAILBOX: "市长信箱",
    Channel.ONLINE: "网上留言",
    Channel.OPEN311: "Open311",
    Channel.EMAIL: "电子邮件",
    Channel.IN_PERSON: "来访",
    Channel.OTHER: "其他",
}
URGENCY_LABELS = {Urgency.NORMAL: "普通", Urgency.URGENT: "紧急"}
# How the router placed a ticket (RoutingReason.method): the timeline's 依据 and the router's statistics.
ROUTING_METHOD_LABELS = {"rule": "规则", "model": "模型", "operator": "话务员指定", "dispatcher": "人工派单",
                         "directory": "职责目录", "reroute": "退单重派"}
STATE_LABELS = {
    TicketState.RECEIVED: "已受理",
    TicketState.DISPATCHING: "待派单",
    TicketState.ASSIGNED: "待签收",
    TicketState.SIGNED_FOR: "已签收",
    TicketState.CONTACTED: "已联系",
    TicketState.WAITING_CITIZEN: "待补充材料",
    TicketState.EXTENSION_REQUESTED: "延期审批中",
    TicketState.DEFERRED: "挂账",
    TicketState.RETURNED: "已退单",
    TicketState.REPLIED: "已答复",
    TicketState.REOPENED: "重办",
    TicketState.CLOSED: "已办结",
    TicketState.MERGED: "已合并",
    TicketState.ANSWERED_DIRECTLY: "直接办结",
}
ROLE_LABELS = {
    Role.OPERATOR: "话务员",
    Role.DISPATCHER: "派单员",
    Role.DEPARTMENT: "承办单位",
    Role.VISITOR: "回访员",
    Role.SUPERVISOR: "督查室",
    Role.ADMIN: "管理员",
}

# 退单 reasons (TicketReturned.reason_code): a fixed list, so the router and the scorecards can count them and
# the dispatcher reads why a unit sent a ticket back.
RETURN_REASONS: dict[str, str] = {
    "not_our_duty": "不属于本单位职责",
    "other_unit": "属于其他单位职责",
    "unclear": "诉求不明确",
    "duplicate": "重复件",
    "wrong_area": "不在本单位辖区",
    "legal_channel": "应通过诉讼、仲裁等法定途径解决",
    "other": "其他",
}

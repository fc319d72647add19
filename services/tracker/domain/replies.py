"""What a department's reply (答复) and return (退单) must contain. Pure rules, no I/O.

A reply tells the citizen what was done; "已处理" tells them nothing. The check is
deliberately simple and explainable: count the characters that carry meaning once
punctuation, spaces and stock phrases are taken out.
"""

from __future__ import annotations

import re

MIN_MEANINGFUL_CHARS = 15

# Stock phrases that say nothing about what was done (套话).
BOILERPLATE = (
    "已处理", "已办理", "已解决", "已收到", "已答复", "已转办", "已联系", "已落实", "已完成", "处理中", "正在处理",
    "收到", "好的", "谢谢", "感谢", "您好", "你好", "已阅", "知悉", "同意", "办结", "ok", "OK",
)

# 退单 reasons (TicketReturned.reason_code): part of the contract, in schemas.enums.

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def meaningful_chars(text: str) -> int:
    """Characters left after removing stock phrases, punctuation and spaces."""
    stripped = text
    for phrase in BOILERPLATE:
        stripped = stripped.replace(phrase, "")
    return len(_NOISE.sub("", stripped))


def reply_problem(text: str) -> tuple[str, str] | None:
    """Why this reply cannot be sent (zh, en), or None when it is acceptable."""
    if not text or not text.strip():
        return ("答复内容不能为空", "The reply must not be empty")
    if meaningful_chars(text) < MIN_MEANINGFUL_CHARS:
        return (
            f"答复过于简单：请写明核实情况、采取的措施和结果（有效内容至少 {MIN_MEANINGFUL_CHARS} 个字，"
            "“已处理”“已收到”之类的套话不计）",
            f"The reply says too little: state what was found, what was done and the result (at least "
            f"{MIN_MEANINGFUL_CHARS} meaningful characters; stock phrases such as 已处理 do not count)",
        )
    return None

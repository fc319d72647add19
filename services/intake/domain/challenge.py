"""A simple challenge on the public forms against automated abuse.

An arithmetic question whose answer travels in a token signed with the service secret
(HMAC, via itsdangerous): no server state until it is used. A token is refused when it
is answered faster than a person can fill a form, when it is older than a few hours,
and (checked by the caller against the database) when it was used before.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

MIN_SECONDS = 2.0  # a person does not write a letter in under two seconds
MAX_SECONDS = 6 * 3600

_DIGITS = "零一二三四五六七八九十"


@dataclass(frozen=True)
class Challenge:
    question: str  # 三加五等于几？
    token: str
    nonce: str


class ChallengeFailed(ValueError):
    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="intake-challenge")


def _answer_digest(secret: str, nonce: str, answer: int) -> str:
    return hmac.new(secret.encode(), f"{nonce}:{answer}".encode(), hashlib.sha256).hexdigest()[:32]


def issue(secret: str, *, now: float | None = None) -> Challenge:
    a, b = secrets.randbelow(9) + 1, secrets.randbelow(9) + 1
    nonce = secrets.token_urlsafe(12)
    issued = now if now is not None else time.time()
    token = _serializer(secret).dumps({"n": nonce, "t": issued, "h": _answer_digest(secret, nonce, a + b)})
    return Challenge(question=f"{_DIGITS[a]}加{_DIGITS[b]}等于几？（请填阿拉伯数字）", token=token, nonce=nonce)


def verify(secret: str, token: str, answer: str, *, now: float | None = None,
           min_seconds: float | None = None) -> str:
    """The nonce of a correctly answered, fresh challenge; raises ChallengeFailed otherwise."""
    now = now if now is not None else time.time()
    try:
        data = _serializer(secret).loads(token)
    except BadSignature:
        raise ChallengeFailed("验证信息无效，请刷新页面后重试", "The check is invalid; reload the page and retry") from None
    age = now - float(data["t"])
    if age < (MIN_SECONDS if min_seconds is None else min_seconds):
        raise ChallengeFailed("提交过快，请稍候再提交", "Submitted too fast; wait a moment and submit again")
    if age > MAX_SECONDS:
        raise ChallengeFailed("页面已过期，请刷新后重新填写验证题", "The page has expired; reload it and answer the check again")
    try:
        value = int(answer.strip())
    except ValueError:
        raise ChallengeFailed("验证题答案应为数字", "The answer to the check must be a number") from None
    if not hmac.compare_digest(_answer_digest(secret, data["n"], value), data["h"]):
        raise ChallengeFailed("验证题答案不正确", "The answer to the check is wrong")
    return data["n"]

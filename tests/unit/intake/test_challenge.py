"""The public forms' challenge: a signed arithmetic question, single use, not answerable by a fast bot."""

import re

import pytest

from services.intake.domain import challenge

SECRET = "s3cret"
DIGITS = "零一二三四五六七八九十"


def solve(question: str) -> str:
    a, b = re.match(r"(.)加(.)等于几", question).groups()
    return str(DIGITS.index(a) + DIGITS.index(b))


def test_a_correct_answer_after_a_human_pause_passes_and_returns_the_nonce():
    c = challenge.issue(SECRET, now=1000.0)
    assert challenge.verify(SECRET, c.token, solve(c.question), now=1010.0) == c.nonce


@pytest.mark.parametrize("case, zh", [
    ("wrong", "答案不正确"), ("fast", "提交过快"), ("old", "已过期"), ("forged", "无效"), ("text", "应为数字"),
])
def test_refusals_say_why_in_chinese_and_english(case, zh):
    c = challenge.issue(SECRET, now=1000.0)
    answer, now, token, secret = solve(c.question), 1010.0, c.token, SECRET
    if case == "wrong":
        answer = str(int(answer) + 1)
    elif case == "fast":
        now = 1000.5
    elif case == "old":
        now = 1000.0 + challenge.MAX_SECONDS + 1
    elif case == "forged":
        secret = "another secret"
    elif case == "text":
        answer = "八"
    with pytest.raises(challenge.ChallengeFailed) as err:
        challenge.verify(secret, token, answer, now=now)
    assert zh in err.value.zh and err.value.en


def test_the_token_carries_a_keyed_digest_of_the_answer_not_the_answer():
    import base64
    import json
    import re as _re

    c = challenge.issue(SECRET, now=1000.0)
    payload = json.loads(base64.urlsafe_b64decode(c.token.split(".")[0] + "=="))
    assert set(payload) == {"n", "t", "h"}
    assert _re.fullmatch(r"[0-9a-f]{32}", payload["h"])

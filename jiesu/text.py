"""Text similarity for Chinese complaint text: cheap, dependency-free.

`similarity` (character-bigram Jaccard) says how alike two texts read; `repeat_score` says how surely two
tickets of one caller are about the same matter (重复件), which a reworded repeat reads much less alike.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from operator import add

_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")
# Spaces and punctuation, ASCII and CJK, full-width included. Cut first, what is left is mostly NFKC already,
# and checking that is far cheaper than normalising (no punctuation has a letter or digit for its NFKC form).
_PUNCTUATION = re.compile(r"[\s!-/:-@\[-`{-~\u2000-\u206f\u3000-\u3004\u3008-\u3020\u3030\u303d-\u303f"
                          r"\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]+")


# Not a dash to unicodedata (category Pd), but typed as one: the minus sign, and the long-vowel mark a Chinese
# or Japanese keyboard gives for the key beside 0.
OTHER_DASHES = "\u2212\u30fc"


def plain_dashes(text: str) -> str:
    """Full-width digits and letters made plain (NFKC), and every dash (－, —, ‐, −, ー) a hyphen."""
    text = unicodedata.normalize("NFKC", text)
    return "".join("-" if ch in OTHER_DASHES or unicodedata.category(ch) == "Pd" else ch for ch in text)


def plain_phone(text: str) -> str:
    """A phone number as jiesu keeps and compares it, however it was typed: full-width digits and ＋ made plain
    (NFKC), and the spaces, dashes and brackets people put between groups taken out: 139-0000-1111, 139 0000 1111 and
    １３９００００１１１１ are all 13900001111, (010)1234-5678 is 01012345678, ＋86 139… is +86139…. One caller is one
    number then (重复件, the caller's history). Judges nothing: the submission's validation does."""
    if text.isdigit() and text.isascii():  # as intake keeps them: nothing to do
        return text
    return re.sub(r"[\s\-()]", "", plain_dashes(text))


def normalise(text: str) -> str:
    """Letters and digits only, NFKC and case-folded: punctuation and spacing never decide a match."""
    text = _PUNCTUATION.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return _NOT_LETTER_OR_DIGIT.sub("", text.casefold())


def bigrams(text: str) -> frozenset[str]:
    """Character bigrams of the normalised text (the single character for one-character text).

    Bigrams suit Chinese: no word segmentation, robust to small rewordings
    ("楼下工地夜里施工" / "楼下工地夜间施工").
    """
    chars = normalise(text)
    if len(chars) < 2:
        return frozenset({chars}) if chars else frozenset()
    return frozenset(chars[i:i + 2] for i in range(len(chars) - 1))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams, 0..1: how alike two texts read."""
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


# --- 重复件: same caller, same matter ------------------------------------------------------

# Administrative names in the anonymised form of the real messages it was measured on ("A市", "A3区", "A7县",
# case-folded): a repeat often names the district once and the city the next time, so they say nothing about
# the matter. Real names (岳麓区) are not recognised and count as words the two texts share.
_PLACE = re.compile(r"[a-z]\d*[省市区县]")
# Words of asking, complaining and officialese that any two petitions share whatever they are about.
_BOILERPLATE_WORDS = """
    请问 请求 恳请 恳求 请 投诉 反映 反应 举报 咨询 建议 希望 关于 再次 第二次 多次 仍然 依然 仍未 还是 至今
    加快 力度 步伐 问题 何时 能否 什么时候 为什么 为何 怎么 如何 是否 有关 相关 部门 解决 处理 整治 严重 长期 常年
    政府 市委 市政府 领导 尊敬的 书记 市长 县长 局长 您好 你好 谢谢 百忙之中 刻不容缓 高度重视 大背景下 有何具体 行动
    的 了 吗 呢 啊 我们 本人 我 能 要 对 和 与 及 在 有 被
""".split()
# The lookahead on first characters lets the regex skip most positions at once (several times faster).
_BOILERPLATE = re.compile("(?=[%s])(?:%s)" % ("".join(sorted({w[0] for w in _BOILERPLATE_WORDS})),
                                               "|".join(sorted(_BOILERPLATE_WORDS, key=len, reverse=True))))
# The matter is stated early; the rest of a long letter is history and feelings, and costs time.
_BODY_CHARS = 300
# The subject names the matter most densely; the text, subject and opening of the description, backs it up.
_SUBJECT_WEIGHT = 0.6


def _content(text: str) -> str:
    """The normalised text with places and boilerplate cut out ("|" marks each cut)."""
    return _cut(normalise(text))


def _cut(normalised: str) -> str:
    return _BOILERPLATE.sub("|", _PLACE.sub("|", normalised))


def _content_bigrams(text: str) -> frozenset[str]:
    return frozenset(g for g in map(add, text, text[1:]) if "|" not in g)


@lru_cache(maxsize=256)  # the router compares one new ticket with each of the caller's open tickets
def _matter(subject: str, description: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """The normalised subject, its content bigrams, and those of the subject with the opening of the description."""
    subject = normalise(subject)
    head = _cut(subject)
    return subject, _content_bigrams(head), _content_bigrams(f"{head}|{_content(description[:_BODY_CHARS])}")


def _covered(part: frozenset[str], whole: frozenset[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


def _about_another_place(a: str, b: str) -> bool:
    """Normalised subjects with the same words about another jurisdiction ("希望A市…" / "希望B市…",
    "A市城区…" / "A7县城区…"): a request for that place too. A district (区) lies within its city (市), so
    "A市魏家坡小区" / "A3区魏家坡小区" is one place named twice; a county (县) has its own departments."""
    places_a, places_b = set(_PLACE.findall(a)), set(_PLACE.findall(b))
    if not places_a or not places_b or _PLACE.sub("", a) != _PLACE.sub("", b):
        return False
    return any({x[-1], y[-1]} != {"市", "区"} for x in places_a - places_b for y in places_b - places_a)


def repeat_score(subject_a: str, description_a: str, subject_b: str, description_b: str) -> float:
    """How surely two tickets of the same caller are about the same matter (重复件), 0..1.

    A caller who calls again rewords the matter but names the same place and object
    (「凯乐国际城周边的庆和里路、太平路路灯很久没亮了」 / 「庆和里路、太平路的问题何时能解决」), so the
    score is made of what the two share once places and boilerplate are cut out: how much of each subject
    the other ticket repeats (the smaller share, weighted 0.6), and how much of the shorter text, subject
    and opening of the description, the other one repeats (0.4).
    """
    if subject_a == subject_b and description_a == description_b:
        return 1.0
    said_a, subject_a_grams, text_a = _matter(subject_a, description_a)
    said_b, subject_b_grams, text_b = _matter(subject_b, description_b)
    if _about_another_place(said_a, said_b):
        return 0.0
    text = len(text_a & text_b) / min(len(text_a), len(text_b)) if text_a and text_b else 0.0
    if not subject_a_grams or not subject_b_grams:  # a subject of boilerplate only ("投诉问题") says nothing
        return text
    subject = min(_covered(subject_a_grams, text_b), _covered(subject_b_grams, text_a))
    return _SUBJECT_WEIGHT * subject + (1 - _SUBJECT_WEIGHT) * text

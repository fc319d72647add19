"""Text similarity for Chinese complaint text: cheap, dependency-free, good enough to spot repeats."""

from __future__ import annotations

import re

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def bigrams(text: str) -> set[str]:
    """Character bigrams of the text without spaces and punctuation (single characters for very short text)."""
    chars = _NOISE.sub("", text.casefold())
    if len(chars) < 2:
        return {chars} if chars else set()
    return {chars[i:i + 2] for i in range(len(chars) - 1)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams, 0..1: 同一诉求换种说法 still scores high."""
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)

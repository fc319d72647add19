"""Text similarity for Chinese complaint text: cheap, dependency-free, good enough to spot repeats."""

from __future__ import annotations

import unicodedata


def normalise(text: str) -> str:
    """Letters and digits only, NFKC and case-folded: punctuation and spacing never decide a match."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold()
                   if unicodedata.category(ch)[0] in ("L", "N"))


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
    """Jaccard similarity of character bigrams, 0..1: 同一诉求换种说法 still scores high."""
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)

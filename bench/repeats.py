"""How well repeats (重复件) are recognised: the old and the new scorer on labelled pairs of real messages.

    python -m bench.repeats

bench/data/repeat_pairs.csv lists pairs of messages by the same user within 30 days from TipDM 2020 C
(hotspot_messages.csv and replies.csv), each labelled by reading both: the same matter, the same problem at
the same place or object, follow-ups included (1), or not (0). Only the ids are stored; the texts are read
from ../shared/data (JIESU_SHARED_DATA overrides). The pairs are stratified, not drawn at random: every
pair with a bigram Jaccard between 0.05 and 0.5 except most of one serial petitioner's, a sample of that
petitioner's and of the rest. Precision and recall are on this set, not rates of the daily stream.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

from jiesu import text
from jiesu.text import repeat_score, similarity
from services.intake.domain.similarity import REPEAT_THRESHOLD as REPEAT_SIMILARITY
from services.router.service import DUPLICATE_SIMILARITY

PAIRS = Path(__file__).resolve().parent / "data" / "repeat_pairs.csv"
# The bigram-Jaccard thresholds used before repeat_score: the router's merge and the console's warning.
OLD_ROUTER, OLD_CONSOLE = 0.35, 0.3


class Pair(NamedTuple):
    first: tuple[str, str]  # subject, body
    second: tuple[str, str]
    repeat: bool
    why: str


class Rates(NamedTuple):
    threshold: float
    flagged: int
    false: int  # flagged though a different matter
    precision: float
    recall: float


def tipdm_folder() -> Path:
    shared = os.environ.get("JIESU_SHARED_DATA")
    return (Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared/data") / "tipdm2020c"


def load_pairs(folder: Path | None = None) -> list[Pair]:
    """The labelled pairs with their texts; FileNotFoundError when the shared data is not there."""
    folder = folder or tipdm_folder()
    texts = {}
    for name in ("hotspot_messages.csv", "replies.csv"):
        with open(folder / name, encoding="utf-8", newline="") as f:
            texts.update(((name, row["id"]), (row["subject"], row["body"])) for row in csv.DictReader(f))
    with open(PAIRS, encoding="utf-8", newline="") as f:
        return [Pair(texts[(row["file"], row["first_id"])], texts[(row["file"], row["second_id"])],
                     row["repeat"] == "1", row["why"]) for row in csv.DictReader(f)]


def old_score(pair: Pair) -> float:
    return similarity(" ".join(pair.first), " ".join(pair.second))


def new_score(pair: Pair) -> float:
    return repeat_score(*pair.first, *pair.second)


def rates(pairs: list[Pair], scores: list[float], threshold: float) -> Rates:
    flagged = [p for p, s in zip(pairs, scores) if s >= threshold]
    right = sum(p.repeat for p in flagged)
    repeats = sum(p.repeat for p in pairs)
    return Rates(threshold, len(flagged), len(flagged) - right, right / len(flagged) if flagged else 1.0,
                 right / repeats)


def microseconds_per_pair(pairs: list[Pair], score, *, seen: bool, passes: int = 3) -> float:
    """Mean time of one score, best of `passes`; `seen`: both texts already in repeat_score's cache, as the
    caller's open tickets are when several new calls are compared with them."""
    best = float("inf")
    for _ in range(passes):
        spent = 0.0
        for pair in pairs:
            text._matter.cache_clear()
            if seen:
                score(pair)
            started = time.perf_counter()
            score(pair)
            spent += time.perf_counter() - started
        best = min(best, spent)
    return best / len(pairs) * 1e6


def _line(name: str, r: Rates) -> str:
    return (f"{name:34s} ≥{r.threshold:.2f}  flagged {r.flagged:3d}  false {r.false:2d}  "
            f"precision {r.precision:.3f}  recall {r.recall:.3f}")


def main() -> int:
    try:
        pairs = load_pairs()
    except FileNotFoundError as missing:
        print(f"TipDM 2020 C data not found ({missing.filename}); set JIESU_SHARED_DATA to the shared/data folder")
        return 2
    repeats = sum(p.repeat for p in pairs)
    print(f"{len(pairs)} labelled pairs of one user's messages within 30 days: {repeats} repeats, "
          f"{len(pairs) - repeats} different matters")
    old = [old_score(p) for p in pairs]
    new = [new_score(p) for p in pairs]
    print(_line("router merge, old (bigram Jaccard)", rates(pairs, old, OLD_ROUTER)))
    print(_line("router merge, new (repeat_score)", rates(pairs, new, DUPLICATE_SIMILARITY)))
    print(_line("console warning, old", rates(pairs, old, OLD_CONSOLE)))
    print(_line("console warning, new", rates(pairs, new, REPEAT_SIMILARITY)))
    print("repeat_score by threshold:")
    for threshold in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7):
        print("  " + _line("", rates(pairs, new, threshold)).strip())
    top = max(s for s, p in zip(new, pairs) if not p.repeat)
    print(f"highest repeat_score of a different matter: {top:.3f}")
    lengths = [len(p.first[1]) for p in pairs] + [len(p.second[1]) for p in pairs]
    print(f"time per pair (bodies: median {statistics.median(lengths):.0f} characters, "
          f"max {max(lengths)}), best of 3 passes:")
    print(f"  bigram Jaccard of subject + body       {microseconds_per_pair(pairs, old_score, seen=False):7.1f} µs")
    print(f"  repeat_score, neither text seen before {microseconds_per_pair(pairs, new_score, seen=False):7.1f} µs")
    print(f"  repeat_score, both texts seen before   {microseconds_per_pair(pairs, new_score, seen=True):7.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""重复件 on real messages: the router's automatic merge never takes a different matter, the console warns of most.

bench/data/repeat_pairs.csv: 610 pairs of one user's messages within 30 days (TipDM 2020 C, shared/data),
each labelled by reading both, 336 of them repeats; the texts are read from ../shared/data (JIESU_SHARED_DATA
overrides). Measured with `python -m bench.repeats`: the router's rule merges 145 repeats (recall 0.432) and no
different matter; the console's warning flags 302 repeats (recall 0.899) at precision 0.944. Bigram Jaccard,
the scorer before, merged 3 different matters at recall 0.333 and warned at recall 0.393.
"""

from __future__ import annotations

import pytest

from bench.repeats import Pair, load_pairs, new_score, rates, tipdm_folder
from services.intake.domain.similarity import REPEAT_THRESHOLD as REPEAT_SIMILARITY
from services.router.service import DUPLICATE_SIMILARITY
from tests.mandatory import skip_or_fail


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    folder = tipdm_folder()
    if not (folder / "hotspot_messages.csv").is_file() or not (folder / "replies.csv").is_file():
        skip_or_fail(f"TipDM 2020 C data not found in {folder} (set JIESU_SHARED_DATA to the shared/data folder)")
    return load_pairs(folder)


@pytest.fixture(scope="module")
def scores(pairs) -> list[float]:
    return [new_score(p) for p in pairs]


def test_the_router_merges_no_different_matter_and_four_in_ten_repeats_when_labelled_pairs_are_scored(pairs, scores):
    merged = rates(pairs, scores, DUPLICATE_SIMILARITY)
    wrongly = [p.why for p, s in zip(pairs, scores) if s >= DUPLICATE_SIMILARITY and not p.repeat]
    assert merged.false == 0, wrongly
    assert merged.recall >= 0.40, merged


def test_the_console_warns_of_nine_in_ten_repeats_mostly_rightly_when_labelled_pairs_are_scored(pairs, scores):
    warned = rates(pairs, scores, REPEAT_SIMILARITY)
    assert warned.recall >= 0.87 and warned.precision >= 0.92, warned

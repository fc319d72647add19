"""The router's classifier on real citizen messages: the quality bar it must keep.

TipDM 2020 C (shared/data/tipdm2020c): train on 80 % of messages_train.csv plus all of
extra_segmented_train.csv, measure on the stratified 20 % of real messages held out
(seed 20201122). Published results on this corpus are 0.904 (TF-IDF + linear SVM) and
0.914 (TF-IDF + SVD + RBF SVM). JIESU_SHARED_DATA may point at another shared/data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.router.domain.classifier import train
from services.router.training import EvalReport, evaluate, format_report, holdout_split, read_labelled_csv
from tests.mandatory import skip_or_fail

SHARED_DATA = Path(os.environ.get("JIESU_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared/data")
TIPDM = SHARED_DATA / "tipdm2020c"

@pytest.fixture(scope="module")
def report() -> EvalReport:
    if not (TIPDM / "messages_train.csv").is_file() or not (TIPDM / "extra_segmented_train.csv").is_file():
        skip_or_fail(f"TipDM 2020 C data not found in {TIPDM} (set JIESU_SHARED_DATA to the shared/data folder)")
    texts, labels = read_labelled_csv(TIPDM / "messages_train.csv")
    extra_texts, extra_labels = read_labelled_csv(TIPDM / "extra_segmented_train.csv")
    split = holdout_split(texts, labels)
    model = train(split.train_texts + extra_texts, split.train_labels + extra_labels, n_jobs=2)
    return evaluate(model, split.test_texts, split.test_labels)


def test_classifier_reaches_93_percent_accuracy_and_925_macro_f1_on_held_out_messages(report: EvalReport) -> None:
    assert report.n == 615
    assert report.accuracy >= 0.93 and report.macro_f1 >= 0.925, format_report(report)


def test_no_category_is_sacrificed_for_the_average(report: EvalReport) -> None:
    weakest = min(report.per_class, key=lambda label: report.per_class[label].f1)
    assert report.per_class[weakest].f1 >= 0.85, format_report(report)


def test_scores_are_calibrated_so_a_dispatch_threshold_means_what_it_says(report: EvalReport) -> None:
    assert report.calibration_error <= 0.05, format_report(report)
    at_80 = next(row for row in report.thresholds if row.threshold == 0.8)
    assert at_80.accuracy >= 0.9 and at_80.coverage >= 0.7, format_report(report)

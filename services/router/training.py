"""Training data and evaluation for the router's classifier: read labelled CSVs, measure a model, report.

Plain functions for `jiesu train-router` and `jiesu eval-router FILE`. Two CSV shapes are
read: messages (`id,user,subject,time,body,label`, text = subject + " " + body) and
segmented rows (`fujian2_row,tokens,label`, jieba tokens separated by spaces) — the shapes
of the TipDM 2020 C corpus in shared/data/tipdm2020c.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import train_test_split

from services.router.domain.classifier import TextClassifier

HOLDOUT_SEED = 20201122
HOLDOUT_SHARE = 0.2
CONFIDENCE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
CALIBRATION_BINS = 10


def read_labelled_csv(path: Path | str) -> tuple[list[str], list[str]]:
    """Texts and labels from a messages CSV or a segmented-tokens CSV (UTF-8, header row).

    The label column is `label`, or `category` (our own example files: subject,body,category).
    """
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        label_column = "label" if "label" in columns else "category"
        columns.add("label") if label_column in columns else None
        if {"subject", "body", "label"} <= columns:
            def text_of(row: dict[str, str]) -> str:
                return f"{row['subject'] or ''} {row['body'] or ''}".strip()
        elif {"tokens", "label"} <= columns:
            def text_of(row: dict[str, str]) -> str:
                return (row["tokens"] or "").strip()
        else:
            raise ValueError(f"{path}: 需要列 subject,body,label 或 tokens,label，实际为 {sorted(columns)} / "
                             f"expected columns subject,body,label or tokens,label, found {sorted(columns)}")
        texts, labels = [], []
        for line, row in enumerate(reader, start=2):
            label = (row[label_column] or "").strip()
            if not label:
                raise ValueError(f"{path} 第 {line} 行缺少类别 / line {line} has no label")
            texts.append(text_of(row))
            labels.append(label)
    return texts, labels


class Split(NamedTuple):
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


def holdout_split(texts: Sequence[str], labels: Sequence[str], *, test_size: float = HOLDOUT_SHARE,
                  random_state: int = HOLDOUT_SEED) -> Split:
    """The stratified hold-out the quality bar is measured on (20 %, seed 20201122)."""
    train_texts, test_texts, train_labels, test_labels = train_test_split(
        list(texts), list(labels), test_size=test_size, stratify=list(labels), random_state=random_state)
    return Split(train_texts, train_labels, test_texts, test_labels)


@dataclass(frozen=True)
class ClassScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ThresholdRow:
    """Tickets the model would place on its own at this threshold, and how many of those are right."""

    threshold: float
    coverage: float
    accuracy: float


@dataclass(frozen=True)
class EvalReport:
    model_version: str
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScore]
    labels: tuple[str, ...]  # order of the confusion matrix
    confusion: tuple[tuple[int, ...], ...]  # rows: true category, columns: predicted
    calibration_error: float  # expected calibration error of the top score, 10 bins
    thresholds: tuple[ThresholdRow, ...]

    def summary(self) -> dict[str, Any]:
        """What a model's metadata keeps (TextClassifier.metrics)."""
        return {"n": self.n, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
                "f1": {label: round(score.f1, 4) for label, score in self.per_class.items()},
                "calibration_error": round(self.calibration_error, 4)}


def evaluate(model: TextClassifier, texts: Sequence[str], labels: Sequence[str]) -> EvalReport:
    predictions = model.predict(texts)
    predicted = [p.label for p in predictions]
    scores = np.array([p.score for p in predictions])
    correct = np.array([p == t for p, t in zip(predicted, labels)])
    order = tuple(sorted(set(labels) | set(model.labels)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=list(order),
                                                                     zero_division=0)
    matrix = confusion_matrix(labels, predicted, labels=list(order))
    return EvalReport(
        model_version=model.version,
        n=len(labels),
        accuracy=float(accuracy_score(labels, predicted)),
        macro_f1=float(f1_score(labels, predicted, labels=sorted(set(labels)), average="macro", zero_division=0)),
        per_class={label: ClassScore(float(p), float(r), float(f), int(s))
                   for label, p, r, f, s in zip(order, precision, recall, f1, support)},
        labels=order,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        calibration_error=_calibration_error(scores, correct),
        thresholds=tuple(ThresholdRow(t, float((scores >= t).mean()),
                                      float(correct[scores >= t].mean()) if (scores >= t).any() else 0.0)
                         for t in CONFIDENCE_THRESHOLDS),
    )


def _calibration_error(scores: np.ndarray, correct: np.ndarray) -> float:
    """Mean gap between confidence and accuracy over equal-width score bins, weighted by bin size."""
    if scores.size == 0:
        return 0.0
    bins = np.minimum((scores * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    gap = 0.0
    for b in np.unique(bins):
        inside = bins == b
        gap += inside.sum() * abs(scores[inside].mean() - correct[inside].mean())
    return float(gap / scores.size)


def format_report(report: EvalReport) -> str:
    """The report as a terminal reads it, Chinese category names, columns aligned for wide characters."""
    names = report.labels
    name_width = max(_width(n) for n in (*names, "类别"))
    lines = [f"分类模型 {report.model_version}  样本 {report.n} 条",
             f"准确率 accuracy {report.accuracy:.4f}   宏平均 F1 macro-F1 {report.macro_f1:.4f}   "
             f"校准误差 ECE {report.calibration_error:.4f}",
             "",
             f"{_pad('类别', name_width)}  精确率  召回率      F1    样本"]
    for name in names:
        s = report.per_class[name]
        lines.append(f"{_pad(name, name_width)}  {s.precision:6.4f}  {s.recall:6.4f}  {s.f1:6.4f}  {s.support:6d}")
    cell = max(5, len(str(max((max(row) for row in report.confusion), default=0))) + 1)
    lines += ["", "混淆矩阵（行：实际类别，列：预测类别）",
              f"{_pad('', name_width + 4)}" + "".join(f"{i + 1:>{cell}}" for i in range(len(names)))]
    for i, (name, row) in enumerate(zip(names, report.confusion)):
        lines.append(f"{i + 1:>2}  {_pad(name, name_width)}" + "".join(f"{v:>{cell}}" for v in row))
    lines += ["", "按置信度阈值自动派单（其余进入人工派单）",
              "   阈值  覆盖率  准确率"]
    lines += [f"{row.threshold:7.2f}  {row.coverage:6.1%}  {row.accuracy:6.1%}" for row in report.thresholds]
    return "\n".join(lines)


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))

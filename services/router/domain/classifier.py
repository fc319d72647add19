"""The router's learned text classifier: subject + description → category, with a calibrated score.

Chinese needs no word segmentation here: character 1–4-grams of the whole text, plus
character 1–3-grams of its first 20 characters (where the subject stands, so it counts a
little more), weighted by TF-IDF, feed a linear SVM. Its weights say which n-grams pushed
a ticket towards a category (`explain`).

Training data comes in two shapes: raw messages, and — for most of the public corpus —
jieba tokens joined by spaces, with stop words and punctuation already removed.
`normalise` brings both to one form: no spaces, no punctuation, no common function
characters (的, 了, 是 …).

`score` is a probability: the SVM's decision values pass through temperature scaling,
softmax(d / T), with T fitted on cross-validated decision values of the training data, so
a dispatch threshold of 0.8 means about 80 % of such tickets are right. Scaling never
changes which category wins.

A trained model carries a version (UTC time + a hash of its training data), the number of
training rows per category, and evaluation metrics once someone has measured them; it is
saved with joblib beside a JSON sidecar that a person can read. It holds numpy arrays and
plain classes only, so a scikit-learn upgrade does not break saved models. Load only
model files this system wrote: unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC

FILE_PREFIX = "router-classifier-"
TEXT_NGRAMS = 4
HEAD_NGRAMS = 3
HEAD_CHARS = 20  # the subject's median length is 19 characters
HEAD_WEIGHT = 0.5
MIN_DF = 3  # an n-gram must occur in 3 training texts; 1 or 2 overfit in cross-validation
SVM_C = 1.0  # 5-fold cross-validation on the training part: 0.5 and 2 were no better
CALIBRATION_FOLDS = 5
# The categories each prediction ranks, best first: the dispatch card shows three units, and a ticket returned by
# the unit of the first three (退单) needs the ranking further down to find others (decide.suggest).
TOP_K = 10

# Single characters that mostly stand alone as grammar, not topic; the segmented training
# rows had them removed as stop words, so raw text loses them too. Characters that are
# mostly part of content words stay (地 in 地铁, 会 in 社会, 所 in 派出所): dropping them too
# scored no better in cross-validation and made explanations harder to read.
FUNCTION_CHARS = "的了是在我也和就都这要给对能但等又吗去被让与而从将并没以把由及很该于可过才其呢因着按或您你们他此谁且那连吧啊如"
_DROP_FUNCTION_CHARS = str.maketrans("", "", FUNCTION_CHARS)
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # calibrated probability of `label`
    top: tuple[tuple[str, float], ...]  # the best categories with their probabilities, best first


def normalise(text: str) -> str:
    """One form for raw text and space-separated tokens: letters and digits, no function characters."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _NOT_LETTER_OR_DIGIT.sub("", text).translate(_DROP_FUNCTION_CHARS)


class CharNgrams:
    """TF-IDF of character 1…n-grams: fitted by scikit-learn's TfidfVectorizer, applied with numpy.

    The result equals `TfidfVectorizer(analyzer="char", ngram_range=(1, n), sublinear_tf=True,
    lowercase=False)` on whitespace-free text, with columns in another order. It is several
    times faster, which is what lets one core classify thousands of tickets a second: each
    known character gets a 16-bit id, an n-gram is its ids packed into one 64-bit key, and
    the fitted keys are a sorted array searched for all n-grams of a batch at once.
    """

    BITS = 16

    def __init__(self, max_n: int, *, min_df: int = MIN_DF) -> None:
        if not 1 <= max_n <= 64 // self.BITS:
            raise ValueError(f"n-grams of 1 to {64 // self.BITS} characters, not {max_n}")
        self.max_n = max_n
        self.min_df = min_df

    def fit(self, docs: Sequence[str]) -> CharNgrams:
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, self.max_n), min_df=self.min_df,
                                     sublinear_tf=True, lowercase=False).fit(docs)
        vocabulary = vectorizer.vocabulary_
        # An n-gram occurs in no more texts than each of its characters, so every character
        # of a kept n-gram is itself a kept 1-gram.
        self.chars = np.array(sorted(term for term in vocabulary if len(term) == 1))
        if len(self.chars) >= 1 << self.BITS:
            raise ValueError(f"too many distinct characters for {self.BITS}-bit ids: {len(self.chars)}")
        char_id = {ch: i + 1 for i, ch in enumerate(self.chars)}  # 0: a character never seen in training
        self.ids = np.zeros(max(map(ord, self.chars), default=0) + 2, dtype=np.uint64)
        for ch, i in char_id.items():
            self.ids[ord(ch)] = i
        terms = list(vocabulary)
        keys = np.array([sum(char_id[ch] << (self.BITS * j) for j, ch in enumerate(term)) for term in terms],
                        dtype=np.uint64)
        order = np.argsort(keys)
        self.keys = keys[order]  # column j is the n-gram with key keys[j]
        self.idf = vectorizer.idf_[np.array([vocabulary[term] for term in terms])[order]]
        return self

    @property
    def size(self) -> int:
        return len(self.keys)

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        codes = np.frombuffer("".join(docs).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = self.ids[np.minimum(codes, len(self.ids) - 1)]
        doc_of = np.repeat(np.arange(len(docs)), lengths)
        room = np.repeat(np.cumsum(lengths), lengths) - np.arange(codes.size)  # characters left in the text
        # Every known character is a 1-gram of the vocabulary, and 1-grams come first in key order.
        starts = np.flatnonzero(ids)
        key = ids[starts]
        rows, columns = [doc_of[starts]], [key.astype(np.int64) - 1]
        for n in range(2, self.max_n + 1):
            # Only a known (n-1)-gram can start a known n-gram: it occurs in at least as many texts.
            fits = room[starts] >= n
            starts, key = starts[fits], key[fits]
            nth = ids[starts + n - 1]
            known = nth != 0
            starts, key = starts[known], key[known] | (nth[known] << np.uint64(self.BITS * (n - 1)))
            found = np.minimum(np.searchsorted(self.keys, key), self.size - 1)
            hit = self.keys[found] == key
            starts, key = starts[hit], key[hit]
            rows.append(doc_of[starts])
            columns.append(found[hit])
        cells, counts = np.unique(np.concatenate(rows) * self.size + np.concatenate(columns), return_counts=True)
        row, column = np.divmod(cells, self.size)
        data = (np.log(counts) + 1) * self.idf[column]
        data /= np.sqrt(np.bincount(row, data * data, minlength=len(docs)))[row]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=len(docs)))])
        return sp.csr_matrix((data, column, indptr), shape=(len(docs), self.size))

    def grams(self) -> np.ndarray:
        """Every column's n-gram as a string, in column order, decoded from the keys."""
        mask = np.uint64((1 << self.BITS) - 1)
        chars = np.concatenate([np.array([""]), self.chars.astype(str)])  # id 0: no character
        grams = chars[(self.keys & mask).astype(np.int64)]
        for j in range(1, self.max_n):
            grams = np.char.add(grams, chars[((self.keys >> np.uint64(self.BITS * j)) & mask).astype(np.int64)])
        return grams


KEEP_FEATURES = 1000  # the last call's features are kept for explanations up to this many texts


class TextClassifier:
    """A trained model: predict categories for texts, explain a prediction, save it."""

    def __init__(self, *, text: CharNgrams, head: CharNgrams, head_chars: int, labels: Sequence[str],
                 weights: np.ndarray, bias: np.ndarray, temperature: float, version: str, trained_at: datetime,
                 label_counts: dict[str, int], design: dict[str, str], metrics: dict[str, Any] | None = None) -> None:
        self.text = text
        self.head = head  # n-grams of the first head_chars characters
        self.head_chars = head_chars
        self.labels = tuple(labels)
        self.weights = weights  # (features, labels): the SVM's coefficients, for text then head features
        self.bias = bias
        self.temperature = temperature
        self.version = version
        self.trained_at = trained_at
        self.label_counts = label_counts  # training rows per category
        self.design = design  # how it was trained, for people reading the metadata
        self.metrics = metrics  # filled in by whoever evaluates it (training.evaluate → EvalReport.summary())

    _last: tuple[dict[str, int], sp.csr_matrix] | None = None  # the last texts' features (see _features)
    _grams: np.ndarray | None = None  # every feature column's n-gram, text then subject (see _feature_grams)
    _gram_ids: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the n-grams numbered (see _numbered_grams)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_last", "_grams", "_gram_ids")}

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        proba = softmax(self._decision(self._features(texts)) / self.temperature, axis=1)
        order = np.argsort(-proba, axis=1)[:, :TOP_K]
        predictions = []
        for row, best in zip(proba, order):
            top = tuple((self.labels[i], float(row[i])) for i in best)
            predictions.append(Prediction(label=top[0][0], score=top[0][1], top=top))
        return predictions

    def explain(self, text: str, label: str | None = None, k: int = 5) -> list[tuple[str, float]]:
        """The k n-grams of `text` that weighed most towards `label` (default: the predicted one).

        Weight = TF-IDF value × the SVM coefficient for that category, summed over the
        whole-text and subject features. Single characters are left out while longer
        n-grams remain, and an n-gram inside one already listed (or containing it) is
        skipped, so the list reads as words ("医院", "看病"), not fragments.
        """
        if label is None:
            label = self.predict([text])[0].label
        if label not in self.labels:
            raise ValueError(f"未知类别 {label!r}，模型的类别为 {'、'.join(self.labels)} / unknown category {label!r}")
        indices, data = self._row(text)
        contributions = data * self.weights[indices, self.labels.index(label)]
        # The same n-gram may be a whole-text and a subject feature: sum its weight over both. N-grams are
        # compared by number (numbered in their own order), which is what sorting their text cost.
        numbers, names, long_name = self._numbered_grams()
        grams, first, which = np.unique(numbers[indices], return_index=True, return_inverse=True)
        weights = np.bincount(which, contributions, minlength=len(grams))
        longer = long_name[grams]
        ranked = np.flatnonzero(longer) if longer.any() else np.arange(len(grams))
        ranked = ranked[weights[ranked] > 0]  # only what weighs towards the label is listed
        # Heaviest first; n-grams that always occur together weigh the same, and the one met first
        # (the shorter, as columns go by key) is listed.
        ranked = ranked[np.lexsort((first[ranked], -weights[ranked]))]
        chosen: list[tuple[str, float]] = []
        for i in ranked:
            gram, weight = str(names[grams[i]]), float(weights[i])
            if weight <= 0 or len(chosen) == k:
                break
            if not any(gram in kept or kept in gram for kept, _ in chosen):
                chosen.append((gram, round(weight, 4)))
        return chosen

    def _feature_grams(self) -> np.ndarray:
        """Every feature column's n-gram (decoded at the first explanation; a race only decodes twice)."""
        if self._grams is None:
            self._grams = np.concatenate([self.text.grams(), self.head.grams()])
        return self._grams

    def _numbered_grams(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each feature column's n-gram as a number (one number for an n-gram that is a whole-text and a subject
        feature), numbered in the n-grams' sorted order; the n-grams by number; and whether each is longer than one
        character. Made at the first explanation, as `_feature_grams`."""
        if self._gram_ids is None:
            names, numbers = np.unique(self._feature_grams(), return_inverse=True)
            self._gram_ids = (numbers, names, np.char.str_len(names) > 1)
        return self._gram_ids

    def _features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The texts' feature rows; the last call's are kept, as `explain` follows `predict` for one of its texts."""
        features = self._compute_features(texts)
        if len(texts) <= KEEP_FEATURES:  # a consumer's run, not an evaluation of thousands
            self._last = ({text: i for i, text in enumerate(texts)}, features)
        return features

    def _row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One text's feature columns and values, from the last call's features when it was among them."""
        last = self._last  # one read: a thread may replace it meanwhile
        i = last[0].get(text) if last is not None else None
        matrix = last[1] if i is not None else self._features([text])
        i = i or 0
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        return matrix.indices[start:end], matrix.data[start:end]

    def _compute_features(self, texts: Sequence[str]) -> sp.csr_matrix:
        docs = [normalise(t) for t in texts]
        heads = [d[:self.head_chars] for d in docs]
        return sp.hstack([self.text.transform(docs), self.head.transform(heads)], format="csr")

    def _decision(self, features: sp.csr_matrix) -> np.ndarray:
        return np.asarray(features @ self.weights) + self.bias

    def metadata(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "trained_at": self.trained_at.isoformat(),
            "labels": list(self.labels),
            "training_rows": sum(self.label_counts.values()),
            "label_counts": self.label_counts,
            "metrics": self.metrics,
            "design": self.design,
        }

    def save(self, directory: Path | str) -> Path:
        """Write `router-classifier-<version>.joblib` and its `.json` sidecar; return the model path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{FILE_PREFIX}{self.version}.joblib"
        joblib.dump(self, path, compress=3)
        path.with_suffix(".json").write_text(json.dumps(self.metadata(), ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
        return path


def train(texts: Sequence[str], labels: Sequence[str], *, version: str | None = None,
          n_jobs: int | None = None) -> TextClassifier:
    """Fit a classifier on texts (raw, or tokens separated by spaces) and their categories.

    `n_jobs` processes fit the cross-validation folds that calibrate the scores.
    """
    if len(texts) != len(labels):
        raise ValueError(f"文本 {len(texts)} 条而类别 {len(labels)} 个，数量须一致 / "
                         f"{len(texts)} texts but {len(labels)} labels")
    counts = Counter(labels)
    if len(counts) < 2:
        raise ValueError("训练数据至少需要两个类别 / training data needs at least two categories")
    rare = sorted(label for label, n in counts.items() if n < 2)
    if rare:
        raise ValueError(f"每个类别至少需要 2 条样本，不足的类别：{'、'.join(rare)} / "
                         f"every category needs at least 2 examples: {', '.join(rare)}")
    docs = [normalise(t) for t in texts]
    heads = [d[:HEAD_CHARS] for d in docs]
    try:
        text, head = CharNgrams(TEXT_NGRAMS).fit(docs), CharNgrams(HEAD_NGRAMS).fit(heads)
    except ValueError as error:  # scikit-learn found no n-gram in MIN_DF texts
        raise ValueError(f"训练文本太少：没有任何字词出现在 {MIN_DF} 条以上的文本中 / too little training text: "
                         f"no character occurs in {MIN_DF} or more texts") from error
    features = sp.hstack([text.transform(docs), head.transform(heads) * HEAD_WEIGHT], format="csr")
    y = np.asarray(labels)
    svm = LinearSVC(C=SVM_C, class_weight="balanced", random_state=0)
    folds = StratifiedKFold(min(CALIBRATION_FOLDS, min(counts.values())), shuffle=True, random_state=0)
    held_out = cross_val_predict(svm, features, y, cv=folds, method="decision_function", n_jobs=n_jobs)
    svm.fit(features, y)
    coef = svm.coef_.T.copy()
    coef[text.size:] *= HEAD_WEIGHT  # so the model applies to unweighted head features
    weights, bias = _per_class(coef, svm.intercept_)
    held_out, _ = _per_class(held_out.reshape(len(y), -1), np.zeros(1))
    temperature = _fit_temperature(held_out, np.searchsorted(svm.classes_, y))
    trained_at = datetime.now(UTC)
    return TextClassifier(
        text=text, head=head, head_chars=HEAD_CHARS, labels=[str(c) for c in svm.classes_], weights=weights,
        bias=bias, temperature=temperature, version=version or _version(trained_at, texts, labels),
        trained_at=trained_at, label_counts=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        design={
            "features": f"TF-IDF of char 1-{TEXT_NGRAMS}-grams ({text.size:,}) and of the first {HEAD_CHARS} "
                        f"chars' 1-{HEAD_NGRAMS}-grams x{HEAD_WEIGHT} ({head.size:,}), min_df {MIN_DF}",
            "model": f"LinearSVC(C={SVM_C}, class_weight=balanced), one-vs-rest",
            "calibration": f"temperature {temperature:.3f} fitted on {folds.n_splits}-fold cross-validated scores",
        })


def load(path: Path | str) -> TextClassifier:
    """A saved model; given a directory, the newest `router-classifier-*.joblib` in it."""
    path = Path(path)
    if path.is_dir():
        saved = sorted(path.glob(f"{FILE_PREFIX}*.joblib"))
        if not saved:
            raise FileNotFoundError(f"{path} 中没有已训练的分类模型，请先运行 jiesu train-router / "
                                    f"no trained classifier in {path}; run `jiesu train-router` first")
        path = saved[-1]
    model = joblib.load(path)
    if not isinstance(model, TextClassifier):
        raise ValueError(f"{path} 不是分类模型文件 / {path} is not a router classifier")
    return model


def _per_class(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One column per category; with two categories the SVM gives one, split as (-w/2, +w/2)."""
    if weights.shape[1] == 1:
        return np.hstack([-weights, weights]) / 2, np.hstack([-bias, bias]) / 2
    return weights, bias


def _fit_temperature(decision: np.ndarray, truth: np.ndarray) -> float:
    """The T that makes softmax(decision / T) best predict the true categories (least log loss)."""
    def log_loss(log_t: float) -> float:
        return -log_softmax(decision / np.exp(log_t), axis=1)[np.arange(len(truth)), truth].mean()

    return float(np.exp(minimize_scalar(log_loss, bounds=(-5, 5), method="bounded").x))


def _version(trained_at: datetime, texts: Sequence[str], labels: Sequence[str]) -> str:
    """Sortable by time; the hash tells two models trained on different data apart."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels):
        digest.update(f"{label}\t{text}\n".encode())
    return f"{trained_at:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:8]}"

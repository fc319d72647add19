"""The router's text classifier and its training helpers, on a small made-up corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from services.router.domain.classifier import (
    CharNgrams,
    Prediction,
    TextClassifier,
    _fit_temperature,
    load,
    normalise,
    train,
)
from services.router.training import (
    EvalReport,
    evaluate,
    format_report,
    holdout_split,
    read_labelled_csv,
)

PLACES = ["A市", "B区", "C县", "东湖街道", "西山镇", "南门社区"]
TEMPLATES = {
    "交通运输": ["{}公交车经常晚点，站台也没有遮雨棚", "{}路口红绿灯时间太短，行人过马路很危险",
             "{}出租车拒载还绕路多收费", "{}道路拥堵严重，建议增开公交线路"],
    "教育文体": ["{}小学乱收费，学生家长负担很重", "{}学校老师体罚学生，请教育局调查",
             "孩子在{}入学难，学位不够", "{}体育馆长期不对外开放，市民无处锻炼"],
    "环境保护": ["{}化工厂夜间偷排废水，河水发臭", "{}工地扬尘污染严重，空气很差",
             "{}餐馆油烟和噪音扰民", "{}垃圾焚烧厂气味刺鼻，担心污染"],
}


def corpus() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, templates in TEMPLATES.items():
        for template in templates:
            for place in PLACES:
                texts.append(template.format(place))
                labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def model() -> TextClassifier:
    return train(*corpus())


# -- one representation for raw text and segmented tokens -----------------------------


def test_raw_text_and_segmented_tokens_normalise_to_the_same_string() -> None:
    assert normalise("A市的公交车经常晚点。") == normalise("A市 公交车 经常 晚点") == "a市公交车经常晚点"


def test_normalise_folds_full_width_letters_digits_and_case() -> None:
    assert normalise("ＡＢｃ１２３路，（　）") == "abc123路"


def test_char_ngrams_give_exactly_what_scikit_learn_tfidf_gives() -> None:
    train_docs = [normalise(t) for t in corpus()[0]]
    new_docs = ["", "x", "公交", "公交车晚点，化工厂偷排", "生僻字𠀀出现在公交站"]
    mine = CharNgrams(4, min_df=2).fit(train_docs)
    reference = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), min_df=2, sublinear_tf=True,
                                lowercase=False).fit(train_docs)
    assert mine.size == len(reference.vocabulary_)
    columns = [reference.vocabulary_[str(gram)] for gram in mine.grams()]
    expected = reference.transform(new_docs).toarray()[:, columns]
    assert np.allclose(mine.transform(new_docs).toarray(), expected)


# -- predictions ---------------------------------------------------------------------------


def test_predicts_the_category_of_wording_it_has_not_seen(model: TextClassifier) -> None:
    predictions = model.predict(["北湖区的公交车又晚点了", "学校收费太高，家长负担不起", "工厂排放废水，河里的鱼都死了"])
    assert [p.label for p in predictions] == ["交通运输", "教育文体", "环境保护"]


def test_score_is_the_probability_of_the_label_and_top_lists_the_best_first(model: TextClassifier) -> None:
    [prediction] = model.predict(["西山镇红绿灯坏了，路口很危险"])
    assert isinstance(prediction, Prediction)
    assert len(prediction.top) == 3
    assert prediction.top[0] == (prediction.label, prediction.score)
    scores = [score for _, score in prediction.top]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0)  # three categories: top holds them all


def test_segmented_tokens_are_classified_like_the_raw_text(model: TextClassifier) -> None:
    raw, tokens = model.predict(["东湖街道的化工厂夜间偷排废水。", "东湖街道 化工厂 夜间 偷排 废水"])
    assert raw == tokens


def test_text_without_known_characters_still_gets_an_uncertain_prediction(model: TextClassifier) -> None:
    [prediction] = model.predict(["Ωψ"])
    assert prediction.label in model.labels
    assert prediction.score < 0.9


def test_predicting_no_texts_gives_no_predictions(model: TextClassifier) -> None:
    assert model.predict([]) == []


def test_two_categories_are_enough() -> None:
    texts, labels = corpus()
    pairs = [(t, label) for t, label in zip(texts, labels) if label != "教育文体"]
    binary = train([t for t, _ in pairs], [label for _, label in pairs])
    assert binary.labels == ("交通运输", "环境保护")
    [prediction] = binary.predict(["化工厂偷排废水"])
    assert prediction.label == "环境保护" and prediction.score > 0.5
    assert binary.explain("化工厂偷排废水")


def test_temperature_recovers_how_overconfident_raw_scores_are() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4000, 5))
    probabilities = np.exp(logits / 2.5)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(5, p=p) for p in probabilities])
    assert _fit_temperature(logits, truth) == pytest.approx(2.5, rel=0.1)


# -- explanation ---------------------------------------------------------------------------


def test_explain_names_words_of_the_text_that_point_to_the_category(model: TextClassifier) -> None:
    text = "南门社区化工厂偷排废水"
    words = model.explain(text, "环境保护", k=3)
    assert 1 <= len(words) <= 3
    assert all(word in normalise(text) and len(word) > 1 and weight > 0 for word, weight in words)
    assert [w for _, w in words] == sorted((w for _, w in words), reverse=True)
    assert any(key in word for word, _ in words for key in ("化工", "偷排", "废水", "排废"))


def test_explain_sums_each_ngram_over_text_and_subject_and_lists_the_first_met_of_equal_weights(
        model: TextClassifier) -> None:
    """The explanation, computed the plain way: every feature column of the text decoded to its
    n-gram, weights summed per n-gram, heaviest first, and of n-grams that always occur together
    (equal weights) the one met first in column order, the shorter."""

    def plainly(text: str, label: str, k: int) -> list[tuple[str, float]]:
        features = model._compute_features([text])
        column_of = model.labels.index(label)
        weights: dict[str, float] = {}
        for column, value in zip(features.indices, features.data):
            ngrams, at = (model.text, column) if column < model.text.size else (model.head, column - model.text.size)
            key, chars = int(ngrams.keys[at]), []
            while key:
                chars.append(str(ngrams.chars[(key & 0xFFFF) - 1]))
                key >>= 16
            gram = "".join(chars)
            weights[gram] = weights.get(gram, 0.0) + float(value * model.weights[column, column_of])
        # Single characters only when the text has no longer n-gram at all.
        ranked = sorted([(g, w) for g, w in weights.items() if len(g) > 1] or weights.items(),
                        key=lambda item: -item[1])
        chosen: list[tuple[str, float]] = []
        for gram, weight in ranked:
            if weight <= 0 or len(chosen) == k:
                break
            if not any(gram in kept or kept in gram for kept, _ in chosen):
                chosen.append((gram, round(weight, 4)))
        return chosen

    texts, labels = corpus()
    for text, label in zip(texts, labels):
        assert model.explain(text, label, 5) == plainly(text, label, 5)
    lone = "车"  # no n-gram longer than one character: the character itself explains
    assert any(model.explain(lone, label, 5) for label in model.labels)
    for label in model.labels:
        assert model.explain(lone, label, 5) == plainly(lone, label, 5)


def test_explain_defaults_to_the_predicted_category(model: TextClassifier) -> None:
    text = "B区公交车晚点"
    assert model.explain(text) == model.explain(text, model.predict([text])[0].label)


def test_explain_refuses_a_category_the_model_does_not_know(model: TextClassifier) -> None:
    with pytest.raises(ValueError, match="未知类别"):
        model.explain("公交车晚点", "卫生计生")


# -- versions, saving, loading -------------------------------------------------------------


def test_version_is_time_and_a_hash_of_the_training_data() -> None:
    texts, labels = corpus()
    first, again = train(texts, labels), train(texts, labels)
    other = train(texts[1:], labels[1:])
    assert first.version.split("-")[1] == again.version.split("-")[1] != other.version.split("-")[1]
    assert first.version[:8].isdigit() and first.version[8] == "T"
    assert train(texts, labels, version="v-test").version == "v-test"


def test_model_counts_training_rows_per_category(model: TextClassifier) -> None:
    assert model.label_counts == {"交通运输": 24, "教育文体": 24, "环境保护": 24}


def test_saved_model_loads_with_the_same_predictions_and_a_readable_sidecar(model: TextClassifier,
                                                                            tmp_path: Path) -> None:
    model.metrics = {"accuracy": 1.0}
    path = model.save(tmp_path / "models")
    assert path.name == f"router-classifier-{model.version}.joblib"
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["version"] == model.version
    assert sidecar["label_counts"] == model.label_counts
    assert sidecar["metrics"] == {"accuracy": 1.0}
    texts = ["C县体育馆不开放", "A市化工厂偷排"]
    assert load(path).predict(texts) == model.predict(texts)
    assert load(tmp_path / "models").version == model.version


def test_loading_a_folder_takes_the_newest_model(model: TextClassifier, tmp_path: Path) -> None:
    texts, labels = corpus()
    train(texts, labels, version="20260101T000000Z-old").save(tmp_path)
    train(texts, labels, version="20261122T000000Z-new").save(tmp_path)
    assert load(tmp_path).version == "20261122T000000Z-new"


def test_loading_an_empty_folder_says_to_train_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-router"):
        load(tmp_path)


def test_training_refuses_data_it_cannot_learn_from() -> None:
    with pytest.raises(ValueError, match="数量须一致"):
        train(["公交车晚点"], ["交通运输", "环境保护"])
    with pytest.raises(ValueError, match="至少需要两个类别"):
        train(["公交车晚点", "红绿灯坏了"], ["交通运输", "交通运输"])
    with pytest.raises(ValueError, match="环境保护"):
        train(["公交车晚点", "红绿灯坏了", "废水"], ["交通运输", "交通运输", "环境保护"])
    with pytest.raises(ValueError, match="训练文本太少"):
        train(["公交车晚点", "红绿灯坏了", "废水", "污水"], ["交通运输", "交通运输", "环境保护", "环境保护"])


# -- training data and evaluation ----------------------------------------------------------


def test_reads_messages_as_subject_plus_body(tmp_path: Path) -> None:
    path = tmp_path / "messages.csv"
    path.write_text("id,user,subject,time,body,label\n"
                    "1,u1,公交晚点,2019-01-01 08:00:00,每天都晚点,交通运输\n"
                    "P7,,,,学校乱收费问题家长负担重,教育文体\n", encoding="utf-8")
    assert read_labelled_csv(path) == (["公交晚点 每天都晚点", "学校乱收费问题家长负担重"], ["交通运输", "教育文体"])


def test_reads_segmented_rows_as_their_tokens(tmp_path: Path) -> None:
    path = tmp_path / "segmented.csv"
    path.write_text("fujian2_row,tokens,label\n24,化工厂 偷排 废水,环境保护\n", encoding="utf-8")
    assert read_labelled_csv(path) == (["化工厂 偷排 废水"], ["环境保护"])


def test_a_csv_of_another_shape_or_without_a_label_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("text,category\n公交晚点,交通运输\n", encoding="utf-8")
    with pytest.raises(ValueError, match="tokens,label"):
        read_labelled_csv(other)
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("fujian2_row,tokens,label\n1,公交 晚点,交通运输\n2,化工厂 废水,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="第 3 行"):
        read_labelled_csv(unlabelled)


def test_holdout_split_is_stratified_and_the_same_every_time() -> None:
    texts, labels = corpus()
    split = holdout_split(texts, labels)
    assert len(split.test_texts) == 15 and len(split.train_texts) == 57
    assert sorted(set(split.test_labels)) == sorted(TEMPLATES)
    assert holdout_split(texts, labels) == split
    assert set(split.train_texts).isdisjoint(split.test_texts)


class Fixed:
    """A stand-in model whose predictions the test chooses."""

    version = "fixed"
    labels = ("交通运输", "环境保护")

    def __init__(self, predictions: list[tuple[str, float]]) -> None:
        self.predictions = predictions

    def predict(self, texts: list[str]) -> list[Prediction]:
        return [Prediction(label, score, ((label, score),)) for label, score in self.predictions]


def test_evaluation_counts_accuracy_f1_confusion_and_calibration() -> None:
    truth = ["交通运输"] * 5 + ["环境保护"] * 5
    guesses = [("交通运输", 0.8)] * 5 + [("环境保护", 0.8)] * 3 + [("交通运输", 0.8)] * 2
    report = evaluate(Fixed(guesses), ["t"] * 10, truth)
    assert report.accuracy == pytest.approx(0.8)
    assert report.confusion == ((5, 0), (2, 3))
    assert report.per_class["环境保护"].recall == pytest.approx(0.6)
    assert report.per_class["交通运输"].precision == pytest.approx(5 / 7)
    assert report.macro_f1 == pytest.approx((2 * 5 / 12 + 2 * 3 / 8) / 2)
    assert report.calibration_error == pytest.approx(0.0)  # 80 % sure and 80 % right
    assert [(row.threshold, row.coverage) for row in report.thresholds][-2:] == [(0.8, 1.0), (0.9, 0.0)]


def test_report_names_categories_in_chinese_and_aligns_the_confusion_matrix(model: TextClassifier) -> None:
    texts, labels = corpus()
    report = evaluate(model, texts, labels)
    assert isinstance(report, EvalReport) and report.accuracy == 1.0
    text = format_report(report)
    assert "交通运输" in text and "准确率" in text and model.version in text
    lines = text.splitlines()
    start = lines.index("混淆矩阵（行：实际类别，列：预测类别）") + 1
    matrix = lines[start:start + 4]
    widths = {sum(2 if ord(ch) > 0x2E80 else 1 for ch in line) for line in matrix}
    assert len(widths) == 1, "\n".join(matrix)
    assert matrix[1].split()[-3:] == ["24", "0", "0"]

"""The classifier in force: trained from our examples on first start, versioned in the database, replaceable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.router import models
from services.router.domain.decide import decide
from services.router.domain.directory import Directory
from services.router.domain.rules import TicketFacts


@pytest.fixture
def store(router_store):
    return router_store


async def test_a_starter_model_is_trained_stored_and_loaded_with_its_version(store):
    directory = Directory.default()
    model_id, model = await models.train_starter(store, directory)
    assert models.unknown_labels(model.labels, directory) == []
    again_id, again = await models.active_model(store)
    assert again_id == model_id and again.version == model.version
    assert again.predict(["小区门口的路灯坏了一个星期"])[0].label == model.predict(["小区门口的路灯坏了一个星期"])[0].label


async def test_a_model_decision_says_which_version_and_which_words_decided(store):
    directory = Directory.default()
    _, model = await models.train_starter(store, directory)
    facts = TicketFacts(subject="路灯不亮", description="小区门口的路灯坏了一个多星期，晚上很黑。", district="D-02",
                        channel="hotline", kind="complaint")
    d = decide(directory, facts, classifier=model, threshold=0.5)
    assert d.outcome == "assign" and d.reason.method == "model"
    assert d.reason.model_version == model.version and 0.5 <= d.reason.score <= 1
    assert any("路灯" in word for word in d.reason.top_features)


def _jiesu(tmp_path, *args) -> subprocess.CompletedProcess:
    env = {"JIESU_DATA_DIR": str(tmp_path), "JIESU_SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "jiesu.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_train_router_activates_a_new_version_and_refuses_labels_the_directory_lacks(tmp_path):
    assert _jiesu(tmp_path, "migrate", "router").returncode == 0
    good = tmp_path / "more.csv"
    good.write_text("subject,body,category\n路灯坏了,小区路灯坏了很久,CM.FACILITY.LIGHT\n"
                    "路灯不亮,门口路灯晚上不亮,CM.FACILITY.LIGHT\n", encoding="utf-8")
    first = _jiesu(tmp_path, "train-router", str(good))
    assert first.returncode == 0, first.stderr
    assert "已启用模型" in first.stdout
    evaluation = _jiesu(tmp_path, "eval-router", str(good))
    assert evaluation.returncode == 0 and "macro" in evaluation.stdout.lower()

    bad = tmp_path / "foreign.csv"
    bad.write_text("subject,body,label\n" + "".join(f"标题{i},内容{i}很长很长,外来类别{i % 2}\n" for i in range(6)),
                   encoding="utf-8")
    refused = _jiesu(tmp_path, "train-router", str(bad), "--no-demo")
    assert refused.returncode == 1 and "外来类别0" in refused.stderr
    history = _jiesu(tmp_path, "eval-router", str(good))
    assert history.returncode == 0  # the model in force is still the good one

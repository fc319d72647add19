"""The classifier in use: trained, versioned, stored in the router's database, shared by every router.

Models live in `router_models` (the newest row is the one in force), so every router instance
routes with the same version and each assignment records which version decided it. On a
fresh system the first router trains a starter model from our own example tickets
(`directory/demo_examples.csv`) plus any dispatcher decisions already recorded.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path

import joblib
from sqlalchemy import select

from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore
from schemas.events import utcnow
from services.router.domain.classifier import TextClassifier, train
from services.router.domain.directory import Directory
from services.router.store import models, training_examples
from services.router.training import read_labelled_csv

log = get_logger(__name__)
DEMO_EXAMPLES = Path(__file__).resolve().parent / "directory" / "demo_examples.csv"


def to_bytes(model: TextClassifier) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def from_bytes(content: bytes) -> TextClassifier:
    model = joblib.load(io.BytesIO(content))
    if not isinstance(model, TextClassifier):
        raise ValueError("stored router model is not a TextClassifier")
    return model


async def active_model(store: ServiceStore) -> tuple[int, TextClassifier] | None:
    async with store.db.session() as s:
        row = (await s.execute(select(models.c.id, models.c.content).order_by(models.c.id.desc()).limit(1))).first()
    if row is None:
        return None
    return row.id, await asyncio.to_thread(from_bytes, row.content)


async def latest_model_id(store: ServiceStore) -> int | None:
    async with store.db.session() as s:
        return await s.scalar(select(models.c.id).order_by(models.c.id.desc()).limit(1))


async def activate(store: ServiceStore, model: TextClassifier, *, by: str) -> int:
    content = await asyncio.to_thread(to_bytes, model)
    async with store.db.session() as s:
        result = await s.execute(models.insert().values(
            version=model.version, created_at=utcnow(), trained_by=by, metadata_=model.metadata(), content=content))
        model_id = result.inserted_primary_key[0]
    log.info("router model activated", version=model.version, by=by, labels=len(model.labels))
    return model_id


async def dispatcher_examples(store: ServiceStore) -> tuple[list[str], list[str]]:
    """What dispatchers decided, where the decision names a category: the best training data there is."""
    async with store.db.session() as s:
        rows = (await s.execute(select(training_examples.c.subject, training_examples.c.description,
                                       training_examples.c.category)
                                .where(training_examples.c.category.is_not(None)))).all()
    return [f"{r.subject} {r.description}" for r in rows], [r.category for r in rows]


def unknown_labels(labels: Sequence[str], directory: Directory) -> list[str]:
    known = {c.code for c in directory.categories}
    return sorted(set(labels) - known)


async def train_starter(store: ServiceStore, directory: Directory) -> tuple[int, TextClassifier]:
    """First start: a model from our example tickets and the dispatchers' decisions so far."""
    texts, labels = read_labelled_csv(DEMO_EXAMPLES)
    more_texts, more_labels = await dispatcher_examples(store)
    texts, labels = texts + more_texts, labels + more_labels
    keep = set(labels) - set(unknown_labels(labels, directory))
    pairs = [(t, label) for t, label in zip(texts, labels, strict=True) if label in keep]
    model = await asyncio.to_thread(train, [t for t, _ in pairs], [label for _, label in pairs])
    return await activate(store, model, by="system"), model

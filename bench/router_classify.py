"""How fast the router's classifier places tickets, on one CPU core.

    python -m bench.router_classify [--model PATH] [--jobs 2] [--repeat 3]

Trains on the TipDM 2020 C training part (80 % of messages_train.csv plus
extra_segmented_train.csv; `--model` loads a saved model instead), then pins itself to one
core and times the held-out real messages: one ticket per call, as the router sees them
arrive, and whole batches, as retraining or a re-evaluation does. Prints figures; asserts
nothing. The data is found in ../shared/data (JIESU_SHARED_DATA overrides).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from services.router.domain.classifier import TextClassifier, load, train
from services.router.training import evaluate, holdout_split, read_labelled_csv

BATCH = 256


def data_dir() -> Path:
    shared = os.environ.get("JIESU_SHARED_DATA")
    root = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared/data"
    return root / "tipdm2020c"


def per_second(count: int, seconds: float) -> str:
    return f"{count / seconds:10,.0f} tickets/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a saved model (file or directory) instead of training one")
    parser.add_argument("--jobs", type=int, default=2, help="processes for training (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the held-out texts (default 3)")
    args = parser.parse_args(argv)

    folder = data_dir()
    if not (folder / "messages_train.csv").exists():
        print(f"TipDM 2020 C data not found in {folder}; set JIESU_SHARED_DATA to the shared/data folder")
        return 2
    texts, labels = read_labelled_csv(folder / "messages_train.csv")
    split = holdout_split(texts, labels)
    model: TextClassifier
    if args.model:
        model = load(args.model)
        print(f"model {model.version} loaded from {args.model}")
    else:
        extra_texts, extra_labels = read_labelled_csv(folder / "extra_segmented_train.csv")
        started = time.perf_counter()
        model = train(split.train_texts + extra_texts, split.train_labels + extra_labels, n_jobs=args.jobs)
        print(f"trained {model.version} on {sum(model.label_counts.values()):,} rows "
              f"in {time.perf_counter() - started:.1f} s ({args.jobs} processes)")

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sample = split.test_texts * args.repeat
    lengths = [len("".join(t.split())) for t in split.test_texts]
    print(f"held-out messages: {len(split.test_texts)} (characters: median {statistics.median(lengths):.0f}, "
          f"mean {statistics.mean(lengths):.0f}), timed {args.repeat}x on one core")
    with threadpool_limits(1):
        model.predict(sample[:50])  # warm-up
        started = time.perf_counter()
        for text in sample:
            model.predict([text])
        single = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(sample), BATCH):
            model.predict(sample[i:i + BATCH])
        batch = time.perf_counter() - started
        started = time.perf_counter()
        model.explain(sample[0])
        explain_ms = (time.perf_counter() - started) * 1000
        report = evaluate(model, split.test_texts, split.test_labels)
    print(f"single-ticket predict  {per_second(len(sample), single)}  ({single / len(sample) * 1000:.2f} ms each)")
    print(f"batch predict ({BATCH})    {per_second(len(sample), batch)}")
    print(f"explain one ticket     {explain_ms:10.1f} ms")
    print(f"held-out accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

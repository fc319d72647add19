"""A served app leaves start-up's objects out of the garbage collector's passes (jiesu.app.settle_heap)."""

from __future__ import annotations

import gc
import os
import signal

import pytest
from fastapi import FastAPI

from jiesu import app as served
from jiesu.embedded_broker import free_port


@pytest.fixture
def collector():
    """The collector as the test found it, afterwards: other tests must not run frozen."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settling_freezes_what_lives_now_and_collects_the_young_less_often(collector):
    gc.unfreeze()
    survivor = [object()]
    served.settle_heap()
    assert gc.get_freeze_count() > 1000
    assert not any(o is survivor for o in gc.get_objects())  # frozen: in no generation the collector scans
    assert gc.get_threshold()[0] == served.GC_YOUNGEST_THRESHOLD > 700


async def test_serve_settles_the_heap_once_start_up_is_over_and_before_saying_it_is_ready(collector):
    gc.unfreeze()
    seen = []

    def ready() -> None:
        seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))
        os.kill(os.getpid(), signal.SIGTERM)  # serve() stops on SIGTERM, as `jiesu run` does

    await served.serve(FastAPI(), "127.0.0.1", free_port(), on_ready=ready)
    [(frozen, youngest)] = seen
    assert frozen > 1000 and youngest == served.GC_YOUNGEST_THRESHOLD

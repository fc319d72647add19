"""Build the ASGI app for a set of services, and serve it."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys

import uvicorn
from fastapi import FastAPI

from jiesu.config import Settings
from jiesu.logging import get_logger
from jiesu.runtime import Runtime, load_spec
from jiesu.web import create_app

log = get_logger(__name__)


def build_app(settings: Settings, services: list[str], *, bootstrap: str | None = None) -> FastAPI:
    specs = [load_spec(name) for name in services]
    routers = [r for spec in specs for r in spec.routers]
    statics = [(spec.name, spec.static_dir) for spec in specs if spec.static_dir and spec.static_dir.is_dir()]
    target = bootstrap or settings.broker_url
    return create_app(lambda: Runtime.create(settings, services, bootstrap=target), routers, static_dirs=statics,
                      opentelemetry=settings.opentelemetry)


# Allocations between two collections of the youngest generation (CPython's default is 700).
GC_YOUNGEST_THRESHOLD = 5000


def settle_heap() -> None:
    """Leave what start-up built out of the garbage collector's passes, and collect the young less often.

    A service holds some 240,000 objects from start-up (modules, tables, schemas, routes, the
    router's model and directory) for as long as it runs, yet every full collection walked them
    all again, and requests and batches that live a few hundred milliseconds set one off about
    once a second: under load the collector took 19 % of intake's CPU, 11 % of the tracker's and
    7 % of the router's. Frozen, start-up's objects are never scanned; collected every 5,000
    allocations, fewer short-lived objects live long enough to be promoted. The collector's share
    fell below 2 % and a ticket's CPU by about a tenth (`jiesu bench --mode services`). Objects
    frozen here are still freed when their last reference goes; only a cycle among them (a
    reloaded model's, say) would stay until the process ends.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, *gc.get_threshold()[1:])


async def serve(app: FastAPI, host: str, port: int, *, on_ready=None) -> None:
    # Off the hot paths aiosqlite hands each statement to a thread and back (jiesu.db); with
    # the default 5 ms GIL switch interval each hand-off can wait that long under load.
    sys.setswitchinterval(0.0005)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # we own SIGINT/SIGTERM below
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        settle_heap()  # start-up is over: the services, their models and caches are built
        if on_ready:
            on_ready()
    await task


def exit_if_stuck(app: FastAPI) -> None:
    """End the process at once if stopping left background tasks that would not end (each was
    logged with where it waits): the event loop's own clean-up would wait for them for ever."""
    runtime = getattr(app.state, "runtime", None)
    if runtime is not None and runtime.stuck:
        log.error("exiting without the background tasks that would not end", tasks=runtime.stuck)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)

"""Build the ASGI app for a set of services, and serve it."""

from __future__ import annotations

import asyncio
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
    if server.started and on_ready:
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

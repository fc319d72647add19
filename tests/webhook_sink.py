"""A real webhook receiver (an HTTP server on a loopback port) that keeps the calls it takes, for the tests that
tell departments by webhook.

One sink serves every such test; what a test needs it to answer is said through the address it is called at (a
status to answer with) or through the sink's parameters (which may be changed while the test runs): the next calls
failing for now.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jiesu.embedded_broker import free_port


class WebhookSink:
    """Keeps each POST it takes, failed or not, as (headers, body) in `calls`; headers' names in lower case.

    A POST to <url> is answered 200, one to <url>/<status> (e.g. /hook/404) with that status.
    failures: how many of the next calls to answer 503 (the receiver failing for now), whatever their address.
    """

    def __init__(self, *, failures: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures

    async def receive(self, request: Request) -> Response:
        self.calls.append((dict(request.headers), await request.body()))
        if self.failures:
            self.failures -= 1
            return Response(status_code=503)
        return Response(status_code=request.path_params.get("status", 200))


@contextlib.asynccontextmanager
async def webhook_server(sink: WebhookSink | None = None) -> AsyncIterator[tuple[WebhookSink, str]]:
    """`sink` (a new one if none) listening on a free loopback port until the block ends: yields it and its URL."""
    sink = sink if sink is not None else WebhookSink()
    app = Starlette(routes=[Route("/hook", sink.receive, methods=["POST"]),
                            Route("/hook/{status:int}", sink.receive, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():  # it could not listen: say why rather than wait for ever
                task.result()
                raise RuntimeError("the webhook receiver did not start")
            await asyncio.sleep(0.02)
        yield sink, f"http://127.0.0.1:{port}/hook"
    finally:
        server.should_exit = True
        await task

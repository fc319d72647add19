"""Request-size limits, enforced before the body is parsed (a clear 413, early).

FastAPI reads and parses the body before any dependency runs, so the limit sits in the
route class: the declared Content-Length is checked first, and a body sent without one
(chunked) is counted as it streams and cut off at the limit. The body is read here, and
the handler parses the cached bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute

from jiesu.errors import ApiError

JSON_LIMIT = 256 * 1024  # a ticket's text is at most ~80 KB in UTF-8
FORM_LIMIT = 64 * 1024
UPLOAD_LIMIT = 26 * 1024 * 1024  # five attachments of 5 MB and the letter


class BodyTooLarge(Exception):
    pass


def too_large(limit: int) -> ApiError:
    size = f"{limit // 1024 // 1024} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return ApiError(413, "payload_too_large", f"提交的内容过大，上限为 {size}；请删减文字或附件后重试",
                    f"The request is too large (limit {size}); shorten the text or attachments and retry")


def _limit_body(request: Request, limit: int) -> None:
    receive = request.receive
    seen = 0

    async def counting():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge()
        return message

    request._receive = counting  # noqa: SLF001 - Starlette's documented way to wrap the body stream


class LimitedRoute(APIRoute):
    """A route whose request body may not exceed `limit` bytes (set per router by `limited`)."""

    limit: int = JSON_LIMIT

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        limit = self.limit

        async def limited(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:  # the app's error handlers: a page or JSON
                raise too_large(limit)
            if request.method in ("POST", "PUT", "PATCH"):
                _limit_body(request, limit)
                try:
                    await request.body()  # read (and count) now; the handler parses the cached bytes
                except BodyTooLarge:
                    raise too_large(limit) from None
            return await handler(request)

        return limited


def limited(limit: int, base: type[LimitedRoute] = LimitedRoute) -> type[LimitedRoute]:
    return type(f"{base.__name__}{limit}", (base,), {"limit": limit})


def client_address(request: Request) -> str:
    """The address rate limits count by (the reverse proxy's, unless it is configured to pass the client's)."""
    return request.client.host if request.client else "unknown"

"""Web stage: the cap on request bodies, checked before and while a body is read."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A one-click unsubscribe body is 26 bytes and a vote a few more: anything big is not ours.
BODY_LIMIT = 4096


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware answering `too_large()` (a 413 page) to a body over `limit` bytes,
    whether its Content-Length says so up front or a chunked body grows past it."""

    def __init__(self, app: ASGIApp, limit: int, too_large: Callable[[], Response]) -> None:
        self.app, self.limit, self.too_large = app, limit, too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            await self.too_large()(scope, receive, send)
            return
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self.too_large()(scope, receive, send)

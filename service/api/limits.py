"""A cap on the size of request bodies: 413 with a clear message, before anything parses them.

Without one a 20 MB ``workload_params`` string was accepted and every list page that showed it grew
to 21 MB. The cap (``Settings.max_request_bytes``, 1 MiB by default) is checked against a declared
``Content-Length`` before the body is read, and against the bytes actually received while reading it
(a chunked upload declares no length), so no more than the cap is ever held in memory.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit", "too_large_message"]


def too_large_message(limit: int) -> str:
    """The 413's ``detail``: what the limit is and where it is set."""
    return f"the request body is larger than the limit of {limit} bytes (DEMONLAB_MAX_REQUEST_BYTES)"


def _replay(messages: list[Message], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` (then ``last``) once, then defers to the real one."""
    queue = [*messages, *([last] if last is not None else [])]

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


class BodySizeLimit:
    """ASGI middleware: refuse HTTP request bodies over ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        received = 0
        more_body = True
        while more_body:  # read the whole body first (at most ``limit`` bytes), then replay it
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more_body = bool(message.get("more_body", False))
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], None, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_message(self.limit), "field": "body"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

"""A cap on the size of request bodies: 413 with a clear message, before anything parses them.

Without one a 20 MB ``workload_params`` string was accepted and every list page that showed it grew
to 21 MB. The cap (``Settings.max_request_bytes``, 1 MiB by default) is checked against a declared
``Content-Length`` before the body is read, and against the bytes actually received while reading it
(a chunked upload declares no length), so no more than the cap is ever held in memory.

The whole body must also arrive within ``body_timeout`` seconds (``Settings.http_body_timeout_s``,
30 s): a client that sends part of a body and stops got its buffers held forever; it now gets a 408
and its connection is closed (see ``service.api.server`` for the other time limits).
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit", "too_large_message", "too_slow_message"]


def too_large_message(limit: int) -> str:
    """The 413's ``detail``: what the limit is and where it is set."""
    return f"the request body is larger than the limit of {limit} bytes (DEMONLAB_MAX_REQUEST_BYTES)"


def too_slow_message(timeout: float) -> str:
    """The 408's ``detail``: how long a body may take and where that is set."""
    return f"the request body did not arrive within {timeout:g} s (DEMONLAB_HTTP_BODY_TIMEOUT_S)"


def _replay(messages: list[Message], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` (then ``last``) once, then defers to the real one."""
    queue = [*messages, *([last] if last is not None else [])]

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


class BodySizeLimit:
    """ASGI middleware: refuse HTTP request bodies over ``limit`` bytes with 413, and bodies that take
    longer than ``body_timeout`` seconds to arrive with 408."""

    def __init__(self, app: ASGIApp, limit: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.body_timeout = body_timeout

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
        deadline = time.monotonic() + self.body_timeout
        while more_body:  # read the whole body first (at most ``limit`` bytes), then replay it
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                chunks.clear()
                await self._send_error(send, 408, too_slow_message(self.body_timeout))
                return
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
        await self._send_error(send, 413, too_large_message(self.limit))

    async def _send_error(self, send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail, "field": "body"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 408:  # the rest of the body may still come: the connection cannot be reused
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

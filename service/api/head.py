"""HEAD wherever GET is: FastAPI routes answer only the methods they declare, so ``curl -I`` (and
link checkers, monitors, caches revalidating) got 405 from every page and endpoint. This ASGI
middleware runs a HEAD request as the GET it stands for and sends its status and headers (the
``Content-Length`` of the body a GET would get, as RFC 9110 asks) without the body. A streaming
answer (the live events) is ended after its headers: the app sees the client leave.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: answer HEAD as GET, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = False

        async def headers_only(message: Message) -> None:
            nonlocal finished
            if finished:  # a stream goes on: stop it as a client gone would (Starlette's StreamingResponse)
                raise OSError("HEAD: the answer was its headers")
            if message["type"] == "http.response.body":
                finished = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        async def leave_once_answered() -> Message:
            if finished:
                return {"type": "http.disconnect"}
            return await receive()

        try:
            await self.app({**scope, "method": "GET"}, leave_once_answered, headers_only)
        except (OSError, ClientDisconnect):
            if not finished:
                raise

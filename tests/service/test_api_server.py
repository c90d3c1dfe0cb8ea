"""``service.api.server``: how uvicorn serves the app. Here: every connection sends small writes at
once (TCP_NODELAY), also on a listening socket made with ``socket.socket()`` as ``demonlab serve``
used to (asyncio then leaves Nagle on, and each kept-alive request waited ~40 ms for a delayed ACK).

A real uvicorn on a real socket; the option is read from the accepted socket itself.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.api.server import server_config
from service.settings import Settings


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app: 200 "ok" (lifespan events are acknowledged)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """uvicorn with the service's config on a ``socket.socket()`` (proto 0); the TCP_NODELAY value
    of each connection it accepted."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    config = server_config(hello, settings, log_level="warning", lifespan="on")
    protocol = config.http
    assert isinstance(protocol, type)
    seen: list[int] = []

    class Recording(protocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    config.http = Recording
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: asyncio skips TCP_NODELAY on these
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started
        yield url, seen
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_every_connection_sends_small_writes_at_once(served: tuple[str, list[int]]) -> None:
    url, seen = served
    with httpx.Client(base_url=url) as client:  # one kept-alive connection, three requests
        assert [client.get("/").text for _ in range(3)] == ["ok"] * 3
    with httpx.Client(base_url=url) as client:  # and a second connection
        assert client.get("/").text == "ok"

    assert len(seen) == 2
    assert all(value != 0 for value in seen), seen

"""How uvicorn serves the app: time limits on slow clients and a cap on connections.

Without them a client that sends half its headers, or part of a body, holds its connection and its
buffers forever: 300 partial 1 MiB bodies kept 259 MB of the server's memory. The numbers (each a
``Settings`` field, ``DEMONLAB_HTTP_*``):

- ``http_header_timeout_s`` (10 s): a connection must finish sending a request's headers within this
  long of opening, or of starting the request, else it is closed. uvicorn itself only times out a
  connection that is idle *between* requests (its keep-alive timeout), never one in the middle of its
  headers; ``HeaderTimeoutH11`` adds that.
- ``http_body_timeout_s`` (30 s): a request's whole body must arrive within this long, else 408 and
  the connection is closed (``service.api.limits.BodySizeLimit``). 1 MiB in 30 s is 35 KB/s.
- ``http_keep_alive_s`` (5 s, uvicorn's ``timeout_keep_alive``): an idle keep-alive connection closes.
- ``http_max_connections`` (1000, uvicorn's ``limit_concurrency``): past this many connections and
  tasks at once, new requests get 503 rather than memory. Event streams (the dashboard, ``submit
  --wait``) hold one connection each for as long as they follow a study.

Closing a slow client frees its buffers, but glibc's allocator kept the freed 64 KiB body chunks in
its heap (RSS stayed up by what they held). ``return_large_buffers_to_the_os`` makes glibc serve
allocations of 32 KiB and more with their own mappings, unmapped when freed, so the memory goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import socket
from typing import Any

import h11
from uvicorn import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..settings import Settings

__all__ = ["HeaderTimeoutH11", "listening_socket", "return_large_buffers_to_the_os", "server_config"]

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
LARGE_BUFFER_BYTES = 32 * 1024


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that takes longer than ``header_timeout`` to send a
    request's headers (from the connection's start, or from the first byte of a later request)."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers():
            if self._header_timer is None:  # a later request on a kept-alive connection has begun
                self._arm_header_timer()
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._disarm_header_timer()  # between requests the keep-alive timeout applies
        super().on_response_complete()

    def _awaiting_headers(self) -> bool:
        return bool(self.conn.their_state is h11.IDLE and not self.transport.is_closing())

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self._awaiting_headers():
            self.transport.close()


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once (TCP_NODELAY). asyncio sets it only on a listening socket made with
    ``proto=IPPROTO_TCP``; on one made with ``socket.socket()`` (proto 0) every kept-alive request
    waited ~40 ms: the response's second write (its body) waited for the ACK of the first, which
    the client delays (bench/api_latency.py: /healthz alone 44 ms, 1-3 ms with this)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` and listening, for uvicorn's ``Server.run(sockets=...)``.

    The server binds its own port, so ``port`` 0 takes a free one (read it back with
    ``getsockname()``) and nothing can take the port between choosing and serving it. ``OSError``
    (``EADDRINUSE``) when the port is in use. ``proto=IPPROTO_TCP``: asyncio then sets TCP_NODELAY on
    each accepted connection (``_no_delay`` sets it as well)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse a TIME_WAIT port
        sock.bind((host, port))
        sock.listen(2048)  # at once: a second socket with SO_REUSEADDR could bind the port until it listens
    except BaseException:
        sock.close()
        raise
    return sock


def return_large_buffers_to_the_os() -> bool:
    """glibc: allocations of ``LARGE_BUFFER_BYTES`` or more get their own mapping, returned to the OS
    when freed (elsewhere, or without glibc: nothing changes). Whether it took effect."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))
    except (OSError, AttributeError, TypeError):
        return False


def server_config(app: Any, settings: Settings, **kwargs: Any) -> Config:
    """uvicorn's ``Config`` for ``app`` with the settings' timeouts and connection cap (``kwargs``:
    any other uvicorn option, e.g. ``log_level``); large buffers go back to the OS when freed."""
    return_large_buffers_to_the_os()
    protocol = type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout": settings.http_header_timeout_s})
    return Config(
        app,
        http=protocol,
        timeout_keep_alive=settings.http_keep_alive_s,
        limit_concurrency=settings.http_max_connections,
        **kwargs,
    )

"""Per-client rate limits: the unauthenticated spec parser, and wrong bearer tokens.

Two limits, each per client address (``request.client.host``; behind a proxy, uvicorn's
``--proxy-headers`` makes it the forwarded address), counted in a moving window by the ``limits``
library, in this process's memory (each API replica counts its own clients):

- ``POST /specs/parse`` (``Settings.parse_rate_limit``, 10 per second): it needs no token and each
  request may cost up to tens of milliseconds of CPU (``service.api.text_limits`` bounds one).
- Wrong tokens (``Settings.failed_token_limit``, 10 per minute): a request with a bearer token that is
  unknown, expired or revoked counts; once the limit is reached, every request of that client that
  needs a token is refused until the window moves on, even with a right token, so guessing costs a
  minute per ten guesses. A request without any token does not count (it guesses nothing).

Over a limit: 429 with ``Retry-After`` (whole seconds until the window frees a slot).
"""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..errors import TooManyRequests

__all__ = ["RateLimits", "limit_spec_parsing"]


class RateLimits:
    """The app's limiters (one per app: tests build apps with limits of their own)."""

    def __init__(self, *, parse_limit: str, failed_token_limit: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.parse_limit: RateLimitItem = parse(parse_limit)
        self.failed_token_limit: RateLimitItem = parse(failed_token_limit)

    def spend_parse(self, client: str) -> None:
        """Count one spec parse of ``client``; ``TooManyRequests`` past the limit."""
        if not self._limiter.hit(self.parse_limit, "parse", client):
            raise TooManyRequests(
                f"too many spec parses from this address (limit {self.parse_limit})",
                self._retry_after(self.parse_limit, "parse", client),
            )

    def check_token_guesses(self, client: str) -> None:
        """``TooManyRequests`` while ``client`` has used up its wrong-token allowance."""
        if not self._limiter.test(self.failed_token_limit, "token", client):
            retry = self._retry_after(self.failed_token_limit, "token", client)
            raise TooManyRequests(f"too many wrong tokens from this address (limit {self.failed_token_limit})", retry)

    def count_wrong_token(self, client: str) -> None:
        """Count one request of ``client`` with a token that is not valid."""
        self._limiter.hit(self.failed_token_limit, "token", client)

    def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        reset = self._limiter.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset - time.time()))


def client_address(request: Request) -> str:
    """Who is counted: the client's address (``unknown`` where the server cannot tell)."""
    return request.client.host if request.client is not None else "unknown"


def rate_limits(request: Request) -> RateLimits:
    """The app's limiters (``create_app`` puts them on ``app.state``)."""
    limiter: RateLimits = request.app.state.rate_limits
    return limiter


def limit_spec_parsing(request: Request) -> None:
    """Dependency of ``POST /specs/parse``: counts the request against its client's limit."""
    rate_limits(request).spend_parse(client_address(request))

"""``Pacer``: the bottom layer; every request that reaches the wire waits for its slot and is counted.

It is an httpx ``request`` event hook, which httpx calls right before each
single send: every page, the token call, and the re-send after a token
re-issue are paced alike, whatever transport is below (a socket with the
environment's proxy settings, or the in-process simulator).  The api-id is
read from the request's ``api-id`` header.  Counts go to
``finder.client._stats`` (this process only), and the time each request
left is kept in ``departures`` (the last 100,000, this process only), so a
benchmark can check the pacing that actually happened, apart from the
server's own handling delays.
"""

from __future__ import annotations

import collections
import time

import httpx

from .._models import H_API_ID
from . import _stats


departures: collections.deque = collections.deque(maxlen=100_000)  # (api_id, time.time()) per request


class Pacer:
    """Acquire ``limiter``'s slot for the request's api-id and count the request."""

    def __init__(self, limiter) -> None:
        self.limiter = limiter  # MemoryRateLimiter or FileRateLimiter

    def __call__(self, request: httpx.Request) -> None:
        api_id = request.headers.get(H_API_ID, "")
        self.limiter.acquire(api_id)
        departures.append((api_id, time.time()))
        _stats.add(_stats.requests, api_id)

    def __repr__(self) -> str:
        return f"Pacer({self.limiter!r})"

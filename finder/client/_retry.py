"""Retry with bounded exponential backoff and jitter, around one whole send (auth flow included).

Only :class:`~finder.client._decode.Transient` failures are retried (429 /
1700, 5xx, timeouts, dropped connections, non-JSON bodies); after
``max_retries`` retries the last one is raised as ``RateLimitError`` (when it
was a rate limit) or ``TransportError``.  Typed API errors pass straight through.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from .._exceptions import RateLimitError, TransportError
from . import _stats
from ._decode import Transient

log = logging.getLogger("finder.client")

T = TypeVar("T")
MAX_DELAY = 8.0


def delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): ``backoff * 2**(attempt-1)``, capped, ±50 % jitter."""
    return min(MAX_DELAY, backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def with_retries(send: Callable[[], T], *, api_id: str, max_retries: int, backoff: float,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """``send()``, retried on :class:`Transient` up to ``max_retries`` times."""
    attempt = 0
    while True:
        try:
            return send()
        except Transient as t:
            if t.rate_limited:
                _stats.add(_stats.rate_limited, api_id)
            attempt += 1
            if attempt > max_retries:
                cls = RateLimitError if t.rate_limited else TransportError
                raise cls(f"{api_id}: gave up after {attempt} attempts; last: {t}") from None
            _stats.add(_stats.retries, api_id)
            wait = delay(attempt, backoff)
            log.warning("%s: %s; retry %d/%d in %.2fs", api_id, t, attempt, max_retries, wait)
            sleep(wait)

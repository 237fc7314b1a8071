"""Counters of what this process sent upstream, for ``finder.cache.info()`` and benchmarks.

Counts are per process and per api-id; nothing here is shared between processes
(the simulator's statistics endpoint is the cross-process truth in tests).
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
requests: Counter = Counter()      # every HTTP request sent, retries included
retries: Counter = Counter()       # requests sent again after a transient failure
rate_limited: Counter = Counter()  # 429 / 1700 answers received
token_issues = 0


def add(counter: Counter, api_id: str, n: int = 1) -> None:
    with _lock:
        counter[api_id] += n


def snapshot() -> dict:
    with _lock:
        return {
            "requests": dict(requests),
            "retries": dict(retries),
            "rate_limited": dict(rate_limited),
            "token_issues": token_issues,
        }


def reset() -> None:
    global token_issues
    with _lock:
        requests.clear()
        retries.clear()
        rate_limited.clear()
        token_issues = 0

"""Request pacing per (app key, api-id), shared by every process on the machine.

Kiwoom keys its limit on (app key, api-id) and allows little or no burst, and
several processes share one app key.  So the pacing state lives in a small
file per api-id in the (host, app key) folder of the per-user state folder
(``finder.client._state``; not the cache folder, so processes reading
different caches still pace together): the time at which the next
request may leave.  Each request takes the file lock, books the next free
slot, releases the lock and sleeps until its slot.  Requests therefore leave
at most ``rate`` per second *between all processes*, evenly spaced.

A request that wakes up late (the process was descheduled past its slot by
more than half an interval, common on a loaded machine) does not leave late:
it books a new slot instead, since leaving late would bunch it with the
requests booked after it, and three such requests close together exceed a
server's burst even when every slot was booked correctly.  After
``MAX_REBOOKS`` late wake-ups in a row it leaves anyway (never starved).

Not guaranteed: pacing between machines, or against a server whose clock
window differs; the client still backs off on a 429.  When the slot files
cannot be written (a read-only, full or unsafe state folder), this process paces
itself alone and says so once: other processes can then add to the rate.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from filelock import FileLock

from ._state import prepare

log = logging.getLogger("finder.client")

MAX_REBOOKS = 3
LATE = 0.5  # intervals: a wake-up this late past the slot books a new slot


def _paced(book, rate: float) -> float:
    """Book a slot with ``book() -> slot`` (a ``time.time()``), sleep until it, re-book when woken late.

    Returns the total time slept.
    """
    waited = 0.0
    for attempt in range(MAX_REBOOKS + 1):
        slot = book()
        now = time.time()
        if slot > now:
            time.sleep(slot - now)
            waited += slot - now
        if attempt == MAX_REBOOKS or time.time() - slot <= LATE / rate:
            return waited
    return waited


class MemoryRateLimiter:
    """Pacing inside one process (used with the in-process simulator)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryRateLimiter(rate={self.rate})"

    def acquire(self, api_id: str) -> float:
        if not self.rate:
            return 0.0
        return _paced(lambda: self._book(api_id), self.rate)

    def _book(self, api_id: str) -> float:
        with self._lock:
            now = time.time()
            slot = max(now, self._next.get(api_id, 0.0))
            self._next[api_id] = slot + 1.0 / self.rate
        return slot


class FileRateLimiter:
    """Pacing across processes through one slot file per (app key, api-id)."""

    def __init__(self, rate: float | None, folder: Path) -> None:
        self.rate = rate
        self.folder = Path(folder)
        self._alone: MemoryRateLimiter | None = None
        try:
            prepare(self.folder)
        except OSError as exc:
            self._go_alone(exc)

    def __repr__(self) -> str:
        return f"FileRateLimiter(rate={self.rate}, folder={str(self.folder)!r})"

    def _go_alone(self, exc: OSError) -> None:
        # A read-only, full or unsafe state folder must not stop requests: pace this process on its
        # own (other processes sharing the key may then add to the rate; the 429 backoff
        # still protects the limit).
        if self._alone is None:
            log.warning("finder: cannot share request pacing through %s (%s: %s); pacing this process alone",
                        self.folder, type(exc).__name__, exc.strerror or exc)
            self._alone = MemoryRateLimiter(self.rate)

    def _paths(self, api_id: str) -> tuple[Path, Path]:
        base = self.folder / f"pace-{api_id}"
        return base.with_suffix(".slot"), base.with_suffix(".lock")

    def acquire(self, api_id: str) -> float:
        if not self.rate:
            return 0.0
        if self._alone is not None:
            return self._alone.acquire(api_id)
        try:
            return self._acquire_shared(api_id)
        except OSError as exc:
            self._go_alone(exc)
            return self._alone.acquire(api_id)

    def _acquire_shared(self, api_id: str) -> float:
        return _paced(lambda: self._book(api_id), self.rate)

    def _book(self, api_id: str) -> float:
        slot_path, lock_path = self._paths(api_id)
        with FileLock(str(lock_path)):
            now = time.time()
            try:
                booked = float(slot_path.read_text() or 0.0)
            except (FileNotFoundError, ValueError):
                booked = 0.0
            # A slot far in the future means a clock jump or a corrupt file: don't wait on it.
            if booked > now + 60:
                booked = now
            slot = max(now, booked)
            tmp = slot_path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(repr(slot + 1.0 / self.rate))
            os.replace(tmp, slot_path)
        return slot

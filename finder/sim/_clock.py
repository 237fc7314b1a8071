"""The simulator's clock and the KRX session calendar it runs on.

Guarantees:

* ``SimClock.now()`` is always an aware ``datetime`` in Seoul time (KST, UTC+9).
* A clock made with ``now=None`` *follows* the wall clock, honouring the
  ``FINDER_NOW`` environment variable exactly as ``finder.calendar`` does, so
  an in-process simulator and finder agree on what "today" is.
* A clock set to an instant is either *frozen* there (the default: tests are
  deterministic) or *ticks* with the wall clock from that instant.
* Sessions come from ``exchange_calendars``' ``XKRX`` calendar, built once per
  process, from 2015-01-02 to ``HORIZON`` (2027-12-31).

Not guaranteed: sessions after ``HORIZON``; ``advance_sessions`` past it
raises ``ValueError``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import threading
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

KST = _dt.timezone(_dt.timedelta(hours=9), "KST")
FIRST_SESSION = np.datetime64("2015-01-02", "D")
HORIZON = np.datetime64("2027-12-31", "D")
OPEN_TIME = _dt.time(9, 0)
CLOSE_TIME = _dt.time(15, 30)
SESSION_SECONDS = 6.5 * 3600


@functools.lru_cache(maxsize=1)
def sessions() -> np.ndarray:
    """XKRX sessions from 2015-01-02 to ``HORIZON`` as ``datetime64[D]`` (built once per process)."""
    import exchange_calendars as xcals

    # Building XKRX costs ~1.7 s whatever the range.  exchange_calendars reuses
    # its last instance when the arguments match, so ask with the arguments
    # finder.calendar uses (start 1990-01-02, end Dec 31 of next year) and a
    # process that runs both pays once.
    year = _wall().year
    with warnings.catch_warnings():
        # exchange_calendars trips a pandas 3 deprecation warning inside; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = xcals.get_calendar("XKRX", start="1990-01-02", end=f"{max(year + 1, 2027)}-12-31")
    s = cal.sessions.values.astype("datetime64[D]")
    return s[(s >= FIRST_SESSION) & (s <= HORIZON)]


def to_kst(value: Any) -> _dt.datetime:
    """An ISO string, ``datetime`` or ``Timestamp`` as an aware KST datetime (naive input is KST)."""
    if isinstance(value, str):
        try:
            ts = pd.Timestamp(value.strip())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"now={value!r} is not an ISO timestamp") from exc
    elif isinstance(value, (_dt.datetime, pd.Timestamp)):
        ts = pd.Timestamp(value)
    elif isinstance(value, _dt.date):
        ts = pd.Timestamp(value)
    else:
        raise ValueError(f"now={value!r} is not a timestamp; use an ISO string or a datetime")
    if pd.isna(ts):
        raise ValueError(f"now={value!r} is not a timestamp")
    if ts.tzinfo is None:
        ts = ts.tz_localize(KST)
    return ts.to_pydatetime().astimezone(KST)


def _wall() -> _dt.datetime:
    override = os.environ.get("FINDER_NOW")
    if override:
        return to_kst(override)
    return _dt.datetime.now(KST)


def shift_sessions(moment: _dt.datetime, n: int) -> _dt.datetime:
    """The same time of day ``n`` sessions later (``n < 0``: earlier) than ``moment``'s date."""
    s = sessions()
    d = np.datetime64(moment.date(), "D")
    if n >= 0:
        i = np.searchsorted(s, d, "right") + n - 1
    else:
        i = np.searchsorted(s, d, "left") + n
    if n == 0:
        return moment
    if i < 0 or i >= len(s):
        raise ValueError(f"moving {n} sessions from {moment.date()} leaves the calendar (2015-01-02..{HORIZON})")
    day = pd.Timestamp(s[i]).date()
    return moment.replace(year=day.year, month=day.month, day=day.day)


class SimClock:
    """The simulator's "now" (KST); thread-safe.

    ``now=None`` follows the wall clock (and ``FINDER_NOW``); otherwise the
    clock starts at ``now`` and is frozen there unless ``frozen=False``.
    """

    def __init__(self, now: Any = None, frozen: bool = True) -> None:
        self._lock = threading.Lock()
        self._anchor: _dt.datetime | None = None if now is None else to_kst(now)
        self._frozen = bool(frozen)
        self._t0 = time.monotonic()

    @property
    def following_wall_clock(self) -> bool:
        return self._anchor is None

    @property
    def frozen(self) -> bool:
        return self._anchor is not None and self._frozen

    def now(self) -> _dt.datetime:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> _dt.datetime:
        if self._anchor is None:
            return _wall()
        if self._frozen:
            return self._anchor
        return self._anchor + _dt.timedelta(seconds=time.monotonic() - self._t0)

    def set_now(self, now: Any, frozen: bool | None = None) -> _dt.datetime:
        """Jump to ``now`` (``None``: follow the wall clock again); ``frozen`` changes the mode if given."""
        with self._lock:
            self._anchor = None if now is None else to_kst(now)
            if frozen is not None:
                self._frozen = bool(frozen)
            self._t0 = time.monotonic()
            return self._now_locked()

    def advance(self, seconds: float = 0.0) -> _dt.datetime:
        """Move the clock by ``seconds`` (negative goes back); a following clock becomes anchored."""
        with self._lock:
            self._anchor = self._now_locked() + _dt.timedelta(seconds=float(seconds))
            self._t0 = time.monotonic()
            return self._anchor

    def advance_sessions(self, n: int) -> _dt.datetime:
        """Move to the same time of day ``n`` XKRX sessions later (negative: earlier)."""
        with self._lock:
            self._anchor = shift_sessions(self._now_locked(), int(n))
            self._t0 = time.monotonic()
            return self._anchor

    def describe(self) -> dict:
        now = self.now()
        return {"now": now.isoformat(), "frozen": self.frozen, "follows_wall_clock": self.following_wall_clock}

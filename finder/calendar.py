"""The KRX calendar and finder's notion of "now".

Every date and freshness decision in finder goes through this module, so that
one override moves all of them together:

* ``now()`` is the wall clock in Seoul time (KST, UTC+9), unless the
  environment variable ``FINDER_NOW`` holds an ISO timestamp such as
  ``2025-11-28T20:30+09:00``; then that instant is "now".  This lets a cache
  be refreshed, tested or replayed against a market whose "today" is not the
  wall clock's.
* Sessions come from ``exchange_calendars``' ``XKRX`` calendar, which matches
  every session in the real KRX sample data (it knows 2025-06-03, election
  day, and May 1 are closed).
* A session's daily bar is *live* from the open until the cut-off
  (``FINDER_LIVE_CUTOFF``, default ``20:00`` KST, when NXT after-hours
  trading ends); after that it is *final* and never changes.

Example::

    >>> from finder import calendar
    >>> calendar.is_session("2025-06-03")
    False
    >>> calendar.previous_session("2025-06-04")
    Timestamp('2025-06-02 00:00:00')

What this module does not do: it does not know about trading halts of single
stocks; a session is a day the exchange was open.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import re
from typing import Any

import numpy as np
import pandas as pd

from ._exceptions import InvalidInputError

__all__ = [
    "KST",
    "now",
    "today",
    "parse_date",
    "is_session",
    "sessions_in_range",
    "session_on_or_before",
    "previous_session",
    "next_session",
    "sessions_between_count",
    "latest_final_session",
    "live_session",
    "is_final",
    "live_cutoff",
    "EARLIEST",
]

KST = _dt.timezone(_dt.timedelta(hours=9), "KST")
OPEN_TIME = _dt.time(9, 0)
EARLIEST = pd.Timestamp("1990-01-01")
# exchange_calendars builds its tables for a fixed range; building 1990-today
# takes about a second, so it is done once per process, on first use.
_CAL_START = "1990-01-02"


def now() -> _dt.datetime:
    """The current instant in KST, honouring ``FINDER_NOW``."""
    override = os.environ.get("FINDER_NOW")
    if override:
        return _override(override)
    return _dt.datetime.now(KST)


@functools.lru_cache(maxsize=8)
def _override(text: str) -> _dt.datetime:
    # Parsed once per value: every calendar question asks for "now" (datetimes are immutable).
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"FINDER_NOW={text!r} is not an ISO timestamp") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize(KST)
    return ts.to_pydatetime().astimezone(KST)


def today() -> pd.Timestamp:
    """Today's date in KST (a naive midnight Timestamp)."""
    return pd.Timestamp(now().date())


def live_cutoff() -> _dt.time:
    """The time of day (KST) after which today's bar is final: ``FINDER_LIVE_CUTOFF``, default 20:00."""
    raw = os.environ.get("FINDER_LIVE_CUTOFF", "20:00")
    try:
        hh, mm = raw.split(":")
        return _dt.time(int(hh), int(mm))
    except ValueError as exc:
        raise InvalidInputError(f"FINDER_LIVE_CUTOFF={raw!r} is not HH:MM") from exc


@functools.lru_cache(maxsize=1)
def _calendar(end_year: int) -> Any:
    import exchange_calendars as xcals

    return xcals.get_calendar("XKRX", start=_CAL_START, end=f"{end_year}-12-31")


def _cal() -> Any:
    # Cover one year past "now" so FINDER_NOW in the future still resolves.
    return _calendar(max(now().year + 1, 2026))


def _sessions_file(end_year: int):
    from importlib.metadata import version

    from ._paths import user_state_dir

    try:
        return user_state_dir() / "calendar" / f"XKRX-{_CAL_START}-{end_year}-{version('exchange_calendars')}.npy"
    except Exception:
        return None


@functools.lru_cache(maxsize=4)
def _sessions_array(end_year: int) -> np.ndarray:
    # Building XKRX takes about two seconds, paid by every new process (each notebook kernel,
    # each joblib worker). The user's state folder keeps the session list (see save_sessions),
    # keyed by the exchange_calendars version, so that cost is paid once per user and machine.
    path = _sessions_file(end_year)
    if path is not None:
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.dtype == np.dtype("datetime64[D]") and len(cached) > 1000:
                return cached
        except (OSError, ValueError):
            pass  # absent, unreadable or odd: build it below
    return _calendar(end_year).sessions.values.astype("datetime64[D]")


def save_sessions() -> None:
    """Keep the session list in the user's state folder for the next process (called by the cache, not on
    reads), whatever cache folder that process uses.

    Only the cache writes it, so validating an argument never leaves a file behind.
    """
    end_year = max(now().year + 1, 2026)
    path = _sessions_file(end_year)
    if path is None:
        return
    from ._paths import ensure_private_dir

    try:
        if path.is_file():
            return
        ensure_private_dir(path.parent)
        tmp = path.with_name(f".{path.stem}-{os.getpid()}.npy")
        np.save(tmp, _sessions_array(end_year), allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only state folder only costs the rebuild next time


def _sessions() -> np.ndarray:
    return _sessions_array(max(now().year + 1, 2026))


_COMPACT = re.compile(r"^\d{8}$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> pd.Timestamp | None:
    # Strings repeat constantly (a backtest asks for the same dates per stock): parse each once.
    if _COMPACT.match(text):
        fmt = "%Y%m%d"
    elif _ISO.match(text):
        fmt = "%Y-%m-%d"
    else:
        return None
    try:
        return pd.Timestamp(_dt.datetime.strptime(text, fmt))
    except ValueError:
        return pd.NaT


def parse_date(value: Any, name: str = "date") -> pd.Timestamp:
    """Turn ``'YYYYMMDD'``, ``'YYYY-MM-DD'``, ``datetime.date`` or ``pandas.Timestamp`` into a naive date.

    Anything else raises ``InvalidInputError`` naming the bad value.  The result
    is not checked against the calendar or against today.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidInputError(f"{name}={value!r} is not a date; use 'YYYYMMDD', 'YYYY-MM-DD', datetime.date or pandas.Timestamp")
    if isinstance(value, pd.Timestamp):
        ts = value
    elif isinstance(value, (_dt.datetime, _dt.date)):
        ts = pd.Timestamp(value)
    elif isinstance(value, np.datetime64):
        ts = pd.Timestamp(value)
    elif isinstance(value, str):
        ts = _parse_text(value.strip())
        if ts is None:
            raise InvalidInputError(f"{name}={value!r} is not a date; use 'YYYYMMDD' or 'YYYY-MM-DD'")
        if ts is pd.NaT:
            raise InvalidInputError(f"{name}={value!r} is not a valid calendar date")
    else:
        raise InvalidInputError(f"{name}={value!r} ({type(value).__name__}) is not a date; use 'YYYYMMDD', 'YYYY-MM-DD', datetime.date or pandas.Timestamp")
    if pd.isna(ts):
        raise InvalidInputError(f"{name}={value!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert(KST).tz_localize(None)
    return ts.normalize()


def _shown(value: Any) -> str:
    """A date as the user would recognise it in a message: '1980-01-01', not Timestamp('1980-01-01 00:00:00')."""
    if isinstance(value, str):
        return repr(value)
    try:
        return repr(str(parse_date(value).date()))
    except InvalidInputError:
        return repr(value)


def _d(value: Any) -> np.datetime64:
    return np.datetime64(parse_date(value).date(), "D")


def is_session(date: Any) -> bool:
    """True when the KRX was open on ``date``."""
    s = _sessions()
    d = _d(date)
    i = np.searchsorted(s, d)
    return bool(i < len(s) and s[i] == d)


def sessions_in_range(start: Any, end: Any) -> pd.DatetimeIndex:
    """All sessions from ``start`` to ``end``, both included."""
    s = _sessions()
    lo, hi = np.searchsorted(s, _d(start), "left"), np.searchsorted(s, _d(end), "right")
    return pd.DatetimeIndex(s[lo:hi].astype("datetime64[ns]"), name="date")


def session_on_or_before(date: Any) -> pd.Timestamp:
    """``date`` itself if it is a session, else the session before it."""
    s = _sessions()
    i = np.searchsorted(s, _d(date), "right") - 1
    if i < 0:
        raise InvalidInputError(f"date {_shown(date)} is before the first KRX session finder knows ({_CAL_START})")
    return pd.Timestamp(s[i])


def previous_session(date: Any) -> pd.Timestamp:
    """The last session strictly before ``date``."""
    s = _sessions()
    i = np.searchsorted(s, _d(date), "left") - 1
    if i < 0:
        raise InvalidInputError(f"no KRX session before {_shown(date)}")
    return pd.Timestamp(s[i])


def next_session(date: Any) -> pd.Timestamp:
    """The first session strictly after ``date``."""
    s = _sessions()
    i = np.searchsorted(s, _d(date), "right")
    if i >= len(s):
        raise InvalidInputError(f"no KRX session known after {_shown(date)}")
    return pd.Timestamp(s[i])


def sessions_between_count(start: Any, end: Any) -> int:
    """How many sessions lie in ``[start, end]``."""
    s = _sessions()
    return int(np.searchsorted(s, _d(end), "right") - np.searchsorted(s, _d(start), "left"))


_STATE_CACHE: dict = {}


def state() -> tuple[pd.Timestamp, pd.Timestamp | None, pd.Timestamp]:
    """(today, live_session, latest_final_session) from one reading of the clock.

    Cached for the current wall-clock second (and the current overrides), because the
    cache asks on every call and the answers only change at 09:00 and at the cut-off.
    """
    import time as _time

    key = (os.environ.get("FINDER_NOW"), os.environ.get("FINDER_LIVE_CUTOFF"), int(_time.time()))
    hit = _STATE_CACHE.get(key)
    if hit is not None:
        return hit
    t = now()
    d = pd.Timestamp(t.date())
    session_today = is_session(d)
    live = d if session_today and OPEN_TIME <= t.time() < live_cutoff() else None
    final = d if session_today and t.time() >= live_cutoff() else previous_session(d)
    _STATE_CACHE.clear()
    _STATE_CACHE[key] = (d, live, final)
    return d, live, final


def live_session() -> pd.Timestamp | None:
    """Today's session while its bar is live (from 09:00 to the cut-off, KST), else None."""
    t = now()
    d = pd.Timestamp(t.date())
    if is_session(d) and OPEN_TIME <= t.time() < live_cutoff():
        return d
    return None


def latest_final_session() -> pd.Timestamp:
    """The newest session whose bar can no longer change."""
    t = now()
    d = pd.Timestamp(t.date())
    if is_session(d) and t.time() >= live_cutoff():
        return d
    return previous_session(d)


def is_final(session: Any) -> bool:
    """True when ``session``'s bar is final (it is on or before ``latest_final_session()``)."""
    return parse_date(session) <= latest_final_session()

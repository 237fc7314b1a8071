"""Argument checks shared by every public entry point.

Each check raises :class:`~finder._exceptions.InvalidInputError` naming the bad
value *before* anything is requested or cached.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import calendar
from ._exceptions import InvalidInputError
from ._models import CODE_RE

MAX_COUNT = 10_000  # about 40 years of sessions; more is a typo, not a request


def code(value: Any, name: str = "code") -> str:
    """A KRX short code such as ``'005930'``, optionally with ``_NX`` or ``_AL``."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name}={value!r} ({type(value).__name__}) is not a stock code; "
                                "pass a 6-character KRX code as text, e.g. '005930' (leading zeros matter)")
    text = value.strip().upper()
    if not CODE_RE.match(text):
        raise InvalidInputError(f"{name}={value!r} is not a KRX stock code; expected 6 characters such as "
                                "'005930', optionally with '_NX' or '_AL'")
    return text


def count(value: Any, name: str = "count") -> int:
    """A bar count between 1 and ``MAX_COUNT``."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name}={value!r} ({type(value).__name__}) is not a whole number")
    n = int(value)
    if n < 1 or n > MAX_COUNT:
        raise InvalidInputError(f"{name}={value!r} is out of range; use 1 to {MAX_COUNT}")
    return n


def not_future(date: pd.Timestamp, name: str = "base_dt", original: Any = None) -> pd.Timestamp:
    """Refuse dates after today (KST)."""
    if date > calendar.today():
        shown = original if original is not None else date.date().isoformat()
        raise InvalidInputError(f"{name}={shown!r} is in the future (today is {calendar.today().date()} KST)")
    return date


# Accepted dates by (type, value, today): a loop of get_ohlcv calls repeats the same base_dt
# thousands of times, and checking it cost as much as the rest of a warm hit.
_ACCEPTED: dict = {}


def base_dt(value: Any, name: str = "base_dt") -> pd.Timestamp | None:
    """None (meaning "latest"), or a past-or-today date."""
    if value is None:
        return None
    key = None
    if isinstance(value, str) or (isinstance(value, pd.Timestamp) and value.tzinfo is None):
        key = (type(value), value, calendar.state()[0])
        hit = _ACCEPTED.get(key)
        if hit is not None:
            return hit
    ts = _base_dt(value, name)
    if key is not None:
        if len(_ACCEPTED) > 4096:
            _ACCEPTED.clear()
        _ACCEPTED[key] = ts
    return ts


def _base_dt(value: Any, name: str) -> pd.Timestamp:
    ts = not_future(calendar.parse_date(value, name), name, value)
    try:
        calendar.session_on_or_before(ts)
    except InvalidInputError:
        # Refused here, before anything (a cache folder included) is touched, not deep in the cache.
        raise InvalidInputError(f"{name}={value!r} is before the first KRX session finder knows "
                                f"({calendar.next_session(calendar.EARLIEST).date()})"
                                ) from None
    return ts


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name}={value!r} is not True or False")
    return value

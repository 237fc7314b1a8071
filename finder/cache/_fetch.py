"""What runs on a cache miss: upstream walks, history assembly and live bars.

Everything here either returns complete, checked data or raises; joblib never
stores an exception, so an error, an empty answer, a blank row or a walk cut
short is never cached.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd

from .._exceptions import StockNotFoundError, TransportError
from ._history import Walk, build

log = logging.getLogger("finder.cache")

# Set while a memoized body runs in this thread, so the caller can tell a miss from a hit.
computed = threading.local()


def _mark() -> None:
    computed.flag = True


def walk(client, code: str, base_dt: str, depth: int, adjusted: bool) -> Walk:
    """Fetch the last ``depth`` bars on or before ``base_dt`` (a final session), adjusted as of it."""
    _mark()
    when = pd.Timestamp(base_dt)
    result = client.daily_walk(code, when, depth, adjusted)
    frame = result.frame
    if result.truncated and len(frame) < depth:
        raise TransportError(f"ka10081 walk for {code} as of {base_dt} stopped early "
                             f"({'; '.join(result.notes)}); nothing was cached")
    if len(frame) > depth:
        frame = frame.iloc[-depth:]
    if frame.empty:
        raise StockNotFoundError(f"no daily bars for {code} on or before {base_dt}")
    if frame[["open", "high", "low", "close"]].isna().all(axis=1).any():
        raise TransportError(f"ka10081 walk for {code} as of {base_dt} held rows without prices; nothing was cached")
    reached = result.reached_start or len(frame) < depth
    return Walk.from_frame(code, when, adjusted, frame, reached)


def history_blob(client, code: str, spec: tuple) -> bytes:
    """Assemble the history described by ``spec`` from its (memoized) walks."""
    _mark()
    from . import _store

    store = _store.Store.for_client(client)
    walks = [store.walk(client, code, kind == "adj", base_dt, depth) for kind, base_dt, depth in spec]
    raw, adj, forward = walks[0], walks[1], walks[2:]
    return build(code, raw, adj, forward).to_bytes()


def live(client, code: str, session: str) -> dict:
    """Today's live bar and the row before it, adjusted as of today (expires after the TTL)."""
    _mark()
    when = pd.Timestamp(session)
    result = client.daily_walk(code, when, 2, True)
    frame = result.frame
    today = np.datetime64(when.date(), "D")
    dates = frame.index.values.astype("datetime64[D]")
    out = {"session": session, "has_bar": bool(len(dates) and dates[-1] == today)}
    if out["has_bar"]:
        row = frame.iloc[-1]
        out["bar"] = (float(row.open), float(row.high), float(row.low), float(row.close),
                      int(row.volume), int(row.value))
    prev = frame[frame.index < when]
    if len(prev):
        p = prev.iloc[-1]
        out["prev_date"] = np.datetime64(prev.index[-1].date(), "D")
        out["prev"] = np.array([p.open, p.high, p.low, p.close], dtype="float64")
        out["prev_volume"] = int(p.volume)
    return out


def stock_list(client, market: str, day: str) -> pd.DataFrame:
    """One market's listing (ka10099) as seen on ``day``; an empty answer is an error, not data."""
    _mark()
    frame = client.get_stock_list(market)
    if frame.empty:
        from .._exceptions import APIError

        raise APIError(f"ka10099 returned no stocks for {market}; nothing was cached")
    return frame

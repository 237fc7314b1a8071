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

# Bars fetched in batches (ka10095) wait here until their memoized entry is written: one
# request serves 100 stocks, and each stock's bar is then stored under its own key.
handoff: dict[tuple[str, str], Walk] = {}        # final quote bars, by (code, session)
_live_handoff: dict[tuple[str, str], dict] = {}  # live bars, by (code, session)
# Raw walks assembled from a history's own rows (compaction), by (code, base_dt, depth, adjusted).
_walk_handoff: dict[tuple, Walk] = {}
_handoff_lock = threading.Lock()


def _now() -> float:
    """finder's "now" (FINDER_NOW-aware) as a timestamp: when a live bar was seen, for its TTL."""
    from .. import calendar

    return calendar.now().timestamp()


def _mark() -> None:
    computed.flag = True


def walk(client, code: str, base_dt: str, depth: int, adjusted: bool) -> Walk:
    """Fetch the last ``depth`` bars on or before ``base_dt`` (a final session), adjusted as of it."""
    _mark()
    with _handoff_lock:
        handed = _walk_handoff.pop((code, base_dt, int(depth), bool(adjusted)), None)
    if handed is not None:
        return handed
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
    walks, priors = [], []
    for kind, base_dt, depth in spec:
        if kind == "quote":
            walks.append(store.quote_bar(client, code, base_dt))
        elif kind == "prior":
            priors.append(store.walk(client, code, True, base_dt, depth))
        else:
            walks.append(store.walk(client, code, kind == "adj", base_dt, depth))
    raw, adj, extensions = walks[0], walks[1], walks[2:]
    return build(code, raw, adj, extensions, priors).to_bytes()


def live_from_quote(code: str, session: str, row, when: pd.Timestamp) -> None:
    """Hand a batched quote over as the live entry of ``code`` (stored by the next ``live`` call)."""
    traded = bool(row["traded"]) and pd.Timestamp(row["date"]) == when
    out = {"session": session, "has_bar": traded, "source": "ka10095", "asof": _now()}
    if traded:
        out["bar"] = (float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"]),
                      int(row["volume"]), int(row["value"]))
    with _handoff_lock:
        _live_handoff[(code, session)] = out


def live(client, code: str, session: str) -> dict:
    """Today's live bar and the row before it, adjusted as of today (expires after the TTL)."""
    _mark()
    with _handoff_lock:
        handed = _live_handoff.pop((code, session), None)
    if handed is not None:
        return handed
    when = pd.Timestamp(session)
    result = client.daily_walk(code, when, 2, True)
    frame = result.frame
    today = np.datetime64(when.date(), "D")
    dates = frame.index.values.astype("datetime64[D]")
    out = {"session": session, "has_bar": bool(len(dates) and dates[-1] == today), "asof": _now()}
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



def offer_walk(code: str, base_dt: str, depth: int, adjusted: bool, walk_: Walk) -> None:
    """Hand over a walk built from rows already held (see ``Store._commit``), to be stored under its key."""
    with _handoff_lock:
        _walk_handoff[(code, base_dt, int(depth), bool(adjusted))] = walk_


def take_back_walk(code: str, base_dt: str, depth: int, adjusted: bool) -> None:
    with _handoff_lock:
        _walk_handoff.pop((code, base_dt, int(depth), bool(adjusted)), None)


def offer_quote_bar(code: str, session: str, bar: Walk) -> None:
    with _handoff_lock:
        handoff[(code, session)] = bar


def quote_bar(client, code: str, session: str) -> Walk:
    """A final bar taken from a ka10095 quote (a one-row walk anchored at ``session``)."""
    _mark()
    with _handoff_lock:
        bar = handoff.pop((code, session), None)
    if bar is not None:
        return bar
    # Not handed over (e.g. the entry was pruned): only today's quote can be fetched again.
    from .. import calendar

    if calendar.latest_final_session() != pd.Timestamp(session):
        raise TransportError(f"the quote bar of {code} for {session} is gone and can no longer be fetched")
    q = client.get_quotes([code])
    if code not in q.index or not bool(q.loc[code, "traded"]) or q.loc[code, "date"] != pd.Timestamp(session):
        raise TransportError(f"no quote bar for {code} on {session}")
    return quote_walk(code, session, q.loc[code])


def quote_walk(code: str, session: str, row) -> Walk:
    when = pd.Timestamp(session)
    return Walk(
        code=code,
        base_dt=np.datetime64(when.date(), "D"),
        adjusted=True,
        dates=np.array([np.datetime64(when.date(), "D")]),
        prices=np.array([[float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"])]]),
        volume=np.array([int(row["volume"])], dtype="int64"),
        value=np.array([int(row["value"])], dtype="int64"),
        reached_start=False,
    )

"""The point-in-time market scanner (the module ``finder.analysis.scanner``; its function is ``scan``).

Two entry points:

* :func:`scan` ``(date, universe, conditions, lookback, top)``: resolves the
  date to a KRX session, the universe to codes, loads every stock's bars up
  to that session in **one** ``finder.data.get_panel`` call (served from the
  disk cache when warm; a progress bar on cold fetches is the data layer's),
  and runs :func:`scan_panels`.
* :func:`scan_panels` ``(panels, session, ...)``: the pure core, with no I/O.
  It slices the panels itself, so a backtest can load panels once for a
  whole date range and call it once per session.

What a scan guarantees:

* **No look-ahead.**  Only rows dated on or before the session are read, and
  of each stock only its last ``lookback`` bars (default 220), so changing
  any later bar changes nothing.  The fixed window also makes results
  reproducible: EMA-based indicators depend on where their window starts.
* **Point-in-time universe.**  A stock is scanned only if it traded on the
  session (a bar with close > 0 and volume > 0) and, when its listing date
  is known, was listed by then.  Liquidity filters rank by bars up to the
  session.  Bars with zero volume are dropped as non-trading, as the old
  screener did, so every indicator runs on each stock's own trading bars.
* **Deterministic.**  No sampling and no global state; ties in the ranking
  are broken by traded value, then code.

The result: one row per matching stock, ranked (index ``rank`` from 1), with
``code, name, market, close, change_pct`` (percent, vs the stock's previous
bar), ``value`` (the session's traded value, KRW), ``score`` (sum of weights
of the signals passed), ``signals`` (how many passed), then for every
condition a value column named after it and a ``<name>_pass`` flag.
``result.attrs`` records the requested date, the session scanned, why they
differ, the screen and its thresholds, and what was excluded and why.

Example::

    from finder.analysis import scan, close, sma
    picks = scan("2025-10-01")                                   # momentum preset, KOSPI+KOSDAQ
    picks.attrs["session"], picks.head()
    scan("2025-10-03", universe="KOSPI", top=20)                 # a holiday: scans 2025-10-02
    scan("2025-10-01", conditions=close > sma(close, 60), universe=["005930", "000660"])
"""

from __future__ import annotations

import logging
import numbers
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import calendar
from .._exceptions import InvalidInputError
from .conditions import FIELDS, Bars, Screen, as_screen
from .universe import Universe, resolve_universe

__all__ = ["scan", "scan_panels", "resolve_session", "prepare_bars"]

# The logger keeps the name it had before the module was renamed, so log filters still match.
log = logging.getLogger("finder.analysis.scan")

MAX_LOOKBACK = 10_000
BASE_COLUMNS = ["code", "name", "market", "close", "change_pct", "value", "score", "signals"]
SURVIVORSHIP_NOTE = ("market universes come from Kiwoom's current stock list (ka10099), which omits delisted "
                     "stocks; a past date's scan cannot see stocks delisted since")


# --------------------------------------------------------------------------
# argument checks (all before any data request)
# --------------------------------------------------------------------------

def _check_lookback(lookback: Any, screen: Screen) -> int:
    if isinstance(lookback, bool) or not isinstance(lookback, numbers.Integral):
        raise InvalidInputError(f"lookback={lookback!r} ({type(lookback).__name__}) is not a whole number of bars")
    if lookback < 2 or lookback > MAX_LOOKBACK:
        raise InvalidInputError(f"lookback={lookback!r} is out of range; use 2 to {MAX_LOOKBACK}")
    if lookback < screen.min_bars:
        raise InvalidInputError(f"lookback={lookback!r} is shorter than the {screen.min_bars} bars "
                                f"the {screen.name!r} screen needs")
    return int(lookback)


def _check_top(top: Any) -> int | None:
    if top is None:
        return None
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise InvalidInputError(f"top={top!r} is not None or a whole number ≥ 1")
    return int(top)


def resolve_session(date: Any) -> tuple[pd.Timestamp, pd.Timestamp, str | None]:
    """``(requested, session, note)``: the date asked for, the session to scan, and why they differ.

    Accepts what ``finder.calendar.parse_date`` does.  A non-session day
    resolves to the previous session; today before the open resolves to the
    previous session; a future date is an ``InvalidInputError``.
    """
    requested = calendar.parse_date(date, "date")
    today = calendar.today()
    if requested > today:
        raise InvalidInputError(f"date={date!r} is in the future (today is {today.date()} KST)")
    session = calendar.session_on_or_before(requested)
    note = None
    if session != requested:
        note = f"{requested.date()} is not a KRX session; scanned the previous session {session.date()}"
    elif session == today and calendar.live_session() is None and calendar.latest_final_session() < today:
        session = calendar.previous_session(today)
        note = f"today's session ({today.date()}) has not opened yet; scanned the previous session {session.date()}"
    return requested, session, note


# --------------------------------------------------------------------------
# from panels to Bars
# --------------------------------------------------------------------------

def _check_panels(panels: Any) -> dict[str, pd.DataFrame]:
    if isinstance(panels, pd.DataFrame):
        raise InvalidInputError("panels must be a dict of field -> DataFrame (at least 'close'), "
                                "e.g. get_panel(codes, field=['close', 'volume', ...])")
    if not isinstance(panels, Mapping) or "close" not in panels:
        raise InvalidInputError(f"panels must be a dict of field -> DataFrame with at least 'close', not "
                                f"{type(panels).__name__}{' with ' + str(sorted(panels)) if isinstance(panels, Mapping) else ''}")
    ref = panels["close"]
    out: dict[str, pd.DataFrame] = {}
    for k, f in panels.items():
        if k not in FIELDS:
            continue  # extra fields (e.g. 'change') are not used by conditions
        if not isinstance(f, pd.DataFrame):
            raise InvalidInputError(f"panels[{k!r}] is a {type(f).__name__}, not a DataFrame")
        if not isinstance(f.index, pd.DatetimeIndex):
            raise InvalidInputError(f"panels[{k!r}] must have a DatetimeIndex of sessions")
        if not (f.index.equals(ref.index) and f.columns.equals(ref.columns)):
            raise InvalidInputError(f"panels[{k!r}] does not share the index/columns of panels['close']")
        out[k] = f
    if ref.columns.has_duplicates:
        dup = sorted({str(c) for c in ref.columns[ref.columns.duplicated()]})[:5]
        raise InvalidInputError(f"panels have duplicate codes {dup}; each code must be one column")
    if not ref.index.is_monotonic_increasing or ref.index.has_duplicates:
        raise InvalidInputError("panels must be indexed by unique sessions in ascending order")
    return out


def prepare_bars(panels: Mapping[str, pd.DataFrame], session: Any, lookback: int = 220,
                 codes: Any = None) -> tuple[Bars, pd.Series, dict[str, list[str]]]:
    """Cut panels to each stock's own last ``lookback`` trading bars up to ``session``.

    Returns ``(bars, n_bars, excluded)``: bars whose rows are bottom-aligned
    (row 0 = the session for every stock; earlier rows go back bar by bar
    over each stock's own trading days), each stock's number of bars, and
    the codes left out with the reason (``not_traded``: no trading bar on the
    session).  ``codes`` restricts the columns first.  No I/O.
    """
    frames = _check_panels(panels)
    session = calendar.parse_date(session, "session")
    stop = frames["close"].index.searchsorted(session, side="right")  # rows dated <= session only
    cols = frames["close"].columns
    if codes is not None:
        cols = cols[cols.isin(list(codes))]
    # Sorted columns make the output independent of the input's column order.
    cols = pd.Index(sorted(cols, key=str), name="code")
    arrays = {k: np.asarray(f.iloc[:stop].reindex(columns=cols), dtype=np.float64) for k, f in frames.items()}
    c = arrays["close"]
    valid = np.isfinite(c) & (c > 0)
    if "volume" in arrays:
        v = arrays["volume"]
        valid &= np.isfinite(v) & (v > 0)
    last_is_session = stop > 0 and frames["close"].index[stop - 1] == session
    traded = valid[-1] if (last_is_session and len(valid)) else np.zeros(len(cols), dtype=bool)
    excluded = {"not_traded": [str(x) for x in cols[~traded]]}
    cols = cols[traded]
    valid = valid[:, traded]
    arrays = {k: a[:, traded] for k, a in arrays.items()}

    # Bottom-align each column's valid rows with one stable argsort of the
    # mask (no loop over stocks), then keep the last `lookback` rows.
    order = np.argsort(valid, axis=0, kind="stable")
    vmask = np.take_along_axis(valid, order, axis=0)[-lookback:]
    n_rows = vmask.shape[0]
    index = pd.RangeIndex(-n_rows + 1, 1, name="bar")
    out = {}
    for k, a in arrays.items():
        a = np.take_along_axis(a, order, axis=0)[-lookback:]
        out[k] = pd.DataFrame(np.where(vmask, a, np.nan), index=index, columns=cols)
    n_bars = pd.Series(vmask.sum(axis=0), index=cols, name="bars")
    return Bars(out, session=session), n_bars, excluded


# --------------------------------------------------------------------------
# the pure scanner
# --------------------------------------------------------------------------

def _empty(screen: Screen, matches_only: bool) -> pd.DataFrame:
    cols = list(BASE_COLUMNS)
    for c in screen.conditions:
        cols += [c.name, f"{c.name}_pass"]
    if not matches_only:
        cols.append("matched")
    out = pd.DataFrame({c: pd.Series(dtype=object if c in ("code", "name", "market") else float) for c in cols})
    out.index = pd.RangeIndex(1, 1, name="rank")
    return out


def scan_panels(panels: Mapping[str, pd.DataFrame], session: Any, conditions: Any = "momentum",
                meta: pd.DataFrame | None = None, lookback: int = 220, top: int | None = None, *,
                universe: Any = None, matches_only: bool = True,
                timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Scan ``session`` on panels already in memory; the same ranked frame as :func:`scan`.

    ``panels``: field -> dates × codes DataFrame (``close`` required;
    ``open, high, low, volume, value`` as the conditions need; the momentum
    preset needs all but ``open`` and falls back to close × volume without
    ``value``).  Panels may extend past ``session``: only rows on or before
    it are read, and at most each stock's last ``lookback`` trading bars.
    ``meta``: a frame indexed by code with ``name``, ``market`` and
    optionally ``listed`` (listing date), for the output and point-in-time
    listing checks.  ``universe`` (optional): a universe spec or
    :class:`Universe` to restrict the codes and apply liquidity filters;
    market names need ``meta['market']``.  ``matches_only=False`` keeps every
    scanned stock and adds a ``matched`` column (handy for asking "why not
    this one?").  ``timings``: pass a dict to have the seconds spent in
    ``prepare`` (slicing, universe), ``indicators`` and ``rules`` added to it.

    Prices should be adjusted as of ``session`` (as ``get_panel(...,
    base_dt=session)`` returns them) for KRW thresholds such as close ≥ 2,000
    to be exact; panels adjusted as of a later date only rescale prices, which
    leaves ratio-based rules unchanged.

    Example::

        panels = finder.data.get_panel(codes, count=400, base_dt="2025-11-28",
                                       field=["open", "high", "low", "close", "volume", "value"])
        for day in sessions:
            picks = scan_panels(panels, day, "momentum", meta=meta)
    """
    t0 = time.perf_counter()
    screen = as_screen(conditions)
    lookback = _check_lookback(lookback, screen)
    top = _check_top(top)
    if not isinstance(matches_only, bool):
        raise InvalidInputError(f"matches_only={matches_only!r} is not True or False")
    if timings is not None and not isinstance(timings, dict):
        raise InvalidInputError(f"timings={timings!r} is not None or a dict")
    uni: Universe | None = resolve_universe(universe) if universe is not None else None
    session = calendar.parse_date(session, "session")
    if meta is not None:
        if not isinstance(meta, pd.DataFrame):
            raise InvalidInputError(f"meta={type(meta).__name__} is not a DataFrame indexed by code")
        meta = meta.set_axis(meta.index.astype(str))
        meta = meta[~meta.index.duplicated(keep="first")]
    frames = _check_panels(panels)

    codes = frames["close"].columns
    excluded: dict[str, list[str]] = {}
    if uni is not None:
        keep = uni.base_filter(pd.Index([str(c) for c in codes]), meta, session)
        codes = codes[pd.Index([str(c) for c in codes]).isin(keep)]
    if meta is not None and "listed" in meta.columns:
        listed = pd.to_datetime(meta["listed"].reindex([str(c) for c in codes]), errors="coerce")
        late = (listed > session).to_numpy()
        excluded["not_listed_yet"] = [str(c) for c in codes[late]]
        codes = codes[~late]

    window = max(lookback, uni.value_window) if (uni is not None and uni.has_liquidity_filter) else lookback
    bars, n_bars, ex = prepare_bars(frames, session, window, codes)
    excluded.update(ex)
    if uni is not None and uni.has_liquidity_filter:
        keep, _ = uni.liquidity_filter(bars.value)
        kept = set(keep)
        excluded["below_liquidity"] = [str(c) for c in bars.codes if c not in kept]
        sub = {k: bars.field(k)[keep] for k in bars.fields}
        if window > lookback:
            sub = {k: f.iloc[-lookback:] for k, f in sub.items()}
        bars = Bars(sub, session=session)
        n_bars = n_bars.reindex(keep).clip(upper=lookback)
    short = n_bars < screen.min_bars
    excluded["too_few_bars"] = [str(c) for c in n_bars.index[short.to_numpy()]]
    if short.any():
        keep = n_bars.index[~short.to_numpy()]
        bars = Bars({k: bars.field(k)[keep] for k in bars.fields}, session=session)

    attrs: dict[str, Any] = {
        "session": session,
        "screen": screen.name,
        "params": _plain(dict(screen.params)),
        "min_signals": screen.min_signals,
        "lookback": lookback,
        "universe": uni.describe() if uni is not None else "all columns of the panels",
        "scanned": int(len(bars.codes)),
        "excluded": {k: v for k, v in excluded.items() if v},
        "value_source": _value_source(frames),
        "change_pct": "percent change of close against the stock's previous trading bar",
    }
    if len(bars.codes) == 0:
        res = _empty(screen, matches_only)
        attrs["matched"] = 0
        res.attrs.update(attrs)
        log.info("scan %s: no stock to scan on %s", screen.name, session.date())
        return res

    t1 = time.perf_counter()
    for expr in screen.expressions():  # indicators first (memoised in bars), so they time apart from the rules
        if expr.is_indicator:
            expr.evaluate(bars)
    t2 = time.perf_counter()
    table = screen.evaluate(bars)
    close_last = bars.close.iloc[-1]
    prev = bars.close.iloc[-2] if len(bars.index) > 1 else pd.Series(np.nan, index=bars.codes)
    codes_idx = bars.codes
    name = _meta_col(meta, "name", codes_idx)
    market = _meta_col(meta, "market", codes_idx)
    base = pd.DataFrame({
        "code": [str(c) for c in codes_idx],
        "name": name.to_numpy(),
        "market": market.to_numpy(),
        "close": close_last.to_numpy(),
        "change_pct": ((close_last / prev - 1.0) * 100.0).to_numpy(),
        "value": bars.value.iloc[-1].to_numpy(),
        "score": table["score"].to_numpy(),
        "signals": table["signals"].to_numpy(),
    })
    cond_cols = {}
    for c in screen.conditions:
        cond_cols[c.name] = table[c.name].to_numpy(dtype=float)
        cond_cols[f"{c.name}_pass"] = table[f"{c.name}_pass"].to_numpy(dtype=bool)
    res = pd.concat([base, pd.DataFrame(cond_cols)], axis=1)
    matched = table["matched"].to_numpy(dtype=bool)
    if matches_only:
        res = res[matched]
    else:
        res["matched"] = matched
    # Rank: score, then signals passed, then traded value; code breaks any tie.
    res = res.sort_values(["score", "signals", "value", "code"], ascending=[False, False, False, True],
                          kind="mergesort", na_position="last")
    if top is not None:
        res = res.head(top)
    res.index = pd.RangeIndex(1, len(res) + 1, name="rank")
    attrs["matched"] = int(matched.sum())
    res.attrs.update(attrs)
    if timings is not None:
        t3 = time.perf_counter()
        for k, v in (("prepare", t1 - t0), ("indicators", t2 - t1), ("rules", t3 - t2)):
            timings[k] = timings.get(k, 0.0) + v
    log.info("scan %s on %s: %d scanned, %d matched", screen.name, session.date(), attrs["scanned"], attrs["matched"])
    return res


def _meta_col(meta: pd.DataFrame | None, col: str, codes: pd.Index) -> pd.Series:
    if meta is None or col not in meta.columns:
        return pd.Series([None] * len(codes), index=codes, dtype=object)
    return meta[col].reindex([str(c) for c in codes]).astype(object).where(lambda s: s.notna(), None)


def _value_source(frames: Mapping[str, pd.DataFrame]) -> str:
    if "value" in frames:
        return "traded value from the data (KRW), close × volume where missing"
    return "close × volume (the data had no traded value)"


def _plain(x: Any) -> Any:
    # attrs are deep-copied by pandas; keep them plain (no mappingproxy).
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


# --------------------------------------------------------------------------
# the scan with data
# --------------------------------------------------------------------------

def _missing(panels: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for obj in [panels] + (list(panels.values()) if isinstance(panels, Mapping) else []):
        m = getattr(obj, "attrs", {}).get("missing") if hasattr(obj, "attrs") else None
        if m:
            found.update(dict(m))
    return found


def scan(date: Any, universe: Any = "KOSPI+KOSDAQ", conditions: Any = "momentum", lookback: int = 220,
         top: int | None = None, *, matches_only: bool = True) -> pd.DataFrame:
    """Scan the market on ``date``: a ranked DataFrame of the stocks that match ``conditions``.

    ``date``: ``'YYYYMMDD'``, ``'YYYY-MM-DD'``, ``datetime.date`` or
    ``Timestamp``; a non-session day scans the previous session
    (``result.attrs['requested_date']``, ``['session']`` and
    ``['session_note']`` say so); a future date is an error.
    ``universe``: ``'KOSPI'``, ``'KOSDAQ'``, ``'ETF'``, ``'KOSPI+KOSDAQ'``, a
    list of codes, a callable ``f(session) -> codes``, or a
    :class:`~finder.analysis.universe.Universe` with liquidity filters.
    ``conditions``: a preset name (``'momentum'``), a
    :class:`~finder.analysis.conditions.Screen`, a condition, or a list of
    conditions that must all pass.  ``lookback``: bars per stock the
    indicators see (fixed, for reproducibility).  ``top``: keep the first N.

    Bad arguments raise ``InvalidInputError`` before any data is requested.
    The bars come from ``finder.data.get_panel`` in one call (the disk cache;
    a warm scan makes no upstream request).  See the module docstring for the
    columns and guarantees.

    Example::

        picks = scan("2025-10-01", universe="KOSPI", top=20)
        picks[["code", "name", "close", "change_pct", "score"]]
    """
    screen = as_screen(conditions)
    uni = resolve_universe(universe)
    lookback = _check_lookback(lookback, screen)
    top = _check_top(top)
    if not isinstance(matches_only, bool):
        raise InvalidInputError(f"matches_only={matches_only!r} is not True or False")
    requested, session, note = resolve_session(date)
    if note:
        log.info(note)
    live = calendar.live_session() == session

    codes, meta = uni.candidates(session)
    count = max(lookback, uni.value_window) if uni.has_liquidity_filter else lookback
    missing: dict[str, Any] = {}
    if codes:
        from .. import data  # analysis -> data access; never the client

        panels = data.get_panel(codes, count=count, base_dt=session, field=list(FIELDS))
        missing = _missing(panels)
        res = scan_panels(panels, session, screen, meta=meta, lookback=lookback, top=top, universe=uni,
                          matches_only=matches_only)
    else:
        res = _empty(screen, matches_only)
        res.attrs.update({"session": session, "screen": screen.name, "params": _plain(dict(screen.params)),
                          "scanned": 0, "matched": 0, "excluded": {}})
    res.attrs.update({
        "requested_date": requested,
        "session": session,
        "session_note": note,
        "live": live,
        "universe": uni.describe(),
        "candidates": len(codes),
        "missing": missing,
    })
    if uni.markets:
        res.attrs["survivorship"] = SURVIVORSHIP_NOTE
    if live:
        log.warning("scanning today's live bar (%s): results can change until the session's bar is final",
                    session.date())
    return res

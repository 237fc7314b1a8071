"""The whole-range scan: every session of a backtest from one load and one pass per indicator.

``scan(d)`` per session is the reference.  This module computes the same
picks for every session of a range at once, and is what ``backtest`` uses.

What it guarantees (checked by ``tests/test_backtest_range.py`` against the
per-session path: dates, codes and ranks identical, scores within 1e-9):

* **The same prices as the reference.**  Each session ``d`` is scanned on bars
  adjusted as of ``d``, rebuilt by the cache's own function
  (``History.arrays``) exactly as ``get_panel(base_dt=d)`` does.  A stock's
  as-of-``d`` bars are the same for every ``d`` between two of its corporate
  actions, so each stock is loaded once per such *basis class* (one class
  for most stocks), as a separate column, and serves only the sessions of
  its class.  Nothing is rescaled, so price-level thresholds (``close >=
  2_000``, ``atr(...) >= 50``) compare on each date's own basis and no
  expression needs its scale to be known.
* **One mapped load for most stocks.**  A stock with no corporate action in
  (first session, last session] has one class, whose bars are those as of
  the last session: they come from the stored panel (issue 11,
  ``finder.cache._panel``), memory-mapped, the same numbers ``get_panel``
  serves (written first by one ``get_panel`` call when the cache holds no
  panel that serves them).  Stocks with an action inside the range, and
  those the panel cannot serve (an action after the last session but before
  the panel's end, a history changed since the panel was built), are loaded
  per stock as above.  Both give the same arrays (tested).
* **The same windows as the reference.**  A per-session scan seeds EMAs
  (and the EMAs inside DEMA, TEMA, MACD), Wilder's smoothing and OBV's level
  at the start of its ``lookback`` window.  Those are linear recursions, so
  the window-seeded value is the full-history value plus corrections:
  ``value_s(k) = Y(k) + sum_i C_i(s) * psi_i(k - s)``, where ``Y`` is the
  recursion over the stock's whole loaded history, ``C_i`` one number per
  (session, stock) and ``psi_i`` a short 1-D array over the offset into the
  window.  Everything else (arithmetic, comparisons, rolling windows, slopes,
  crossings, counts) is computed on the window's own rows, read at the lags
  it needs.
* **No look-ahead.**  Session ``d`` reads only rows on or before ``d`` of
  columns whose prices are adjusted as of ``d``.

What it does not do (``Unsupported`` is raised and ``backtest`` falls back to
the per-session path, logging why): conditions written as plain functions of
the bars, a recursion (EMA, RSI, ...) of a non-linear expression of another
recursion (e.g. ``ema(rsi(close), 5)``), liquidity filters whose window is
longer than the lookback, custom indicator functions, today's live session
alone, and a cache folder that cannot be used.
Floating-point rounding differs from the reference: indicator values agree
to about 1e-12 relative, values that are small differences of large ones
(``(tema - dema) / close``) to about 1e-7 relative.  A comparison decided by
less than that could differ; none did in the tests (every pass flag, score
and rank equal on the synthetic market and the real sample).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError, KiwoomError
from . import indicators as ind
from .conditions import (FIELDS, Condition, Expr, Field, Screen, _All, _Any, _BinOp, _Call, _Item, _Not,
                         _OPS, _Unary)

log = logging.getLogger(__name__)

__all__ = ["Unsupported", "RangeData", "load_range", "scan_range", "RangeScanner"]

PRICE = {"open": 0, "high": 1, "low": 2, "close": 3}


class Unsupported(InvalidInputError):
    """The whole-range engine cannot reproduce this scan exactly; use the per-session path.

    An ``InvalidInputError`` for callers of ``prepare_backtest``; ``backtest``
    catches it and falls back to ``scan(d)`` per session.
    """


# --------------------------------------------------------------------------
# data: one column per (stock, basis class)
# --------------------------------------------------------------------------

@dataclass
class RangeData:
    """Bars of many stocks for a range of sessions, laid out for :class:`RangeScanner`.

    ``fields[f]``: (T, J) float arrays, each column one stock's valid bars
    (close > 0, volume > 0) on one adjustment basis, bottom-aligned (NaN on
    top).  ``pos[i, j]``: the row of session ``i``'s bar in column ``j`` (-1
    when the column does not serve that session: another basis class, or no
    trading bar); ``start[i, j]``: the first row of that session's window.
    """

    sessions: pd.DatetimeIndex
    lookback: int
    codes: np.ndarray                       # (J,) code of each column
    fields: dict[str, np.ndarray]
    pos: np.ndarray                         # (S, J) int64
    start: np.ndarray                       # (S, J) int64
    missing: dict[str, str] = field(default_factory=dict)
    classes: int = 0                        # columns beyond one per stock (corporate actions in the range)
    histories: dict = field(default_factory=dict, repr=False)   # code -> the cache's History (in memory)
    panel: Any = field(default=None, repr=False)                  # the stored panel's Hit the columns came from

    def panels(self, codes: list[str], timeline: pd.DatetimeIndex) -> dict[str, Any] | None:
        """OHLC panels of ``codes`` on ``timeline``, adjusted as of its last session, from the bars in memory.

        The very rows ``get_panel(codes, len(timeline), timeline[-1])`` serves:
        the stored panel's for the stocks it served, ``History.arrays`` for the
        others, without reading the cache again; None when the timeline ends
        after the loaded range.
        """
        end = timeline[-1]
        if end != self.sessions[-1] or not (self.histories or self.panel is not None):
            return None
        from ..cache import _panel
        from ..cache._ohlcv import _assemble

        ohlc = ["open", "high", "low", "close"]
        end_d = np.datetime64(end.date(), "D")
        hit = self.panel
        served = set(hit.codes) if hit is not None else set()
        in_panel = [c for c in codes if c in served]
        per_stock = {c: self.histories[c].arrays(end_d, len(timeline), True) for c in codes
                     if c not in in_panel and c in self.histories}
        per_stock = {c: r for c, r in per_stock.items() if len(r[0])}
        parts = [_assemble(per_stock, ohlc)] if per_stock else []
        if in_panel:
            parts.append(_panel.frames(_panel.Hit(hit.panel, in_panel, hit.data, set(), end_d, len(timeline)), ohlc))
        have = set(in_panel) | set(per_stock)
        order = [c for c in codes if c in have]
        out: dict[str, Any] = {}
        for f in ohlc:
            frames = [p[f] for p in parts]
            if not frames:
                frames = [_assemble({}, ohlc)[f]]
            frame = pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]
            frame = frame.reindex(index=timeline, columns=pd.Index(order, name="code"))
            out[f] = frame
        out["_missing"] = [c for c in codes if c not in have]
        return out

    @property
    def shape(self) -> tuple[int, int]:
        return self.pos.shape


def _histories(codes: list[str], end: pd.Timestamp, count: int, progress: bool) -> tuple[dict, dict]:
    """Each stock's cached history covering ``count`` rows up to ``end`` (the same objects get_panel reads).

    Uses the cache's per-stock entry point, so requests are the same as
    ``get_panel``'s: quotes for stocks a session behind, 2 walks per stock
    when cold, none when warm.
    """
    from .. import data
    from ..cache._ohlcv import _Pointers
    from ..cache._refresh import refresh_if_behind
    from ..cache._store import Store

    client = data.default_client()
    store = Store.for_client(client)
    if not store.writable:
        raise Unsupported("the cache folder is not usable")
    pointers = _Pointers(store)
    for code in refresh_if_behind(client, codes, end, pointers):
        pointers.pop(code, None)
    end_d = np.datetime64(end.date(), "D")
    out, missing = {}, {}
    if not codes:
        return out, missing
    bar = None
    if progress:
        from .backtest import _tqdm

        bar = _tqdm()(total=len(codes), desc="bars", unit="stock", leave=False)
    try:
        for code in codes:
            try:
                out[code] = store.ensure(client, code, end_d, count, pointers.get(code))
            except KiwoomError as exc:
                missing[code] = f"{type(exc).__name__}: {exc}"
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out, missing


def _history_columns(hists: dict, codes: list[str], sess_d: np.ndarray, count: int) -> dict[str, list]:
    """Per stock, its columns ``(serve, dates, prices, volume+value)``: one per basis class in the range."""
    S = len(sess_d)
    out: dict[str, list] = {}
    for code in codes:
        h = hists.get(code)
        if h is None:
            continue
        ex = np.unique(h.events.ex[(h.events.ex > sess_d[0]) & (h.events.ex <= sess_d[-1])])
        # sessions [a, b) share one basis: no action of this stock falls after a and on or before b-1
        cuts = np.searchsorted(sess_d, ex, "left")
        bounds = np.unique(np.concatenate([[0], cuts, [S]]))
        cols = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b <= a:
                continue
            dates, prices, volume, value = h.arrays(sess_d[b - 1], count, True)
            cols.append((np.arange(a, b), dates, np.asarray(prices, dtype="float64"),
                         np.column_stack([np.asarray(volume, dtype="float64"), np.asarray(value, dtype="float64")])))
        out[code] = cols
    return out


@dataclass
class _PanelBlock:
    """The stocks a stored panel serves on the range's last basis, in the panel's own (codes, dates) layout."""

    hit: Any                # finder.cache._panel.Hit
    codes: list[str]        # served here (no corporate action inside the range)
    x: np.ndarray           # (6, n, hi) float64: open, high, low, close, volume, value
    present: np.ndarray     # (n, hi) the stock has a bar on that date
    dates: np.ndarray       # (hi,) datetime64[D]


def _panel_block(codes: list[str], sessions: pd.DatetimeIndex, count: int, progress: bool) -> _PanelBlock | None:
    """The part of ``codes`` a stored panel serves as of the last session (built first when there is none).

    Stocks with a corporate action inside the range (they need one column per
    basis), or that the panel cannot serve, are left to the per-stock path.
    None when the panel store is not in use (too few stocks, a read-only cache).
    """
    from .. import data
    from ..cache import _panel
    from ..cache._store import Store

    if len(codes) < _panel.MIN_CODES:
        return None
    store = Store.for_client(data.default_client())
    if not store.writable:
        return None
    store.check_safe()
    end_d = np.datetime64(sessions[-1].date(), "D")
    fields = list(_panel.FIELDS)
    hit = _panel.find(store, codes, end_d, count, True, fields)
    unserved = len(codes) - (len(hit.codes) + len(hit.as_of)) if hit is not None else len(codes)
    if hit is None or unserved > max(_panel.MIN_CODES, len(codes) // 20):
        # No panel yet, or many stocks it cannot serve: get_panel loads those per stock (its requests:
        # quotes for stocks a session behind, 2 walks per stock when cold) and publishes a panel of them
        # all.  A few unserved (codes the server does not know, a few refreshed since) just go per stock
        # below: asking get_panel again on every load would not make a panel serve an unknown code.
        data.get_panel(codes, count, sessions[-1], field=fields, progress=progress)
        hit = _panel.find(store, codes, end_d, count, True, fields)
    if hit is None or not hit.codes:
        return None
    _panel.touch(hit)
    p = hit.panel
    sess_lo, sess_hi = np.datetime64(sessions[0].date(), "D"), end_d
    served = [c for c in hit.codes
              if not ((p.events[p.col[c]] > sess_lo) & (p.events[p.col[c]] <= sess_hi)).any()]
    hi = int(np.searchsorted(p.dates, end_d, "right"))
    idx = np.array([p.col[c] for c in served], dtype=np.int64)
    if len(idx) == len(p.codes) and (idx == np.arange(len(idx))).all():
        x = np.asarray(hit.data[:, :, :hi])       # the whole panel: a view of the private map
    else:
        x = hit.data[:, idx, :hi]                  # a copy of the served rows
    return _PanelBlock(hit, served, x, ~np.isnan(x[3]), p.dates[:hi])


def load_range(codes: list[str], sessions: pd.DatetimeIndex, lookback: int, *, progress: bool = False) -> RangeData:
    """Load every stock once for ``sessions`` (final sessions, ascending) and lay the bars out.

    Stocks without a corporate action inside the range come from the stored
    panel (``finder.cache._panel``, memory-mapped): their bars as of the last
    session are every session's own-basis bars.  The others, and any stock the
    panel cannot serve, come from their histories, one column per basis class,
    through ``History.arrays`` (the function ``get_panel(base_dt=d)`` uses).
    The layout is the same either way (``tests/test_backtest_range.py`` checks
    that both give identical arrays).
    """
    sessions = pd.DatetimeIndex(sessions)
    codes = list(codes)
    S = len(sessions)
    count = lookback + S
    sess_d = sessions.values.astype("datetime64[D]")
    block = _panel_block(codes, sessions, count, progress) if _USE_PANELS else None
    in_block = set(block.codes) if block is not None else set()
    rest = [c for c in codes if c not in in_block]
    hists, missing = _histories(rest, sessions[-1], count, progress and len(rest) > 0) if rest else ({}, {})
    hcols = _history_columns(hists, rest, sess_d, count)

    # column order: the stocks in ``codes`` order, each stock's basis classes together
    order: list[tuple[str, int]] = []       # (code, number of columns)
    for code in codes:
        if code in in_block:
            order.append((code, 1))
        elif code in hcols:
            order.append((code, len(hcols[code])))
    starts = np.cumsum([0] + [n for _, n in order])
    colpos = {code: int(st) for (code, _), st in zip(order, starts[:-1])}
    J = int(starts[-1])

    # valid bars (close > 0, volume > 0) of the panel's stocks: the last ``count`` bars on or before the end
    if block is not None and block.codes:
        x, present = block.x, block.present
        after = np.cumsum(present[:, ::-1], axis=1)[:, ::-1]          # bars at or after each date
        keep = present & (after <= count)
        with np.errstate(invalid="ignore"):
            valid = keep & (x[3] > 0) & (x[4] > 0)
        vafter = np.cumsum(valid[:, ::-1], axis=1)[:, ::-1]           # valid bars at or after each date
        nvalid_b = vafter[:, 0] if vafter.shape[1] else np.zeros(len(block.codes), dtype=np.int64)
    else:
        nvalid_b = np.zeros(0, dtype=np.int64)
    compact = {code: [] for code in hcols}
    T = 1
    if len(nvalid_b):
        T = max(T, int(nvalid_b.max()))
    for code, cols in hcols.items():
        for serve, dates, prices, vv in cols:
            c, v = prices[:, 3], vv[:, 0]
            ok = np.isfinite(c) & (c > 0) & np.isfinite(v) & (v > 0)
            compact[code].append(ok)
            T = max(T, int(ok.sum()))
    fields = {f: np.full((T, J), np.nan) for f in FIELDS}
    pos = np.full((S, J), -1, dtype=np.int64)
    start = np.full((S, J), -1, dtype=np.int64)
    codes_arr = np.empty(J, dtype=object)

    if block is not None and block.codes:
        bcol = np.array([colpos[c] for c in block.codes], dtype=np.int64)
        codes_arr[bcol] = block.codes
        jj, kk = np.nonzero(valid)
        rows = T - vafter[jj, kk]                                      # bottom-aligned
        for f, k in zip(FIELDS, range(6)):
            fields[f][rows, bcol[jj]] = x[k][jj, kk]
        # valid bars among each stock's last ``a`` bars (a = 1..count)
        kept_total = keep.sum(axis=1)
        W = np.zeros((len(block.codes), count + 1), dtype=np.int64)
        kj, kk2 = np.nonzero(keep)
        W[kj, after[kj, kk2]] = vafter[kj, kk2]
        di = np.searchsorted(block.dates, sess_d)
        di_c = np.minimum(di, max(len(block.dates) - 1, 0))
        on = (di < len(block.dates)) & (block.dates[di_c] == sess_d) if len(block.dates) else np.zeros(S, bool)
        ok = valid[:, di_c] & on[None, :]                              # (n, S)
        a_now = after[:, di_c]
        a_start = np.minimum(a_now + lookback - 1, kept_total[:, None])
        p_rows = T - vafter[:, di_c]
        s_rows = T - np.take_along_axis(W, np.clip(a_start, 0, count), axis=1)
        pos[:, bcol] = np.where(ok, p_rows, -1).T
        start[:, bcol] = np.where(ok, s_rows, -1).T

    for code, cols in hcols.items():
        for q, ((serve, dates, prices, vv), valid_h) in enumerate(zip(cols, compact[code])):
            j = colpos[code] + q
            codes_arr[j] = code
            n = int(valid_h.sum())
            off = T - n
            for f, k in PRICE.items():
                fields[f][off:, j] = prices[valid_h, k]
            fields["volume"][off:, j] = vv[valid_h, 0]
            fields["value"][off:, j] = vv[valid_h, 1]
            if len(dates) == 0:
                continue
            cv = np.cumsum(valid_h)
            rr = np.searchsorted(dates, sess_d[serve])
            rr_c = np.minimum(rr, len(dates) - 1)
            ok_h = (rr < len(dates)) & (dates[rr_c] == sess_d[serve]) & valid_h[rr_c]
            lo = np.maximum(rr_c - lookback + 1, 0)
            sc = np.where(lo > 0, cv[np.maximum(lo - 1, 0)], 0)
            pc = cv[rr_c] - 1
            pos[serve[ok_h], j] = off + pc[ok_h]
            start[serve[ok_h], j] = off + sc[ok_h]
    # the cache's value field never lacks a number on a valid row; keep Bars' fallback anyway
    fv = fields["value"]
    gap = np.isnan(fv)
    fv[gap] = fields["close"][gap] * fields["volume"][gap]
    return RangeData(sessions=sessions, lookback=lookback, codes=codes_arr, fields=fields, pos=pos, start=start,
                     missing=missing, classes=J - len(order), histories=hists,
                     panel=block.hit if block is not None else None)


_USE_PANELS = True   # False: every stock from its history (the layout the panel path is tested against)


# --------------------------------------------------------------------------
# window-seeded series: Y + sum_i C_i * psi_i(m)
# --------------------------------------------------------------------------

@dataclass
class Lin:
    """A series as every session's window sees it.

    At session ``i``, column ``j`` and window offset ``m = k - start[i, j]``:
    ``Y[k, j] + sum(C[i, j] * psi[m] for C, psi in terms)``, defined for ``m >= f``.
    """

    Y: np.ndarray
    terms: list = field(default_factory=list)   # [(C (S,J), psi (L,))]
    f: int = 0

    @property
    def plain(self) -> bool:
        return not self.terms


def _merge(terms: list) -> list:
    out: dict[int, list] = {}
    for C, psi in terms:
        k = id(C)
        if k in out:
            out[k][1] = out[k][1] + psi
        else:
            out[k] = [C, psi]
    return [tuple(v) for v in out.values()]


def _lin_add(a: Lin, b: Lin, sign: float) -> Lin:
    terms = list(a.terms) + [(C, sign * psi) for C, psi in b.terms]
    Y = a.Y + b.Y if sign > 0 else a.Y - b.Y
    return Lin(Y, _merge(terms), max(a.f, b.f))


def _lin_add_into(a: Lin, b: Lin, sign: float) -> Lin:
    """``_lin_add`` writing into ``a.Y``: only for an ``a`` just made and referenced nowhere else."""
    terms = list(a.terms) + [(C, sign * psi) for C, psi in b.terms]
    Y = a.Y
    if sign > 0:
        Y += b.Y
    else:
        Y -= b.Y
    return Lin(Y, _merge(terms), max(a.f, b.f))


def _lin_scale(a: Lin, c: float, op: str) -> Lin:
    if op == "*":
        return Lin(a.Y * c, [(C, psi * c) for C, psi in a.terms], a.f)
    return Lin(a.Y / c, [(C, psi / c) for C, psi in a.terms], a.f)


# --------------------------------------------------------------------------
# the scanner
# --------------------------------------------------------------------------

CELL_MEMO_BYTES = 1 << 30   # memoised per-session values kept across screens, at most about 1 GiB

_FINITE_REACH = {
    "sma": lambda p: p["n"] - 1,
    "rolling_sum": lambda p: p["n"] - 1,
    "shift": lambda p: p["k"],
    "slope": lambda p: p["n"] - 1,
    "volume_ratio": lambda p: p["n"],
    "true_range": lambda p: 1,
    "crossed_above": lambda p: 1,
    "crossed_below": lambda p: 1,
    "count_true": lambda p: p["n"] - 1,
}
_CELLS_ONLY = ("crossed_above", "crossed_below", "count_true")
_RECURSIVE = ("ema", "dema", "tema", "macd", "rsi", "obv", "atr")
_INPUTS = {"ema": 1, "dema": 1, "tema": 1, "sma": 1, "macd": 1, "rsi": 1, "obv": 2, "true_range": 3, "atr": 3,
           "slope": 1, "volume_ratio": 1, "shift": 1, "rolling_sum": 1, "count_true": 1,
           "crossed_above": 2, "crossed_below": 2}


class RangeScanner:
    """Evaluates expressions and screens on a :class:`RangeData` for every session at once.

    Indicators are memoised by expression structure across screens, so a
    parameter sweep over screens that share ``tema(close, 20)`` computes it
    once.  ``evaluate(screen)`` returns the per-session flags and values;
    :func:`scan_range` turns them into ranked picks.
    """

    def __init__(self, data: RangeData) -> None:
        self.data = data
        S, J = data.shape
        self.S, self.J, self.L = S, J, data.lookback
        self.served = data.pos >= 0
        self._colidx = np.broadcast_to(np.arange(J), (S, J))
        self._series: dict[Any, Lin] = {}
        self._cells: dict[Any, np.ndarray] = {}
        self._cell_bytes = 0
        self._lagidx: dict[int, tuple] = {}

    # -- indexing -----------------------------------------------------------
    def _lag(self, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat index into a (T,J) array, offset m, row in window) for every (session, column) at ``lag``."""
        if lag not in self._lagidx:
            d = self.data
            k = d.pos - lag
            m = k - d.start
            ok = self.served & (m >= 0) & (k >= 0)
            flat = np.where(ok, k, 0) * self.J + self._colidx
            self._lagidx[lag] = (flat, np.where(ok, m, -1), ok)
        return self._lagidx[lag]

    def _at(self, Y: np.ndarray, offset: int) -> np.ndarray:
        """``Y`` at row ``start + offset`` of every session's window (NaN where that is past the session)."""
        key = ("at", offset)
        if key not in self._lagidx:
            d = self.data
            rows = d.start + offset
            ok = self.served & (rows <= d.pos)
            self._lagidx[key] = (np.where(ok, rows, 0) * self.J + self._colidx, ok)
        flat, ok = self._lagidx[key]
        out = Y.ravel().take(flat)
        out[~ok] = np.nan
        return out

    def _defined(self, lag: int, f: int) -> tuple[np.ndarray, np.ndarray]:
        """(offset into psi clipped to the window, cells where a series defined from offset ``f`` has a value)."""
        key = ("defined", lag, f)
        if key not in self._lagidx:
            _, m, ok = self._lag(lag)
            mi = self._lagidx.get(("mi", lag))
            if mi is None:
                mi = self._lagidx[("mi", lag)] = np.clip(m, 0, self.L - 1)
            self._lagidx[key] = (mi, ok & (m >= f))
        return self._lagidx[key]

    def materialize(self, s: Lin, lag: int, snap: bool = False) -> np.ndarray:
        flat, m, ok = self._lag(lag)
        mi, defined = self._defined(lag, s.f)
        val = s.Y.ravel().take(flat)
        mag = np.abs(val) if snap else None
        for C, psi in s.terms:
            t = C * psi.take(mi)
            val += t                       # val is a fresh array (take), so in place is safe
            if snap:
                mag += np.abs(t)
        if snap:
            # cancellation noise of Y + corrections where the window's own recursion is exactly 0
            val[np.abs(val) <= 1e-12 * mag] = 0.0
        val[~defined] = np.nan
        return val

    # -- series (recursions need them) ------------------------------------------
    def series(self, e: Any) -> Lin:
        key = e._key() if isinstance(e, Expr) else None
        if key is not None and key in self._series:
            return self._series[key]
        out = self._series_of(e)
        if key is not None:
            self._series[key] = out
        return out

    def _series_of(self, e: Any) -> Lin:
        if isinstance(e, Field):
            return Lin(self.data.fields[e.name])
        if isinstance(e, _BinOp) and e.op in "+-*/":
            l_num = not isinstance(e.left, Expr)
            r_num = not isinstance(e.right, Expr)
            if r_num and e.op in "*/":
                return _lin_scale(self.series(e.left), float(e.right), e.op)
            if l_num and e.op == "*":
                return _lin_scale(self.series(e.right), float(e.left), "*")
            if not l_num and not r_num and e.op in "+-":
                return _lin_add(self.series(e.left), self.series(e.right), 1.0 if e.op == "+" else -1.0)
            a = self.series(e.left) if not l_num else None
            b = self.series(e.right) if not r_num else None
            if (a is None or a.plain) and (b is None or b.plain):
                with np.errstate(divide="ignore", invalid="ignore"):
                    Y = _OPS[e.op](a.Y if a is not None else float(e.left), b.Y if b is not None else float(e.right))
                return Lin(Y, [], max(x.f for x in (a, b) if x is not None))
            raise Unsupported(f"{e!r}: a product or quotient of two window-seeded series")
        if isinstance(e, _Unary) and e.op == "abs":
            a = self.series(e.arg)
            if a.plain:
                return Lin(np.abs(a.Y), [], a.f)
            raise Unsupported(f"{e!r}: abs of a window-seeded series")
        if isinstance(e, _Item):
            return self._call_series(e.call)[e.i]
        if isinstance(e, _Call):
            out = self._call_series(e)
            if isinstance(out, tuple):
                raise Unsupported(f"{e!r} has several outputs")
            return out
        raise Unsupported(f"{e!r} cannot be computed once over the range")

    def _params(self, call: _Call) -> tuple[str, list, dict]:
        name = call.fn.__name__
        if getattr(ind, name, None) is not call.fn or name not in _INPUTS:
            raise Unsupported(f"{name}() is not one of finder's indicators")
        import inspect

        bound = inspect.signature(call.fn).bind(*call.args, **call.kwargs)
        bound.apply_defaults()
        args = list(bound.arguments.items())
        n_in = _INPUTS[name]
        inputs = [v for _, v in args[:n_in]]
        params = {k: v for k, v in args[n_in:]}
        return name, inputs, params

    def _call_series(self, call: _Call) -> Any:
        key = ("callseries", call._key())
        if key in self._series:
            return self._series[key]
        out = self._call_series_of(call)
        self._series[key] = out
        return out

    def _call_series_of(self, call: _Call) -> Any:
        name, inputs, p = self._params(call)
        if name in _CELLS_ONLY or name == "rsi":
            raise Unsupported(f"{call!r} is not a series a recursion can continue from")
        core = call.fn.__wrapped_core__
        ins = [self.series(x) if isinstance(x, Expr) else x for x in inputs]
        if any(not isinstance(x, Lin) for x in ins):
            raise Unsupported(f"{call!r}: a number where a series is expected")
        f = max(x.f for x in ins)
        if name in _FINITE_REACH:
            if any(not x.plain for x in ins):
                if name in ("sma", "rolling_sum", "shift") or (name == "slope" and p["normalize"] is False):
                    return self._fir(ins[0], core, p, _FINITE_REACH[name](p))
                raise Unsupported(f"{call!r} of a window-seeded series")
            (Y,) = ind.run_arrays(core, [x.Y for x in ins], p)
            return Lin(Y, [], f + _FINITE_REACH[name](p))
        if name == "ema":
            return self._ewm(ins[0], 2.0 / (ind._check_window(p["n"]) + 1))
        if name in ("dema", "tema"):
            return self._smooth(ins[0], ind._check_window(p["n"]), name)
        if name == "macd":
            fast, slow, sig = (ind._check_window(p[k], k) for k in ("fast", "slow", "signal"))
            line = _lin_add(self._ewm(ins[0], 2.0 / (fast + 1)), self._ewm(ins[0], 2.0 / (slow + 1)), -1.0)
            signal = self._ewm(line, 2.0 / (sig + 1))
            return (line, signal, _lin_add(line, signal, -1.0))
        if name == "obv":
            c, v = ins
            if not (c.plain and v.plain):
                raise Unsupported(f"{call!r} of a window-seeded series")
            Yc, Yv = ind.run_arrays(lambda a, b: (a, b), [c.Y, v.Y], {})
            step = np.sign(Yc - ind._shift(Yc, 1)) * Yv
            cum = np.cumsum(np.where(np.isnan(step), 0.0, step), axis=0)
            C = -self._at(cum, f)
            psi = np.where(np.arange(self.L) >= f, 1.0, np.nan)
            return Lin(cum, [(C, psi)], f)
        if name == "atr":
            n = ind._check_window(p["n"])
            if p["smoothing"] not in ("wilder", "sma", "ema"):
                raise Unsupported(f"{call!r}: unknown smoothing")
            if any(not x.plain for x in ins):
                raise Unsupported(f"{call!r} of a window-seeded series")
            h, lo, c = ind.run_arrays(lambda a, b, d: (a, b, d), [x.Y for x in ins], {})
            pc = ind._shift(c, 1)
            with np.errstate(invalid="ignore"):
                tr = np.maximum(h - lo, np.maximum(np.abs(h - pc), np.abs(lo - pc)))
            return self._smooth(Lin(tr, [], f + 1), n, p["smoothing"])
        raise Unsupported(f"{call!r}")

    def _fir(self, x: Lin, core: Any, p: dict, reach: int) -> Lin:
        """A linear finite-window kernel of a window-seeded series: applied to Y and to each psi."""
        (Y,) = ind.run_arrays(core, [x.Y], p)
        m = np.arange(self.L)
        terms = []
        for C, psi in x.terms:
            p1 = np.where(m >= x.f, psi, np.nan)
            (q,) = ind.run_arrays(core, [p1[:, None]], p)
            terms.append((C, q[:, 0]))
        return Lin(Y, terms, x.f + reach)

    # -- linear recursions ------------------------------------------------------
    def _ewm(self, x: Lin, alpha: float) -> Lin:
        Yp = ind._ewm(x.Y, alpha)
        C0 = self._at(x.Y, x.f)
        C0 -= self._at(Yp, x.f)
        m = np.arange(self.L)
        psi0 = np.where(m >= x.f, (1.0 - alpha) ** np.maximum(m - x.f, 0), np.nan)
        terms = [(C0, psi0)]
        for C, psi in x.terms:
            p1 = np.where(m >= x.f, psi, np.nan)
            terms.append((C, ind._ewm(p1[:, None], alpha)[:, 0]))
        return Lin(Yp, _merge(terms), x.f)

    def _wilder(self, x: Lin, n: int) -> Lin:
        Wp = ind._wilder(x.Y, n)
        seed = self._at(ind._rolling_sum(x.Y, n) / n, x.f + n - 1)
        C0 = seed
        C0 -= self._at(Wp, x.f + n - 1)
        m = np.arange(self.L)
        f1 = x.f + n - 1
        psi0 = np.where(m >= f1, (1.0 - 1.0 / n) ** np.maximum(m - f1, 0), np.nan)
        terms = [(C0, psi0)]
        for C, psi in x.terms:
            p1 = np.where(m >= x.f, psi, np.nan)
            terms.append((C, ind._wilder(p1[:, None], n)[:, 0]))
        return Lin(Wp, _merge(terms), f1)

    def _smooth(self, x: Lin, n: int, how: str) -> Lin:
        if how == "wilder":
            return self._wilder(x, n)
        if how == "sma":
            if not x.plain:
                raise Unsupported("a simple mean of a window-seeded series inside an indicator")
            return Lin(ind._rolling_sum(x.Y, n) / n, [], x.f + n - 1)
        alpha = 2.0 / (n + 1)
        e1 = self._ewm(x, alpha)
        if how == "ema":
            return e1
        e2 = self._ewm(e1, alpha)
        # the scaled copies are new arrays: adding into them saves full-size temporaries (same arithmetic)
        if how == "dema":
            return _lin_add_into(_lin_scale(e1, 2.0, "*"), e2, -1.0)
        if how == "tema":
            return _lin_add_into(_lin_add_into(_lin_scale(e1, 3.0, "*"), _lin_scale(e2, 3.0, "*"), -1.0),
                                 self._ewm(e2, alpha), 1.0)
        raise Unsupported(f"smoothing={how!r}")

    # -- cells: the value each session's window holds at a lag -----------------------
    def cells(self, e: Any, lag: int = 0) -> Any:
        if not isinstance(e, Expr):
            return e
        key = (e._key(), lag)
        if key in self._cells:
            return self._cells[key]
        out = self._cells_of(e, lag)
        if self._cell_bytes > CELL_MEMO_BYTES:
            # a long sweep over many screens: drop the cheap per-lag reads, keep the recursions
            self._cells.clear()
            self._cell_bytes = 0
        self._cells[key] = out
        self._cell_bytes += getattr(out, "nbytes", 0)
        return out

    def _cells_of(self, e: Expr, lag: int) -> np.ndarray:
        if isinstance(e, Field):
            return self.materialize(self.series(e), lag)
        if isinstance(e, _BinOp):
            lv, rv = self.cells(e.left, lag), self.cells(e.right, lag)
            if e.op in ("&", "|"):
                lv, rv = _as_bool(lv), _as_bool(rv)
            with np.errstate(divide="ignore", invalid="ignore"):
                return _OPS[e.op](lv, rv)
        if isinstance(e, _Unary):
            v = self.cells(e.arg, lag)
            return ~_as_bool(v) if e.op == "~" else np.abs(v)
        if isinstance(e, _Item):
            if e.call.fn is ind.macd:
                return self.materialize(self._call_series(e.call)[e.i], lag)
            raise Unsupported(f"{e!r}")
        if isinstance(e, _Call):
            return self._call_cells(e, lag)
        raise Unsupported(f"{e!r} cannot be computed once over the range")

    def _call_cells(self, call: _Call, lag: int) -> np.ndarray:
        name, inputs, p = self._params(call)
        if name == "rsi":
            return self._rsi_cells(call, inputs[0], p, lag)
        if name == "slope" and p["normalize"] is True and isinstance(inputs[0], Expr):
            try:
                x = self.series(inputs[0])
            except Unsupported:
                x = None
            if x is not None and not x.plain:
                # the fitted slope and the window mean are both linear in the series; their ratio is not
                n = ind._check_window(p["n"], minimum=2)
                acc = self._fir(x, ind.slope.__wrapped_core__, {**p, "normalize": False}, n - 1)
                mean = self._fir(x, ind.sma.__wrapped_core__, {"n": n}, n - 1)
                a, mn = self.materialize(acc, lag), self.materialize(mean, lag)
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(mn != 0, a / mn, np.nan)
        if name in _RECURSIVE:
            return self.materialize(self._call_series(call), lag)
        if name not in _CELLS_ONLY:
            try:
                return self.materialize(self._call_series(call), lag)
            except Unsupported:
                pass
        reach = _FINITE_REACH[name](p)
        if reach < 0:
            raise Unsupported(f"{call!r}: a negative shift looks ahead")
        if name == "count_true" and isinstance(inputs[0], Expr):
            # the last row of count_true's kernel: the sum of the last n values, NaN counted as 0
            x0 = np.asarray(self.cells(inputs[0], lag), dtype=np.float64)
            total = np.where(np.isnan(x0), 0.0, x0)
            for i in range(1, reach + 1):
                xi = np.asarray(self.cells(inputs[0], lag + i), dtype=np.float64)
                total = total + np.where(np.isnan(xi), 0.0, xi)
            return np.where(np.isnan(x0), np.nan, total)
        stacks = []
        for x in inputs:
            if isinstance(x, Expr):
                rows = [np.asarray(self.cells(x, lag + reach - i), dtype=np.float64) for i in range(reach + 1)]
                stacks.append(np.stack(rows).reshape(reach + 1, -1))
            else:
                stacks.append(np.full((reach + 1, self.S * self.J), float(x)))
        (out,) = ind.run_arrays(call.fn.__wrapped_core__, stacks, p, boolean=name in ("crossed_above", "crossed_below"))
        return out[-1].reshape(self.S, self.J)

    def _rsi_cells(self, call: _Call, x: Any, p: dict, lag: int) -> np.ndarray:
        key = ("rsi", call._key())
        if key not in self._series:
            n = ind._check_window(p["n"])
            s = self.series(x)
            if not s.plain:
                raise Unsupported(f"{call!r} of a window-seeded series")
            d = s.Y - ind._shift(s.Y, 1)
            gain = Lin(np.clip(d, 0.0, None), [], s.f + 1)
            loss = Lin(np.clip(-d, 0.0, None), [], s.f + 1)
            self._series[key] = (self._smooth(gain, n, p["smoothing"]), self._smooth(loss, n, p["smoothing"]), s.f)
        G, Lo, f = self._series[key]
        # in place on the fresh arrays materialize returns (each new full-size array costs page faults)
        g = self.materialize(G, lag, snap=True)
        np.clip(g, 0.0, None, out=g)
        lo = self.materialize(Lo, lag, snap=True)
        np.clip(lo, 0.0, None, out=lo)
        total = lo
        total += g                      # both >= 0 or NaN
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.divide(g, total, out=g)
            out *= 100.0
        out[total == 0] = 50.0          # no move at all; NaN stays NaN
        out[~self._defined(lag, f)[1]] = np.nan
        return out

    # -- conditions and screens ---------------------------------------------------------
    def condition(self, c: Condition) -> tuple[np.ndarray, np.ndarray]:
        """(value, passed) on each session's own bar, (S, J)."""
        if isinstance(c, _Not):
            v, ok = self.condition(c.part)
            return v, ~ok
        if isinstance(c, _All):  # _Any too
            flags = [self.condition(p)[1] for p in c.parts]
            n = sum(f.astype(int) for f in flags)
            passed = (n > 0) if isinstance(c, _Any) else (n == len(flags))
            return np.asarray(n, dtype=float), passed
        if not isinstance(c.test, Expr):
            raise Unsupported(f"condition {c.name!r} is a function of the bars")
        out = self.cells(c.test, 0)
        passed = _flag(out)
        if c.value is not None:
            if not isinstance(c.value, Expr):
                raise Unsupported(f"the value of {c.name!r} is a function of the bars")
            val = self.cells(c.value, 0)
        elif isinstance(c.test, _BinOp) and c.test.is_comparison and isinstance(c.test.left, Expr):
            val = self.cells(c.test.left, 0)
        else:
            val = passed.astype(float)
        val = np.broadcast_to(np.asarray(val, dtype=float), (self.S, self.J))
        return val, passed

    def evaluate(self, screen: Screen) -> dict[str, np.ndarray]:
        """Per (session, column): each condition's value and pass flag, ``signals``, ``score``, ``matched``."""
        S, J = self.S, self.J
        out: dict[str, np.ndarray] = {}
        filters_ok = np.ones((S, J), dtype=bool)
        n_signals = np.zeros((S, J), dtype=np.int64)
        score = np.zeros((S, J))
        for c in screen.filters:
            v, p = self.condition(c)
            out[c.name], out[f"{c.name}_pass"] = v, p
            filters_ok &= p
        for c in screen.signals:
            v, p = self.condition(c)
            out[c.name], out[f"{c.name}_pass"] = v, p
            n_signals += p.astype(int)
            score += p.astype(float) * c.weight
        out["signals"], out["score"] = n_signals, score
        out["matched"] = filters_ok & (n_signals >= screen.min_signals)
        return out


def _as_bool(x: Any) -> Any:
    if isinstance(x, np.ndarray) and x.dtype != bool:
        return np.where(np.isnan(x), 0, x).astype(bool)
    return x


def _flag(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool:
        return a
    a = a.astype(float)
    return np.where(np.isnan(a), False, a != 0)


# --------------------------------------------------------------------------
# picks
# --------------------------------------------------------------------------

def scan_range(scanner: RangeScanner, screen: Screen, scanned: np.ndarray, meta: pd.DataFrame | None,
               top: int | None = None) -> pd.DataFrame:
    """Ranked matches of every session: ``date, rank`` and the columns ``scan`` returns.

    ``scanned`` (S, J): the cells the per-session scan would evaluate
    (in the universe, listed, traded, enough bars).
    """
    data = scanner.data
    table = scanner.evaluate(screen)
    ok = scanned & table["matched"]
    ii, jj = np.nonzero(ok)
    close0 = scanner.cells(Field("close"), 0)
    close1 = scanner.cells(Field("close"), 1)
    value0 = scanner.cells(Field("value"), 0)
    codes = data.codes[jj].astype(str)
    base = {
        "date": data.sessions[ii],
        "code": codes,
        "name": _meta(meta, "name", codes),
        "market": _meta(meta, "market", codes),
        "close": close0[ii, jj],
        "change_pct": (close0[ii, jj] / close1[ii, jj] - 1.0) * 100.0,
        "value": value0[ii, jj],
        "score": table["score"][ii, jj],
        "signals": table["signals"][ii, jj],
    }
    for c in screen.conditions:
        base[c.name] = np.asarray(table[c.name], dtype=float)[ii, jj]
        base[f"{c.name}_pass"] = np.asarray(table[f"{c.name}_pass"], dtype=bool)[ii, jj]
    df = pd.DataFrame(base)
    # per session: score, then signals, then traded value (all descending), code breaks ties
    order = np.lexsort((df["code"].to_numpy(), -df["value"].to_numpy(), -df["signals"].to_numpy(),
                        -df["score"].to_numpy(), ii))
    df = df.iloc[order].reset_index(drop=True)
    rank = df.groupby("date", sort=False).cumcount().to_numpy() + 1
    df.insert(1, "rank", rank)
    if top is not None:
        df = df[df["rank"] <= top].reset_index(drop=True)
    return df


def _meta(meta: pd.DataFrame | None, col: str, codes: np.ndarray) -> np.ndarray:
    if meta is None or col not in meta.columns or len(codes) == 0:
        return np.array([None] * len(codes), dtype=object)
    s = meta[col].reindex(codes).astype(object)
    return s.where(s.notna(), None).to_numpy()


# --------------------------------------------------------------------------
# a range prepared once, scanned with any screen
# --------------------------------------------------------------------------

@dataclass
class Prepared:
    """A universe's bars over a range of sessions, ready to be scanned with any screen.

    Build with :func:`prepare_range`; ``scan(conditions, top)`` gives every
    session's ranked picks.  Indicators are memoised across screens.
    """

    data: RangeData
    scanner: RangeScanner
    meta: pd.DataFrame | None
    member: np.ndarray      # (S, J) in the universe, listed and traded on the session
    nbars: np.ndarray       # (S, J) bars in the session's window
    universe: Any = None

    @property
    def sessions(self) -> pd.DatetimeIndex:
        return self.data.sessions

    def scan(self, conditions: Any, top: int | None = None) -> pd.DataFrame:
        from .conditions import as_screen
        from .scanner import _check_lookback

        screen = as_screen(conditions)
        _check_lookback(self.data.lookback, screen)
        scanned = self.member & (self.nbars >= screen.min_bars)
        return scan_range(self.scanner, screen, scanned, self.meta, top)


def prepare_range(sessions: pd.DatetimeIndex, universe: Any, lookback: int, *, progress: bool = False) -> Prepared:
    """Load ``universe``'s bars once for the final ``sessions`` (ascending) and return a :class:`Prepared`.

    Raises :class:`Unsupported` for universes with liquidity filters (their
    membership depends on each session's window; the per-session scan
    handles them).
    """
    from .universe import resolve_universe

    uni = resolve_universe(universe)
    if uni.has_liquidity_filter and uni.value_window > lookback:
        raise Unsupported("a liquidity window longer than the lookback is scanned session by session")
    sessions = pd.DatetimeIndex(sessions)
    if uni.func is None:
        codes, meta = uni.candidates(sessions[-1])
        per_session = None
    else:
        per_session = [set(uni.candidates(d)[0]) for d in sessions]
        codes, meta = uni.candidates(sessions[-1])
        metas = [meta] + [uni.candidates(d)[1] for d in sessions[:-1]]
        meta = pd.concat(metas)
        meta = meta[~meta.index.duplicated(keep="first")]
        codes = sorted(set().union(*per_session))
    data = load_range(list(codes), sessions, lookback, progress=progress)
    S, J = data.shape
    member = data.pos >= 0
    cols = pd.Index(data.codes.astype(str))
    if meta is not None and "listed" in meta.columns and J:
        listed = pd.to_datetime(meta["listed"].reindex(cols), errors="coerce").to_numpy()
        late = listed[None, :] > data.sessions.values[:, None]   # NaT compares False: kept, as scan does
        member &= ~late
    if per_session is not None and J:
        for i, wanted in enumerate(per_session):
            member[i] &= cols.isin(list(wanted))
    nbars = np.where(member, data.pos - data.start + 1, 0)
    scanner = RangeScanner(data)
    if uni.has_liquidity_filter and J:
        member = _liquidity(scanner, uni, member, data.codes.astype(str))
        nbars = np.where(member, nbars, 0)
    return Prepared(data=data, scanner=scanner, meta=meta, member=member, nbars=nbars, universe=uni)


def _liquidity(scanner: RangeScanner, uni: Any, member: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``Universe.liquidity_filter`` for every session: the mean traded value of each window's last bars."""
    value = Field("value")
    total = np.zeros(member.shape)
    count = np.zeros(member.shape)
    for lag in range(uni.value_window):
        v = scanner.cells(value, lag)
        ok = ~np.isnan(v)
        total += np.where(ok, v, 0.0)
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    keep = member.copy()
    if uni.min_value is not None:
        with np.errstate(invalid="ignore"):
            keep &= mean >= uni.min_value
    if uni.top_value is not None:
        for i in range(keep.shape[0]):
            cand = np.flatnonzero(keep[i])
            if len(cand) > uni.top_value:
                # largest mean first, code breaks ties (NaN means last), as the per-session filter ranks
                m = -mean[i, cand]
                order = np.lexsort((codes[cand], np.where(np.isnan(m), np.inf, m)))
                row = np.zeros(keep.shape[1], dtype=bool)
                row[cand[order[:uni.top_value]]] = True
                keep[i] = row
    return keep

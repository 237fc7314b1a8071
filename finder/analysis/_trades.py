"""Trade evaluation and equity curves: the one numpy core behind ``backtest`` and ``sweep``.

:func:`evaluate_aligned` turns picks into trades (entry, target/stop, horizon
exits, the exit reasons) for all picks at once; :func:`equity_aligned` turns
trades into the equal-weight overlapping-cohort equity curve.  Both are pure
functions of already checked, aligned inputs: ``backtest.evaluate_trades`` and
``backtest.equity_curve`` check their arguments and call them, and the sweep
calls them directly for each configuration (its arguments were checked once).

What it guarantees: the same rows, values and dtypes as the per-pick reference
loop kept in ``backtest`` (``_PER_PICK_LOOP``) and as a row-by-row equity sum,
bit for bit (tests/test_sweep_trades.py, tests/test_backtest.py).
What it does not do: check arguments, load prices or decide adjustment bases.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .. import calendar
from .._exceptions import InvalidInputError

PRICE_FIELDS = ("open", "high", "low", "close")

__all__ = ["evaluate_aligned", "equity_aligned"]


def evaluate_aligned(picks: pd.DataFrame, index: pd.DatetimeIndex, px: Mapping[str, pd.DataFrame],
                 horizons: tuple[int, ...], entry: str, tp: float | None, sl: float | None, cost_bps: float,
                 delisted: Collection[str], final_end: Any) -> pd.DataFrame:
    """The trades of :func:`~finder.analysis.backtest.evaluate_trades` on already aligned, checked inputs.

    ``index``/``px``: as from ``backtest._align_prices`` (one index, one column
    set, float panels); the trade parameters already checked.  Every branch
    mirrors the per-pick reference loop (``backtest._PER_PICK_LOOP``), with the
    same floating-point operations in the same order; the tests compare the two
    frames exactly.
    """
    from .backtest import TRADE_COLUMNS, _trades_frame

    cost = cost_bps / 10_000
    last = len(index) - 1
    if final_end is not None:
        last = int(index.searchsorted(calendar.parse_date(final_end, "final_end"), side="right")) - 1
    n_rows = len(index) - 1
    maxh = max(horizons)
    if picks is None or len(picks) == 0:
        return _trades_frame([])
    dates = pd.DatetimeIndex(pd.to_datetime(picks["date"]))
    pos = index.get_indexer(dates)
    if (pos < 0).any():
        raise InvalidInputError(f"pick date {dates[pos < 0][0].date()} is not in the price panels' index")
    cols = px["close"].columns
    O, Hh, L, C = (px[f].to_numpy(dtype=float) for f in PRICE_FIELDS)
    T = C.shape[0]
    codes = picks["code"].to_numpy(dtype=object)
    jcol = cols.get_indexer(pd.Index(codes, dtype=object)) if len(cols) else np.full(len(codes), -1)
    finite = np.isfinite(C)
    has_any = finite.any(axis=0) if C.size else np.zeros(0, dtype=bool)
    # last finite close per column, and the last finite row at or before each row
    rows_idx = np.arange(T)[:, None]
    lastrow = np.where(finite, rows_idx, -1)
    lastidx = np.maximum.accumulate(lastrow, axis=0) if T else lastrow
    last_finite = lastidx[-1] if T else np.zeros(0, dtype=int)
    n, nh = len(picks), len(horizons)
    hs = np.asarray(horizons)
    reason = np.empty((n, nh), dtype=object)
    ed_row = np.full(n, -1)
    ep = np.full((n, nh), np.nan)
    xr = np.full((n, nh), -1)
    xp = np.full((n, nh), np.nan)
    held = np.full((n, nh), np.nan)
    is_del = pd.Index(codes, dtype=object).isin(list(frozenset(delisted)))

    nodata = (jcol < 0) | ~has_any[np.maximum(jcol, 0)] if len(cols) else np.ones(n, dtype=bool)
    ie = pos + 1 if entry == "next_open" else pos.copy()
    reason[nodata] = "no_data"
    todo = ~nodata
    m = todo & (ie > n_rows)
    reason[m] = "no_next_session"
    todo &= ~m
    if entry == "close":
        m = todo & (ie > last)
        reason[m] = "incomplete"
        todo &= ~m
    j = np.where(todo, jcol, 0)
    iec = np.clip(ie, 0, max(T - 1, 0))
    p0 = np.where(todo, (O if entry == "next_open" else C)[iec, j] if T else np.nan, np.nan)
    cie = C[iec, j] if T else np.full(n, np.nan)
    m = todo & (np.isnan(p0) | np.isnan(cie))
    gone = is_del & (last_finite[j] < ie + 1) if T else np.zeros(n, dtype=bool)
    r = np.where(gone, "delisted", "untradable").astype(object)
    r = np.where(ie > last, "incomplete", r)
    reason[m] = r[m][:, None]
    todo &= ~m
    # -- entered picks: target/stop events over their window, then each horizon --
    k = np.flatnonzero(todo)
    if k.size:
        jk, ik, iek, p0k = j[k], pos[k], ie[k], p0[k]
        first = iek if entry == "next_open" else iek + 1
        stop = np.minimum(last, ik + maxh)
        ev_row = np.full(k.size, -1)
        ev_px = np.full(k.size, np.nan)
        ev_kind = np.empty(k.size, dtype=object)
        if tp is not None or sl is not None:
            W = maxh + 1
            rows = first[:, None] + np.arange(W)[None, :]
            inwin = rows <= stop[:, None]
            rr = np.clip(rows, 0, T - 1)
            o_w, h_w, l_w = O[rr, jk[:, None]], Hh[rr, jk[:, None]], L[rr, jk[:, None]]
            with np.errstate(invalid="ignore"):
                tp_px = p0k * (1 + tp) if tp is not None else np.full(k.size, np.inf)
                sl_px = p0k * (1 - sl) if sl is not None else np.full(k.size, -np.inf)
                hit_tp = (h_w >= tp_px[:, None]) & inwin
                hit_sl = (l_w <= sl_px[:, None]) & inwin
            anyhit = hit_tp | hit_sl
            has = anyhit.any(axis=1)
            w0 = np.argmax(anyhit, axis=1)
            sel = np.arange(k.size)
            op = o_w[sel, w0]
            hs_sl = hit_sl[sel, w0]
            gap_sl = (sl is not None) & ~np.isnan(op) & (op <= sl_px)
            gap_tp = (tp is not None) & ~np.isnan(op) & (op >= tp_px)
            kind = np.where(gap_sl, "stop_loss", np.where(gap_tp, "take_profit",
                                                          np.where(hs_sl, "stop_loss", "take_profit")))
            price = np.where(gap_sl | gap_tp, op, np.where(hs_sl, sl_px, tp_px))
            ok = has & (first <= stop)
            ev_row = np.where(ok, first + w0, -1)
            ev_px = np.where(ok, price, np.nan)
            ev_kind = np.where(ok, kind, None).astype(object)
        ed_row[k] = iek
        for a, h in enumerate(hs):
            tgt = ik + h
            by_event = (ev_row >= 0) & (ev_row <= tgt)
            late = ~by_event & (tgt > last)
            tg = np.clip(tgt, 0, T - 1)
            cfin = finite[tg, jk]
            at_h = ~by_event & ~late & cfin
            gap = ~by_event & ~late & ~cfin
            rk = np.empty(k.size, dtype=object)
            rk[by_event] = ev_kind[by_event]
            rk[late] = "incomplete"
            rk[at_h] = "horizon"
            jr = lastidx[tg, jk]
            gone_h = is_del[k] & (last_finite[jk] < tgt + 1)
            rk[gap] = np.where(gone_h, "delisted", "halted")[gap]
            reason[k, a] = rk
            ep[k, a] = p0k
            xrow = np.where(by_event, ev_row, np.where(at_h, tgt, np.where(gap, jr, -1)))
            xr[k, a] = xrow
            xp[k, a] = np.where(by_event, ev_px, np.where(at_h, C[tg, jk], np.where(gap, C[np.clip(jr, 0, T - 1), jk],
                                                                                      np.nan)))
            held[k, a] = np.where(by_event | gap, (xrow - ik).astype(float), np.where(at_h, float(h), np.nan))
    # -- the frame, built as the reference builds it ---------------------------------
    with np.errstate(invalid="ignore"):
        gross = np.where(np.isfinite(ep) & np.isfinite(xp), xp / ep - 1, np.nan)
        ret = np.where(np.isfinite(gross), gross - cost, np.nan)
    rep = np.repeat(np.arange(n), nh)
    iv = index.values  # datetime64 of the index's own unit; NaT where no row

    def stamps(rows_: np.ndarray) -> np.ndarray:
        a = iv[np.clip(rows_, 0, max(len(iv) - 1, 0))] if len(iv) else np.full(rows_.shape, np.datetime64("NaT"))
        return np.where(rows_ >= 0, a, np.datetime64("NaT"))

    entered = np.isfinite(ep).ravel()
    out = {
        "date": stamps(pos[rep]),
        "code": codes[rep],
        "name": picks["name"].to_numpy(dtype=object)[rep] if "name" in picks.columns else np.full(n * nh, None),
        "rank": picks["rank"].to_numpy(dtype=object)[rep] if "rank" in picks.columns else np.full(n * nh, np.nan),
        "score": picks["score"].to_numpy(dtype=object)[rep] if "score" in picks.columns else np.full(n * nh, np.nan),
        "horizon": np.tile(hs, n).astype("int64"),
        "entry_date": stamps(np.where(entered, ed_row[rep], -1)),
        "entry_price": ep.ravel(),
        "exit_date": stamps(xr.ravel()),
        "exit_price": xp.ravel(),
        "gross_return": gross.ravel(),
        "return": ret.ravel(),
        "exit_reason": reason.ravel(),
        "held": held.ravel(),
    }
    df = pd.DataFrame(out, columns=TRADE_COLUMNS)
    for col in ("date", "entry_date", "exit_date"):
        df[col] = pd.to_datetime(df[col])
    for col in ("entry_price", "exit_price", "gross_return", "return", "score", "rank", "held"):
        df[col] = df[col].astype(float)
    df["horizon"] = df["horizon"].astype("int64")
    return df


def equity_aligned(trades: pd.DataFrame, close: pd.DataFrame, sessions: pd.DatetimeIndex, H: int,
                   cost_bps: float) -> pd.DataFrame:
    """The frame of :func:`~finder.analysis.backtest.equity_curve` on checked inputs (the rule is there).

    Each cohort's trade paths are one matrix (memory: one cohort's picks x the
    timeline), summed row after row in the trades' order by a cumulative sum, so
    the additions are the same floating-point operations, in the same order, as
    a loop adding one trade's path at a time (the tests compare with such a
    loop).  ``sessions`` must be rows of ``close``'s index (``equity_curve``
    checks that).
    """
    cost = cost_bps / 10_000
    index = pd.DatetimeIndex(close.index)
    sess = pd.DatetimeIndex(pd.to_datetime(list(sessions))).sort_values()
    spos = index.get_indexer(sess)
    t0 = int(spos[0])
    t_end = min(len(index), int(spos[-1]) + H + 1)
    T = t_end - t0
    tl = index[t0:t_end]
    closes_ff = close.iloc[t0:t_end].ffill()
    marks = closes_ff.to_numpy(dtype=float)
    hz = trades["horizon"].to_numpy()
    sel = np.flatnonzero(hz == H)
    n = sel.size
    ent = trades["entry_date"].to_numpy()[sel]
    ext = trades["exit_date"].to_numpy()[sel]
    tr_ie = tl.get_indexer(pd.DatetimeIndex(ent)) if n else np.zeros(0, dtype=int)
    tr_ix = tl.get_indexer(pd.DatetimeIndex(ext)) if n else np.zeros(0, dtype=int)
    p0s = trades["entry_price"].to_numpy(dtype=float)[sel]
    rets = trades["return"].to_numpy(dtype=float)[sel]
    col = closes_ff.columns.get_indexer(pd.Index(trades["code"].to_numpy(dtype=object)[sel], dtype=object)) \
        if n else np.zeros(0, dtype=int)
    live = np.isfinite(p0s) & (tr_ie >= 0) & (col >= 0)
    # each cohort's rows, in the trades' order (a stable sort by date, keyed by ns integers)
    di = pd.DatetimeIndex(trades["date"].to_numpy()[sel]).values.astype("datetime64[ns]").view("i8") \
        if n else np.zeros(0, "i8")
    srt = np.argsort(di, kind="stable")
    uniq, starts = np.unique(di[srt], return_index=True)
    order = dict(zip(uniq.tolist(), np.split(srt, starts[1:]))) if n else {}
    sess_ns = sess.values.astype("datetime64[ns]").view("i8").tolist()
    t = np.arange(T)[None, :]
    sleeves = np.full((H, T), 1.0 / H)  # cash until a sleeve's first cohort (or forever, if none comes)
    positions = np.zeros(T, dtype=int)
    started = np.zeros(H, dtype=bool)
    for k, (d, p) in enumerate(zip(sess_ns, spos)):
        s, a = k % H, int(p) - t0
        # the sleeve's value at this session's close: cash from the previous cohort, or the initial 1/H
        capital = sleeves[s, a] if started[s] else 1.0 / H
        started[s] = True
        rows = order.get(d, ())
        if len(rows) == 0:
            sleeves[s, a:] = capital  # nothing picked: the sleeve waits in cash
            continue
        lv = live[rows]
        ie = tr_ie[rows][:, None]
        ix = tr_ix[rows][:, None]
        # Only columns a..b are computed: before a the sleeve is not this cohort's, and from b on every path is
        # constant (closed, or never entered), so value[b:] all equal value[b] (the same additions, repeated).
        b = T - 1 if (lv & (tr_ix[rows] < 0)).any() else int(max(a, tr_ix[rows][lv].max(initial=a)))
        tt = t[:, a:b + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mark = marks[a:b + 1, np.where(lv, col[rows], 0)].T / p0s[rows][:, None] - cost
        held = lv[:, None] & (tt >= ie) & ((ix < 0) | (tt < ix))    # marked to market (to the end if incomplete)
        done = lv[:, None] & (ix >= 0) & (tt >= ix)               # closed: its net return, in cash
        P = np.where(held, mark, np.where(done, (1.0 + rets[rows])[:, None], 1.0))  # never entered: cash
        pos_rows = lv & (tr_ie[rows] <= T - 1)
        if pos_rows.any():  # held from entry through exit (inclusive), or to the end when incomplete
            e0, e1 = tr_ie[rows][pos_rows], np.where(tr_ix[rows][pos_rows] < 0, T - 1, tr_ix[rows][pos_rows])
            diff = np.zeros(T + 1, dtype=int)
            np.add.at(diff, e0, 1)
            np.add.at(diff, e1 + 1, -1)
            positions += np.cumsum(diff[:T])
        P[0] = 0.0 + P[0]  # the loop starts from zeros: 0.0 + x (turns -0.0 into 0.0, as it does)
        value = np.cumsum(P, axis=0)[-1]  # strictly one row after another
        sleeves[s, a:b + 1] = capital * value / len(rows)
        sleeves[s, b + 1:] = capital * value[-1] / len(rows)
    equity = pd.Series(sleeves.sum(axis=0), index=tl, name="equity")
    return pd.DataFrame({"equity": equity,
                         "drawdown": equity / equity.cummax() - 1,
                         "return": equity.pct_change().fillna(equity.iloc[0] - 1.0),
                         "positions": positions}, index=tl)

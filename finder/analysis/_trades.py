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


def _pick_arrays(picks: pd.DataFrame, index: pd.DatetimeIndex, px: Mapping[str, pd.DataFrame],
                 delisted: Collection[str]) -> dict[str, Any]:
    """What the trade rules share: pick rows and columns, price arrays, last finite rows, delisted flags."""
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
    is_del = pd.Index(codes, dtype=object).isin(list(frozenset(delisted)))
    return {"pos": pos, "codes": codes, "jcol": jcol, "is_del": is_del, "O": O, "H": Hh, "L": L, "C": C,
            "finite": finite, "has_any": has_any, "lastidx": lastidx, "last_finite": last_finite}


def evaluate_aligned(picks: pd.DataFrame, index: pd.DatetimeIndex, px: Mapping[str, pd.DataFrame],
                 horizons: tuple[int, ...], entry: str, tp: float | None, sl: float | None, cost_bps: float,
                 delisted: Collection[str], final_end: Any, memo: dict | None = None) -> pd.DataFrame:
    """The trades of :func:`~finder.analysis.backtest.evaluate_trades` on already aligned, checked inputs.

    ``index``/``px``: as from ``backtest._align_prices`` (one index, one column
    set, float panels); the trade parameters already checked.  Every branch
    mirrors the per-pick reference loop (``backtest._PER_PICK_LOOP``), with the
    same floating-point operations in the same order; the tests compare the two
    frames exactly.

    ``memo``: a dict the caller keeps for one ``(picks, index, px, delisted)``
    to evaluate several trade rules on it; what does not depend on the rule
    (positions, columns, price windows) is computed once and kept there.  The
    caller must not reuse it for other inputs.
    """
    from .backtest import _trades_frame

    cost = cost_bps / 10_000
    last = len(index) - 1
    if final_end is not None:
        last = int(index.searchsorted(calendar.parse_date(final_end, "final_end"), side="right")) - 1
    n_rows = len(index) - 1
    maxh = max(horizons)
    if picks is None or len(picks) == 0:
        return _trades_frame([])
    memo = {} if memo is None else memo
    if "pos" not in memo:
        memo.update(_pick_arrays(picks, index, px, delisted))
    pos, codes, jcol, is_del = memo["pos"], memo["codes"], memo["jcol"], memo["is_del"]
    O, Hh, L, C = memo["O"], memo["H"], memo["L"], memo["C"]
    finite, has_any, lastidx, last_finite = memo["finite"], memo["has_any"], memo["lastidx"], memo["last_finite"]
    cols = px["close"].columns
    T = C.shape[0]
    n, nh = len(picks), len(horizons)
    hs = np.asarray(horizons)
    reason = np.empty((n, nh), dtype=object)
    ed_row = np.full(n, -1)
    ep = np.full((n, nh), np.nan)
    xr = np.full((n, nh), -1)
    xp = np.full((n, nh), np.nan)
    held = np.full((n, nh), np.nan)

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
    if m.any():
        r = np.where(gone[m], "delisted", "untradable").astype(object)
        r = np.where((ie > last)[m], "incomplete", r)
        reason[m] = r[:, None]
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
            wkey = ("window", entry, maxh, last)
            if wkey not in memo:  # the same picks enter the same way under every target/stop
                W = maxh + 1
                rows = first[:, None] + np.arange(W)[None, :]
                rr = np.clip(rows, 0, T - 1)
                memo[wkey] = (k, rows <= stop[:, None], O[rr, jk[:, None]], Hh[rr, jk[:, None]], L[rr, jk[:, None]])
            _, inwin, o_w, h_w, l_w = memo[wkey]  # (the entered picks depend only on entry and last: the key)
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
    return _trades_frame(out)  # the same columns and dtypes as the per-pick loop's frame


def equity_aligned(trades: pd.DataFrame, close: pd.DataFrame, sessions: pd.DatetimeIndex, H: int,
                   cost_bps: float, trade_cols: np.ndarray | None = None) -> pd.DataFrame:
    """The frame of :func:`~finder.analysis.backtest.equity_curve` on checked inputs (the rule is there).

    Each cohort's trade paths are one matrix (memory: one cohort's picks x the
    timeline), summed row after row in the trades' order by a cumulative sum, so
    the additions are the same floating-point operations, in the same order, as
    a loop adding one trade's path at a time (the tests compare with such a
    loop).  ``sessions`` must be rows of ``close``'s index (``equity_curve``
    checks that).  ``trade_cols``: optionally, each trade row's column in
    ``close`` (-1: none), when the caller knows them already.
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
    if trade_cols is not None:
        col = np.asarray(trade_cols)[sel]
    else:
        col = closes_ff.columns.get_indexer(pd.Index(trades["code"].to_numpy(dtype=object)[sel], dtype=object)) \
            if n else np.zeros(0, dtype=int)
    live = np.isfinite(p0s) & (tr_ie >= 0) & (col >= 0)
    di = pd.DatetimeIndex(trades["date"].to_numpy()[sel]).values.astype("datetime64[ns]").view("i8") \
        if n else np.zeros(0, "i8")
    sess_ns = sess.values.astype("datetime64[ns]").view("i8")
    # Only the trades of scanned sessions hold (a session listed twice counts twice, as in a loop over sessions).
    s_uniq, s_first, s_mult = np.unique(sess_ns, return_index=True, return_counts=True)
    hit = np.searchsorted(s_uniq, di) if n else np.zeros(0, dtype=int)
    hit = np.minimum(hit, max(len(s_uniq) - 1, 0))
    ins = (s_uniq[hit] == di) if n else np.zeros(0, dtype=bool)
    # each trade's cohort column a; its path matters on columns a..a+W-1 only: before a the sleeve is not
    # its cohort's, and from its exit on (or never entered) it is constant
    a_tr = (spos[s_first[hit]] - t0) if n else np.zeros(0, dtype=int)
    end_col = np.where(tr_ix < 0, T - 1, tr_ix)
    W = int(max(1, (end_col - a_tr)[ins & live].max(initial=0) + 1))
    # rows of the scanned sessions, grouped by cohort, in the trades' order within each (a stable sort)
    keep = np.flatnonzero(ins)
    keep = keep[np.argsort(di[keep], kind="stable")]
    rel = a_tr[keep][:, None] + np.arange(W)[None, :]
    ie, ix, lv = tr_ie[keep][:, None], tr_ix[keep][:, None], live[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        mark = marks[np.clip(rel, 0, max(T - 1, 0)), np.where(lv, col[keep], 0)[:, None]] / p0s[keep][:, None] - cost
    held = lv[:, None] & (rel >= ie) & ((ix < 0) | (rel < ix))    # marked to market (to the end if incomplete)
    done = lv[:, None] & (ix >= 0) & (rel >= ix)                 # closed: its net return, in cash
    P = np.where(held, mark, np.where(done, (1.0 + rets[keep])[:, None], 1.0))  # never entered: cash
    g_uniq, g_start, g_count = (np.unique(di[keep], return_index=True, return_counts=True) if keep.size
                                else (np.zeros(0, "i8"), np.zeros(0, dtype=int), np.zeros(0, dtype=int)))
    # Each cohort's value: zeros plus its paths one after another in the trades' order, the r-th path of
    # every cohort added in step r (the same additions, in the same order, as a loop over trades).
    values = np.zeros((len(g_uniq), W))
    for r in range(int(g_count.max(initial=0))):
        gi = np.flatnonzero(g_count > r)
        values[gi] += P[g_start[gi] + r]
    group = dict(zip(g_uniq.tolist(), range(len(g_uniq))))
    positions = np.zeros(T, dtype=int)
    pk = keep[lv]
    if pk.size:  # held from entry through exit (inclusive), or to the end when incomplete; once per listing
        mult = s_mult[hit[pk]]
        diff = np.zeros(T + 1, dtype=int)
        np.add.at(diff, tr_ie[pk], mult)
        np.add.at(diff, end_col[pk] + 1, -mult)
        positions = np.cumsum(diff[:T])
    sleeves = np.full((H, T), 1.0 / H)  # cash until a sleeve's first cohort (or forever, if none comes)
    started = np.zeros(H, dtype=bool)
    for k, (d, p) in enumerate(zip(sess_ns.tolist(), spos)):
        s, a = k % H, int(p) - t0
        # the sleeve's value at this session's close: cash from the previous cohort, or the initial 1/H
        capital = sleeves[s, a] if started[s] else 1.0 / H
        started[s] = True
        g = group.get(d)
        if g is None:
            sleeves[s, a:] = capital  # nothing picked: the sleeve waits in cash
            continue
        v, cnt = values[g], int(g_count[g])
        w = min(W, T - a)
        sleeves[s, a:a + w] = capital * v[:w] / cnt
        sleeves[s, a + w:] = capital * v[w - 1] / cnt
    equity = pd.Series(sleeves.sum(axis=0), index=tl, name="equity")
    return pd.DataFrame({"equity": equity,
                         "drawdown": equity / equity.cummax() - 1,
                         "return": equity.pct_change().fillna(equity.iloc[0] - 1.0),
                         "positions": positions}, index=tl)

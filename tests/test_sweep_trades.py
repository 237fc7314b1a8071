"""The one trade/equity core (finder.analysis._trades) equals per-pick reference loops exactly, on awkward panels.

The trade oracle is backtest's per-pick loop (``_PER_PICK_LOOP``); the equity oracle is the row-by-row loop
below (the original ``equity_curve``), kept here only as a test oracle.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from finder.analysis import backtest as bt
from finder.analysis._trades import equity_aligned, evaluate_aligned
from finder.analysis.backtest import _align_prices, equity_curve, evaluate_trades


def _loop_trades(monkeypatch, *args, **kw):
    monkeypatch.setattr(bt, "_PER_PICK_LOOP", True)
    try:
        return evaluate_trades(*args, **kw)
    finally:
        monkeypatch.setattr(bt, "_PER_PICK_LOOP", False)


def _loop_equity(trades, close, sessions, H, cost_bps):
    """The original equity_curve: each trade's path added to its cohort one at a time."""
    cost = cost_bps / 10_000
    index = pd.DatetimeIndex(close.index)
    sess = pd.DatetimeIndex(pd.to_datetime(list(sessions))).sort_values()
    spos = index.get_indexer(sess)
    t0 = int(spos[0])
    # The curve ends when the last cohort's horizon is over (or at the data's end).
    t_end = min(len(index), int(spos[-1]) + H + 1)
    T = t_end - t0
    tl = index[t0:t_end]
    closes_ff = close.iloc[t0:t_end].ffill()
    col_of = {c: j for j, c in enumerate(closes_ff.columns)}
    marks = closes_ff.to_numpy(dtype=float)
    tr = trades[trades["horizon"] == H]
    # Positions of every trade on the timeline, computed once (not per row).
    tr_ie = tl.get_indexer(pd.DatetimeIndex(tr["entry_date"]))
    tr_ix = tl.get_indexer(pd.DatetimeIndex(tr["exit_date"]))
    by_date: dict[pd.Timestamp, np.ndarray] = {}
    for i, d in enumerate(pd.DatetimeIndex(tr["date"])):
        by_date.setdefault(d, []).append(i)  # type: ignore[arg-type]
    codes = tr["code"].to_numpy()
    p0s = tr["entry_price"].to_numpy(dtype=float)
    rets = tr["return"].to_numpy(dtype=float)
    sleeves = np.full((H, T), 1.0 / H)  # cash until a sleeve's first cohort (or forever, if none comes)
    positions = np.zeros(T, dtype=int)
    started = np.zeros(H, dtype=bool)
    for k, (d, p) in enumerate(zip(sess, spos)):
        s, a = k % H, int(p) - t0
        # the sleeve's value at this session's close: cash from the previous cohort, or the initial 1/H
        capital = sleeves[s, a] if started[s] else 1.0 / H
        started[s] = True
        rows = by_date.get(d, [])
        if not rows:
            sleeves[s, a:] = capital  # nothing picked: the sleeve waits in cash
            continue
        value = np.zeros(T)
        for i in rows:
            path = np.ones(T)  # a share that was never entered stays in cash
            if np.isfinite(p0s[i]) and tr_ie[i] >= 0:
                ie, ix = int(tr_ie[i]), int(tr_ix[i])
                mark = marks[:, col_of[codes[i]]] / p0s[i] - cost
                if ix < 0:  # incomplete: marked to market to the end of the data
                    path[ie:] = mark[ie:]
                    positions[ie:] += 1
                else:
                    path[ie:ix] = mark[ie:ix]
                    path[ix:] = 1.0 + rets[i]
                    positions[ie:ix + 1] += 1
            value += path
        sleeves[s, a:] = capital * value[a:] / len(rows)
    equity = pd.Series(sleeves.sum(axis=0), index=tl, name="equity")
    return pd.DataFrame({"equity": equity,
                         "drawdown": equity / equity.cummax() - 1,
                         "return": equity.pct_change().fillna(equity.iloc[0] - 1.0),
                         "positions": positions}, index=tl)


def _panels(seed=3, T=40, N=12):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2025-03-03", periods=T)
    codes = [f"{i:06d}" for i in range(N)]
    c = 1000 * np.exp(np.cumsum(rng.normal(0, 0.03, (T, N)), 0))
    o = c * np.exp(rng.normal(0, 0.02, (T, N)))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.05, (T, N)))
    l = np.minimum(o, c) * (1 - rng.uniform(0, 0.05, (T, N)))
    px = {k: pd.DataFrame(v, index=idx, columns=codes) for k, v in (("open", o), ("high", h), ("low", l), ("close", c))}
    for f in px.values():
        f.iloc[10:14, 1] = np.nan      # a halt
        f.iloc[25:, 2] = np.nan        # stops trading (delisted below)
        f.iloc[30:, 3] = np.nan        # stops trading (a long halt: not known delisted)
        f.iloc[:, 4] = np.nan          # no data at all
    px["open"].iloc[18, 5] = np.nan    # an open missing on an entry day
    picks = pd.DataFrame([(idx[i], codes[j], f"n{j}" if j % 3 else None, r, float(rng.integers(1, 9)))
                          for r, (i, j) in enumerate(itertools.product(range(0, T, 3), range(N)), 1)
                          if rng.random() < 0.6] + [(idx[-1], codes[0], "x", 1, 2.0), (idx[-2], codes[6], "y", 1, 3.0)],
                         columns=["date", "code", "name", "rank", "score"])
    picks = pd.concat([picks, pd.DataFrame({"date": [idx[5], idx[7]], "code": ["999999", codes[7]],
                                            "name": ["gone", "off-session"], "rank": [1, 2], "score": [1.0, 2.0]})],
                      ignore_index=True)
    return idx, px, picks


@pytest.mark.parametrize("entry", ["next_open", "close"])
@pytest.mark.parametrize("tp,sl", [(None, None), (0.04, None), (None, 0.03), (0.05, 0.05), (0.01, 0.01)])
@pytest.mark.parametrize("final", [None, -3])
def test_core_trades_equal_the_per_pick_loop(monkeypatch, entry, tp, sl, final):
    idx, px, picks = _panels()
    final_end = idx[final] if final is not None else None
    delisted = frozenset({"000002"})
    ref = _loop_trades(monkeypatch, picks, px, horizons=(1, 3, 7), entry=entry, take_profit=tp, stop_loss=sl,
                       cost_bps=25, delisted=delisted, final_end=final_end)
    index, apx = _align_prices(px)
    mine = evaluate_aligned(picks, index, apx, (1, 3, 7), entry, tp, sl, 25.0, delisted, final_end)
    reasons = set(ref["exit_reason"])
    assert reasons >= {"delisted", "no_data", "untradable"}
    assert ("halted" in reasons) if tp is None and sl is None else (reasons & {"take_profit", "stop_loss"})
    pd.testing.assert_frame_equal(mine, ref, check_exact=True)
    # the public function is the core behind its checks
    pd.testing.assert_frame_equal(evaluate_trades(picks, px, horizons=(1, 3, 7), entry=entry, take_profit=tp,
                                                  stop_loss=sl, cost_bps=25, delisted=delisted, final_end=final_end),
                                  ref, check_exact=True)


def test_core_trades_on_no_picks(monkeypatch):
    idx, px, _ = _panels()
    index, apx = _align_prices(px)
    empty = pd.DataFrame(columns=["date", "code"])
    pd.testing.assert_frame_equal(evaluate_aligned(empty, index, apx, (1,), "next_open", None, None, 25.0,
                                                   frozenset(), None),
                                  _loop_trades(monkeypatch, empty, px, horizons=(1,)), check_exact=True)


@pytest.mark.parametrize("entry", ["next_open", "close"])
@pytest.mark.parametrize("H", [1, 3, 7])
@pytest.mark.parametrize("tp,sl", [(None, None), (0.05, 0.05)])
def test_core_equity_equals_the_row_by_row_loop(entry, H, tp, sl):
    idx, px, picks = _panels()
    trades = evaluate_trades(picks, px, horizons=(1, 3, 7), entry=entry, take_profit=tp, stop_loss=sl,
                             cost_bps=25, delisted=frozenset({"000002"}), final_end=idx[-3])
    # cohorts with and without picks; idx[7] has a pick but is not a scanned session (it must not count)
    sessions = idx[: len(idx) - 1 : 3].append(idx[[-2, -1]])
    assert idx[7] not in sessions and (trades["date"] == idx[7]).any()
    index, apx = _align_prices(px)
    ref = _loop_equity(trades, apx["close"], sessions, H, 25)
    assert ref["positions"].max() > 0
    pd.testing.assert_frame_equal(equity_aligned(trades, apx["close"], sessions, H, 25.0), ref, check_exact=True)
    pd.testing.assert_frame_equal(equity_curve(trades, apx["close"], sessions, H, 25), ref, check_exact=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_core_equity_with_crowded_cohorts(seed):
    """Hundreds of picks per cohort: the summation order must still be the loop's, bit for bit."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2025-01-06", periods=30)
    codes = [f"{i:06d}" for i in range(400)]
    c = pd.DataFrame(1000 * np.exp(np.cumsum(rng.normal(0, 0.04, (30, 400)), 0)), idx, codes)
    c = c.mask(rng.random(c.shape) < 0.05)
    o = c * rng.uniform(0.97, 1.03, c.shape)
    px = {"open": o, "high": np.maximum(o, c) * 1.02, "low": np.minimum(o, c) * 0.98, "close": c}
    picks = pd.DataFrame([(idx[i], code) for i in range(0, 25, 2) for code in rng.permutation(codes)[:300]],
                         columns=["date", "code"])
    trades = evaluate_trades(picks, px, horizons=(2, 5), take_profit=0.06, stop_loss=0.05, cost_bps=30)
    sessions = idx[0:25:2]
    index, apx = _align_prices(px)
    for H in (2, 5):
        ref = _loop_equity(trades, apx["close"], sessions, H, 30)
        pd.testing.assert_frame_equal(equity_aligned(trades, apx["close"], sessions, H, 30.0), ref, check_exact=True)


@pytest.mark.parametrize("entry", ["next_open", "close"])
def test_core_memo_shared_by_many_rules_changes_nothing(monkeypatch, entry):
    """One memo for one pick set, many trade rules after each other (as the sweep does): each equals the loop."""
    idx, px, picks = _panels(seed=5)
    index, apx = _align_prices(px)
    memo: dict = {}
    delisted = frozenset({"000002"})
    for tp, sl, hz in [(None, None, (1, 3, 7)), (0.05, 0.05, (1, 3, 7)), (0.02, None, (3, 7)), (None, 0.01, (7,)),
                       (0.05, 0.05, (1, 3, 7))]:
        mine = evaluate_aligned(picks, index, apx, hz, entry, tp, sl, 25.0, delisted, idx[-3], memo=memo)
        ref = _loop_trades(monkeypatch, picks, px, horizons=hz, entry=entry, take_profit=tp, stop_loss=sl,
                           cost_bps=25, delisted=delisted, final_end=idx[-3])
        pd.testing.assert_frame_equal(mine, ref, check_exact=True)
        sessions = idx[: len(idx) - 1 : 3]
        cols = np.repeat(memo["jcol"], len(hz))
        pd.testing.assert_frame_equal(equity_aligned(mine, apx["close"], sessions, max(hz), 25.0, trade_cols=cols),
                                      _loop_equity(ref, apx["close"], sessions, max(hz), 25), check_exact=True)
    assert any(isinstance(k, tuple) and k[0] == "window" for k in memo)

"""The sweep's vectorised trade evaluation equals backtest.evaluate_trades exactly, on awkward hand-made panels."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from finder.analysis.backtest import _align_prices, evaluate_trades
from finder.analysis.sweep import _fast_trades


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
    picks = pd.concat([picks, pd.DataFrame({"date": [idx[5]], "code": ["999999"], "name": ["gone"], "rank": [1],
                                            "score": [1.0]})], ignore_index=True)
    return idx, px, picks


@pytest.mark.parametrize("entry", ["next_open", "close"])
@pytest.mark.parametrize("tp,sl", [(None, None), (0.04, None), (None, 0.03), (0.05, 0.05), (0.01, 0.01)])
@pytest.mark.parametrize("final", [None, -3])
def test_fast_trades_equal_the_reference(entry, tp, sl, final):
    idx, px, picks = _panels()
    final_end = idx[final] if final is not None else None
    delisted = frozenset({"000002"})
    ref = evaluate_trades(picks, px, horizons=(1, 3, 7), entry=entry, take_profit=tp, stop_loss=sl, cost_bps=25,
                          delisted=delisted, final_end=final_end)
    index, apx = _align_prices(px)
    mine = _fast_trades(picks, index, apx, (1, 3, 7), entry, tp, sl, 25.0, delisted, final_end)
    reasons = set(ref["exit_reason"])
    assert reasons >= {"delisted", "no_data", "untradable"}
    assert ("halted" in reasons) if tp is None and sl is None else (reasons & {"take_profit", "stop_loss"})
    pd.testing.assert_frame_equal(mine, ref, check_exact=True)


def test_fast_trades_on_no_picks():
    idx, px, _ = _panels()
    index, apx = _align_prices(px)
    empty = pd.DataFrame(columns=["date", "code"])
    pd.testing.assert_frame_equal(_fast_trades(empty, index, apx, (1,), "next_open", None, None, 25.0, frozenset(), None),
                                  evaluate_trades(empty, px, horizons=(1,)), check_exact=True)


@pytest.mark.parametrize("entry", ["next_open", "close"])
@pytest.mark.parametrize("H", [1, 3, 7])
@pytest.mark.parametrize("tp,sl", [(None, None), (0.05, 0.05)])
def test_fast_equity_equals_the_reference(entry, H, tp, sl):
    from finder.analysis.backtest import equity_curve
    from finder.analysis.sweep import _fast_equity

    idx, px, picks = _panels()
    trades = evaluate_trades(picks, px, horizons=(1, 3, 7), entry=entry, take_profit=tp, stop_loss=sl,
                             cost_bps=25, delisted=frozenset({"000002"}), final_end=idx[-3])
    sessions = idx[: len(idx) - 1 : 3].append(idx[[-2, -1]])  # cohorts with and without picks
    index, apx = _align_prices(px)
    ref = equity_curve(trades, apx["close"], sessions, H, 25)
    pd.testing.assert_frame_equal(_fast_equity(trades, apx["close"], sessions, H, 25.0), ref, check_exact=True)

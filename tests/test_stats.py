"""finder.analysis.stats against hand formulas written independently here (plain Python, statistics module)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from finder import InvalidInputError
from finder.analysis.backtest import simulate
from finder.analysis.stats import benchmark_stats, equity_stats, result_stats, trade_stats

P = 252


def _curve(rets, start="2025-01-02"):
    idx = pd.bdate_range(start, periods=len(rets))
    eq, v = [], 1.0
    for r in rets:
        v *= 1 + r
        eq.append(v)
    return pd.Series(eq, index=idx)


RETS = [0.01, -0.02, 0.015, 0.0, -0.01, 0.03, -0.005, 0.002, -0.04, 0.025, 0.01, 0.012]
BENCH = [0.005, -0.01, 0.01, 0.002, -0.012, 0.02, 0.0, 0.001, -0.03, 0.02, 0.004, 0.006]


def test_equity_stats_match_hand_formulas():
    eq = _curve(RETS)
    rf = 0.03
    s = equity_stats(eq, risk_free=rf)
    rfd = (1 + rf) ** (1 / P) - 1
    total = 1.0
    for r in RETS:
        total *= 1 + r
    total -= 1
    n = len(RETS)
    assert s["total_return"] == pytest.approx(total, rel=1e-12)
    assert s["cagr"] == pytest.approx((1 + total) ** (P / n) - 1, rel=1e-12)
    sd = statistics.stdev(RETS)
    assert s["volatility"] == pytest.approx(sd * math.sqrt(P), rel=1e-12)
    ex = [r - rfd for r in RETS]
    assert s["sharpe"] == pytest.approx(statistics.mean(ex) / sd * math.sqrt(P), rel=1e-10)
    dd = math.sqrt(sum(min(x, 0) ** 2 for x in ex) / n)
    assert s["sortino"] == pytest.approx(statistics.mean(ex) / dd * math.sqrt(P), rel=1e-10)
    # drawdown by a plain loop, the starting capital counting as the first peak
    peak, worst, wi, pi, pk_i = 1.0, 0.0, None, None, None
    for i, v in enumerate(eq):
        if v > peak:
            peak, pk_i = v, i
        if v / peak - 1 < worst:
            worst, wi, pi = v / peak - 1, i, pk_i
    assert s["max_drawdown"] == pytest.approx(worst, rel=1e-12)
    assert s["dd_trough"] == eq.index[wi]
    assert s["dd_peak"] == (eq.index[pi] if pi is not None else eq.index[0])
    rec = next((eq.index[j] for j in range(wi + 1, n) if eq.iloc[j] >= eq.iloc[pi]), pd.NaT)
    assert (s["dd_recovery"] is pd.NaT and rec is pd.NaT) or s["dd_recovery"] == rec
    assert s["calmar"] == pytest.approx(s["cagr"] / abs(worst), rel=1e-12)


def test_drawdown_from_start_capital_and_recovery():
    # falls on day 1 below the start capital, recovers exactly on day 4
    eq = pd.Series([0.9, 0.8, 0.95, 1.0, 1.1], index=pd.bdate_range("2025-03-03", periods=5))
    s = equity_stats(eq)
    assert s["max_drawdown"] == pytest.approx(-0.2)
    assert s["dd_peak"] == eq.index[0] and s["dd_trough"] == eq.index[1] and s["dd_recovery"] == eq.index[3]
    up = equity_stats(pd.Series([1.01, 1.02], index=eq.index[:2]))
    assert up["max_drawdown"] == 0.0 and math.isnan(up["calmar"]) and up["dd_trough"] is pd.NaT


def test_benchmark_stats_match_hand_formulas():
    eq = _curve(RETS)
    # the benchmark series has one extra earlier close, so the first return is known
    levels = [2500.0]
    for b in BENCH:
        levels.append(levels[-1] * (1 + b))
    bidx = pd.DatetimeIndex([eq.index[0] - pd.Timedelta(days=3)]).append(eq.index)
    bench = pd.Series(levels, index=bidx)
    rf = 0.02
    rfd = (1 + rf) ** (1 / P) - 1
    s = benchmark_stats(eq, bench, risk_free=rf)
    mr, mb = statistics.mean(RETS), statistics.mean(BENCH)
    cov = sum((a - mr) * (b - mb) for a, b in zip(RETS, BENCH)) / (len(RETS) - 1)
    beta = cov / statistics.variance(BENCH)
    assert s["beta"] == pytest.approx(beta, rel=1e-10)
    assert s["alpha"] == pytest.approx(((mr - rfd) - beta * (mb - rfd)) * P, rel=1e-10)
    diff = [a - b for a, b in zip(RETS, BENCH)]
    te = statistics.stdev(diff) * math.sqrt(P)
    assert s["tracking_error"] == pytest.approx(te, rel=1e-10)
    assert s["information_ratio"] == pytest.approx(statistics.mean(diff) * P / te, rel=1e-10)
    tb = math.prod(1 + b for b in BENCH) - 1
    assert s["benchmark_return"] == pytest.approx(tb, rel=1e-12)
    assert s["excess_return"] == pytest.approx(math.prod(1 + r for r in RETS) - 1 - tb, rel=1e-10)
    # a benchmark missing one of the sessions gives NaN, not a guess
    gap = benchmark_stats(eq, bench.drop(eq.index[5]))
    assert all(math.isnan(v) for v in gap.values())


def _hand_backtest():
    idx = pd.bdate_range("2025-05-01", periods=8)
    close = pd.DataFrame({"A": [10, 10, 11, 12, 11, 12, 13, 13.0], "B": [20, 20, 19, 18, 19, 20, 21, 22.0]},
                         index=idx)
    prices = {"open": close.shift(1).fillna(close), "high": close * 1.01, "low": close * 0.99, "close": close}
    picks = pd.DataFrame({"date": [idx[0], idx[0], idx[2]], "code": ["A", "B", "A"]})
    return simulate(picks, prices, sessions=idx[:4], horizons=(2,), cost_bps=0.0), idx


def test_trade_stats_by_hand():
    res, idx = _hand_backtest()
    eq = res.equity_for(2)
    t = trade_stats(res.trades, pd.DatetimeIndex(eq.index), 2)
    done = res.trades[res.trades["return"].notna()]
    assert t["trades"] == 3
    assert t["win_rate"] == pytest.approx(sum(r > 0 for r in done["return"]) / 3)
    assert t["avg_holding"] == pytest.approx(2.0)
    # H=2 sleeves; cohort 1 (2 picks) enters at idx1 open, exits idx2 close: each weighs 1/4;
    # cohort 3 (1 pick) enters idx3, exits idx4: weighs 1/2.  Invested per session of the curve:
    n = len(eq)
    inv = [0.0] * n
    for start, stop, w in ((1, 2, 0.25), (1, 2, 0.25), (3, 4, 0.5)):
        for k in range(start, stop + 1):
            inv[k] += w
    assert t["exposure"] == pytest.approx(sum(inv) / n)
    assert t["turnover"] == pytest.approx((0.25 + 0.25 + 0.5) * P / n)


def test_result_stats_with_series_and_none():
    res, idx = _hand_backtest()
    bench = pd.Series(np.linspace(100, 107, len(idx)), index=idx)
    st = res.stats(benchmark=bench)
    assert list(st.index) == [2] and st.attrs["benchmark"] == "given series"
    eq = res.equity_for(2)["equity"]
    assert st.loc[2, "total_return"] == pytest.approx(eq.iloc[-1] - 1)
    assert st.loc[2, "beta"] == pytest.approx(benchmark_stats(eq, bench)["beta"])
    none = result_stats(res, benchmark=None)
    assert math.isnan(none.loc[2, "beta"]) and none.attrs["benchmark"] == "none"


@pytest.mark.parametrize("bad", [float("nan"), "0.03", 5.0, True])
def test_bad_risk_free_is_refused(bad):
    with pytest.raises(InvalidInputError):
        equity_stats(_curve(RETS), risk_free=bad)


def test_bad_benchmark_is_refused():
    res, _ = _hand_backtest()
    with pytest.raises(InvalidInputError):
        res.stats(benchmark=[1, 2, 3])


def test_plot_draws_the_benchmark_next_to_the_equity_curve():
    import matplotlib

    matplotlib.use("Agg")
    res, idx = _hand_backtest()
    bench = pd.Series(np.linspace(100, 107, len(idx)), index=idx, name="KOSPI")
    fig = res.plot(benchmark=bench)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    label = next(k for k in lines if "benchmark" in k)
    eq_index = res.equity_for(2).index
    b = bench.reindex(eq_index) / bench.shift(1).reindex(eq_index)
    want = np.cumprod(b.fillna(1.0).to_numpy())
    np.testing.assert_allclose(lines[label].get_ydata(), want, rtol=1e-12)
    none = res.plot(benchmark=None)
    assert not any("benchmark" in ln.get_label() for ln in none.axes[0].get_lines())

"""Risk and benchmark statistics of a backtest's equity curve (pure functions, no I/O).

Notebook example::

    >>> res = finder.backtest("momentum", "2025-01-02", "2025-10-31", universe="KOSPI")
    >>> res.stats()                       # one row per horizon; benchmark = KOSPI
    >>> res.stats(risk_free=0.03, benchmark=my_close_series)

What it guarantees
------------------
* Every statistic is computed from the daily equity curve (``result.equity_for(h)``)
  and, for trade statistics, the trades of that horizon; nothing is estimated
  from other data.  Each formula is written below, ``r_t`` is the portfolio's
  daily return (``equity_t / equity_{t-1} - 1``, the first day against the
  starting capital 1.0), ``n`` the number of sessions in the curve, ``P`` the
  sessions per year (252), ``rf_d = (1 + risk_free)^(1/P) - 1`` the daily
  risk-free rate and ``b_t`` the benchmark's daily return on the same sessions.
* A benchmark is used only when one is given or can be loaded as real index
  bars (``finder.get_index``); without it the benchmark columns are NaN and
  ``stats.attrs['benchmark']`` says why.  No substitute series is invented.

What it does not do: annualise with calendar days (sessions only), or
rebalance anything: exposure and turnover follow the overlapping-cohort rule
of :mod:`finder.analysis.backtest` at entry weights (drift is ignored).

Formulas
--------
==================  =======================================================================
total_return        ``prod(1 + r_t) - 1`` (= last equity - 1)
cagr                ``(1 + total_return)^(P / n) - 1``
volatility          ``std(r_t, ddof=1) * sqrt(P)``
sharpe              ``mean(r_t - rf_d) / std(r_t, ddof=1) * sqrt(P)``
sortino             ``mean(r_t - rf_d) / sqrt(mean(min(r_t - rf_d, 0)^2)) * sqrt(P)``
max_drawdown        ``min_t(E_t / max(1, max_{s<=t} E_s) - 1)`` (the start capital 1.0 counts as a peak)
dd_peak/trough/     the session of the peak before the worst drawdown (the first session when
dd_recovery         the peak is the starting capital), of its trough, and the first session
                    after the trough back at the peak (NaT if never)
calmar              ``cagr / |max_drawdown|`` (NaN without a drawdown)
win_rate            share of trades with a return that made more than 0 (net of costs)
avg_holding         mean ``held`` (sessions whose close the position was exposed to) of those trades
exposure            mean over sessions of the invested share of capital: each open position
                    weighs ``1 / (H * n_cohort)`` (H sleeves, n picks in its cohort)
turnover            annualised one-way turnover: ``P / n * sum over entered positions of
                    1 / (H * n_cohort)``
excess_return       ``total_return - benchmark_return`` (benchmark_return = ``prod(1 + b_t) - 1``)
beta                ``cov(r, b) / var(b)`` (ddof=1)
alpha               Jensen's alpha, annualised: ``(mean(r - rf_d) - beta * mean(b - rf_d)) * P``
tracking_error      ``std(r - b, ddof=1) * sqrt(P)``
information_ratio   ``mean(r - b) * P / tracking_error``
==================  =======================================================================
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError

__all__ = ["PERIODS_PER_YEAR", "STAT_COLUMNS", "equity_stats", "trade_stats", "benchmark_stats",
           "drawdown_info", "benchmark_for_universe", "result_stats"]

log = logging.getLogger(__name__)

PERIODS_PER_YEAR = 252
STAT_COLUMNS = ["sessions", "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                "dd_peak", "dd_trough", "dd_recovery", "calmar", "win_rate", "avg_holding", "trades",
                "exposure", "turnover", "benchmark_return", "excess_return", "beta", "alpha",
                "tracking_error", "information_ratio"]


def _check_rf(risk_free: Any) -> float:
    if isinstance(risk_free, bool) or not isinstance(risk_free, numbers.Real) or not math.isfinite(risk_free):
        raise InvalidInputError(f"risk_free={risk_free!r} is not a number; give a yearly rate such as 0.03")
    if not -0.5 < float(risk_free) < 1.0:
        raise InvalidInputError(f"risk_free={risk_free!r} is out of range; give a yearly fraction (0.03 = 3 %)")
    return float(risk_free)


def _returns(equity: pd.Series) -> np.ndarray:
    e = np.asarray(equity, dtype=float)
    if e.size == 0 or not np.isfinite(e).all() or (e <= 0).any():
        raise InvalidInputError("equity must be a non-empty series of positive finite values")
    prev = np.concatenate([[1.0], e[:-1]])
    return e / prev - 1.0


def drawdown_info(equity: pd.Series) -> dict[str, Any]:
    """Maximum drawdown (<= 0) and its peak, trough and recovery sessions (formulas in the module docstring)."""
    e = np.asarray(equity, dtype=float)
    idx = pd.DatetimeIndex(equity.index)
    peak = np.maximum.accumulate(np.concatenate([[1.0], e]))[1:]
    dd = e / peak - 1.0
    t = int(np.argmin(dd))
    mdd = float(dd[t])
    if mdd >= 0:
        return {"max_drawdown": 0.0, "dd_peak": pd.NaT, "dd_trough": pd.NaT, "dd_recovery": pd.NaT}
    before = e[: t + 1]
    p = int(np.argmax(before)) if before.max() >= peak[t] else None
    peak_date = idx[p] if p is not None else idx[0]
    after = np.flatnonzero(e[t + 1:] >= peak[t])
    rec = idx[t + 1 + int(after[0])] if after.size else pd.NaT
    return {"max_drawdown": mdd, "dd_peak": peak_date, "dd_trough": idx[t], "dd_recovery": rec}


def equity_stats(equity: pd.Series, risk_free: float = 0.0, periods: int = PERIODS_PER_YEAR) -> dict[str, Any]:
    """Return, risk and drawdown statistics of one daily equity curve starting from capital 1.0.

    Example::

        >>> equity_stats(res.equity_for(5)["equity"], risk_free=0.03)["sharpe"]
    """
    rf = _check_rf(risk_free)
    r = _returns(equity)
    n = r.size
    rf_d = (1.0 + rf) ** (1.0 / periods) - 1.0
    total = float(np.prod(1.0 + r) - 1.0)
    out: dict[str, Any] = {"sessions": n, "total_return": total,
                           "cagr": float((1.0 + total) ** (periods / n) - 1.0)}
    sd = float(np.std(r, ddof=1)) if n > 1 else math.nan
    ex = r - rf_d
    out["volatility"] = sd * math.sqrt(periods)
    out["sharpe"] = float(np.mean(ex) / sd * math.sqrt(periods)) if sd > 0 else math.nan
    down = math.sqrt(float(np.mean(np.minimum(ex, 0.0) ** 2)))
    out["sortino"] = float(np.mean(ex) / down * math.sqrt(periods)) if down > 0 else math.nan
    out.update(drawdown_info(equity))
    out["calmar"] = out["cagr"] / abs(out["max_drawdown"]) if out["max_drawdown"] < 0 else math.nan
    return out


def trade_stats(trades: pd.DataFrame, index: pd.DatetimeIndex, horizon: int,
                periods: int = PERIODS_PER_YEAR) -> dict[str, Any]:
    """Win rate, average holding, exposure and turnover of one horizon's trades on the curve's ``index``."""
    # numpy on the columns (a sweep calls this once per configuration on frames of up to ~10^5 rows)
    sel = trades["horizon"].to_numpy() == horizon
    ret = trades["return"].to_numpy(dtype=float)[sel]
    done = ~np.isnan(ret)
    nd = int(done.sum())
    out: dict[str, Any] = {"trades": nd,
                           "win_rate": float((ret[done] > 0).mean()) if nd else math.nan,
                           "avg_holding": float(trades["held"].to_numpy(dtype=float)[sel][done].mean())
                           if nd else math.nan}
    n = len(index)
    if n == 0:
        out.update(exposure=math.nan, turnover=math.nan)
        return out
    ent = pd.DatetimeIndex(trades["entry_date"].to_numpy()[sel])
    entered = ~ent.isna()
    # each row's cohort size: the rows of its horizon with the same pick date
    di = pd.DatetimeIndex(trades["date"].to_numpy()[sel]).values.view("i8")
    _, inv, counts = np.unique(di, return_inverse=True, return_counts=True)
    cohort = counts[inv][entered].astype(float)
    w = 1.0 / (horizon * cohort)
    ie = index.get_indexer(ent[entered])
    xd = pd.DatetimeIndex(trades["exit_date"].to_numpy()[sel][entered])
    ix = np.where(xd.isna(), n - 1, index.get_indexer(xd))
    invested = np.zeros(n + 1)
    ok = ie >= 0
    # held from the entry session's close to the exit session (inclusive): a +w/-w difference array
    np.add.at(invested, ie[ok], w[ok])
    np.add.at(invested, np.minimum(ix[ok], n - 1) + 1, -w[ok])
    out["exposure"] = float(np.cumsum(invested)[:n].mean())
    out["turnover"] = float(w[ok].sum() * periods / n)
    return out


def benchmark_stats(equity: pd.Series, benchmark: pd.Series, risk_free: float = 0.0,
                    periods: int = PERIODS_PER_YEAR) -> dict[str, Any]:
    """Excess return, beta, alpha, tracking error and information ratio against a benchmark close series.

    ``benchmark`` is a close (level) series indexed by date; its daily returns
    are taken on its own sessions and then read on the equity curve's
    sessions (the first one against the benchmark's previous close when it has
    one).  Sessions the benchmark lacks make every benchmark statistic NaN
    rather than being guessed.
    """
    rf_d = (1.0 + _check_rf(risk_free)) ** (1.0 / periods) - 1.0
    r = _returns(equity)
    b = benchmark_returns(benchmark, pd.DatetimeIndex(equity.index))
    nan = {k: math.nan for k in ("benchmark_return", "excess_return", "beta", "alpha", "tracking_error",
                                 "information_ratio")}
    if b is None or r.size < 2:
        return nan
    total = float(np.prod(1.0 + r) - 1.0)
    bt = float(np.prod(1.0 + b) - 1.0)
    vb = float(np.var(b, ddof=1))
    beta = float(np.cov(r, b, ddof=1)[0, 1] / vb) if vb > 0 else math.nan
    alpha = (float(np.mean(r - rf_d)) - beta * float(np.mean(b - rf_d))) * periods
    te = float(np.std(r - b, ddof=1)) * math.sqrt(periods)
    ir = float(np.mean(r - b)) * periods / te if te > 0 else math.nan
    return {"benchmark_return": bt, "excess_return": total - bt, "beta": beta, "alpha": alpha,
            "tracking_error": te, "information_ratio": ir}


def benchmark_returns(benchmark: pd.Series, index: pd.DatetimeIndex) -> np.ndarray | None:
    """The benchmark's daily returns on ``index`` (None when it lacks one of those sessions)."""
    if not isinstance(benchmark, pd.Series):
        raise InvalidInputError(f"benchmark={type(benchmark).__name__} is not a pandas Series of index levels")
    s = benchmark.astype(float).dropna()
    s.index = pd.DatetimeIndex(s.index)
    s = s.sort_index()
    if not index.isin(s.index).all():
        return None
    ret = s.pct_change()
    b = ret.reindex(index).to_numpy(dtype=float, copy=True)
    if np.isnan(b[0]):  # no earlier close: the first session is measured from its own close
        b[0] = 0.0
    return b


def benchmark_for_universe(universe: Any) -> str:
    """The default benchmark index: KOSDAQ for a KOSDAQ-only universe, else KOSPI (mixed and lists too)."""
    if isinstance(universe, str) and universe.strip().upper() == "KOSDAQ":
        return "KOSDAQ"
    return "KOSPI"


def _load_index(name: str, index: pd.DatetimeIndex) -> tuple[pd.Series | None, str]:
    """Real index closes from ``finder.get_index`` (when this finder has it), else None and why."""
    import finder

    try:
        get_index = getattr(finder, "get_index")
    except AttributeError:
        return None, "finder.get_index is not available in this installation"
    try:
        df = get_index(name, count=len(index) + 1, base_dt=index[-1])
    except Exception as exc:  # a missing benchmark must not sink the statistics of the strategy itself
        log.warning("stats: cannot load the %s index as a benchmark: %s", name, exc)
        return None, f"{name} index could not be loaded: {exc}"
    return df["close"].astype(float), name


def result_stats(result: Any, risk_free: float = 0.0, benchmark: Any = "default") -> pd.DataFrame:
    """``BacktestResult.stats()``: one row per horizon with :data:`STAT_COLUMNS`.

    ``benchmark``: ``"default"`` (KOSPI, or KOSDAQ for a KOSDAQ universe, via
    ``finder.get_index``), an index name (``"KOSPI"``, ``"KOSDAQ"``,
    ``"KOSPI200"``), a close series, or ``None`` for no benchmark.
    """
    rf = _check_rf(risk_free)
    rows = []
    bench_note = "none"
    bench_series: pd.Series | None = None
    if isinstance(benchmark, pd.Series):
        bench_series, bench_note = benchmark, "given series"
    elif benchmark is not None and not isinstance(benchmark, str):
        raise InvalidInputError(f"benchmark={benchmark!r} is not 'default', an index name, a Series or None")
    horizons = result.horizons
    curves = {h: result.equity_for(h) for h in horizons}
    if isinstance(benchmark, str) and len(result.sessions):
        name = (benchmark_for_universe(result.params.get("universe")) if benchmark == "default"
                else benchmark.strip().upper())
        full = pd.DatetimeIndex(sorted(set().union(*[set(c.index) for c in curves.values()])))
        bench_series, bench_note = _load_index(name, full)
    for h in horizons:
        eq = curves[h]
        row: dict[str, Any] = {"horizon": h}
        if len(eq) == 0:
            rows.append(row)
            continue
        row.update(equity_stats(eq["equity"], rf))
        row.update(trade_stats(result.trades, pd.DatetimeIndex(eq.index), h))
        if bench_series is not None:
            row.update(benchmark_stats(eq["equity"], bench_series, rf))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("horizon").reindex(columns=STAT_COLUMNS)
    out.attrs["benchmark"] = bench_note
    out.attrs["risk_free"] = rf
    return out

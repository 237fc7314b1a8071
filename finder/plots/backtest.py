"""The backtest picture: equity and drawdown, return distribution and win rate per horizon.

Notebook example::

    >>> res = finder.backtest("momentum", "2025-09-01", "2025-09-30", horizons=(1, 5, 10))
    >>> res.plot()                       # same as finder.plot.plot_backtest(res)
    >>> res.plot(horizon=5).savefig("bt.png", dpi=120)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter, ScalarFormatter

from ._style import drawdown_formatter, new_figure, percent_formatter, set_title

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.backtest import BacktestResult

__all__ = ["plot_backtest"]

_HCOLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _describe(res: "BacktestResult") -> str:
    p = res.params
    span = f"{res.sessions[0].date()} .. {res.sessions[-1].date()}" if len(res.sessions) else "no sessions"
    parts = [str(p.get("conditions", "picks")), span, f"entry {p.get('entry', '?')}",
             f"cost {p.get('cost_bps', 0):g} bp"]
    if p.get("take_profit"):
        parts.append(f"TP {p['take_profit']:.0%}")
    if p.get("stop_loss"):
        parts.append(f"SL {p['stop_loss']:.0%}")
    if p.get("universe"):
        parts.insert(1, str(p["universe"]))
    return ", ".join(parts)


def _benchmark_curve(res: "BacktestResult", index: Any, benchmark: Any) -> tuple[Any, str]:
    """The benchmark's growth of 1.0 on ``index`` (None when there is none) and its label or why not."""
    import pandas as pd

    from ..analysis.stats import _load_index, benchmark_for_universe, benchmark_returns

    if benchmark is None or len(index) == 0:
        return None, "no benchmark"
    if isinstance(benchmark, pd.Series):
        series, label = benchmark, str(benchmark.name or "benchmark")
    else:
        name = (benchmark_for_universe(res.params.get("universe")) if benchmark == "default"
                else str(benchmark).strip().upper())
        series, label = _load_index(name, pd.DatetimeIndex(index))
    if series is None:
        return None, f"no benchmark ({label})"
    b = benchmark_returns(series, pd.DatetimeIndex(index))
    if b is None:
        return None, f"no benchmark ({label} lacks some sessions)"
    return pd.Series(np.cumprod(1.0 + b), index=index), label


def plot_backtest(res: "BacktestResult", horizon: int | None = None,
                  figsize: tuple[float, float] = (12, 9), benchmark: Any = "default") -> Figure:
    """Three panels for a :class:`~finder.analysis.backtest.BacktestResult`; returns the Figure.

    * top: the equal-weight portfolio's equity for every horizon (``horizon``,
      default ``res.equity_horizon``, drawn bold), the benchmark index's growth
      of 1.0 on the same sessions (dashed grey; ``benchmark``: ``"default"`` =
      KOSPI, or KOSDAQ for a KOSDAQ universe, an index name, a close Series, or
      None), and, below it, the drawdown;
    * bottom left: the distribution of trade returns per horizon (box: quartiles,
      whiskers: 5th-95th percentile, diamond: mean), net of costs;
    * bottom right: the win rate per horizon, with the number of trades.
    """
    H = horizon if horizon is not None else res.equity_horizon
    horizons = res.horizons
    summary = res.summary()
    fig = new_figure(figsize)
    gs = fig.add_gridspec(3, 2, height_ratios=(2.2, 0.9, 2.0))
    ax_eq = fig.add_subplot(gs[0, :])
    ax_dd = fig.add_subplot(gs[1, :], sharex=ax_eq)
    ax_box = fig.add_subplot(gs[2, 0])
    ax_win = fig.add_subplot(gs[2, 1])
    fig.suptitle(f"Backtest: {_describe(res)}", fontsize=12)

    # -- equity and drawdown -----------------------------------------------
    main = res.equity_for(H)
    for k, h in enumerate(horizons):
        eq = main if h == H else res.equity_for(h)
        ax_eq.plot(eq.index, eq["equity"], color=_HCOLORS[k % len(_HCOLORS)],
                   linewidth=2.2 if h == H else 1.0, alpha=1.0 if h == H else 0.6,
                   label=f"{h}-session hold" + (" (drawdown below)" if h == H else ""))
    bench, bench_label = _benchmark_curve(res, main.index, benchmark)
    if bench is not None:
        ax_eq.plot(bench.index, bench.to_numpy(), color="#555555", linestyle="--", linewidth=1.4,
                   label=f"{bench_label} (benchmark) {bench.iloc[-1] - 1:+.1%}")
    elif benchmark is not None:
        ax_eq.text(0.99, 0.03, bench_label, transform=ax_eq.transAxes, ha="right", fontsize=7, alpha=0.7)
    ax_eq.axhline(1.0, color="black", linewidth=0.6, alpha=0.5)
    # plain numbers without an offset ("1.005", not "+1 x 1e-3"), as many decimals as the range needs
    ax_eq.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax_eq.set_ylabel("equity (start = 1.00)")
    ax_eq.grid(True, alpha=0.25)
    ax_eq.legend(loc="upper left", fontsize=8)
    final = main["equity"].iloc[-1] - 1 if len(main) else 0.0
    set_title(ax_eq, f"Equal-weight portfolio, overlapping cohorts: {H}-session hold ends at {final:+.1%}",
              loc="left", fontsize=10)
    ax_eq.tick_params(labelbottom=False)

    ax_dd.fill_between(main.index, main["drawdown"], 0, color="#d62728", alpha=0.35, step=None)
    ax_dd.plot(main.index, main["drawdown"], color="#d62728", linewidth=0.8)
    ax_dd.yaxis.set_major_formatter(drawdown_formatter)
    ax_dd.set_ylabel("drawdown")
    ax_dd.grid(True, alpha=0.25)
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax_dd.xaxis.set_major_locator(locator)
    ax_dd.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    mdd = main["drawdown"].min() if len(main) else 0.0
    ax_dd.text(0.01, 0.08, f"max drawdown {mdd:.1%}", transform=ax_dd.transAxes, fontsize=8)

    # -- return distribution -------------------------------------------------
    data, labels = [], []
    for h in horizons:
        r = res.trades.loc[res.trades["horizon"] == h, "return"].dropna().to_numpy(dtype=float)
        data.append(r if r.size else np.array([np.nan]))
        labels.append(f"{h}")
    if any(np.isfinite(d).any() for d in data):
        ax_box.boxplot([d[np.isfinite(d)] if np.isfinite(d).any() else [0.0] for d in data],
                       tick_labels=labels, whis=(5, 95), showfliers=False, showmeans=True,
                       meanprops={"marker": "D", "markerfacecolor": "black", "markersize": 4})
    else:
        ax_box.text(0.5, 0.5, "no completed trades", ha="center", va="center", transform=ax_box.transAxes)
        ax_box.set_xticks(range(1, len(labels) + 1), labels)
    ax_box.axhline(0, color="black", linewidth=0.6, alpha=0.5)
    ax_box.yaxis.set_major_formatter(percent_formatter)
    ax_box.set_xlabel("horizon (sessions after the pick)")
    ax_box.set_ylabel("return per trade, net")
    ax_box.grid(True, axis="y", alpha=0.25)
    set_title(ax_box, "Return distribution per horizon", loc="left", fontsize=10)

    # -- win rate -----------------------------------------------------------------
    wr = summary["win_rate"].reindex(list(horizons)).to_numpy(dtype=float)
    counts = summary["count"].reindex(list(horizons)).fillna(0).astype(int).to_numpy()
    xs = np.arange(len(horizons))
    bars = ax_win.bar(xs, np.nan_to_num(wr), color=[_HCOLORS[k % len(_HCOLORS)] for k in range(len(xs))],
                      alpha=0.8)
    for b, w, n in zip(bars, wr, counts):
        text = f"{w:.0%}\nn={n:,}" if np.isfinite(w) else "n=0"
        ax_win.text(b.get_x() + b.get_width() / 2, (0 if not np.isfinite(w) else w) + 0.02, text,
                    ha="center", va="bottom", fontsize=8)
    ax_win.axhline(0.5, color="black", linewidth=0.6, linestyle="--", alpha=0.6)
    ax_win.set_xticks(xs, labels)
    ax_win.set_ylim(0, 1.15)
    ax_win.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax_win.set_xlabel("horizon (sessions after the pick)")
    ax_win.set_ylabel("win rate (return > 0)")
    ax_win.grid(True, axis="y", alpha=0.25)
    set_title(ax_win, "Win rate per horizon", loc="left", fontsize=10)
    return fig

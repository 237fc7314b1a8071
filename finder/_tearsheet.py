"""A backtest's tear sheet: headline figures against a benchmark index, three charts, best and worst trades.

:func:`tear_sheet` turns a :class:`~finder.analysis.backtest.BacktestResult`
into a :class:`TearSheet` that shows itself as HTML in Jupyter (and in the
demo report): a headline table (period, universe, trades, CAGR, Sharpe,
maximum drawdown, win rate — for the strategy and for the benchmark index),
the equity curve against the benchmark, the drawdown, a monthly-returns
heatmap, and the best and worst trades with their Korean names.

What it guarantees:

* Every number comes from the result or from real index bars.  Statistics
  come from ``result.stats()`` (``finder.analysis.stats``) when this finder
  has it; the benchmark from ``finder.get_index`` when it has it.  Whatever
  is unavailable is shown as ``n/a`` with the reason in ``notes`` — never
  estimated, never filled with a substitute series.
* The benchmark is compared on the backtest's own sessions only (no bar after
  the last session the backtest evaluates).

What it does not do: fetch anything but the benchmark's bars, or recompute
the backtest.

Example::

    >>> res = finder.backtest("momentum", "2025-09-01", "2025-09-30", universe="KOSPI")
    >>> ts = finder.report.tear_sheet(res)       # shows as HTML as a cell's last value
    >>> ts.figure.savefig("tearsheet.png", dpi=110)
    >>> ts.headline                              # the numbers, unformatted
"""

from __future__ import annotations

import calendar as _cal
import logging
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from . import _formats as fmt
from ._exceptions import InvalidInputError

logger = logging.getLogger(__name__)

__all__ = ["TearSheet", "tear_sheet", "monthly_returns", "benchmark_curve"]

NA = "n/a"


def _benchmark_name(universe: Any) -> str:
    try:
        from .analysis.stats import benchmark_for_universe

        return benchmark_for_universe(universe)
    except ImportError:
        text = str(universe or "").upper()
        return "KOSDAQ" if "KOSDAQ" in text and "KOSPI" not in text else "KOSPI"


def benchmark_curve(close: pd.Series, sessions: pd.DatetimeIndex) -> pd.Series:
    """The index rebased to 1.0 at the close *before* the first session, on ``sessions`` only.

    Like the strategy's equity (capital 1.0 before its first session), so the
    two curves start together.  Sessions without an index close are dropped.
    """
    close = close.astype(float).sort_index()
    before = close[close.index < sessions[0]]
    base = before.iloc[-1] if len(before) else close.reindex(sessions).dropna().iloc[0]
    return (close.reindex(sessions) / base).dropna()


def _load_benchmark(name: str, sessions: pd.DatetimeIndex) -> tuple[pd.Series | None, str]:
    import finder

    get_index = getattr(finder, "get_index", None)
    if get_index is None:
        return None, "finder.get_index is not available in this installation, so no benchmark is shown"
    try:
        df = get_index(name, count=len(sessions) + 5, base_dt=sessions[-1])
    except Exception as exc:  # a benchmark must not cost the report; the reason is shown instead
        logger.warning("benchmark %s unavailable: %s", name, exc)
        return None, f"the {name} index could not be loaded ({type(exc).__name__}: {exc})"
    close = df["close"] if isinstance(df, pd.DataFrame) else df
    if close is None or len(close) == 0:
        return None, f"no {name} index bars for {sessions[0].date()} .. {sessions[-1].date()}"
    return close, ""


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar month (rows: years, columns: 1..12), from a curve starting at 1.0."""
    e = equity.astype(float)
    ends = e.groupby([e.index.year, e.index.month]).last()
    prev = ends.shift(1)
    prev.iloc[0] = 1.0  # the first month starts from the initial capital
    r = ends / prev - 1.0
    table = r.unstack(level=1)
    table.index.name, table.columns.name = "year", "month"
    return table.reindex(columns=range(1, 13))


@dataclass
class TearSheet:
    """What :func:`tear_sheet` found: numbers (unformatted) and the figure; ``_repr_html_`` shows it."""

    headline: pd.DataFrame
    best: pd.DataFrame
    worst: pd.DataFrame
    monthly: pd.DataFrame
    equity: pd.Series
    benchmark: pd.Series | None
    benchmark_name: str
    horizon: int
    notes: list[str] = field(default_factory=list)
    _figure: Any = None

    @property
    def figure(self) -> Any:
        """Equity vs benchmark, drawdown and the monthly-returns heatmap (a matplotlib Figure)."""
        if self._figure is None:
            self._figure = plot_tearsheet(self)
        return self._figure

    def headline_text(self) -> pd.DataFrame:
        """The headline table as display strings (percent with a sign, counts as integers)."""
        rows = {"period": "text", "universe": "text", "horizon": "text", "trades": fmt.count,
                "total return": fmt.pct, "CAGR": fmt.pct, "Sharpe": fmt.number, "max drawdown": fmt.pct,
                "win rate": fmt.share}
        out = pd.DataFrame(index=self.headline.index, columns=self.headline.columns, dtype=object)
        for metric, how in rows.items():
            for col in self.headline.columns:
                v = self.headline.loc[metric, col]
                if isinstance(v, str):
                    out.loc[metric, col] = v
                elif v is None or (isinstance(v, float) and np.isnan(v)):
                    out.loc[metric, col] = NA
                else:
                    out.loc[metric, col] = how(v)
        return out

    def trades_text(self, which: str = "best") -> pd.DataFrame:
        """The best or worst trades as display strings (KRW with separators, percent with a sign)."""
        df = self.best if which == "best" else self.worst
        out = df.copy()
        for c in ("pick date", "entry date", "exit date"):
            if c in out:
                out[c] = pd.to_datetime(out[c]).dt.strftime("%Y-%m-%d")
        for c in ("entry price (KRW)", "exit price (KRW)"):
            if c in out:
                out[c] = out[c].map(fmt.krw)
        if "return" in out:
            out["return"] = out["return"].map(fmt.pct)
        return out

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_html(self, figure_png: str | None = None) -> str:
        """HTML of the whole tear sheet (the figure inline as a base64 PNG unless ``figure_png`` is given)."""
        import base64
        import io

        if figure_png is None:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=100)
            figure_png = base64.b64encode(buf.getvalue()).decode("ascii")
        parts = [
            '<div class="finder-tearsheet">',
            "<h3>Headline</h3>",
            self.headline_text().to_html(escape=True, border=0, classes="finder-headline"),
            f'<p><img alt="Equity vs {escape(self.benchmark_name)}, drawdown and monthly returns" '
            f'src="data:image/png;base64,{figure_png}"></p>',
            "<h3>Best trades</h3>",
            self.trades_text("best").to_html(index=False, escape=True, border=0),
            "<h3>Worst trades</h3>",
            self.trades_text("worst").to_html(index=False, escape=True, border=0),
        ]
        if self.notes:
            parts.append("<p><small>" + "<br>".join(escape(n) for n in self.notes) + "</small></p>")
        parts.append("</div>")
        return "\n".join(parts)


def _trades_table(trades: pd.DataFrame, n: int, best: bool) -> pd.DataFrame:
    done = trades.dropna(subset=["return"])
    done = done.sort_values(["return", "code"], ascending=[not best, True]).head(n)
    return pd.DataFrame({
        "name": done["name"].astype(str) if "name" in done else done["code"],
        "code": done["code"].astype(str),
        "pick date": done["date"], "entry date": done["entry_date"],
        "entry price (KRW)": done["entry_price"].astype(float),
        "exit date": done["exit_date"], "exit price (KRW)": done["exit_price"].astype(float),
        "return": done["return"].astype(float), "exit": done["exit_reason"],
    }).reset_index(drop=True)


def tear_sheet(result: Any, *, horizon: int | None = None, benchmark: Any = "default", top: int = 5) -> TearSheet:
    """Build the tear sheet of a backtest (see the module doc).

    ``benchmark``: ``"default"`` (KOSPI, or KOSDAQ for a KOSDAQ universe, via
    ``finder.get_index``), an index name, a Series (or frame with ``close``)
    of index closes, or ``None``; anything else raises InvalidInputError.
    ``horizon``: which horizon's portfolio (default the result's equity horizon).
    """
    H = horizon if horizon is not None else result.equity_horizon
    eq = result.equity_for(H)
    equity = eq["equity"].astype(float)
    sessions = pd.DatetimeIndex(equity.index)
    p = result.params
    notes: list[str] = []
    universe = p.get("universe")
    name = _benchmark_name(universe)

    bench_close: pd.Series | None = None
    if isinstance(benchmark, pd.DataFrame) and "close" in benchmark.columns:
        benchmark = benchmark["close"].rename(benchmark.attrs.get("name", "benchmark"))
    if benchmark is None:
        notes.append("no benchmark: tear_sheet(..., benchmark=None)")
    elif isinstance(benchmark, pd.Series):
        bench_close, name = benchmark, str(benchmark.name or "benchmark")
    elif isinstance(benchmark, str) and benchmark != "default":
        name = benchmark.upper()
        bench_close, why = _load_benchmark(name, sessions)
        if why:
            notes.append(why)
    elif isinstance(benchmark, str) and len(sessions):
        bench_close, why = _load_benchmark(name, sessions)
        if why:
            notes.append(why)
    elif not isinstance(benchmark, str):
        raise InvalidInputError(f"benchmark={type(benchmark).__name__} is not an index name such as 'KOSPI', "
                                "a Series of closes, or None")
    bench = benchmark_curve(bench_close, sessions) if bench_close is not None and len(sessions) else None

    trades = result.trades[result.trades["horizon"] == H]
    summary = result.summary()
    strat: dict[str, Any] = {"trades": int(trades["return"].notna().sum()),
                             "win rate": float(summary.loc[H, "win_rate"]) if H in summary.index else np.nan,
                             "total return": float(equity.iloc[-1] - 1.0) if len(equity) else np.nan,
                             "max drawdown": float(eq["drawdown"].min()) if len(eq) else np.nan,
                             "CAGR": np.nan, "Sharpe": np.nan}
    bmk: dict[str, Any] = {"trades": NA, "win rate": NA, "total return": np.nan, "max drawdown": np.nan,
                           "CAGR": np.nan, "Sharpe": np.nan}
    stats_fn = None
    try:
        from .analysis.stats import equity_stats as stats_fn  # noqa: F811 - present once sweep's stats land
    except ImportError:
        notes.append("CAGR and Sharpe need BacktestResult.stats() (finder.analysis.stats), which this finder lacks")
    if stats_fn is not None and hasattr(result, "stats"):
        row = result.stats(benchmark=bench_close if bench_close is not None else None).loc[H]
        strat.update({"CAGR": row["cagr"], "Sharpe": row["sharpe"], "max drawdown": row["max_drawdown"],
                      "total return": row["total_return"], "win rate": row["win_rate"]})
    if bench is not None and len(bench):
        bmk["total return"] = float(bench.iloc[-1] - 1.0)
        bmk["max drawdown"] = float((bench / np.maximum.accumulate(np.maximum(bench, 1.0)) - 1.0).min())
        if stats_fn is not None:
            s = stats_fn(bench)
            bmk.update({"CAGR": s["cagr"], "Sharpe": s["sharpe"], "max drawdown": s["max_drawdown"],
                        "total return": s["total_return"]})
    bench_col = f"benchmark ({name})"
    span = f"{sessions[0].date()} .. {sessions[-1].date()}" if len(sessions) else NA
    picks_span = f"{p['start'].date()} .. {p['end'].date()}" if hasattr(p.get("start"), "date") else span
    headline = pd.DataFrame({
        "strategy": {"period": f"picks {picks_span}; equity {span}", "universe": str(universe or NA),
                     "horizon": f"{H} sessions", **strat},
        bench_col: {"period": span if bench is not None else NA, "universe": name, "horizon": "buy and hold",
                    **({k: NA for k in bmk} if bench is None else bmk)},
    }).reindex(["period", "universe", "horizon", "trades", "total return", "CAGR", "Sharpe", "max drawdown",
                "win rate"])
    return TearSheet(headline=headline, best=_trades_table(trades, top, True),
                     worst=_trades_table(trades, top, False), monthly=monthly_returns(equity) if len(equity)
                     else pd.DataFrame(), equity=equity, benchmark=bench, benchmark_name=name, horizon=H,
                     notes=notes)


def plot_tearsheet(ts: TearSheet, figsize: tuple[float, float] = (11, 8.5)) -> Any:
    """Equity against the benchmark, both drawdowns, and the monthly returns as a heatmap."""
    from matplotlib.colors import TwoSlopeNorm

    from .plots._style import drawdown_formatter, new_figure, set_title

    fig = new_figure(figsize)
    gs = fig.add_gridspec(3, 1, height_ratios=(2.2, 1.0, 1.3))
    ax = fig.add_subplot(gs[0])
    axd = fig.add_subplot(gs[1], sharex=ax)
    axm = fig.add_subplot(gs[2])
    eq = ts.equity
    ax.plot(eq.index, eq.to_numpy(), color="#d62728", linewidth=2, label=f"strategy ({ts.horizon}-session hold)")
    dd = eq / np.maximum.accumulate(np.maximum(eq, 1.0)) - 1.0
    axd.fill_between(dd.index, dd.to_numpy(), 0, color="#d62728", alpha=0.35, label="strategy")
    if ts.benchmark is not None:
        b = ts.benchmark
        ax.plot(b.index, b.to_numpy(), color="#1f5fbf", linewidth=1.4, label=f"{ts.benchmark_name} index")
        bdd = b / np.maximum.accumulate(np.maximum(b, 1.0)) - 1.0
        axd.plot(bdd.index, bdd.to_numpy(), color="#1f5fbf", linewidth=1.0, label=ts.benchmark_name)
    else:
        ax.text(0.99, 0.03, "no benchmark: " + (ts.notes[0] if ts.notes else "unavailable"), ha="right",
                va="bottom", transform=ax.transAxes, fontsize=7, color="#555555")
    ax.axhline(1.0, color="black", linewidth=0.6, alpha=0.5)
    ax.set_ylabel("growth of 1 KRW")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, alpha=0.25)
    ax.tick_params(labelbottom=False)
    set_title(ax, f"Equity vs {ts.benchmark_name}", loc="left", fontsize=11)
    axd.yaxis.set_major_formatter(drawdown_formatter)
    axd.set_ylabel("drawdown")
    axd.grid(True, alpha=0.25)
    axd.legend(loc="lower left", fontsize=7)

    m = ts.monthly
    if m.empty or not np.isfinite(m.to_numpy(dtype=float)).any():
        axm.text(0.5, 0.5, "no monthly returns", ha="center", va="center", transform=axm.transAxes)
        axm.set_axis_off()
    else:
        vals = m.to_numpy(dtype=float)
        lim = max(float(np.nanmax(np.abs(vals))), 1e-4)
        # Korean convention: gains red, losses blue
        axm.imshow(np.ma.masked_invalid(vals), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto")
        axm.set_xticks(range(12), [_cal.month_abbr[k] for k in range(1, 13)])
        axm.set_yticks(range(len(m.index)), [str(y) for y in m.index])
        for (i, j), v in np.ndenumerate(vals):
            if np.isfinite(v):
                axm.text(j, i, f"{v:+.1%}", ha="center", va="center", fontsize=8,
                         color="white" if abs(v) > 0.6 * lim else "black")
        set_title(axm, "Monthly returns (strategy)", loc="left", fontsize=10)
    return fig

"""Candlestick charts with indicator overlays, a volume pane and marks for picks or trades.

Notebook example::

    >>> import finder
    >>> finder.plot.candles("005930", end="2025-10-01")                 # last 120 sessions
    >>> picks = finder.scan("2025-10-01")
    >>> finder.plot.candles(picks.code[0], end="2025-10-20", marks=picks)   # the pick day marked
    >>> res = finder.backtest("momentum", "2025-09-01", "2025-09-30")
    >>> fig = finder.plot.candles("005930", end="2025-10-31", marks=res.trades, indicators=("ema60", "volume"))
    >>> fig.savefig("005930.png", dpi=120)

Bars are drawn on consecutive x positions (sessions), so weekends and holidays
leave no gaps; the x labels are the sessions' dates.  Candles follow the
Korean convention: red rising, blue falling.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .._exceptions import InvalidInputError
from ._style import DOWN, EXIT_COLORS, UP, compact_formatter, krw_formatter, new_figure, set_title

__all__ = ["candles", "plot_candles", "parse_indicators"]

logger = logging.getLogger(__name__)

_IND_RE = re.compile(r"^(ema|sma|dema|tema)(\d{1,3})$")
_LINE_COLORS = ["#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2"]
MAX_COUNT = 2_000


def parse_indicators(indicators: Iterable[str] | str | None) -> tuple[list[tuple[str, str, int]], bool]:
    """``('tema20', 'dema10', 'volume')`` -> ``([('tema20', 'tema', 20), ...], volume=True)``.

    Known overlays: ``ema<n>``, ``sma<n>``, ``dema<n>``, ``tema<n>`` on the close;
    ``volume`` adds the volume pane.
    """
    if indicators is None:
        return [], False
    if isinstance(indicators, str):
        indicators = (indicators,)
    lines, volume = [], False
    for item in indicators:
        key = item.strip().lower() if isinstance(item, str) else item
        if key == "volume":
            volume = True
            continue
        m = _IND_RE.match(key) if isinstance(key, str) else None
        if not m or int(m.group(2)) < 1:
            raise InvalidInputError(f"indicators contains {item!r}; use 'volume' or ema/sma/dema/tema with a "
                                    "window, e.g. 'tema20', 'sma60'")
        lines.append((key, m.group(1), int(m.group(2))))
    return lines, volume


def _indicator(kind: str, close: pd.Series, n: int) -> pd.Series:
    try:
        from ..analysis import indicators as ind

        return getattr(ind, kind)(close, n)
    except ImportError:  # pragma: no cover - the indicators module ships with finder
        e1 = close.ewm(span=n, adjust=False).mean()
        if kind == "sma":
            return close.rolling(n).mean()
        e2 = e1.ewm(span=n, adjust=False).mean()
        if kind == "ema":
            return e1
        if kind == "dema":
            return 2 * e1 - e2
        return 3 * e1 - 3 * e2 + e2.ewm(span=n, adjust=False).mean()


def _warmup(lines: Sequence[tuple[str, str, int]]) -> int:
    # EMAs are seeded from the first bar, so an overlay needs a few windows of
    # history before the visible part to be independent of where the fetch began.
    return max((3 * n if kind != "sma" else n for _, kind, n in lines), default=0)


def plot_candles(df: pd.DataFrame, *, count: int | None = 120,
                 indicators: Iterable[str] | str | None = ("tema20", "dema10", "volume"),
                 marks: Any = None, code: str | None = None, title: str | None = None,
                 figsize: tuple[float, float] = (12, 6.5)) -> Figure:
    """Draw a candlestick chart of an OHLCV frame (pure: no data access).

    ``df`` has a DatetimeIndex and ``open/high/low/close`` (and ``volume`` for
    the volume pane).  Overlays are computed on the whole frame and the last
    ``count`` rows are shown, so pass some extra history for warm EMAs.
    ``code`` selects the rows of ``marks`` that belong to this stock.
    """
    lines, want_volume = parse_indicators(indicators)
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise InvalidInputError(f"the frame lacks the columns {missing}; candles need open, high, low, close")
    if len(df) == 0:
        raise InvalidInputError("the frame has no rows to chart")
    df = df.sort_index()
    overlays = {key: _indicator(kind, df["close"].astype(float), n) for key, kind, n in lines}
    view = df.iloc[-count:] if count else df
    dates = pd.DatetimeIndex(view.index)
    x = np.arange(len(view))
    o, h, l, c = (view[f].to_numpy(dtype=float) for f in ("open", "high", "low", "close"))
    up = c >= o

    fig = new_figure(figsize)
    show_volume = want_volume and "volume" in view.columns
    if show_volume:
        gs = fig.add_gridspec(2, 1, height_ratios=(3.2, 1))
        ax = fig.add_subplot(gs[0])
        axv = fig.add_subplot(gs[1], sharex=ax)
    else:
        ax, axv = fig.add_subplot(1, 1, 1), None

    colors = np.where(up, UP, DOWN)
    ax.vlines(x, l, h, colors=colors, linewidth=0.8, zorder=2)
    body = np.abs(c - o)
    # a doji still gets a visible body
    body = np.where(body == 0, np.nanmax(h - l) * 0.004 if np.isfinite(np.nanmax(h - l)) else 0, body)
    ax.bar(x, body, bottom=np.minimum(o, c), width=0.7, color=colors, edgecolor=colors, linewidth=0.5, zorder=3)
    for (key, _, _), color in zip(lines, _LINE_COLORS):
        ax.plot(x, overlays[key].reindex(view.index).to_numpy(dtype=float), color=color, linewidth=1.2,
                label=key.upper(), zorder=4)

    _draw_marks(ax, marks, code, dates, h, l)

    ax.yaxis.set_major_formatter(krw_formatter)
    ax.set_ylabel("KRW")
    ax.grid(True, alpha=0.25)
    ax.set_xlim(-1, len(view))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
    set_title(ax, title or (code or ""), loc="left", fontsize=12)

    def date_label(v: float, _pos: Any) -> str:
        i = int(round(v))
        return dates[i].strftime("%Y-%m-%d") if 0 <= i < len(dates) else ""

    bottom = axv if axv is not None else ax
    bottom.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    bottom.xaxis.set_major_formatter(FuncFormatter(date_label))
    for label in bottom.get_xticklabels():
        label.set_rotation(0)
    if axv is not None:
        ax.tick_params(labelbottom=False)
        axv.bar(x, view["volume"].to_numpy(dtype=float), width=0.7, color=colors, alpha=0.6)
        axv.yaxis.set_major_formatter(compact_formatter)
        axv.set_ylabel("volume")
        axv.grid(True, alpha=0.25)
    return fig


def _draw_marks(ax: Any, marks: Any, code: str | None, dates: pd.DatetimeIndex, h: np.ndarray,
                l: np.ndarray) -> None:
    """Picks as triangles under the bar; trades as entry (^) and exit (v, coloured by reason) markers.

    Marks sit just outside the bar's range instead of at the trade's price:
    trades are priced on the backtest's own adjustment basis, which may differ
    from the chart's, so a price-level marker could sit at a wrong height.
    """
    if marks is None:
        return
    pad = (np.nanmax(h) - np.nanmin(l)) * 0.03 if len(h) else 0

    def at(ds: Iterable[Any]) -> np.ndarray:
        idx = dates.get_indexer(pd.DatetimeIndex(pd.to_datetime(list(ds))))
        return idx[idx >= 0]

    if isinstance(marks, pd.DataFrame):
        m = marks
        if code is not None and "code" in m.columns:
            m = m[m["code"].astype(str) == code]
        if "entry_date" in m.columns:  # backtest trades
            ent = at(m["entry_date"].dropna().unique())
            if len(ent):
                ax.scatter(ent, l[ent] - pad, marker="^", s=70, color="#2ca02c", edgecolor="black",
                           linewidth=0.5, zorder=5, label="entry")
            exits = m.dropna(subset=["exit_date"]).drop_duplicates(["exit_date", "exit_reason"])
            for reason, g in exits.groupby("exit_reason"):
                ix = at(g["exit_date"])
                if len(ix):
                    ax.scatter(ix, h[ix] + pad, marker="v", s=70, color=EXIT_COLORS.get(reason, "#7f7f7f"),
                               edgecolor="black", linewidth=0.5, zorder=5, label=f"exit: {reason}")
            return
        if "date" in m.columns:
            ds = m["date"].unique()
        elif "session" in m.attrs and (code is None or len(m)):
            ds = [m.attrs["session"]]  # one day's scan result
        else:
            return
    elif isinstance(marks, (str, pd.Timestamp)):
        ds = [marks]
    else:
        ds = list(marks)
    ix = at(ds)
    if len(ix):
        ax.scatter(ix, l[ix] - pad, marker="^", s=80, color="#ffbf00", edgecolor="black", linewidth=0.6,
                   zorder=5, label="pick")


def _stock_name(code: str) -> str | None:
    """The stock's name from the (daily-cached) stock list, or None if it cannot be found."""
    try:
        from .. import data

        lst = data.get_stock_list(["KOSPI", "KOSDAQ", "ETF"])
        hit = lst.loc[lst["code"].astype(str) == code, "name"]
        return str(hit.iloc[0]) if len(hit) else None
    except Exception as exc:  # a missing name must not cost the chart
        logger.info("no name for %s: %s", code, exc)
        return None


def candles(code: str, end: Any = None, count: int = 120,
            indicators: Iterable[str] | str | None = ("tema20", "dema10", "volume"), marks: Any = None, *,
            adjusted: bool = True, name: str | None = None, figsize: tuple[float, float] = (12, 6.5)) -> Figure:
    """Candlestick chart of ``code``'s last ``count`` sessions up to ``end``; returns the Figure.

    Arguments:
        code: a KRX code such as ``'005930'``.
        end: the last session shown (any date form; ``None`` = latest).
        count: sessions shown (1 to 2,000).
        indicators: overlays ``ema<n>``, ``sma<n>``, ``dema<n>``, ``tema<n>``, and
            ``'volume'`` for the volume pane.
        marks: scan picks (a frame with ``date``/``code``, or one day's ``scan``
            result), backtest trades (``res.trades``), or a list of dates.
        adjusted: adjusted prices as of ``end`` (default) or raw prices.
        name: the title's name; looked up in the stock list when omitted.

    Example::

        >>> fig = finder.plot.candles("005930", "2025-10-01", 60, indicators=("sma20", "volume"))
    """
    from .. import calendar, data

    if not isinstance(code, str):
        raise InvalidInputError(f"code={code!r} is not a stock code; pass text such as '005930'")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count <= MAX_COUNT:
        raise InvalidInputError(f"count={count!r} is not a whole number from 1 to {MAX_COUNT}")
    if not isinstance(adjusted, bool):
        raise InvalidInputError(f"adjusted={adjusted!r} is not True or False")
    lines, _ = parse_indicators(indicators)
    if end is not None:
        end = calendar.parse_date(end, "end")
    df = data.get_ohlcv(code, count=count + _warmup(lines), base_dt=end, adjusted=adjusted)
    shown_name = name if name is not None else _stock_name(code.strip().upper())
    last = pd.Timestamp(df.index[-1]).date() if len(df) else end
    basis = f"adjusted as of {last}" if adjusted else "raw prices"
    title = f"{code}  {shown_name}" if shown_name else code
    title += f"   daily, {basis}"
    return plot_candles(df, count=count, indicators=indicators, marks=marks, code=code, title=title,
                        figsize=figsize)

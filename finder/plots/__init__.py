"""Charts for notebooks and reports (matplotlib; also available as ``finder.plot``).

* :func:`candles` — a stock's candlesticks with overlays, volume and marks.
* :func:`plot_candles` — the same from an OHLCV frame you already have.
* :func:`plot_backtest` — what ``BacktestResult.plot()`` draws.
* :func:`hangul_font`, :func:`add_hangul_fallback` — the Hangul font finder
  ships (NanumGothic, from the ``koreanize-matplotlib`` package) for your own
  figures; finder's figures carry it already, so names show as 삼성전자.

Every function returns a :class:`matplotlib.figure.Figure`: it shows inline
in Jupyter as a cell's last value, and ``fig.savefig("x.png")`` writes a PNG
under any backend, including Agg on a headless machine.

Example::

    >>> import finder
    >>> fig = finder.plot.candles("005930", end="2025-10-01", count=90)
    >>> fig.savefig("005930.png", dpi=120)
"""

from __future__ import annotations

from ._fonts import add_hangul_fallback, hangul_font
from .backtest import plot_backtest
from .candles import candles, parse_indicators, plot_candles

__all__ = ["candles", "plot_candles", "plot_backtest", "parse_indicators", "hangul_font", "add_hangul_fallback"]

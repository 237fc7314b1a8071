"""How finder shows numbers in tables: percent with a sign, KRW with separators or in 억, counts as integers.

Pure functions of one value (``"" `` for a missing one) and :func:`style`,
which picks the format of each column of a scan, backtest or report table by
its name.  Nothing here changes the data: a styled table's underlying frame
keeps its floats (a CSV written from it is exact).

Example::

    >>> from finder.report import style
    >>> style(finder.scan("2025-10-01"))        # close 71,500 · change +2.35% · value 1,234.5억
    >>> pct(0.0123), krw(71500), eok(1.2345e11), count(12.0)
    ('+1.23%', '71,500', '1,234.5억', '12')
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["pct", "pct_points", "share", "krw", "eok", "count", "number", "column_formats", "style"]

EOK = 1e8  # 1억 = 100,000,000 KRW


def _missing(v: Any) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def pct(v: Any, digits: int = 2) -> str:
    """A fraction as a signed percent: ``0.0123 -> '+1.23%'``."""
    return "" if _missing(v) else f"{float(v):+.{digits}%}"


def pct_points(v: Any, digits: int = 2) -> str:
    """A value already in percent as a signed percent: ``2.345 -> '+2.35%'`` (scan's ``change_pct``)."""
    return "" if _missing(v) else f"{float(v):+.{digits}f}%"


def share(v: Any, digits: int = 1) -> str:
    """A fraction that has no sign to show (win rate, exposure): ``0.55 -> '55.0%'``."""
    return "" if _missing(v) else f"{float(v):.{digits}%}"


def krw(v: Any) -> str:
    """Won with thousands separators: ``71500.4 -> '71,500'``."""
    return "" if _missing(v) else f"{float(v):,.0f}"


def eok(v: Any) -> str:
    """Large won amounts in 억 (10^8 KRW): ``1.2345e11 -> '1,234.5억'``."""
    return "" if _missing(v) else f"{float(v) / EOK:,.1f}억"


def count(v: Any) -> str:
    """A whole count: ``12.0 -> '12'``, ``1234 -> '1,234'``."""
    return "" if _missing(v) else f"{int(round(float(v))):,}"


def number(v: Any, digits: int = 2) -> str:
    """A plain ratio (Sharpe, profit factor): ``1.234 -> '1.23'``."""
    return "" if _missing(v) else f"{float(v):,.{digits}f}"


# Column name -> format, for the tables finder makes (scan, backtest trades/summary/stats, tear sheet).
_BY_NAME = {
    **dict.fromkeys(["close", "open", "high", "low", "entry_price", "exit_price", "price"], krw),
    **dict.fromkeys(["value", "traded_value", "market_cap"], eok),
    "change_pct": pct_points,
    **dict.fromkeys(["return", "gross_return", "mean", "median", "best", "worst", "total_return", "cagr",
                     "max_drawdown", "benchmark_return", "excess_return", "alpha", "volatility",
                     "tracking_error"], pct),
    **dict.fromkeys(["win_rate", "exposure", "turnover"], share),
    **dict.fromkeys(["count", "trades", "picks", "signals", "not_traded", "held", "rank", "sessions", "volume",
                     "positions"], count),
    **dict.fromkeys(["sharpe", "sortino", "calmar", "beta", "information_ratio", "profit_factor", "avg_holding"],
                    number),
    "score": lambda v: "" if _missing(v) else f"{float(v):g}",
}


def column_formats(df: pd.DataFrame) -> dict[str, Any]:
    """``{column: formatter}`` for the columns of ``df`` that finder knows by name."""
    return {c: _BY_NAME[c] for c in df.columns if isinstance(c, str) and c in _BY_NAME}


def style(df: pd.DataFrame) -> Any:
    """A pandas ``Styler`` of ``df`` with finder's formats (shown as HTML in Jupyter and in reports)."""
    return df.style.format(column_formats(df), na_rep="")

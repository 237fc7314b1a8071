"""finder's analysis layer: indicators, conditions, presets, universes and the scanner.

Everything a notebook needs is importable from here::

    from finder.analysis import scan, close, volume, sma, volume_ratio, Screen, momentum

    picks = scan("2025-10-01")                                         # the momentum preset
    mine = (close > sma(close, 60)) & (volume_ratio(volume, 20) >= 2)  # a custom condition
    scan("2025-10-01", universe="KOSPI", conditions=mine)

Dependency direction: analysis → ``finder.data`` (the cached data access)
→ client.  Nothing here talks to the client directly.
"""

from __future__ import annotations

import sys

from .conditions import (
    FIELDS,
    Bars,
    Condition,
    Expr,
    Field,
    Screen,
    as_condition,
    as_screen,
    close,
    high,
    low,
    open_,
    value,
    volume,
)
from .indicators import (
    MACD,
    atr,
    count_true,
    crossed_above,
    crossed_below,
    dema,
    ema,
    macd,
    obv,
    rolling_sum,
    rsi,
    shift,
    slope,
    sma,
    tema,
    true_range,
    volume_ratio,
)
from .presets import PRESETS, get_preset, momentum, momentum_strict
from . import scanner
from .scanner import prepare_bars, resolve_session, scan, scan_panels

# ``finder.analysis.scan`` is the function; the module is ``finder.analysis.scanner``.
# Code written before the rename imported ``from finder.analysis.scan import scan``:
# that import path still resolves to the module (a plain alias, nothing callable).
sys.modules[__name__ + ".scan"] = scanner
from .universe import MARKETS, Universe, resolve_universe

__all__ = [
    # indicators
    "MACD", "ema", "dema", "tema", "sma", "macd", "rsi", "obv", "true_range", "atr", "slope", "volume_ratio",
    "shift", "rolling_sum", "count_true", "crossed_above", "crossed_below",
    # conditions
    "Expr", "Field", "Bars", "Condition", "Screen", "as_condition", "as_screen", "FIELDS",
    "open_", "high", "low", "close", "volume", "value",
    # presets
    "PRESETS", "get_preset", "momentum", "momentum_strict",
    # universes
    "Universe", "resolve_universe", "MARKETS",
    # scanning
    "scan", "scan_panels", "prepare_bars", "resolve_session", "scanner",
]

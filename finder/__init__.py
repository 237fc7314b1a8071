"""finder: a research toolkit for the Korean stock market on the Kiwoom REST API.

Daily bars are fetched once and kept in a disk cache shared by every notebook
and process; without credentials, a built-in simulator serves the same
protocol offline.

Example::

    >>> import finder
    >>> df = finder.get_ohlcv("005930", 220, "2025-10-01")   # cached on disk
    >>> picks = finder.scan("2025-10-01")                     # momentum preset
    >>> result = finder.backtest("momentum", start="2025-08-01", end="2025-10-31")

Layers (dependencies point one way): ``analysis`` (indicators, scan,
backtest) → ``data`` / ``cache`` / ``KiwoomAPI`` (data access; ``KiwoomAPI``
wraps a raw ``finder.client.KiwoomClient`` with the cache) → ``client``
(the wire, which knows nothing of the cache).
``sim`` is the offline Kiwoom.
"""

from __future__ import annotations

from typing import Any

from . import calendar
from ._exceptions import (
    APIError,
    AuthenticationError,
    CacheError,
    FinderError,
    InvalidInputError,
    InvalidRequestError,
    KiwoomError,
    RateLimitError,
    StockNotFoundError,
    TransportError,
)
from ._cached import KiwoomAPI
from .data import get_ohlcv, get_panel, get_stock_list

__version__ = "0.1.0"

__all__ = [
    "KiwoomAPI",
    "get_ohlcv",
    "get_panel",
    "get_stock_list",
    "scan",
    "backtest",
    "sweep",
    "cache",
    "calendar",
    "indicators",
    "plot",
    "FinderError",
    "InvalidInputError",
    "CacheError",
    "KiwoomError",
    "TransportError",
    "APIError",
    "AuthenticationError",
    "RateLimitError",
    "InvalidRequestError",
    "StockNotFoundError",
]

# Heavier parts load on first use, so `import finder` stays quick and a
# notebook that only fetches bars never imports matplotlib.
_LAZY = {
    "cache": ("finder.cache", None),
    "indicators": ("finder.analysis.indicators", None),
    "plot": ("finder.plots", None),
    "scan": ("finder.analysis.scan", "scan"),
    "backtest": ("finder.analysis.backtest", "backtest"),
    "sweep": ("finder.analysis.sweep", "sweep"),
    "get_index": ("finder.cache._index_bars", "get_index"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = getattr(module, attr) if attr else module
        globals()[name] = value
        return value
    raise AttributeError(f"module 'finder' has no attribute {name!r}")

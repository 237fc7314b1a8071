"""Data access for notebooks and the analysis layer: cached bars, panels and stock lists.

Everything here goes through the disk cache and one default client per
process: a ``finder.KiwoomAPI`` (``finder._cached``: a raw
``finder.client.KiwoomClient`` wrapped with the cache).  The default client uses real credentials when ``KIWOOM_APPKEY`` and
``KIWOOM_SECRETKEY`` are set, and the built-in simulator otherwise.

Example::

    >>> import finder
    >>> df = finder.get_ohlcv("005930", 220, "2025-10-01")
    >>> close = finder.get_panel(["005930", "000660"], 60, "2025-10-01")
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

import pandas as pd

from ._cached import KiwoomAPI
from .client import parse_markets

__all__ = ["get_ohlcv", "get_panel", "get_stock_list", "default_client", "set_default_client"]

_lock = threading.Lock()
_client: KiwoomAPI | None = None


def default_client() -> KiwoomAPI:
    """The process's shared client (created on first use, with the cache on)."""
    global _client
    with _lock:
        if _client is None:
            _client = KiwoomAPI()
        return _client


def set_default_client(client: KiwoomAPI | None) -> None:
    """Use ``client`` for module-level calls (None: build a new one from the environment on next use)."""
    global _client
    with _lock:
        _client = client


def get_ohlcv(code: str, count: int = 220, base_dt: Any = None, adjusted: bool = True) -> pd.DataFrame:
    """``count`` daily bars of ``code`` ending at the last session on or before ``base_dt``, from the cache.

    Same contract as :meth:`KiwoomAPI.get_ohlcv`: ``base_dt=None`` means the
    latest bars (today's live bar included while the market is open); adjusted
    prices are adjusted as of ``base_dt``.  Before the open (KST 09:00) of a
    session, ``base_dt=None`` or today means the last completed session,
    adjusted as of that session (no extra request); Kiwoom itself already
    applies a corporate action taking effect today at that hour, so on an
    ex-date the two differ until the open.

    Example::

        >>> finder.get_ohlcv("005930", 20, "20251001").close.tail(3)  # doctest: +SKIP
    """
    return default_client().get_ohlcv(code, count, base_dt, adjusted)


def get_panel(codes: Iterable[str], count: int = 220, base_dt: Any = None, field: Any = "close",
              adjusted: bool = True, progress: bool | None = None):
    """A dates × codes frame of one field (or a dict of frames for a list of fields), from the cache.

    Each column holds that stock's last ``count`` bars on or before ``base_dt``,
    adjusted as of ``base_dt``; NaN where a stock did not trade.  Codes that
    cannot be served are absent and listed in ``.attrs["missing"]``.

    Example::

        >>> p = finder.get_panel(codes, 220, "2025-10-01", field=["close", "volume"])  # doctest: +SKIP
        >>> p["close"].iloc[-1]                                                         # doctest: +SKIP
    """
    from .cache._ohlcv import get_panel as _get_panel

    return _get_panel(default_client(), codes, count, base_dt, field, adjusted, progress)


def get_stock_list(market: Any = "KOSPI", client: KiwoomAPI | None = None) -> pd.DataFrame:
    """Listed stocks (``code, name, market, listed``, …) of one or more markets, cached for the day.

    Kiwoom lists current listings only, so stocks delisted before today are
    absent: a survivorship limit of the API that point-in-time scans document.
    """
    from .cache._store import Store

    markets = parse_markets(market)
    api = client or default_client()
    store = Store.for_client(api)
    frames = [store.stock_list(api, m) for m in markets]
    out = pd.concat(frames, ignore_index=True)
    return out.drop_duplicates("code", keep="first").reset_index(drop=True)

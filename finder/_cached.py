"""``finder.KiwoomAPI``: a raw ``KiwoomClient`` wrapped with the disk cache.

The data layer's client.  It owns what the raw client must not know:

* the disk cache (``get_ohlcv`` goes through ``finder.cache`` unless
  ``cache=False``, which gives the raw client's behaviour: every call fetched);
* the cache folder (``cache_dir``, else ``FINDER_CACHE_DIR`` / the default);
* the choice of the built-in in-process simulator when no credentials and no
  host are configured, announced once in the log (data is SIMULATED).

Everything else is the raw client's (``.raw``): ``daily_walk``,
``fetch_ohlcv``, ``get_quotes``, ``get_stock_list`` and ``request`` are its
uncached operations, which the cache itself calls on this object.

Not guaranteed here: anything about the wire (see ``finder.client``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

import httpx
import pandas as pd

from . import _validate
from ._paths import cache_dir as default_cache_dir
from .client import DailyWalk, KiwoomClient, Reply
from .client._api import DEFAULT_RATE, SIMULATOR_KEY, SIMULATOR_URL, _env_float, credentials_configured

__all__ = ["KiwoomAPI"]

log = logging.getLogger("finder.client")
_notice_logged = False


class KiwoomAPI:
    """A Kiwoom REST client with the disk cache.

    Arguments left out are read from the environment: ``KIWOOM_APPKEY``,
    ``KIWOOM_SECRETKEY``, ``KIWOOM_BASE_URL``; ``KIWOOM_ENV=mock`` selects the
    mock-trading host.  With no credentials and no host at all, an in-process
    simulator serves every call.  Creating the object makes no network call.

    Example::

        >>> from finder import KiwoomAPI
        >>> api = KiwoomAPI()                      # simulator unless credentials are set
        >>> df = api.get_ohlcv("005930", 220, "2025-10-01")
        >>> df.tail(2)                             # doctest: +SKIP
    """

    def __init__(
        self,
        app_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        *,
        cache: bool = True,
        rate: float | None = None,
        max_retries: int = 5,
        backoff: float = 0.25,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        self.cache = _validate.boolean(cache, "cache")
        self.simulated = transport is None and not credentials_configured(app_key, secret_key, base_url)
        if self.simulated:
            # The offline answer is chosen here, where the default client is built, not in the raw client.
            self.raw = KiwoomClient(SIMULATOR_KEY, SIMULATOR_KEY, SIMULATOR_URL, kind="simulator", shared_state=False,
                                    rate=rate if rate is not None else _env_float("FINDER_RATE") or DEFAULT_RATE["simulator"],
                                    max_retries=max_retries, backoff=backoff, timeout=timeout,
                                    transport=_in_process_simulator())
            _log_simulator_notice()
        else:
            self.raw = KiwoomClient(app_key, secret_key, base_url, rate=rate, max_retries=max_retries,
                                    backoff=backoff, timeout=timeout, transport=transport)
        # Resolved once: the cache asks for it on every call.
        self.cache_root = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir()

    # -- what the raw client is -------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.raw.base_url

    @property
    def kind(self) -> str:
        return self.raw.kind

    @property
    def rate(self) -> float:
        return self.raw.rate

    @property
    def max_retries(self) -> int:
        return self.raw.max_retries

    @property
    def backoff(self) -> float:
        return self.raw.backoff

    @property
    def identity(self) -> str:
        """A non-secret name for the data source, e.g. for cache keys: the host and mode, never the key."""
        return "simulator" if self.simulated else self.raw.identity

    def __getattr__(self, name: str) -> Any:
        # Internals of the raw client (its token store, limiter, ...) stay reachable for tests
        # and diagnostics; dunder lookups (copy, pickle) must not recurse into a half-built object.
        if name.startswith("__") or name == "raw":
            raise AttributeError(name)
        return getattr(self.raw, name)

    # -- housekeeping ---------------------------------------------------------
    def close(self) -> None:
        """Release the HTTP connections."""
        self.raw.close()

    def __enter__(self) -> "KiwoomAPI":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "simulator (in-process)" if self.simulated else self.kind
        return f"KiwoomAPI(base_url={self.base_url!r}, mode={mode!r}, cache={self.cache})"

    # -- cached -----------------------------------------------------------------
    def get_ohlcv(self, code: str, count: int = 220, base_dt: Any = None, adjusted: bool = True) -> pd.DataFrame:
        """Daily bars: ``count`` bars ending at the last session on or before ``base_dt``, through the disk cache.

        ``base_dt=None`` means the latest bars, today's live bar included while
        the market is open.  Adjusted prices are adjusted as of ``base_dt``
        (Kiwoom's rule).  The frame has a ``DatetimeIndex`` named ``date`` and
        columns ``open, high, low, close`` (float), ``volume`` and ``value``
        (traded value in KRW, int).  With ``cache=False`` every call is fetched.

        Example::

            >>> api.get_ohlcv("005930", 60, "2025-10-01").close.iloc[-1]  # doctest: +SKIP
        """
        code = _validate.code(code)
        count = _validate.count(count)
        when = _validate.base_dt(base_dt)
        adjusted = _validate.boolean(adjusted, "adjusted")
        if self.cache:
            from .cache import _ohlcv  # the cache imports the data layer: load it on first use

            return _ohlcv.get_ohlcv(self, code, count, when, adjusted)
        return self.raw.fetch_ohlcv(code, count, when, adjusted)

    # -- uncached operations of the raw client (the cache calls these on this object) --------
    def fetch_ohlcv(self, code: str, count: int, when: pd.Timestamp | None, adjusted: bool) -> pd.DataFrame:
        """``get_ohlcv`` straight from the server, no cache (arguments already validated)."""
        return self.raw.fetch_ohlcv(code, count, when, adjusted)

    def daily_walk(self, code: str, base_dt: pd.Timestamp, count: int, adjusted: bool) -> DailyWalk:
        """One ka10081 paging walk (see :meth:`finder.client.KiwoomClient.daily_walk`)."""
        return self.raw.daily_walk(code, base_dt, count, adjusted)

    def get_quotes(self, codes: Iterable[str]) -> pd.DataFrame:
        """Today's bar for many stocks, 100 per request (ka10095), uncached.

        Example::

            >>> api.get_quotes(["005930", "000660"])[["close", "base_price"]]  # doctest: +SKIP
        """
        return self.raw.get_quotes(codes)

    def get_stock_list(self, market: str | Iterable[str] = "KOSPI") -> pd.DataFrame:
        """Listed stocks of one or more markets (ka10099), uncached; ``finder.get_stock_list`` caches it.

        Example::

            >>> api.get_stock_list(["KOSPI", "KOSDAQ"]).head()  # doctest: +SKIP
        """
        return self.raw.get_stock_list(market)

    def request(self, api_id: str, path: str, body: dict, headers: dict[str, str] | None = None) -> Reply:
        """One Kiwoom operation, paced, retried and authenticated, uncached: see :meth:`KiwoomClient.request`.

        Example::

            >>> data, headers = api.request("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})  # doctest: +SKIP
        """
        return self.raw.request(api_id, path, body, headers)


def _in_process_simulator() -> httpx.BaseTransport:
    from .sim import in_process_transport

    return in_process_transport()


def _log_simulator_notice() -> None:
    global _notice_logged
    if not _notice_logged:
        _notice_logged = True
        log.warning("finder: no Kiwoom credentials configured (KIWOOM_APPKEY / KIWOOM_SECRETKEY); "
                    "using the built-in simulator — all data is SIMULATED")

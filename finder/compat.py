"""A drop-in for the old screener backend's ``KiwoomAPI`` class: change one import, keep the code.

::

    from finder.compat import KiwoomAPI     # was: from kiwoom_api import KiwoomAPI
    from finder.compat import api           # was: from kiwoom_api import api

Every method of the old class (``shared/seed-api.md``) returns the old shape,
served through finder's disk cache, cross-process pacing and one shared
token, so a backend can run under ``uvicorn --workers 4`` and restart freely
without refetching what it has.

Where the old class was unsafe, this one is safe (each difference is listed
in the README, "Migrating from a KiwoomAPI class"):

* it never serves made-up data: ``force_mock`` is always False; without
  credentials the offline answer is finder's simulator, announced in the log;
* credentials come from ``KIWOOM_APPKEY`` / ``KIWOOM_SECRETKEY`` /
  ``KIWOOM_BASE_URL``, else the old ``APP_KEY`` / ``APP_SECRET`` /
  ``API_BASE``; any of them set but incomplete raises ``InvalidInputError``
  instead of silently serving the simulator;
* it never returns rows after ``base_dt`` (``_last_ohlcv_leak`` is always
  False), returns more than 600 bars when asked, and ``base_dt=None``
  includes today's live bar while the market is open;
* names, quotes and the ranking come from caches every worker shares.

Kept from the old class on purpose: an empty frame (logged once per code),
not an exception, for an unknown code or a failed fetch; a ``base_dt`` after
today means "latest".  Not kept: order and account methods raise
``NotImplementedError`` (out of scope for a research toolkit).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from . import _validate, calendar
from ._exceptions import AuthenticationError, CacheError, InvalidInputError, KiwoomError, StockNotFoundError

__all__ = ["KiwoomAPI", "api", "OHLCV_COLUMNS"]

log = logging.getLogger("finder.compat")

OHLCV_COLUMNS = ["date", "open", "high", "low", "close", "volume"]
_NAME_MARKETS = ["KOSPI", "KOSDAQ", "ETF"]

# Codes already reported as unknown / failed in this process: the old class's callers ask
# again and again, and one line per code is enough.
_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _report_once(kind: str, code: str, message: str, *args: Any) -> None:
    with _reported_lock:
        if (kind, code) in _reported:
            return
        _reported.add((kind, code))
    log.warning(message, *args)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def _is_kiwoom_host(url: str) -> bool:
    host = (urlsplit(url if "://" in url else f"https://{url}").hostname or "").lower()
    return host == "kiwoom.com" or host.endswith(".kiwoom.com")


def credentials_from_env() -> tuple[str | None, str | None, str | None]:
    """(app key, secret key, base URL) from ``KIWOOM_*``, else the old ``APP_KEY`` / ``APP_SECRET`` / ``API_BASE``.

    Raises ``InvalidInputError`` when a credential is set but incomplete, or
    when a base URL points at Kiwoom's own host without any key: both mean
    real data was meant, and serving the simulator instead would be silent.
    """
    new_key, new_secret = _env("KIWOOM_APPKEY"), _env("KIWOOM_SECRETKEY")
    old_key, old_secret = _env("APP_KEY"), _env("APP_SECRET")
    if new_key or new_secret:
        if not (new_key and new_secret):
            missing = "KIWOOM_SECRETKEY" if new_key else "KIWOOM_APPKEY"
            raise InvalidInputError(f"{missing} is not set but its partner is; set both (or neither, for the "
                                    "simulator)")
        key, secret = new_key, new_secret
    elif old_key or old_secret:
        if not (old_key and old_secret):
            missing = "APP_SECRET" if old_key else "APP_KEY"
            raise InvalidInputError(f"{missing} is not set but its partner is (the old backend's names); set both, "
                                    "or KIWOOM_APPKEY and KIWOOM_SECRETKEY, rather than fall back to the simulator")
        key, secret = old_key, old_secret
    else:
        key = secret = None
    base = _env("KIWOOM_BASE_URL") or _env("API_BASE")
    if key is None and base and _is_kiwoom_host(base):
        raise InvalidInputError(f"the API host is set to Kiwoom's ({base}) but no app key is set (KIWOOM_APPKEY / "
                                "KIWOOM_SECRETKEY or APP_KEY / APP_SECRET); refusing to serve simulated data")
    return key, secret, base


_DAY_TEXT: "OrderedDict[bytes, np.ndarray]" = OrderedDict()
_DAY_TEXT_LOCK = threading.Lock()


def _yyyymmdd(index: pd.DatetimeIndex) -> np.ndarray:
    """``YYYYMMDD`` strings of a date index, memoized: the same few hundred session ranges repeat
    for every stock on a hot path, and formatting dates costs more than the cache hit itself."""
    key = index.asi8.tobytes()
    with _DAY_TEXT_LOCK:
        hit = _DAY_TEXT.get(key)
        if hit is not None:
            _DAY_TEXT.move_to_end(key)
            return hit
    text = np.char.replace(np.datetime_as_string(index.values.astype("datetime64[D]")), "-", "").astype(object)
    with _DAY_TEXT_LOCK:
        _DAY_TEXT[key] = text
        if len(_DAY_TEXT) > 256:
            _DAY_TEXT.popitem(last=False)
    return text


def _empty_ohlcv() -> pd.DataFrame:
    return pd.DataFrame({"date": pd.Series(dtype="object"), "open": pd.Series(dtype="float64"),
                         "high": pd.Series(dtype="float64"), "low": pd.Series(dtype="float64"),
                         "close": pd.Series(dtype="float64"), "volume": pd.Series(dtype="int64")})


def _out_of_scope(name: str):
    def method(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"KiwoomAPI.{name} is out of scope: finder is a research toolkit and neither "
                                  "places orders nor reads accounts; call Kiwoom's order/account API directly")

    method.__name__ = name
    method.__doc__ = "Out of scope for finder: raises NotImplementedError."
    return method


class KiwoomAPI:
    """The old backend's ``KiwoomAPI``, served by finder's cached client.

    ``KiwoomAPI()`` reads its settings from the environment (see
    :func:`credentials_from_env`) and makes no network call.  ``client``
    wraps an existing ``finder.KiwoomAPI`` instead (tests, notebooks).

    Example::

        >>> from finder.compat import KiwoomAPI
        >>> api = KiwoomAPI()
        >>> df = api.get_ohlcv("005930", 220, "20251001")
        >>> df["date"].iloc[-1]                     # doctest: +SKIP
        '20251001'
    """

    def __init__(self, *, client: Any = None) -> None:
        if client is None:
            from ._cached import KiwoomAPI as _Client

            key, secret, base = credentials_from_env()
            client = _Client(key, secret, base)
        self._client = client
        self._names_lock = threading.Lock()
        self._names_day: pd.Timestamp | None = None
        self._by_code: dict[str, str] = {}
        self._by_name: dict[str, str] = {}
        self._shares: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"finder.compat.KiwoomAPI({self._client!r})"

    # -- attributes callers read ---------------------------------------------------------
    @property
    def force_mock(self) -> bool:
        """Always False: finder never serves made-up data (the simulator is the offline answer)."""
        return False

    @force_mock.setter
    def force_mock(self, value: Any) -> None:
        if value:
            raise InvalidInputError("force_mock cannot be turned on: finder never serves made-up data; run without "
                                    "credentials (or `finder sim serve`) to use the simulator")

    @property
    def _last_ohlcv_leak(self) -> bool:
        """Always False: finder never returns rows dated after ``base_dt``."""
        return False

    @_last_ohlcv_leak.setter
    def _last_ohlcv_leak(self, value: Any) -> None:
        if value:
            raise InvalidInputError("_last_ohlcv_leak cannot be set: finder never returns rows after base_dt")

    @property
    def client(self) -> Any:
        """The cached ``finder.KiwoomAPI`` underneath."""
        return self._client

    # -- bars ------------------------------------------------------------------------------
    def _base_dt(self, base_dt: Any) -> pd.Timestamp | None:
        if base_dt is None or (isinstance(base_dt, str) and not base_dt.strip()):
            return None  # the old callers' "latest" (None, or an empty string from a query parameter)
        when = calendar.parse_date(base_dt, "base_dt")
        # The old class passed a future date through and got the latest bars; its callers rely on that.
        return None if when > calendar.today() else when

    def get_ohlcv(self, code: str, count: int = 220, base_dt: Any = None) -> pd.DataFrame:
        """``count`` adjusted daily bars ending at the last session on or before ``base_dt``, the old shape.

        RangeIndex; columns ``date, open, high, low, close, volume``; ``date``
        holds ``YYYYMMDD`` strings; ascending.  ``base_dt``: ``YYYYMMDD`` (or
        any date finder accepts) or None for the latest; after today means the
        latest.  An unknown code or a failed fetch gives an empty frame with
        these columns (logged once per code); a malformed ``count`` or
        ``base_dt`` raises ``InvalidInputError``.

        Example::

            >>> api.get_ohlcv("005930", 60, "20251001")["date"].iloc[-1]  # doctest: +SKIP
        """
        count = _validate.count(count)
        when = self._base_dt(base_dt)
        try:
            code = _validate.code(code)
        except InvalidInputError:
            _report_once("code", str(code), "finder.compat: %r is not a KRX stock code; returning an empty frame",
                         code)
            return _empty_ohlcv()
        try:
            bars = self._client.get_ohlcv(code, count, when)
        except StockNotFoundError:
            _report_once("unknown", code, "finder.compat: no bars for %s (unknown code, or nothing on or before "
                         "%s); returning an empty frame", code, when.date() if when is not None else "today")
            return _empty_ohlcv()
        except (AuthenticationError, CacheError):
            raise  # a misconfiguration, not a failed fetch: hiding it would serve empty data for every code
        except KiwoomError as exc:
            _report_once("failed", code, "finder.compat: fetching %s failed (%s); returning an empty frame", code, exc)
            return _empty_ohlcv()
        out = bars[OHLCV_COLUMNS[1:]].reset_index(drop=True)
        out.insert(0, "date", _yyyymmdd(bars.index).copy())  # the memo is shared: hand out a copy
        return out

    # -- names --------------------------------------------------------------------------------
    def _load_names(self) -> None:
        today = calendar.today()
        if self._names_day == today:
            return
        with self._names_lock:
            if self._names_day == today:
                return
            from filelock import FileLock

            from ._paths import ensure_private_dir, state_dir
            from .data import get_stock_list

            # The stock list is cached on disk for the day and shared by every process: a
            # worker's first call reads it.  The lock makes a cold start single-flight, so
            # four workers starting together fetch it once, not four times.
            locks = ensure_private_dir(state_dir(self._client.cache_root) / "locks")
            with FileLock(str(locks / "compat-stock-list.lock")):
                frame = get_stock_list(_NAME_MARKETS, client=self._client)
            self._by_code = dict(zip(frame["code"], frame["name"]))
            self._by_name = {str(n).replace(" ", ""): c for c, n in zip(frame["code"], frame["name"])}
            self._shares = dict(zip(frame["code"], frame["shares"]))
            self._names_day = today

    def get_stock_name(self, code: str) -> str:
        """The Korean name of ``code``; the code itself when unknown (or when the list cannot be fetched)."""
        try:
            self._load_names()
        except KiwoomError as exc:
            _report_once("list", "", "finder.compat: the stock list could not be fetched (%s); names are codes", exc)
            return str(code)
        key = str(code).strip().upper().split("_", 1)[0]
        return self._by_code.get(key, str(code))

    def get_code_by_name(self, name: str) -> str:
        """The code of the stock called ``name`` (spaces ignored); ``''`` when unknown."""
        try:
            self._load_names()
        except KiwoomError as exc:
            _report_once("list", "", "finder.compat: the stock list could not be fetched (%s)", exc)
            return ""
        return self._by_name.get(str(name).replace(" ", ""), "")

    # -- today's numbers ---------------------------------------------------------------------
    def get_top_codes(self, market: str = "KOSPI", limit: int = 100) -> list[str]:
        """The ``limit`` most-traded codes of ``market`` (``KOSPI``/``KOSDAQ``) by traded value today (ka10032).

        Venue suffixes (``_AL``, ``_NX``) are stripped.  Cached for
        ``FINDER_LIVE_TTL`` seconds while the market is open, kept after the
        cut-off.  A failed fetch gives ``[]`` (logged).
        """
        from .cache import _snapshots

        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit={limit!r} must be a whole number >= 1")
        try:
            frame = _snapshots.top_traded(self._client, market, "KRX")
        except (AuthenticationError, CacheError, InvalidInputError):
            raise
        except KiwoomError as exc:
            _report_once("rank", str(market), "finder.compat: the %s ranking could not be fetched (%s)", market, exc)
            return []
        return frame["code"].iloc[:limit].tolist()

    def get_stock_quote(self, code: str) -> dict:
        """Today's quote: ``current_price``, ``change_rate`` (percent), ``volume``, ``market_cap`` (KRW).

        From ka10095 (cached for ``FINDER_LIVE_TTL`` seconds while open) and
        the day's stock list (listed shares x price).  ``market_cap`` is None
        when the listed shares are unknown.  An unknown code gives ``{}``.
        """
        from .cache import _snapshots

        try:
            code = _validate.code(code).split("_", 1)[0]
        except InvalidInputError:
            _report_once("code", str(code), "finder.compat: %r is not a KRX stock code", code)
            return {}

        def fetch() -> dict:
            q = self._client.get_quotes([code])
            if code not in q.index:
                return {}
            row = q.loc[code]
            price, base = float(row["close"]), float(row["base_price"])
            rate = round((price - base) / base * 100, 2) if base == base and base > 0 else 0.0
            return {"current_price": int(round(price)), "change_rate": rate, "volume": int(row["volume"])}

        try:
            quote = _snapshots.cached(self._client.cache_root, "ka10095", code, fetch)
        except (AuthenticationError, CacheError):
            raise
        except KiwoomError as exc:
            _report_once("quote", code, "finder.compat: the quote of %s could not be fetched (%s)", code, exc)
            return {}
        if not quote:
            _report_once("unknown", code, "finder.compat: no quote for %s (unknown code)", code)
            return {}
        shares = None
        try:
            self._load_names()
            shares = self._shares.get(code)
        except KiwoomError:
            pass
        cap = int(round(shares * quote["current_price"])) if shares is not None and shares == shares and shares > 0 else None
        return {**quote, "market_cap": cap}

    # -- the cache ----------------------------------------------------------------------------
    def clear_ohlcv_cache(self, code: str | None = None) -> None:
        """Empty the cache for one stock, or everything (bars, index bars, today's snapshots)."""
        from . import cache
        from .cache import _index_bars, _snapshots

        root = self._client.cache_root
        cache.clear(code, root=root)
        if code is None:
            _index_bars.clear(root)
            _snapshots.clear(root)

    def get_ohlcv_cache_stats(self) -> dict:
        """``total``, ``valid``, ``expired`` cache entries and ``disk``: ``enabled, total_files, total_size_mb, cache_dir``.

        ``expired`` counts live (today's) entries older than ``FINDER_LIVE_TTL``;
        they are fetched again when next asked for.
        """
        import json
        import time

        from .cache._store import Store, live_ttl

        root = self._client.cache_root
        total = expired = files = size = 0
        ttl = live_ttl()
        now = time.time()
        for folder in (root / "joblib", root / "finder"):
            for dirpath, _dirs, names in os.walk(folder):
                for n in names:
                    try:
                        size += os.lstat(os.path.join(dirpath, n)).st_size
                        files += 1
                    except OSError:
                        pass
                if folder.name == "joblib" and "output.pkl" in names:
                    total += 1
                    if os.path.basename(os.path.dirname(dirpath)) == "live":
                        try:
                            meta = json.loads(open(os.path.join(dirpath, "metadata.json")).read())
                            if now - float(meta.get("time", 0)) >= ttl:
                                expired += 1
                        except (OSError, ValueError):
                            expired += 1
        enabled = bool(Store.for_root(root).writable) if root.exists() else False
        return {"total": total, "valid": total - expired, "expired": expired,
                "disk": {"enabled": enabled, "total_files": files, "total_size_mb": round(size / 2**20, 3),
                         "cache_dir": str(root)}}

    # -- the raw door -------------------------------------------------------------------------
    def _post(self, api_id: str, path: str, payload: dict, extra_headers: dict | None = None) -> dict:
        """The old private ``_post``: one paced, retried, authenticated request; the JSON dict plus ``__headers__``.

        Delegates to the raw client's ``request``.  A non-zero ``return_code``
        raises finder's typed error (the old method returned it in the dict).
        """
        reply = self._client.raw.request(api_id, path, payload, headers=extra_headers)
        data, headers = reply
        out = dict(data)
        out["__headers__"] = dict(headers)
        return out

    # -- out of scope -------------------------------------------------------------------------
    for _name in ("send_order", "place_order", "buy", "sell", "buy_stock", "sell_stock", "cancel_order",
                  "modify_order", "get_balance", "get_account_balance", "get_account_info", "get_deposit",
                  "get_holdings", "get_positions", "get_orders"):
        locals()[_name] = _out_of_scope(_name)
    del _name


# -- the module-level instance ---------------------------------------------------------------------
_instance: KiwoomAPI | None = None
_instance_lock = threading.Lock()


def _get_instance() -> KiwoomAPI:
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = KiwoomAPI()
    return _instance


class _LazyAPI:
    """The old module's shared ``api``: built from the environment on first use, not at import."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(_get_instance(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_get_instance(), name, value)

    def __repr__(self) -> str:
        return repr(_instance) if _instance is not None else "<finder.compat.api (not created yet)>"


api = _LazyAPI()

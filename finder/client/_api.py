"""``KiwoomAPI``: the Kiwoom REST client.

What it guarantees:

* Protocol: every call is a JSON ``POST`` with an ``api-id`` header; paging
  follows the *response headers* ``cont-yn`` / ``next-key``; errors are read from
  ``return_code`` (never from the Korean text); all values are parsed from
  strings, prices made absolute.
* Tokens: issued on first use, shared between processes through an owner-only
  file (issuing a token invalidates the previous one), renewed before
  ``expires_dt`` (KST), and re-issued once when Kiwoom says 3 / 8005.
* Pacing: at most ``rate`` requests per second per (app key, api-id) across
  all processes on the machine, every page included.
* Retries: bounded exponential backoff with jitter on 429 / 1700, 5xx,
  timeouts, dropped connections and non-JSON bodies (maintenance pages).
* Walks end: a stop at ``count`` rows, ``cont-yn: N``, an empty or all-blank
  page, a ``next-key`` seen before, or a maximum page count.
* Bad input is refused before any request; secrets never reach a message.

Without credentials it talks to an in-process simulator (``finder.sim``) and
says so once in the log.  ``get_ohlcv`` goes through the disk cache unless the
client was made with ``cache=False``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import httpx
import pandas as pd

from .. import _validate, calendar
from .._exceptions import (
    APIError,
    AuthenticationError,
    InvalidInputError,
    InvalidRequestError,
    RateLimitError,
    StockNotFoundError,
    TransportError,
)
from .._models import (
    API_DAILY,
    API_PATHS,
    API_QUOTES,
    API_STOCK_LIST,
    API_TOKEN,
    CONTENT_TYPE,
    DAILY_LIST_KEY,
    DAILY_PAGE_SIZE,
    DETAIL_BATCH_TOO_LARGE,
    DETAIL_NO_RETRY,
    DETAIL_NO_STOCK,
    DETAIL_TOKEN_INVALID,
    DETAIL_WRONG_ENV,
    H_API_ID,
    H_AUTH,
    H_CONT,
    H_NEXT,
    MARKET_CODES,
    MOCK_URL,
    PRODUCTION_URL,
    RC_AUTH,
    RC_INPUT,
    RC_LIMIT,
    RC_PROCESSING,
    STOCK_LIST_KEY,
    detail_code,
)
from .._paths import cache_dir as default_cache_dir, state_dir
from . import _secrets, _stats
from ._parse import daily_rows_to_frame, finish_bars, is_blank_row, number
from ._reply import Reply
from ._ratelimit import FileRateLimiter, MemoryRateLimiter
from ._token import FileTokenStore, MemoryTokenStore, Token, parse_expires_dt

log = logging.getLogger("finder.client")

SIMULATOR_URL = "http://simulator.invalid"
SIMULATOR_KEY = "finder-simulator-key"
DEFAULT_RATE = {"production": 4.0, "mock": 1.0, "simulator": 50.0}
_notice_logged = False


@dataclass
class DailyWalk:
    """What one ka10081 paging walk brought back."""

    frame: pd.DataFrame            # ascending, rows on or before the requested base_dt
    pages: int
    reached_start: bool            # the server said there is nothing older
    truncated: bool                # a guard stopped the walk early (repeated key, page cap, odd page)
    notes: list[str] = field(default_factory=list)


class _Transient(Exception):
    """A failure worth retrying (internal)."""

    def __init__(self, reason: str, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.rate_limited = rate_limited


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidInputError(f"{name}={raw!r} is not a number") from exc


class KiwoomAPI:
    """A Kiwoom REST client.

    Arguments left out are read from the environment: ``KIWOOM_APPKEY``,
    ``KIWOOM_SECRETKEY``, ``KIWOOM_BASE_URL``; ``KIWOOM_ENV=mock`` selects the
    mock-trading host.  With no credentials at all, an in-process simulator
    serves every call.  Creating the object makes no network call.

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
        app_key = app_key or os.environ.get("KIWOOM_APPKEY") or None
        secret_key = secret_key or os.environ.get("KIWOOM_SECRETKEY") or None
        base_url = base_url or os.environ.get("KIWOOM_BASE_URL") or None
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries={max_retries!r} must be a whole number >= 0")
        if rate is not None and (not isinstance(rate, (int, float)) or rate <= 0):
            raise InvalidInputError(f"rate={rate!r} must be a positive number of requests per second")

        self.simulated = False
        if app_key and secret_key:
            kind = "mock" if os.environ.get("KIWOOM_ENV", "").lower() == "mock" else "production"
            base_url = base_url or (MOCK_URL if kind == "mock" else PRODUCTION_URL)
            if base_url.rstrip("/") == MOCK_URL:
                kind = "mock"
        elif app_key or secret_key:
            missing = "KIWOOM_SECRETKEY / secret_key" if app_key else "KIWOOM_APPKEY / app_key"
            raise InvalidInputError(f"half a credential: {missing} is missing")
        elif base_url or transport is not None:
            # A simulator served elsewhere (`finder sim serve`) accepts any key.
            app_key = secret_key = SIMULATOR_KEY
            base_url = base_url or SIMULATOR_URL
            kind = "production"
        else:
            self.simulated = True
            app_key = secret_key = SIMULATOR_KEY
            base_url = SIMULATOR_URL
            kind = "simulator"
            transport = _in_process_simulator()
            _log_simulator_notice()

        self.base_url = base_url.rstrip("/")
        self.kind = kind
        self._app_key = app_key
        self._secret_key = secret_key
        _secrets.register(app_key if not self.simulated else None, secret_key if not self.simulated else None)
        self.cache = _validate.boolean(cache, "cache")
        self.max_retries = max_retries
        self.backoff = backoff
        self.rate = rate or _env_float("FINDER_RATE") or DEFAULT_RATE[kind]
        from pathlib import Path

        # Resolved once: the cache asks for it on every call.
        self.cache_root = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir()
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)
        if self.simulated:
            self._tokens: Any = MemoryTokenStore()
            self._limiter: Any = MemoryRateLimiter(self.rate)
        else:
            state = state_dir(self.cache_root)
            self._tokens = FileTokenStore(state / "tokens", self.base_url, app_key)
            self._limiter = FileRateLimiter(self.rate, state / "ratelimit", app_key)

    # -- housekeeping ---------------------------------------------------------
    def close(self) -> None:
        """Release the HTTP connections."""
        self._http.close()

    def __enter__(self) -> "KiwoomAPI":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "simulator (in-process)" if self.simulated else self.kind
        return f"KiwoomAPI(base_url={self.base_url!r}, mode={mode!r}, cache={self.cache})"

    @property
    def raw(self) -> "KiwoomAPI":
        """The raw (uncached) client under this object; ``request`` lives there."""
        return self

    @property
    def identity(self) -> str:
        """A non-secret name for the data source, e.g. for cache keys: the host and mode, never the key."""
        return "simulator" if self.simulated else self.base_url

    # -- the wire ---------------------------------------------------------------
    def _issue_token(self) -> Token:
        body = {"grant_type": "client_credentials", "appkey": self._app_key, "secretkey": self._secret_key}
        data, _ = self._request(API_TOKEN, body, auth=False)
        token, expires = data.get("token"), data.get("expires_dt")
        if not token or not expires:
            raise AuthenticationError("token answer lacks 'token' or 'expires_dt'", api_id=API_TOKEN)
        _secrets.register(str(token))
        try:
            expiry = parse_expires_dt(str(expires))
        except ValueError as exc:
            raise AuthenticationError(f"cannot parse expires_dt={expires!r}", api_id=API_TOKEN) from exc
        with _stats._lock:
            _stats.token_issues += 1
        log.info("issued a Kiwoom token (expires %s KST)", expiry.strftime("%Y-%m-%d %H:%M"))
        return Token(str(token), expiry)

    def request(self, api_id: str, path: str, body: dict, headers: dict[str, str] | None = None) -> Reply:
        """POST one Kiwoom operation; return its decoded JSON and response headers as a :class:`Reply`.

        For operations finder does not model.  The request is paced, retried
        and authenticated like every other call; a non-zero ``return_code``
        raises the matching ``finder.APIError`` subclass.  ``headers`` adds
        request headers such as ``cont-yn`` / ``next-key`` for paging; it may
        not set ``authorization`` or ``api-id``.

        Example::

            >>> data, headers = api.request("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})  # doctest: +SKIP
            >>> headers.get("cont-yn"), len(data["list"])                                         # doctest: +SKIP
        """
        api_id, path, body, extra = _check_request(api_id, path, body, headers)
        data, resp_headers = self._request(api_id, body, path=path, extra=extra)
        return Reply(data, {k.lower(): v for k, v in resp_headers.items()})

    def _request(self, api_id: str, body: dict, cont_key: str | None = None, *, auth: bool = True,
                 path: str | None = None, extra: dict[str, str] | None = None) -> tuple[dict, httpx.Headers]:
        """POST one request with pacing, retries and one token re-issue; return (json, response headers)."""
        path = path or API_PATHS[api_id]
        payload = json.dumps(body, ensure_ascii=False).encode()
        attempt, reissued = 0, False
        while True:
            headers = {"Content-Type": CONTENT_TYPE, **(extra or {}), H_API_ID: api_id}
            token = None
            if auth:
                token = self._tokens.get(self._issue_token)
                headers[H_AUTH] = f"Bearer {token.value}"
            if cont_key:
                headers[H_CONT] = "Y"
                headers[H_NEXT] = cont_key
            self._limiter.acquire(api_id)
            _stats.add(_stats.requests, api_id)
            try:
                try:
                    resp = self._http.post(path, content=payload, headers=headers)
                except httpx.TimeoutException as exc:
                    raise _Transient(f"timed out ({type(exc).__name__})") from None
                except httpx.TransportError as exc:
                    raise _Transient(f"connection failed ({type(exc).__name__})") from None
                if resp.status_code == 429:
                    raise _Transient("HTTP 429 too many requests", rate_limited=True)
                if resp.status_code >= 500:
                    raise _Transient(f"HTTP {resp.status_code}")
                try:
                    data = resp.json()
                except ValueError:
                    kind = resp.headers.get("content-type", "?")
                    raise _Transient(f"HTTP {resp.status_code} with a non-JSON body ({kind}); maintenance page?") from None
                if not isinstance(data, dict):
                    raise _Transient("JSON body is not an object")
                rc_num = number(data.get("return_code", 0))
                rc = 0 if rc_num != rc_num else int(rc_num)  # nan (missing/odd) counts as 0
                msg = _secrets.redact(str(data.get("return_msg", "")))
                detail = detail_code(msg)
                if rc == 0 and resp.status_code == 200:
                    return data, resp.headers
                if rc == RC_AUTH or detail == DETAIL_TOKEN_INVALID:
                    if auth and not reissued and token is not None:
                        reissued = True
                        log.info("%s: token refused (%s); re-issuing once", api_id, detail or rc)
                        self._tokens.replace(token.value, self._issue_token)
                        continue
                    if reissued:  # say why a second refusal is final: one re-issue is all we try
                        msg = (f"{msg or 'authentication failed'} — the token was refused again right after "
                               "a re-issue; is another process logging in with the same app key?")
                    raise AuthenticationError(msg or "authentication failed", return_code=rc, detail=detail, api_id=api_id)
                if detail == DETAIL_WRONG_ENV:
                    raise AuthenticationError(
                        f"{msg} — this app key belongs to the other host (production vs mock); check KIWOOM_ENV / base_url",
                        return_code=rc, detail=detail, api_id=api_id)
                if rc == RC_LIMIT and detail in (DETAIL_BATCH_TOO_LARGE, DETAIL_NO_RETRY):
                    raise RateLimitError(msg, return_code=rc, detail=detail, api_id=api_id)
                if rc == RC_LIMIT:
                    raise _Transient(f"return_code 5 ({detail or 'limit'})", rate_limited=True)
                if rc == RC_INPUT:
                    raise InvalidRequestError(msg, return_code=rc, detail=detail, api_id=api_id)
                if rc == RC_PROCESSING and detail == DETAIL_NO_STOCK:
                    raise StockNotFoundError(msg, return_code=rc, detail=detail, api_id=api_id)
                if resp.status_code != 200 and rc == 0:
                    raise APIError(f"HTTP {resp.status_code}", api_id=api_id)
                raise APIError(msg, return_code=rc, detail=detail, api_id=api_id)
            except _Transient as t:
                if t.rate_limited:
                    _stats.add(_stats.rate_limited, api_id)
                attempt += 1
                if attempt > self.max_retries:
                    cls = RateLimitError if t.rate_limited else TransportError
                    raise cls(f"{api_id}: gave up after {attempt} attempts; last: {t}") from None
                _stats.add(_stats.retries, api_id)
                delay = min(8.0, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
                log.warning("%s: %s; retry %d/%d in %.2fs", api_id, t, attempt, self.max_retries, delay)
                time.sleep(delay)

    # -- ka10081 ------------------------------------------------------------------
    def daily_walk(self, code: str, base_dt: pd.Timestamp, count: int, adjusted: bool) -> DailyWalk:
        """Walk ka10081 pages back from ``base_dt`` until ``count`` rows (or the start) are in hand.

        Arguments must already be validated.  Raises ``StockNotFoundError``
        when the first answer holds no bar at all.
        """
        body = {"stk_cd": code, "base_dt": base_dt.strftime("%Y%m%d"), "upd_stkpc_tp": "1" if adjusted else "0"}
        rows: list[dict] = []
        dates: set[str] = set()
        seen_keys: set[str] = set()
        key: str | None = None
        pages = 0
        max_pages = count // DAILY_PAGE_SIZE + 3
        reached_start = truncated = False
        notes: list[str] = []
        limit = body["base_dt"]
        while True:
            try:
                data, headers = self._request(API_DAILY, body, key)
            except StockNotFoundError as exc:  # 7 / 1902: Kiwoom's text does not name the code; we do
                raise StockNotFoundError(f"{code}: {exc.message}", return_code=exc.return_code, detail=exc.detail,
                                         api_id=exc.api_id) from None
            pages += 1
            page = data.get(DAILY_LIST_KEY)
            if not isinstance(page, list):
                page = []
            real = [r for r in page if isinstance(r, dict) and not is_blank_row(r)]
            if not real:
                if not rows:
                    raise StockNotFoundError(
                        f"no daily bars for {code} on or before {base_dt.date()} (unknown code, not listed yet, "
                        "or outside Kiwoom's retention)", api_id=API_DAILY)
                # An empty or blank page after data: the walk cannot go on, but we cannot be sure
                # the history ended here, so the result is not trusted as complete.
                truncated = True
                notes.append(f"page {pages} was empty or blank")
                break
            for r in real:
                dt = str(r.get("dt", "")).strip()
                if dt and dt <= limit and dt not in dates:
                    dates.add(dt)
                    rows.append(r)
            if len(dates) >= count:
                break
            cont = str(headers.get(H_CONT, "N")).strip().upper() == "Y"
            nxt = str(headers.get(H_NEXT, "") or "").strip()
            if not cont:
                reached_start = True  # only the server saying "no more" proves the history starts here
                break
            if not nxt:
                truncated = True
                notes.append(f"cont-yn: Y without a next-key on page {pages}")
                break
            if nxt in seen_keys:
                truncated = True
                notes.append(f"next-key repeated on page {pages}")
                log.warning("%s %s: next-key repeated; stopping the walk", API_DAILY, code)
                break
            if pages >= max_pages:
                truncated = True
                notes.append(f"page cap {max_pages} reached")
                break
            seen_keys.add(nxt)
            key = nxt
        frame = daily_rows_to_frame(rows)
        return DailyWalk(frame=frame, pages=pages, reached_start=reached_start, truncated=truncated, notes=notes)

    def get_ohlcv(self, code: str, count: int = 220, base_dt: Any = None, adjusted: bool = True) -> pd.DataFrame:
        """Daily bars: ``count`` bars ending at the last session on or before ``base_dt``.

        ``base_dt=None`` means the latest bars, today's live bar included while
        the market is open.  Adjusted prices are adjusted as of ``base_dt``
        (Kiwoom's rule).  The frame has a ``DatetimeIndex`` named ``date`` and
        columns ``open, high, low, close`` (float), ``volume`` and ``value``
        (traded value in KRW, int).

        Example::

            >>> api.get_ohlcv("005930", 60, "2025-10-01").close.iloc[-1]  # doctest: +SKIP
        """
        code = _validate.code(code)
        count = _validate.count(count)
        when = _validate.base_dt(base_dt)
        adjusted = _validate.boolean(adjusted, "adjusted")
        if self.cache:
            from ..cache import _ohlcv

            return _ohlcv.get_ohlcv(self, code, count, when, adjusted)
        return self.fetch_ohlcv(code, count, when, adjusted)

    def fetch_ohlcv(self, code: str, count: int, when: pd.Timestamp | None, adjusted: bool) -> pd.DataFrame:
        """``get_ohlcv`` straight from the server, no cache (arguments already validated)."""
        end = when if when is not None else calendar.today()
        walk = self.daily_walk(code, end, count, adjusted)
        if walk.truncated and len(walk.frame) < count:
            log.warning("%s: the walk for %s stopped early (%s); returning %d bars", API_DAILY, code,
                        "; ".join(walk.notes), len(walk.frame))
        return finish_bars(walk.frame.iloc[-count:])

    # -- ka10095 ------------------------------------------------------------------
    def get_quotes(self, codes: Iterable[str]) -> pd.DataFrame:
        """Today's bar for many stocks, 100 per request (ka10095); see ``finder.client._quotes``.

        Example::

            >>> api.get_quotes(["005930", "000660"])[["close", "base_price"]]  # doctest: +SKIP
        """
        from ._quotes import get_quotes

        return get_quotes(self, codes)

    # -- ka10099 ------------------------------------------------------------------
    def get_stock_list(self, market: str | Iterable[str] = "KOSPI") -> pd.DataFrame:
        """Listed stocks of one or more markets (ka10099): ``code, name, market, listed`` and more.

        ``market`` is ``'KOSPI'``, ``'KOSDAQ'``, ``'ETF'`` (also ``'ETN'``,
        ``'KONEX'``, ``'ELW'``), a ``'KOSPI+KOSDAQ'`` combination or a list.
        Kiwoom lists current listings only: delisted stocks are absent.

        Example::

            >>> api.get_stock_list(["KOSPI", "KOSDAQ"]).head()  # doctest: +SKIP
        """
        markets = parse_markets(market)
        frames = []
        for m in markets:
            items: list[dict] = []
            key, seen = None, set()
            for _ in range(50):
                data, headers = self._request(API_STOCK_LIST, {"mrkt_tp": MARKET_CODES[m]}, key)
                page = data.get(STOCK_LIST_KEY)
                items.extend(i for i in (page if isinstance(page, list) else []) if isinstance(i, dict))
                nxt = str(headers.get(H_NEXT, "") or "").strip()
                if str(headers.get(H_CONT, "N")).upper() != "Y" or not nxt or nxt in seen or not page:
                    break
                seen.add(nxt)
                key = nxt
            frames.append(_stock_items_to_frame(items, m))
        out = pd.concat(frames, ignore_index=True) if frames else _stock_items_to_frame([], "")
        return out.drop_duplicates("code", keep="first").reset_index(drop=True)

    # -- ka20006 / ka10032 (see finder.client._index and _rank) -----------------------
    def get_index_bars(self, name: str, count: int = 220, base_dt: Any = None) -> pd.DataFrame:
        """Index bars (ka20006) for ``'KOSPI'``, ``'KOSDAQ'`` or ``'KOSPI200'``, straight from the server.

        Same frame as ``get_ohlcv``; levels in points (2521.27).  Cached:
        ``finder.get_index``.

        Example::

            >>> api.get_index_bars("KOSPI", 20, "2025-10-01").close.iloc[-1]  # doctest: +SKIP
        """
        from ._index import get_index_bars, index_name

        name = index_name(name)
        count = _validate.count(count)
        when = _validate.base_dt(base_dt)
        return get_index_bars(self, name, count, when if when is not None else calendar.today())

    def get_top_traded(self, market: str = "ALL", limit: int | None = None, *, exchange: str = "KRX",
                       managed: bool = False) -> pd.DataFrame:
        """Today's traded-value ranking (ka10032); see ``finder.client._rank``.

        Example::

            >>> api.get_top_traded("KOSPI", 20).code.tolist()  # doctest: +SKIP
        """
        from ._rank import get_top_traded

        return get_top_traded(self, market, limit, exchange=exchange, managed=managed)


_API_ID_RE = re.compile(r"[a-z]{2}\d{5}")


def _check_request(api_id: Any, path: Any, body: Any, headers: Any) -> tuple[str, str, dict, dict[str, str]]:
    """Validate ``request``'s arguments before anything is sent."""
    if not isinstance(api_id, str) or not _API_ID_RE.fullmatch(api_id.strip()):
        raise InvalidInputError(f"api_id={api_id!r} is not a Kiwoom api-id such as 'ka10081'")
    if not isinstance(path, str) or not path.startswith("/") or "://" in path:
        raise InvalidInputError(f"path={path!r} must be a path on the API host, e.g. '/api/dostk/chart'")
    if not isinstance(body, dict):
        raise InvalidInputError(f"body={body!r} must be a dict (it is sent as the JSON body)")
    try:
        json.dumps(body, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"body cannot be sent as JSON: {exc}") from None
    extra: dict[str, str] = {}
    if headers is not None:
        if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise InvalidInputError(f"headers={headers!r} must be a dict of str to str")
        for k, v in headers.items():
            if k.strip().lower() in (H_AUTH, H_API_ID):
                raise InvalidInputError(f"headers may not set {k!r}: the client sets it")
            extra[k.strip().lower()] = v
    return api_id.strip(), path, body, extra


def parse_markets(market: Any) -> list[str]:
    """``'KOSPI'``, ``'kospi+kosdaq'`` or ``['KOSPI', 'ETF']`` → validated market names."""
    if isinstance(market, str):
        parts = [p.strip() for p in market.replace(",", "+").split("+")]
    elif isinstance(market, (list, tuple, set)) and all(isinstance(p, str) for p in market):
        parts = [p.strip() for p in market]
    else:
        raise InvalidInputError(f"market={market!r} is not a market name; use one of {sorted(MARKET_CODES)}")
    out = []
    for p in parts:
        name = p.upper()
        if name not in MARKET_CODES:
            shown = f" in market={market!r}" if p != market else ""  # 'KOSPI+' names '' alone: say where
            raise InvalidInputError(f"unknown market {p!r}{shown}; use one of {sorted(MARKET_CODES)}")
        if name not in out:
            out.append(name)
    if not out:
        raise InvalidInputError(f"market={market!r} names no market")
    return out


def _stock_items_to_frame(items: list[dict], market: str) -> pd.DataFrame:
    rows = []
    for it in items:
        code = str(it.get("code", "") or "").strip()
        if not code:
            continue
        reg = str(it.get("regDay", "") or "").strip()
        rows.append({
            "code": code,
            "name": str(it.get("name", "") or "").strip(),
            "market": market,
            "listed": pd.to_datetime(reg, format="%Y%m%d", errors="coerce") if reg else pd.NaT,
            "shares": number(it.get("listCount")),
            "last_price": abs(number(it.get("lastPrice"))),
            "state": str(it.get("state", "") or ""),
            "nxt_enable": str(it.get("nxtEnable", "") or "").upper() == "Y",
        })
    cols = ["code", "name", "market", "listed", "shares", "last_price", "state", "nxt_enable"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["listed"] = pd.to_datetime(frame["listed"])
    return frame


def _in_process_simulator() -> httpx.BaseTransport:
    from ..sim import in_process_transport

    return in_process_transport()


def _log_simulator_notice() -> None:
    global _notice_logged
    if not _notice_logged:
        _notice_logged = True
        log.warning("finder: no Kiwoom credentials configured (KIWOOM_APPKEY / KIWOOM_SECRETKEY); "
                    "using the built-in simulator — all data is SIMULATED")

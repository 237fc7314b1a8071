"""``KiwoomClient``: the raw Kiwoom REST client: wire protocol, tokens, pacing, retries, and no cache.

What it guarantees:

* Protocol: every call is a JSON ``POST`` with an ``api-id`` header; paging
  follows the *response headers* ``cont-yn`` / ``next-key``; errors are read from
  ``return_code`` (never from the Korean text); all values are parsed from
  strings, prices made absolute.
* Layers, as httpx splits send → auth → single request: :meth:`request`
  validates; ``_retry`` runs one whole send again on transient failures with
  bounded exponential backoff; ``_auth.TokenAuth`` (an ``httpx.Auth``) attaches
  the shared token and re-issues it once on 3 / 8005; ``_pacer.Pacer`` paces
  and counts every single send; ``_decode`` maps the answer to a ``Reply`` or
  a typed error by a table.
* Tokens: one per (host, app key), shared between processes through the
  per-user state folder (``_state``), renewed before expiry by the wall clock.
* Pacing: at most ``rate`` requests per second per (host, app key, api-id)
  across all processes on the machine, every page included.
* Walks end: a stop at ``count`` rows, ``cont-yn: N``, an empty or all-blank
  page, a ``next-key`` seen before, or a maximum page count.
* Bad input is refused before any request; secrets never reach a message.

Not here: caching (``finder.KiwoomAPI`` wraps this client with the disk
cache) and the choice of the built-in simulator (made where the default
client is built, in ``finder.KiwoomAPI``).  This module imports nothing from
``finder.cache``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import httpx
import pandas as pd

from .. import _validate, calendar
from .._exceptions import AuthenticationError, InvalidInputError, StockNotFoundError
from .._models import (
    API_DAILY,
    API_PATHS,
    API_STOCK_LIST,
    API_TOKEN,
    CONTENT_TYPE,
    DAILY_LIST_KEY,
    DAILY_PAGE_SIZE,
    H_API_ID,
    H_AUTH,
    H_CONT,
    H_NEXT,
    MARKET_CODES,
    MOCK_URL,
    PRODUCTION_URL,
    STOCK_LIST_KEY,
)
from . import _secrets, _stats
from ._auth import TokenAuth
from ._decode import Transient, decode
from ._pacer import Pacer
from ._parse import daily_rows_to_frame, finish_bars, is_blank_row, number
from ._ratelimit import FileRateLimiter, MemoryRateLimiter
from ._reply import Reply
from ._retry import with_retries
from ._state import key_folder
from ._token import FileTokenStore, MemoryTokenStore, Token, parse_expires_dt

log = logging.getLogger("finder.client")

SIMULATOR_URL = "http://simulator.invalid"
SIMULATOR_KEY = "finder-simulator-key"
DEFAULT_RATE = {"production": 4.0, "mock": 1.0, "simulator": 50.0}


@dataclass
class DailyWalk:
    """What one ka10081 paging walk brought back."""

    frame: pd.DataFrame            # ascending, rows on or before the requested base_dt
    pages: int
    reached_start: bool            # the server said there is nothing older
    truncated: bool                # a guard stopped the walk early (repeated key, page cap, odd page)
    notes: list[str] = field(default_factory=list)


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidInputError(f"{name}={raw!r} is not a number") from exc


def credentials_configured(app_key: str | None = None, secret_key: str | None = None,
                           base_url: str | None = None) -> bool:
    """True when arguments or the environment name a key, a secret or a host (so no simulator fallback)."""
    return bool(app_key or secret_key or base_url or os.environ.get("KIWOOM_APPKEY")
                or os.environ.get("KIWOOM_SECRETKEY") or os.environ.get("KIWOOM_BASE_URL"))


class KiwoomClient:
    """The raw Kiwoom REST client (no cache).

    Arguments left out are read from the environment: ``KIWOOM_APPKEY``,
    ``KIWOOM_SECRETKEY``, ``KIWOOM_BASE_URL``; ``KIWOOM_ENV=mock`` selects the
    mock-trading host.  A host (``base_url``) or a ``transport`` without
    credentials means a simulator, which accepts any key.  Nothing at all is
    an error here; ``finder.KiwoomAPI()`` is what falls back to the built-in
    simulator.  Creating the object makes no network call.

    ``shared_state`` (default: yes, unless only a ``transport`` names the
    server, i.e. an in-process one) keeps the token and the pacing slots in
    the per-user state folder, shared by every process using the same
    (host, app key); otherwise they live in this object.

    Example::

        >>> from finder.client import KiwoomClient
        >>> raw = KiwoomClient()                              # doctest: +SKIP
        >>> raw.get_ohlcv("005930", 220, "2025-10-01")        # doctest: +SKIP
        >>> data, headers = raw.request("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})  # doctest: +SKIP
    """

    def __init__(
        self,
        app_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        *,
        rate: float | None = None,
        max_retries: int = 5,
        backoff: float = 0.25,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        shared_state: bool | None = None,
        kind: str | None = None,
    ) -> None:
        app_key = app_key or os.environ.get("KIWOOM_APPKEY") or None
        secret_key = secret_key or os.environ.get("KIWOOM_SECRETKEY") or None
        base_url = base_url or os.environ.get("KIWOOM_BASE_URL") or None
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise InvalidInputError(f"max_retries={max_retries!r} must be a whole number >= 0")
        if rate is not None and (not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0):
            raise InvalidInputError(f"rate={rate!r} must be a positive number of requests per second")
        if kind is not None and kind not in DEFAULT_RATE:
            raise InvalidInputError(f"kind={kind!r} is not one of {sorted(DEFAULT_RATE)}")

        secret = True
        if app_key and secret_key:
            guess = "mock" if os.environ.get("KIWOOM_ENV", "").lower() == "mock" else "production"
            base_url = base_url or (MOCK_URL if guess == "mock" else PRODUCTION_URL)
            if base_url.rstrip("/") == MOCK_URL:
                guess = "mock"
        elif app_key or secret_key:
            missing = "KIWOOM_SECRETKEY / secret_key" if app_key else "KIWOOM_APPKEY / app_key"
            raise InvalidInputError(f"half a credential: {missing} is missing")
        elif base_url or transport is not None:
            # A simulator served elsewhere (`finder sim serve`) or in-process accepts any key.
            app_key = secret_key = SIMULATOR_KEY
            base_url = base_url or SIMULATOR_URL
            guess = "production"
            secret = False
        else:
            raise InvalidInputError("no Kiwoom credentials: set KIWOOM_APPKEY and KIWOOM_SECRETKEY (or pass "
                                    "app_key / secret_key); finder.KiwoomAPI() falls back to the built-in simulator")
        if shared_state is None:
            shared_state = not (transport is not None and base_url == SIMULATOR_URL)

        self.base_url = base_url.rstrip("/")
        self.kind = kind or guess
        self._app_key = app_key
        self._secret_key = secret_key
        if secret:
            _secrets.register(app_key, secret_key)
        self.max_retries = max_retries
        self.backoff = backoff
        self.rate = rate or _env_float("FINDER_RATE") or DEFAULT_RATE[self.kind]
        self.state_folder: Path | None = key_folder(self.base_url, app_key) if shared_state else None
        if self.state_folder is not None:
            self._tokens: Any = FileTokenStore(self.state_folder)
            self._limiter: Any = FileRateLimiter(self.rate, self.state_folder)
        else:
            self._tokens = MemoryTokenStore()
            self._limiter = MemoryRateLimiter(self.rate)
        self._auth = TokenAuth(self._tokens, self._issue_token)
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout,
                                  event_hooks={"request": [Pacer(self._limiter)]})

    # -- housekeeping ---------------------------------------------------------
    def close(self) -> None:
        """Release the HTTP connections."""
        self._http.close()

    def __enter__(self) -> "KiwoomClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KiwoomClient(base_url={self.base_url!r}, mode={self.kind!r})"

    @property
    def identity(self) -> str:
        """A non-secret name for the data source, e.g. for cache keys: the host and mode, never the key."""
        return "simulator" if self.kind == "simulator" else self.base_url

    # -- the wire ---------------------------------------------------------------
    def request(self, api_id: str, path: str, body: dict, headers: dict[str, str] | None = None) -> Reply:
        """POST one Kiwoom operation; return its decoded JSON and response headers as a :class:`Reply`.

        For operations finder does not model.  The request is paced, retried
        and authenticated like every other call; a non-zero ``return_code``
        raises the matching ``finder.APIError`` subclass (HTTP 429 / 5xx and
        ``return_code`` 5 / 1700 are retried first).  ``headers`` adds request
        headers such as ``cont-yn`` / ``next-key`` for paging; it may not set
        ``authorization`` or ``api-id``.  ``Reply.headers`` has lower-case names.

        Example::

            >>> data, headers = api.request("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})  # doctest: +SKIP
            >>> headers.get("cont-yn"), len(data["list"])                                         # doctest: +SKIP
        """
        api_id, path, body, extra = _check_request(api_id, path, body, headers)
        return self._send(api_id, body, path=path, headers=extra)

    def _send(self, api_id: str, body: dict, cont_key: str | None = None, *, auth: bool = True,
              path: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        """One operation through the layers: retry → auth → pacing → the wire, then decoding."""
        path = path or API_PATHS[api_id]
        payload = json.dumps(body, ensure_ascii=False).encode()
        sent = {"Content-Type": CONTENT_TYPE, **(headers or {}), H_API_ID: api_id}
        if cont_key:
            sent[H_CONT] = "Y"
            sent[H_NEXT] = cont_key

        def once() -> Reply:
            try:
                resp = self._http.post(path, content=payload, headers=sent, auth=self._auth if auth else None)
            except httpx.TimeoutException as exc:
                raise Transient(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise Transient(f"connection failed ({type(exc).__name__})") from None
            return decode(resp, api_id)

        return with_retries(once, api_id=api_id, max_retries=self.max_retries, backoff=self.backoff)

    def _issue_token(self) -> Token:
        body = {"grant_type": "client_credentials", "appkey": self._app_key, "secretkey": self._secret_key}
        data, _ = self._send(API_TOKEN, body, auth=False)
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
                data, headers = self._send(API_DAILY, body, key)
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
        """Daily bars straight from the server: ``count`` bars ending at the last session on or before ``base_dt``.

        ``base_dt=None`` means the latest bars, today's live bar included while
        the market is open.  Adjusted prices are adjusted as of ``base_dt``
        (Kiwoom's rule).  The frame has a ``DatetimeIndex`` named ``date`` and
        columns ``open, high, low, close`` (float), ``volume`` and ``value``
        (traded value in KRW, int).  No cache: ``finder.KiwoomAPI`` adds it.

        Example::

            >>> raw.get_ohlcv("005930", 60, "2025-10-01").close.iloc[-1]  # doctest: +SKIP
        """
        code = _validate.code(code)
        count = _validate.count(count)
        when = _validate.base_dt(base_dt)
        adjusted = _validate.boolean(adjusted, "adjusted")
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
                data, headers = self._send(API_STOCK_LIST, {"mrkt_tp": MARKET_CODES[m]}, key)
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

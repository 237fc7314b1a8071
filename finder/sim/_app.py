"""The Kiwoom protocol, independent of any transport.

``SimApp.respond(method, path, headers, body)`` answers one HTTP request with a
``Reply`` (status, headers, body, plus the delay and connection drop that the
transport should act out).  The real server (``_server.py``) and the
in-process ``SimTransport`` both sit on it.

Guarantees (facts from ``shared/kiwoom-api.md``):

* au10001 / au10002 tokens: ``expires_dt`` in KST, ``token_ttl`` after issue by
  the simulator clock; a new token for an app key supersedes the previous
  one, which then gets HTTP 200 with return_code 3 / ``[8005:...]``.
* ka10081 daily chart: 600 rows a page, newest first, all values strings,
  ``cont-yn`` / ``next-key`` paging in the *response headers*; unknown codes
  give one all-blank row, except codes starting with ``9``, which give
  return_code 7 / 1902; ``_NX`` pages before the NXT launch are empty with
  ``cont-yn: Y`` (forever, as measured).
* ka10099 stock list (current listings only) and ka10095 watchlist quotes
  (``|``-joined codes, at most 100, signed prices, ``base_pric``).
* ka20006 index daily bars (``inds_cd`` 001/101/201, levels x100 signed by
  direction, 600 rows a page, no row after the clock, today's row live while
  open; other codes give one blank row) and ka10032 traded-value ranking
  (``/api/dostk/rkinfo``, 100 rows a page, ``_NX``/``_AL`` suffixes for
  ``stex_tp`` 2/3); both derived in ``_aggregates``.
* Rate limit: a token bucket per (app key, api-id), ``rate`` requests per
  second with ``burst``; over it, HTTP 429 / return_code 5 / 1700.
* Control paths ``/_sim/...`` are answered here too, and never count as API
  requests.

Not guaranteed: orders, other chart periods, the 63-field quote row (only the
fields finder reads, plus a few), the wrong-host 8030 check.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np

from .._models import (
    API_DAILY,
    API_INDEX,
    API_RANK,
    INDEX_LIST_KEY,
    INDEX_SCALE,
    RANK_LIST_KEY,
    RKINFO_PATH,
    API_QUOTES,
    API_REVOKE,
    API_STOCK_LIST,
    API_TOKEN,
    CHART_PATH,
    CODE_RE,
    CONTENT_TYPE,
    DAILY_LIST_KEY,
    DAILY_PAGE_SIZE,
    DETAIL_BAD_FORMAT,
    DETAIL_BATCH_TOO_LARGE,
    DETAIL_MISSING_FIELD,
    DETAIL_NO_STOCK,
    DETAIL_TOKEN_INVALID,
    DETAIL_TOO_MANY,
    H_API_ID,
    H_AUTH,
    H_CONT,
    H_NEXT,
    MARKET_CODES,
    QUOTES_LIST_KEY,
    QUOTES_MAX_CODES,
    QUOTES_SEPARATOR,
    RC_AUTH,
    RC_INPUT,
    RC_LIMIT,
    RC_OK,
    RC_PROCESSING,
    REVOKE_PATH,
    STKINFO_PATH,
    STOCK_LIST_KEY,
    TOKEN_PATH,
)
from ._clock import OPEN_TIME, SimClock
from ._faults import EXTRA_FIELDS, MAINTENANCE_HTML, Faults
from ._aggregates import START_LEVEL, index_rows, ranking
from ._market import NXT_START, Market, _limits, _signs, default_market, partial_bar

log = logging.getLogger("finder.sim")

OK_MSG = "정상적으로 처리되었습니다"
LIST_PAGE_SIZE = 2000  # ka10099: every market fits one page, as measured
DAILY_BLANK = dict.fromkeys(["dt", "open_pric", "high_pric", "low_pric", "cur_prc", "trde_qty", "trde_prica",
                             "pred_pre", "pred_pre_sig", "trde_tern_rt"], "")
QUOTE_FIELDS = ["stk_cd", "stk_nm", "cur_prc", "base_pric", "pred_pre", "pred_pre_sig", "flu_rt", "trde_qty",
                "trde_prica", "open_pric", "high_pric", "low_pric", "upl_pric", "lst_pric", "cntr_tm", "dt"]
MARKET_NAMES = {"KOSPI": "거래소", "KOSDAQ": "코스닥", "ETF": "ETF"}
MRKT_TP = {v: k for k, v in MARKET_CODES.items()}  # "0" -> "KOSPI"
INDEX_BLANK = dict.fromkeys(["dt", "open_pric", "high_pric", "low_pric", "cur_prc", "trde_qty", "trde_prica"], "")
RANK_PAGE_SIZE = 100  # ka10032 rows per page: the simulator's choice (paging is driven by cont-yn)
RANK_FIELDS = ["stk_cd", "now_rank", "pred_rank", "stk_nm", "cur_prc", "pred_pre_sig", "pred_pre", "flu_rt",
               "sel_bid", "buy_bid", "now_trde_qty", "pred_trde_qty", "trde_prica"]
# Detail codes Kiwoom uses for a bad api-id / path (from its error-code sheet).
DETAIL_NO_API_ID = "1501"
DETAIL_API_NOT_ON_PATH = "1504"
DETAIL_BAD_CREDENTIALS = "8001"


@dataclass
class Reply:
    """One answer.  Unpacks as ``status, headers, body``; ``delay`` and ``drop`` are for the transport."""

    status: int
    headers: dict
    body: bytes
    delay: float = 0.0        # seconds to wait before answering (fault "slow")
    drop: bool = False        # send part of the body, then close (fault "drop")
    return_code: int | None = None  # of a JSON answer (for the statistics)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.headers, self.body))

    def json(self) -> Any:
        return json.loads(self.body)


class _Reject(Exception):
    """An answer decided early (an error body)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _json_reply(payload: dict, status: int = 200, headers: dict | None = None) -> Reply:
    h = {"content-type": CONTENT_TYPE}
    h.update(headers or {})
    return Reply(status, h, json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                 return_code=payload.get("return_code"))


def _error(rc: int, detail: str, text: str, status: int = 200, summary: str = "") -> Reply:
    msg = f"{summary or text}[{detail}:{text}]"
    return _json_reply({"return_code": rc, "return_msg": msg}, status)


def _missing(name: str) -> Reply:
    return _error(RC_INPUT, DETAIL_MISSING_FIELD, f"필수 입력 값에 값이 존재하지 않습니다({name})", summary="입력 값 오류입니다")


def _bad(name: str) -> Reply:
    return _error(RC_INPUT, DETAIL_BAD_FORMAT, f"입력 값 형식이 올바르지 않습니다({name})", summary="입력 값 오류입니다")


def _token_invalid() -> Reply:
    return _error(RC_AUTH, DETAIL_TOKEN_INVALID, "Token이 유효하지 않습니다", summary="인증에 실패했습니다")


def _too_many(api_id: str) -> Reply:
    return _error(RC_LIMIT, DETAIL_TOO_MANY, f"허용된 요청 개수를 초과하였습니다. API ID={api_id}", status=429,
                  summary="허용된 요청 개수를 초과하였습니다")


# ---------------------------------------------------------------------------------------
class RateLimiter:
    """Token buckets keyed on (app key, api-id): ``rate`` per second, ``burst`` at most; wall-clock time."""

    def __init__(self, rate: float | None, burst: int = 2) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate={rate!r} must be positive (or None for no limit)")
        if burst < 1:
            raise ValueError(f"burst={burst!r} must be at least 1")
        self.rate, self.burst = rate, float(burst)
        self._lock = threading.Lock()
        self._buckets: dict[tuple, tuple[float, float]] = {}

    def allow(self, key: tuple) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
            return ok


class _Tokens:
    """The current token per app key; issuing supersedes the previous one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, tuple[str, _dt.datetime]] = {}
        self._owner: dict[str, str] = {}

    def issue(self, appkey: str, expires: _dt.datetime) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            old = self._current.get(appkey)
            if old:
                self._owner.pop(old[0], None)
            self._current[appkey] = (token, expires)
            self._owner[token] = appkey
        return token

    def check(self, token: str, now: _dt.datetime) -> str | None:
        """The app key of a valid token, or None (unknown, superseded, revoked or expired)."""
        with self._lock:
            appkey = self._owner.get(token)
            if appkey is None:
                return None
            cur, expires = self._current[appkey]
            return appkey if cur == token and now < expires else None

    def supersede(self, appkey: str) -> None:
        """Act as if another process had logged in with ``appkey``: its token stops working."""
        with self._lock:
            old = self._current.pop(appkey, None)
            if old:
                self._owner.pop(old[0], None)

    def revoke(self, appkey: str, token: str) -> bool:
        with self._lock:
            if self._owner.get(token) != appkey:
                return False
            self._owner.pop(token, None)
            self._current.pop(appkey, None)
            return True

    def clear(self) -> None:
        with self._lock:
            self._current.clear()
            self._owner.clear()


@dataclass
class _Stats:
    requests: dict = field(default_factory=lambda: defaultdict(int))
    pages: dict = field(default_factory=lambda: defaultdict(int))
    errors: dict = field(default_factory=lambda: defaultdict(int))
    rate_limited: dict = field(default_factory=lambda: defaultdict(int))
    faults: dict = field(default_factory=lambda: defaultdict(int))
    token_issues: int = 0
    token_revokes: int = 0
    auth_failures: int = 0

    def snapshot(self) -> dict:
        return {
            "requests": dict(self.requests), "pages": dict(self.pages), "errors": dict(self.errors),
            "rate_limited": dict(self.rate_limited), "faults": dict(self.faults),
            "token_issues": self.token_issues, "token_revokes": self.token_revokes,
            "auth_failures": self.auth_failures,
            "total_requests": sum(self.requests.values()),
            "total_rate_limited": sum(self.rate_limited.values()),
        }


# ---------------------------------------------------------------------------------------
class SimApp:
    """The simulated Kiwoom server (transport-independent); thread-safe.

    ``market``: a ``Market`` (default: the per-process synthetic market).
    ``rate``/``burst``: the limit per (app key, api-id); ``rate=None`` disables it.
    ``now``/``frozen``: the clock (see ``SimClock``); ``None`` follows the wall
    clock, except for a replay market, whose default is its last date, 20:30.
    ``credentials``: optional ``{appkey: secretkey}``; without it any non-empty pair works.
    """

    def __init__(self, market: Market | None = None, *, rate: float | None = 5.0, burst: int = 2,
                 now: Any = None, frozen: bool = True, token_ttl: float = 86400,
                 faults: Any = None, credentials: dict[str, str] | None = None, seed: int = 0) -> None:
        self.market = market if market is not None else default_market()
        if now is None and self.market.default_now is not None:
            now = self.market.default_now
        self.clock = SimClock(now, frozen)
        self.limiter = RateLimiter(rate, burst)
        self.token_ttl = float(token_ttl)
        self.faults = faults if isinstance(faults, Faults) else Faults(faults, seed=seed)
        self.credentials = dict(credentials) if credentials else None
        self._tokens = _Tokens()
        self._stats = _Stats()
        self._lock = threading.Lock()
        self._sessions = self.market.sessions if hasattr(self.market, "sessions") else None

    # -- Python controls ------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts since the last reset (see ``_Stats.snapshot``)."""
        with self._lock:
            return self._stats.snapshot()

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = _Stats()

    def set_now(self, now: Any, frozen: bool | None = None) -> _dt.datetime:
        return self.clock.set_now(now, frozen)

    def advance(self, seconds: float = 0.0, sessions: int = 0) -> _dt.datetime:
        """Move the clock ``sessions`` XKRX sessions (same time of day), then ``seconds``."""
        if sessions:
            self.clock.advance_sessions(int(sessions))
        return self.clock.advance(seconds)

    def advance_sessions(self, n: int) -> _dt.datetime:
        return self.clock.advance_sessions(int(n))

    def drop_tokens(self) -> None:
        """Forget every issued token (all callers must log in again)."""
        self._tokens.clear()

    def _count(self, what: str, key: str | None = None, n: int = 1) -> None:
        with self._lock:
            target = getattr(self._stats, what)
            if key is None:
                setattr(self._stats, what, target + n)
            else:
                target[key] += n

    # -- one request ------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        """Same as ``respond`` (a ``Reply`` unpacks as ``status, headers, body``)."""
        return self.respond(method, path, headers, body)

    def respond(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        path = urlsplit(path).path or "/"
        if path.startswith("/_sim/") or path == "/_sim":
            return self._control(method.upper(), path, body)
        h = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        api_id = h.get(H_API_ID, "").strip()
        if path == TOKEN_PATH:
            api_id = API_TOKEN
        elif path == REVOKE_PATH:
            api_id = API_REVOKE
        key = api_id or "-"
        self._count("requests", key)
        if method.upper() != "POST":
            reply = _error(RC_INPUT, DETAIL_API_NOT_ON_PATH, "POST만 지원합니다", status=405)
            reply.headers["allow"] = "POST"
            return reply
        continuation = h.get(H_CONT, "").strip().upper() == "Y"
        authenticated = path not in (TOKEN_PATH, REVOKE_PATH)
        fired = self.faults.draw(key, continuation=continuation, authenticated=authenticated)
        for kind in fired:
            self._count("faults", kind)
        if fired:
            log.debug("%s: faults fired: %s", key, ", ".join(fired))
        delay = fired["slow"].seconds if "slow" in fired else 0.0
        try:
            if "http_error" in fired:
                status = self.faults.status_for(fired["http_error"])
                raise _Reject(Reply(status, {"content-type": "text/html; charset=utf-8"},
                                    f"<html><body><h1>{status} Server Error</h1></body></html>".encode()))
            if "maintenance" in fired:
                raise _Reject(Reply(200, {"content-type": "text/html; charset=utf-8"}, MAINTENANCE_HTML.encode()))
            if "rate_storm" in fired:
                self._count("rate_limited", key)
                raise _Reject(_too_many(key))
            reply = self._dispatch(path, api_id, h, body, fired, continuation)
        except _Reject as r:
            reply = r.reply
        if reply.return_code and reply.status != 429:
            self._count("errors", key)
        elif reply.return_code == RC_OK and api_id in (API_DAILY, API_STOCK_LIST, API_QUOTES, API_INDEX, API_RANK):
            self._count("pages", key)
        reply.headers.setdefault(H_API_ID, api_id)
        reply.delay = delay
        reply.drop = "drop" in fired
        return reply

    def _dispatch(self, path: str, api_id: str, h: dict, body: bytes, fired: dict, continuation: bool) -> Reply:
        if path == TOKEN_PATH:
            return self._token(body)
        if path == REVOKE_PATH:
            return self._revoke(body)
        if path not in (CHART_PATH, STKINFO_PATH, RKINFO_PATH):
            return _error(RC_INPUT, DETAIL_API_NOT_ON_PATH, f"지원하지 않는 URI입니다({path})", summary="입력 값 오류입니다")
        if not api_id:
            return _error(RC_INPUT, DETAIL_NO_API_ID, "API ID가 Null이거나 값이 없습니다", summary="입력 값 오류입니다")
        handler = {(CHART_PATH, API_DAILY): self._daily, (STKINFO_PATH, API_STOCK_LIST): self._stock_list,
                   (STKINFO_PATH, API_QUOTES): self._quotes, (CHART_PATH, API_INDEX): self._index,
                   (RKINFO_PATH, API_RANK): self._rank}.get((path, api_id))
        if handler is None:
            return _error(RC_INPUT, DETAIL_API_NOT_ON_PATH, f"해당 URI에서 지원하지 않는 API ID입니다({api_id})",
                          summary="입력 값 오류입니다")
        auth = h.get(H_AUTH, "").strip()
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        now = self.clock.now()
        appkey = self._tokens.check(token, now) if token else None
        if appkey is None:
            self._count("auth_failures")
            return _token_invalid()
        if not self.limiter.allow((appkey, api_id)):
            self._count("rate_limited", api_id)
            return _too_many(api_id)
        if "token_invalidate" in fired:
            self._tokens.supersede(appkey)
            self._count("auth_failures")
            return _token_invalid()
        try:
            req = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            return _bad("body")
        if not isinstance(req, dict):
            return _bad("body")
        return handler(req, h, fired, continuation, now)

    # -- au10001 / au10002 ---------------------------------------------------------------------
    def _credentials(self, body: bytes, api_id: str) -> tuple[dict, str]:
        try:
            req = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            raise _Reject(_bad("body")) from None
        if not isinstance(req, dict):
            raise _Reject(_bad("body"))
        appkey, secret = req.get("appkey"), req.get("secretkey")
        if not isinstance(appkey, str) or not appkey.strip():
            raise _Reject(_missing("appkey"))
        if not isinstance(secret, str) or not secret.strip():
            raise _Reject(_missing("secretkey"))
        if self.credentials is not None and self.credentials.get(appkey) != secret:
            self._count("auth_failures")
            raise _Reject(_error(RC_AUTH, DETAIL_BAD_CREDENTIALS, "App Key와 Secret Key 검증에 실패했습니다",
                                 summary="인증에 실패했습니다"))
        if not self.limiter.allow((appkey, api_id)):
            self._count("rate_limited", api_id)
            raise _Reject(_too_many(api_id))
        return req, appkey

    def _token(self, body: bytes) -> Reply:
        req, appkey = self._credentials(body, API_TOKEN)
        grant = req.get("grant_type")
        if not grant:
            return _missing("grant_type")
        if grant != "client_credentials":
            return _bad("grant_type")
        now = self.clock.now()
        expires = now + _dt.timedelta(seconds=self.token_ttl)
        token = self._tokens.issue(appkey, expires)
        self._count("token_issues")
        log.info("issued a token (expires %s KST)", expires.strftime("%Y-%m-%d %H:%M:%S"))
        return _json_reply({"expires_dt": expires.strftime("%Y%m%d%H%M%S"), "token_type": "bearer", "token": token,
                            "return_code": RC_OK, "return_msg": OK_MSG})

    def _revoke(self, body: bytes) -> Reply:
        req, appkey = self._credentials(body, API_REVOKE)
        token = req.get("token")
        if not isinstance(token, str) or not token:
            return _missing("token")
        if self._tokens.revoke(appkey, token):
            self._count("token_revokes")
        # Revoking an unknown or already dead token is not an error.
        return _json_reply({"return_code": RC_OK, "return_msg": OK_MSG})

    # -- ka10081 -----------------------------------------------------------------------------
    def _daily(self, req: dict, h: dict, fired: dict, continuation: bool, now: _dt.datetime) -> Reply:
        for name in ("stk_cd", "base_dt", "upd_stkpc_tp"):
            if not isinstance(req.get(name), str) or not req[name].strip():
                return _missing(name) if req.get(name) in (None, "") else _bad(name)
        stk_cd = req["stk_cd"].strip()
        base_txt = req["base_dt"].strip()
        upd = req["upd_stkpc_tp"].strip()
        if not CODE_RE.match(stk_cd):
            return _bad("stk_cd")
        base_dt = _parse_ymd(base_txt)
        if base_dt is None:
            return _bad("base_dt")
        if upd not in ("0", "1"):
            return _bad("upd_stkpc_tp")
        key_date = None
        if continuation:
            key = h.get(H_NEXT, "").strip()
            key_date = _parse_key(key, stk_cd)
            if key_date is None:
                return _bad("next-key")
        bare, venue = stk_cd[:6], stk_cd[7:]
        market = self.market

        # the key that serves this page again (for the page faults)
        same_key = h.get(H_NEXT, "").strip() if key_date is not None else _make_key(stk_cd, base_dt)

        def answer(rows: list, more: bool, next_key: str) -> Reply:
            rows, more, next_key = _page_faults(rows, more, next_key, same_key, continuation, h, fired, DAILY_BLANK)
            headers = {H_CONT: "Y" if more else "N", H_NEXT: next_key if more else ""}
            return _json_reply({"stk_cd": stk_cd, DAILY_LIST_KEY: rows, "return_code": RC_OK, "return_msg": OK_MSG},
                               headers=headers)

        if bare not in market:
            if bare.startswith("9"):
                return _error(RC_PROCESSING, DETAIL_NO_STOCK, "종목 정보가 없습니다", summary="조회 오류입니다")
            return answer([dict(DAILY_BLANK)], False, "")
        if venue == "NX" and not market.info(bare).nxt_enable:
            return answer([dict(DAILY_BLANK)], False, "")
        rows = market.rows(bare, base_dt, upd == "1", now)
        upto = len(rows) if key_date is None else int(np.searchsorted(rows.dates, key_date, side="right"))
        lo = max(0, upto - DAILY_PAGE_SIZE)
        more = lo > 0
        next_key = _make_key(stk_cd, rows.dates[lo - 1]) if more else ""
        idx = np.arange(upto - 1, lo - 1, -1)  # newest first
        if venue == "NX":
            idx = idx[rows.dates[idx] >= NXT_START]
            if not len(idx) and (len(rows) or key_date is not None):
                # Measured quirk: before NXT existed the answer is an empty list with cont-yn Y,
                # and the key keeps pointing further back.
                start = key_date if key_date is not None else base_dt
                older = start - np.timedelta64(870, "D")
                if older < np.datetime64("1000-01-01"):
                    return answer([], False, "")
                return answer([], True, _make_key(stk_cd, rows.dates[lo - 1] if more else older))
        if not len(idx):
            return answer([dict(DAILY_BLANK)], False, "")
        pad = market.stock(bare).pad
        fmt = (lambda v: f"{v:08d}") if pad else str
        out = []
        for i in idx.tolist():
            change = int(rows.change[i])
            turnover = rows.turnover[i]
            out.append({
                "dt": str(rows.dates[i]).replace("-", ""),
                "cur_prc": fmt(int(rows.c[i])),
                "trde_qty": str(int(rows.vol[i])),
                "trde_prica": str(int(rows.value_mil[i])),
                "open_pric": fmt(int(rows.o[i])),
                "high_pric": fmt(int(rows.h[i])),
                "low_pric": fmt(int(rows.l[i])),
                "pred_pre": f"{change:+d}" if change else "0",
                "pred_pre_sig": str(int(rows.sign[i])),
                "trde_tern_rt": "" if turnover != turnover else f"{turnover:+.2f}",
            })
        return answer(out, more, next_key)

    # -- ka10099 -----------------------------------------------------------------------------
    def _stock_list(self, req: dict, h: dict, fired: dict, continuation: bool, now: _dt.datetime) -> Reply:
        tp = req.get("mrkt_tp")
        if tp in (None, ""):
            return _missing("mrkt_tp")
        if not isinstance(tp, str) or tp.strip() not in MRKT_TP:
            return _bad("mrkt_tp")
        tp = tp.strip()
        offset = 0
        if continuation:
            key = h.get(H_NEXT, "").strip()
            head, _, num = key.partition(":")
            if head != tp or not num.isdigit():
                return _bad("next-key")
            offset = int(num)
        market = self.market
        today = np.datetime64(now.date(), "D")
        codes = market.listings(MRKT_TP[tp], today) if MRKT_TP[tp] in MARKET_NAMES else []
        page = codes[offset:offset + LIST_PAGE_SIZE]
        more = offset + LIST_PAGE_SIZE < len(codes)
        next_key = f"{tp}:{offset + LIST_PAGE_SIZE}" if more else ""
        items = []
        for code in page:
            st = market.stock(code)
            info = st.info
            latest = market.latest(code, now)
            if latest is None:
                last, shares = int(st.base[0]), int(st.shares[0])
            else:
                i, partial = latest
                last = int(st.c[i]) if not partial else partial_bar(
                    code, int(st.o[i]), int(st.h[i]), int(st.l[i]), int(st.c[i]), int(st.vol[i]), int(st.value[i]), now)[3]
                shares = int(st.shares[i])
            items.append({
                "code": code, "name": info.name, "listCount": f"{shares:016d}", "auditInfo": "정상",
                "regDay": info.listed.strftime("%Y%m%d"), "lastPrice": f"{last:08d}",
                "state": "증거금20%|담보대출|신용가능" if info.market != "ETF" else "증거금100%",
                "marketCode": tp, "marketName": MARKET_NAMES[info.market], "upName": info.up_name,
                "upSizeName": info.size_name, "companyClassName": "", "orderWarning": "0",
                "nxtEnable": "Y" if info.nxt_enable else "N",
            })
        blank = dict.fromkeys(items[0], "") if items else {}
        items, more, next_key = _page_faults(items, more, next_key, f"{tp}:{offset}", continuation, h, fired, blank)
        headers = {H_CONT: "Y" if more else "N", H_NEXT: next_key if more else ""}
        return _json_reply({STOCK_LIST_KEY: items, "return_code": RC_OK, "return_msg": OK_MSG}, headers=headers)

    # -- ka10095 -----------------------------------------------------------------------------
    def _quotes(self, req: dict, h: dict, fired: dict, continuation: bool, now: _dt.datetime) -> Reply:
        text = req.get("stk_cd")
        if text in (None, ""):
            return _missing("stk_cd")
        if not isinstance(text, str):
            return _bad("stk_cd")
        wanted = text.split(QUOTES_SEPARATOR)
        if len(wanted) > QUOTES_MAX_CODES:
            return _error(RC_LIMIT, DETAIL_BATCH_TOO_LARGE, f"조회 가능한 종목 수({QUOTES_MAX_CODES})를 초과하였습니다",
                          summary="조회 건수 초과입니다")
        rows = [self._quote_row(code.strip(), now) for code in wanted]
        blank = dict.fromkeys(QUOTE_FIELDS, "")
        if "blank_rows" in fired:
            rows = [dict(blank) for _ in rows]
        if "extra_fields" in fired:
            rows = [{**r, **EXTRA_FIELDS} for r in rows]
        return _json_reply({QUOTES_LIST_KEY: rows, "return_code": RC_OK, "return_msg": OK_MSG},
                           headers={H_CONT: "N", H_NEXT: ""})

    def _quote_row(self, token: str, now: _dt.datetime) -> dict:
        blank = dict.fromkeys(QUOTE_FIELDS, "")
        market = self.market
        if not CODE_RE.match(token):
            return blank
        bare, venue = token[:6], token[7:]
        today = np.datetime64(now.date(), "D")
        if bare not in market or not market.is_listed(bare, today):
            return blank
        st = market.stock(bare)
        if venue == "NX" and not st.info.nxt_enable:
            return blank
        ymd = now.strftime("%Y%m%d")
        session_open = self._is_session(today) and now.time() >= OPEN_TIME
        latest = market.latest(bare, now)
        if latest is None or (session_open and st.dates[latest[0]] != today):
            # Halted today (or listed today before its first trade): the last price, no trade.
            last = int(st.c[latest[0]]) if latest is not None else int(st.base[0])
            up, down = _limits(np.array([last]), np.array([today]))
            return {**blank, "stk_cd": token, "stk_nm": st.info.name, "cur_prc": str(last), "base_pric": str(last),
                    "pred_pre": "0", "pred_pre_sig": "3", "flu_rt": "0.00", "trde_qty": "0", "trde_prica": "0",
                    "open_pric": "0", "high_pric": "0", "low_pric": "0", "upl_pric": str(int(up[0])),
                    "lst_pric": str(int(down[0])), "cntr_tm": "", "dt": ymd}
        i, partial = latest
        o, hi, lo, c, vol, value = (int(x[i]) for x in (st.o, st.h, st.l, st.c, st.vol, st.value))
        if partial:
            o, hi, lo, c, vol, value = partial_bar(bare, o, hi, lo, c, vol, value, now)
        base = int(st.base[i])
        day = st.dates[i:i + 1]
        up, down = _limits(np.array([base]), day)
        sign = int(_signs(np.array([c]), np.array([base]), day)[0])

        def signed(p: int) -> str:
            return f"+{p}" if p > base else f"-{p}" if p < base else str(p)

        change = c - base
        return {
            "stk_cd": token, "stk_nm": st.info.name, "cur_prc": signed(c), "base_pric": str(base),
            "pred_pre": f"{change:+d}" if change else "0", "pred_pre_sig": str(sign),
            "flu_rt": f"{change / base * 100:+.2f}" if change else "0.00",
            "trde_qty": str(vol), "trde_prica": str(int(round(value / 1e6))),
            "open_pric": signed(o), "high_pric": signed(hi), "low_pric": signed(lo),
            "upl_pric": f"+{int(up[0])}", "lst_pric": f"-{int(down[0])}",
            "cntr_tm": now.strftime("%H%M%S") if partial else "153000",
            "dt": str(st.dates[i]).replace("-", ""),
        }

    # -- ka20006 -----------------------------------------------------------------------------
    def _index(self, req: dict, h: dict, fired: dict, continuation: bool, now: _dt.datetime) -> Reply:
        for name in ("inds_cd", "base_dt"):
            if not isinstance(req.get(name), str) or not req[name].strip():
                return _missing(name) if req.get(name) in (None, "") else _bad(name)
        code = req["inds_cd"].strip()
        if len(code) != 3 or not code.isdigit():
            return _bad("inds_cd")
        base_dt = _parse_ymd(req["base_dt"].strip())
        if base_dt is None:
            return _bad("base_dt")
        key_date = None
        if continuation:
            key_date = _parse_key(h.get(H_NEXT, "").strip(), code)
            if key_date is None:
                return _bad("next-key")
        same_key = h.get(H_NEXT, "").strip() if key_date is not None else _make_key(code, base_dt)

        def answer(rows: list, more: bool, next_key: str) -> Reply:
            rows, more, next_key = _page_faults(rows, more, next_key, same_key, continuation, h, fired, INDEX_BLANK)
            headers = {H_CONT: "Y" if more else "N", H_NEXT: next_key if more else ""}
            return _json_reply({"inds_cd": code, INDEX_LIST_KEY: rows, "return_code": RC_OK, "return_msg": OK_MSG},
                               headers=headers)

        if code not in START_LEVEL:
            return answer([dict(INDEX_BLANK)], False, "")  # an index the simulator does not compute
        dates, o, hi, lo, c, prev, vol, value = index_rows(self.market, code, base_dt, now)
        upto = len(dates) if key_date is None else int(np.searchsorted(dates, key_date, side="right"))
        first = max(0, upto - DAILY_PAGE_SIZE)
        more = first > 0
        next_key = _make_key(code, dates[first - 1]) if more else ""
        if upto == 0:
            return answer([dict(INDEX_BLANK)], False, "")

        def level(x: float, ref: float) -> str:
            v = int(round(x * INDEX_SCALE))
            r = int(round(ref * INDEX_SCALE))
            return f"+{v}" if v > r else f"-{v}" if v < r else str(v)  # signed by direction, as measured

        out = []
        for i in range(upto - 1, first - 1, -1):  # newest first
            out.append({"dt": str(dates[i]).replace("-", ""), "cur_prc": level(c[i], prev[i]),
                        "trde_qty": str(int(vol[i])), "trde_prica": str(int(round(value[i] / 1e6))),
                        "open_pric": level(o[i], prev[i]), "high_pric": level(hi[i], prev[i]),
                        "low_pric": level(lo[i], prev[i]), "bic_inds_tp": "", "sm_inds_tp": "", "stk_infr": "",
                        "pred_close_pric": ""})
        return answer(out, more, next_key)

    # -- ka10032 -----------------------------------------------------------------------------
    def _rank(self, req: dict, h: dict, fired: dict, continuation: bool, now: _dt.datetime) -> Reply:
        for name in ("mrkt_tp", "mang_stk_incls", "stex_tp"):
            if not isinstance(req.get(name), str) or not req[name].strip():
                return _missing(name) if req.get(name) in (None, "") else _bad(name)
        tp, managed, stex = req["mrkt_tp"].strip(), req["mang_stk_incls"].strip(), req["stex_tp"].strip()
        if tp not in ("000", "001", "101"):
            return _bad("mrkt_tp")
        if managed not in ("0", "1"):
            return _bad("mang_stk_incls")
        if stex not in ("1", "2", "3"):
            return _bad("stex_tp")
        offset = 0
        head = f"rk{tp}{stex}{managed}"
        if continuation:
            prefix, _, num = h.get(H_NEXT, "").strip().partition(":")
            if prefix != head or not num.isdigit():
                return _bad("next-key")
            offset = int(num)
        today = np.datetime64(now.date(), "D")
        day = today if self._is_session(today) and now.time() >= OPEN_TIME else self._previous_session(today)
        ranked = ranking(self.market, tp, now, day)
        if stex == "2":
            ranked = [r for r in ranked if r["nxt"]]
        suffix = {"1": "", "2": "_NX", "3": "_AL"}[stex]
        page = ranked[offset:offset + RANK_PAGE_SIZE]
        more = offset + RANK_PAGE_SIZE < len(ranked)
        next_key = f"{head}:{offset + RANK_PAGE_SIZE}" if more else ""
        rows = []
        for k, r in enumerate(page, start=offset + 1):
            c, base = r["close"], r["base"]
            change = c - base
            sign = int(_signs(np.array([c]), np.array([base]), np.array([day]))[0])
            rows.append({
                "stk_cd": r["code"] + suffix, "now_rank": str(k), "pred_rank": "", "stk_nm": r["name"],
                "cur_prc": f"+{c}" if c > base else f"-{c}" if c < base else str(c), "pred_pre_sig": str(sign),
                "pred_pre": f"{change:+d}" if change else "0",
                "flu_rt": f"{change / base * 100:+.2f}" if change and base else "0.00",
                "sel_bid": str(c), "buy_bid": str(c), "now_trde_qty": str(r["volume"]),
                "pred_trde_qty": str(r["pred_volume"]), "trde_prica": str(int(round(r["value"] / 1e6))),
            })
        rows, more, next_key = _page_faults(rows, more, next_key, f"{head}:{offset}", continuation, h, fired,
                                            dict.fromkeys(RANK_FIELDS, ""))
        headers = {H_CONT: "Y" if more else "N", H_NEXT: next_key if more else ""}
        return _json_reply({RANK_LIST_KEY: rows, "return_code": RC_OK, "return_msg": OK_MSG}, headers=headers)

    def _previous_session(self, day: np.datetime64) -> np.datetime64:
        s = self._sessions
        if s is None:
            return np.busday_offset(day, -1, roll="backward")
        i = int(np.searchsorted(s, day)) - 1
        return s[max(i, 0)]

    def _is_session(self, day: np.datetime64) -> bool:
        s = self._sessions
        if s is None:
            return bool(np.is_busday(day))
        i = int(np.searchsorted(s, day))
        return i < len(s) and s[i] == day

    # -- /_sim/ control ----------------------------------------------------------------------
    def _control(self, method: str, path: str, body: bytes) -> Reply:
        try:
            req = json.loads(body.decode("utf-8")) if body else {}
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
            name = path[len("/_sim/"):].strip("/")
            if name == "stats" and method == "GET":
                return _json_reply(self.stats())
            if name == "reset" and method == "POST":
                self.reset_stats()
                if req.get("faults"):
                    self.faults.clear()
                if req.get("tokens"):
                    self.drop_tokens()
                return _json_reply({"ok": True})
            if name == "clock" and method in ("GET", "POST"):
                if method == "POST":
                    if "now" in req:
                        self.set_now(req["now"], req.get("frozen"))
                    elif "frozen" in req:
                        self.set_now(self.clock.now(), bool(req["frozen"]))
                    if req.get("advance_sessions"):
                        self.clock.advance_sessions(int(req["advance_sessions"]))
                    if req.get("advance_seconds"):
                        self.clock.advance(float(req["advance_seconds"]))
                return _json_reply(self.clock.describe())
            if name == "faults" and method in ("GET", "POST"):
                if method == "POST":
                    if "clear" in req:
                        kind = req["clear"]
                        n = self.faults.clear(None if kind is True else str(kind))
                        return _json_reply({"cleared": n, "faults": self.faults.active()})
                    spec = {k: req[k] for k in ("kind", "count", "probability", "api_id", "status", "seconds") if k in req}
                    if "kind" not in spec:
                        raise ValueError("give 'kind' (or 'clear')")
                    fault = self.faults.add(**spec)
                    return _json_reply({"fault": fault.to_dict(), "faults": self.faults.active()})
                return _json_reply({"faults": self.faults.active()})
            if name in ("", "health") and method == "GET":
                return _json_reply({"ok": True, "market": self.market.describe(), "clock": self.clock.describe()})
        except (ValueError, TypeError) as exc:
            return _json_reply({"error": str(exc)}, status=400)
        return _json_reply({"error": f"no control {method} {path}"}, status=404)


# ---------------------------------------------------------------------------------------
def _parse_ymd(text: str) -> np.datetime64 | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return np.datetime64(_dt.date(int(text[:4]), int(text[4:6]), int(text[6:])), "D")
    except ValueError:
        return None


def _make_key(stk_cd: str, date: np.datetime64) -> str:
    # Opaque to clients; it carries the code and the newest date of the next page.
    return f"{stk_cd}{str(date).replace('-', '')}"


def _parse_key(key: str, stk_cd: str) -> np.datetime64 | None:
    if not key.startswith(stk_cd):
        return None
    return _parse_ymd(key[len(stk_cd):])


def _page_faults(rows: list, more: bool, next_key: str, same_key: str, continuation: bool, h: dict, fired: dict,
                 blank: dict) -> tuple[list, bool, str]:
    """Apply page and row faults to one page.

    ``same_key`` serves this page again: an empty page points at it when it
    was the last page (so nothing is lost to a client that keeps walking),
    and a repeated key is the request's own key.
    """
    if "empty_page" in fired:
        next_key = next_key if more else same_key
        rows, more = [], True
    if "repeat_key" in fired:
        next_key = h.get(H_NEXT, "").strip() if continuation else same_key
        more = True
    if "blank_rows" in fired:
        rows = [dict(blank) for _ in rows] or [dict(blank)]
    if "extra_fields" in fired:
        rows = [{**r, **EXTRA_FIELDS} for r in rows]
    return rows, more, next_key

"""Market-wide numbers the simulator derives from its own stocks: index levels and the traded-value ranking.

Indices (ka20006): cap-weighted, chained day by day.  Each session's return
is the average of the constituents' returns against their reference price
(``base``: the previous close, adjusted by the exchange on an ex-date, so
splits and dividends move no index), weighted by the reference market cap
(``base * shares``); a market whose listed shares are unknown (a replay
market) is equal-weighted instead.  Open, high and low are the same average
of each stock's open, high and low returns (high/low widened to contain the
open and close).  Levels start at ``START_LEVEL`` on the first session.
Constituents: 001 KOSPI = every KOSPI stock, 101 KOSDAQ = every KOSDAQ
stock, 201 KOSPI200 = the 200 KOSPI stocks with the largest median market cap
(median traded value when shares are unknown; the larger half when there are
fewer than 400).  ETFs are in no index; a replay market lists every stock
under KOSPI, so its KOSDAQ index has no rows (one blank row is served).

Ranking (ka10032): the stocks of one market (KOSPI with its ETFs, KOSDAQ, or
both) that traded in the newest session visible at ``now``, by traded value,
live while the session runs.

Not modelled: index divisor events, sector indices, NXT volumes (every
venue shows the KRX numbers), managed stocks (the market has none).
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass

import numpy as np

from ._clock import CLOSE_TIME, OPEN_TIME, to_kst
from ._market import Market, partial_bar

INDEX_MEMBERS = {"001": ("KOSPI",), "101": ("KOSDAQ",), "201": ("KOSPI",)}
START_LEVEL = {"001": 2000.0, "101": 550.0, "201": 260.0}
KOSPI200_SIZE = 200

_lock = threading.Lock()


@dataclass
class IndexSeries:
    """Final daily levels of one index (ascending), plus what is needed to rebuild today's live bar."""

    code: str
    dates: np.ndarray          # datetime64[D]
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    vol: np.ndarray            # shares, summed
    value: np.ndarray          # KRW, summed
    members: list[str]
    cap_weighted: bool


def members(market: Market, code: str) -> list[str]:
    """The constituents of index ``code`` (sorted codes)."""
    wanted = INDEX_MEMBERS[code]
    out = [c for c in market.codes if market.info(c).market in wanted]
    if code == "201":
        def size(c: str) -> float:
            st = market.stock(c)
            # market cap where listed shares are known; traded value otherwise (a replay market)
            cap = st.base * st.shares if (st.shares > 0).any() else st.value
            return float(np.median(cap)) if len(cap) else 0.0

        n = min(KOSPI200_SIZE, max(1, len(out) // 2)) if len(out) < 2 * KOSPI200_SIZE else KOSPI200_SIZE
        out = sorted(out, key=lambda c: (-size(c), c))[:n]
    return sorted(out)


def index_series(market: Market, code: str) -> IndexSeries:
    """The index's final bars over the market's whole history (built once per market and code)."""
    with _lock:
        built = market.__dict__.setdefault("_index_series", {})  # kept on the market: same lifetime
        hit = built.get(code)
        if hit is None:
            hit = built[code] = _build(market, code)
        return hit


def _build(market: Market, code: str) -> IndexSeries:
    codes = members(market, code)
    stocks = [market.stock(c) for c in codes]
    dates = np.unique(np.concatenate([st.dates for st in stocks])) if stocks else np.array([], "datetime64[D]")
    cap_weighted = any(bool((st.shares > 0).any()) for st in stocks)
    n = len(dates)
    sw, so, sh, sl, sc = (np.zeros(n) for _ in range(5))
    vol, value = np.zeros(n, dtype="int64"), np.zeros(n, dtype="int64")
    for st in stocks:
        pos = np.searchsorted(dates, st.dates)
        base = st.base.astype("float64")
        w = base * st.shares if cap_weighted else np.ones(len(base))
        w = np.where(base > 0, w, 0.0)
        safe = np.where(base > 0, base, 1.0)
        sw[pos] += w
        so[pos] += w * (st.o / safe - 1.0)
        sh[pos] += w * (st.h / safe - 1.0)
        sl[pos] += w * (st.l / safe - 1.0)
        sc[pos] += w * (st.c / safe - 1.0)
        vol[pos] += st.vol
        value[pos] += st.value
    keep = sw > 0
    dates, sw, so, sh, sl, sc, vol, value = (x[keep] for x in (dates, sw, so, sh, sl, sc, vol, value))
    growth = np.cumprod(1.0 + sc / sw)
    prev = START_LEVEL[code] * np.concatenate([[1.0], growth[:-1]])
    c = START_LEVEL[code] * growth
    o = prev * (1.0 + so / sw)
    h = np.maximum.reduce([prev * (1.0 + sh / sw), o, c])
    lo = np.minimum.reduce([prev * (1.0 + sl / sw), o, c])
    return IndexSeries(code, dates, o, h, lo, c, vol, value, codes, cap_weighted)


def index_rows(market: Market, code: str, base_dt: np.datetime64, now: _dt.datetime) -> tuple:
    """(dates, o, h, l, c, prev_close, vol, value) served for ``base_dt`` at ``now``, ascending.

    No row after ``min(base_dt, today)``; no row for today before the open;
    today's row is live (from the constituents' partial bars) until the close.
    """
    s = index_series(market, code)
    now = to_kst(now)
    today = np.datetime64(now.date(), "D")
    n = int(np.searchsorted(s.dates, min(base_dt, today), side="right"))
    o, h, l, c = s.o[:n].copy(), s.h[:n].copy(), s.l[:n].copy(), s.c[:n].copy()
    vol, value = s.vol[:n].copy(), s.value[:n].copy()
    dates = s.dates[:n]
    prev = np.concatenate([[START_LEVEL[code]], s.c[: max(n - 1, 0)]])[:n]
    if n and dates[-1] == today:
        if now.time() < OPEN_TIME:
            n -= 1
            dates, o, h, l, c, prev, vol, value = (x[:n] for x in (dates, o, h, l, c, prev, vol, value))
        elif now.time() < CLOSE_TIME:
            o[-1], h[-1], l[-1], c[-1], vol[-1], value[-1] = _live_bar(market, s, today, prev[-1], now)
    return dates, o, h, l, c, prev, vol, value


def _live_bar(market: Market, s: IndexSeries, today: np.datetime64, prev_level: float, now: _dt.datetime) -> tuple:
    sw = so = sh = sl = sc = 0.0
    vol = value = 0
    for code in s.members:
        st = market.stock(code)
        i = int(np.searchsorted(st.dates, today))
        if i >= len(st.dates) or st.dates[i] != today or st.base[i] <= 0:
            continue
        o, h, l, c, v, val = partial_bar(code, int(st.o[i]), int(st.h[i]), int(st.l[i]), int(st.c[i]),
                                         int(st.vol[i]), int(st.value[i]), now)
        base = float(st.base[i])
        w = base * float(st.shares[i]) if s.cap_weighted else 1.0
        sw += w
        so += w * (o / base - 1)
        sh += w * (h / base - 1)
        sl += w * (l / base - 1)
        sc += w * (c / base - 1)
        vol += v
        value += val
    if sw <= 0:
        return prev_level, prev_level, prev_level, prev_level, 0, 0
    o, c = prev_level * (1 + so / sw), prev_level * (1 + sc / sw)
    return o, max(prev_level * (1 + sh / sw), o, c), min(prev_level * (1 + sl / sw), o, c), c, vol, value


RANK_MARKETS = {"000": ("KOSPI", "KOSDAQ", "ETF"), "001": ("KOSPI", "ETF"), "101": ("KOSDAQ",)}


def ranking(market: Market, mrkt_tp: str, now: _dt.datetime, session_day: np.datetime64) -> list[dict]:
    """Stocks of ``mrkt_tp`` that traded on ``session_day`` (as seen at ``now``), by traded value, descending.

    Each item: ``code, name, nxt, open, high, low, close, base, volume, value`` (value in KRW).
    """
    wanted = RANK_MARKETS[mrkt_tp]
    out = []
    for code in market.codes:
        st = market.stock(code)
        if st.info.market not in wanted or not market.is_listed(code, session_day):
            continue
        latest = market.latest(code, now)
        if latest is None or st.dates[latest[0]] != session_day:
            continue  # no trade in that session (halted, or not listed yet)
        i, partial = latest
        bar = (int(st.o[i]), int(st.h[i]), int(st.l[i]), int(st.c[i]), int(st.vol[i]), int(st.value[i]))
        if partial:
            bar = partial_bar(code, *bar, now)
        o, h, l, c, vol, value = bar
        if vol <= 0:
            continue
        out.append({"code": code, "name": st.info.name, "nxt": st.info.nxt_enable, "open": o, "high": h, "low": l,
                    "close": c, "base": int(st.base[i]), "volume": vol, "value": value,
                    "pred_volume": int(st.vol[i - 1]) if i > 0 else 0})
    out.sort(key=lambda r: (-r["value"], r["code"]))
    return out

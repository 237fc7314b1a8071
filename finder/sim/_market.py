"""Market data behind the simulator: synthetic or replayed daily bars, and the served-rows oracle.

Guarantees:

* ``SyntheticMarket(seed, n_stocks)`` is the same on every run and machine.
  Every stock's series is generated from its own seed up to a fixed horizon
  (``HORIZON``, 2027-12-31), so a past bar never depends on the clock; the
  clock only decides how much of the series is visible.
* Raw prices are integer KRW; corporate actions (splits and cash dividends)
  are stored with their price factor ``f`` and volume factor.  The raw open
  on an ex-date starts near the exchange's reference price ``P * f``.
* ``Market.bars(code, base_dt, adjusted, now)`` returns exactly the rows the
  server serves for ka10081 (all pages merged), computed by the same code the
  server uses.  Kiwoom's rule: adjusted as of ``base_dt`` applies only the
  actions with ``ex_date <= min(base_dt, today)``::

      adj(t) = round(raw(t) * prod(f_e for e with t < ex_e <= base_dt))

  Volume is multiplied by the volume factor (``k`` for a 1:k split, 1 for a
  dividend); traded value is never adjusted.
* Today's bar exists from 09:00 KST on a session; until 15:30 it is a partial
  bar that moves with the clock, afterwards it equals the final bar.

Not guaranteed: tick sizes, intraday paths, separate NXT prices (``_NX`` rows
are the KRX rows from the NXT launch on), or any resemblance to real stocks.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._clock import CLOSE_TIME, HORIZON, KST, OPEN_TIME, SESSION_SECONDS, sessions, to_kst

log = logging.getLogger("finder.sim")

NXT_START = np.datetime64("2025-03-04", "D")  # NXT (Nextrade) launch
LIMIT_30_FROM = np.datetime64("2015-06-15", "D")  # KRX daily limit widened from 15% to 30%
MARKETS = ("KOSPI", "KOSDAQ", "ETF")
BAR_COLUMNS = ["open", "high", "low", "close", "volume", "value"]


class CorporateAction(NamedTuple):
    """One corporate action: prices before ``ex_date`` are multiplied by ``factor`` when adjusted."""

    ex_date: pd.Timestamp
    kind: str                 # 'split' | 'dividend'
    factor: float             # price factor f: 1/k for a 1:k split, (P - D) / P for a dividend D
    volume_factor: float      # volume multiplier: k for a 1:k split, 1.0 for a dividend
    detail: str = ""          # e.g. "1:5" or "D=361"


@dataclass(frozen=True)
class StockInfo:
    code: str
    name: str
    market: str               # 'KOSPI' | 'KOSDAQ' | 'ETF'
    listed: pd.Timestamp      # regDay
    delisted: pd.Timestamp | None  # first day it is gone (no rows on or after it)
    nxt_enable: bool
    up_name: str = ""
    size_name: str = ""


@dataclass
class _Stock:
    info: StockInfo
    dates: np.ndarray         # datetime64[D], ascending
    o: np.ndarray             # int64 raw prices
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    vol: np.ndarray           # int64 shares
    value: np.ndarray         # int64 KRW (unrounded to millions)
    base: np.ndarray          # int64 reference price of each session (raw)
    shares: np.ndarray        # int64 listed shares on each session (0 = unknown)
    ev_ex: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[D]"))
    ev_f: np.ndarray = field(default_factory=lambda: np.array([], dtype="float64"))
    ev_vf: np.ndarray = field(default_factory=lambda: np.array([], dtype="float64"))
    events: list = field(default_factory=list)
    pad: bool = False         # serve daily prices zero-padded ("00136000")


@dataclass
class Rows:
    """Served ka10081 rows, ascending; prices already adjusted (or raw)."""

    dates: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    vol: np.ndarray
    value_mil: np.ndarray     # traded value in millions of KRW
    change: np.ndarray        # close minus the reference price
    sign: np.ndarray          # pred_pre_sig 1..5
    turnover: np.ndarray      # % of listed shares (nan when unknown)

    def __len__(self) -> int:
        return len(self.dates)


def _d(value: Any) -> np.datetime64:
    """'YYYYMMDD', 'YYYY-MM-DD', date or Timestamp -> datetime64[D]."""
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]")
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        value = f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return np.datetime64(pd.Timestamp(value).date(), "D")


def _ts(d: np.datetime64) -> pd.Timestamp:
    return pd.Timestamp(d)


def price_factors(dates: np.ndarray, ev_ex: np.ndarray, ev_f: np.ndarray, asof: np.datetime64) -> np.ndarray:
    """Per row t: the product of ``f_e`` over actions with ``t < ex_e <= asof`` (1.0 when none)."""
    use = ev_ex <= asof
    if not use.any():
        return np.ones(len(dates))
    ex, f = ev_ex[use], ev_f[use]
    suffix = np.append(np.cumprod(f[::-1])[::-1], 1.0)  # suffix[i] = prod(f[i:])
    return suffix[np.searchsorted(ex, dates, side="right")]


def _limits(base: np.ndarray, dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = np.where(dates < LIMIT_30_FROM, 0.15, 0.30)
    return np.floor(base * (1 + width)).astype("int64"), np.ceil(base * (1 - width)).astype("int64")


def _signs(close: np.ndarray, base: np.ndarray, dates: np.ndarray) -> np.ndarray:
    up, down = _limits(base, dates)
    sign = np.full(len(close), 3, dtype="int8")
    sign[close > base] = 2
    sign[close < base] = 5
    sign[(close >= up) & (close > base)] = 1
    sign[(close <= down) & (close < base)] = 4
    return sign


def _noise(code: str, seconds: int) -> float:
    """A deterministic number in [-1, 1) keyed on the code and the clock's second."""
    return zlib.crc32(f"{code}:{seconds}".encode()) / 2**31 - 1.0


def partial_bar(code: str, o: int, h: int, l: int, c: int, vol: int, value: int, now: _dt.datetime) -> tuple:
    """Today's bar as seen at ``now`` during the session (09:00 <= now < 15:30 KST).

    High and low widen monotonically with time; the live price drifts from
    the open toward the final close with noise keyed on the clock's second;
    volume and value grow in proportion to the elapsed session.
    """
    t = now.astimezone(KST)
    start = t.replace(hour=OPEN_TIME.hour, minute=OPEN_TIME.minute, second=0, microsecond=0)
    phi = min(max((t - start).total_seconds() / SESSION_SECONDS, 0.0), 1.0)
    reach = np.sqrt(phi)
    hp = int(round(o + (h - o) * reach))
    lp = int(round(o - (o - l) * reach))
    live = o + (c - o) * phi + _noise(code, int(t.timestamp())) * (h - l) * 0.3 * (1 - phi)
    cp = int(min(max(round(live), lp), hp))
    return o, max(hp, cp), min(lp, cp), cp, int(round(vol * phi)), int(round(value * phi))


class Market:
    """A market the simulator serves: stocks, their raw bars and corporate actions."""

    kind = "market"
    default_now: _dt.datetime | None = None

    def __init__(self) -> None:
        self._stocks: dict[str, _Stock] = {}

    # -- ground truth -------------------------------------------------------------
    @property
    def codes(self) -> list[str]:
        """Every code the market knows: currently listed, not yet listed and delisted."""
        return list(self._stocks)

    def __contains__(self, code: object) -> bool:
        return code in self._stocks

    def stock(self, code: str) -> _Stock:
        try:
            return self._stocks[code]
        except KeyError:
            raise KeyError(f"{code!r} is not in this market") from None

    def info(self, code: str) -> StockInfo:
        return self.stock(code).info

    def events(self, code: str) -> list[CorporateAction]:
        """All corporate actions up to the horizon, the clock notwithstanding (ex-date ascending)."""
        return list(self.stock(code).events)

    def raw_bars(self, code: str) -> pd.DataFrame:
        """The full raw series to the horizon (ignores the clock): OHLC, volume, value (KRW), base, shares."""
        st = self.stock(code)
        return pd.DataFrame(
            {"open": st.o, "high": st.h, "low": st.l, "close": st.c, "volume": st.vol, "value": st.value,
             "base": st.base, "shares": st.shares},
            index=pd.DatetimeIndex(st.dates.astype("datetime64[ns]"), name="date"),
        )

    def is_listed(self, code: str, today: np.datetime64) -> bool:
        info = self.stock(code).info
        return _d(info.listed) <= today and (info.delisted is None or today < _d(info.delisted))

    def listings(self, market: str, today: Any) -> list[str]:
        """Codes of ``market`` listed on ``today`` (regDay passed, not delisted), in code order."""
        day = _d(today)
        return sorted(c for c, st in self._stocks.items() if st.info.market == market and self.is_listed(c, day))

    # -- what the server serves -------------------------------------------------------
    def rows(self, code: str, base_dt: Any, adjusted: bool, now: Any) -> Rows:
        """The ka10081 rows for ``code`` (a bare 6-character code), ascending, as the server serves them."""
        st = self.stock(code)
        now = to_kst(now)
        today = np.datetime64(now.date(), "D")
        cutoff = min(_d(base_dt), today)
        n = int(np.searchsorted(st.dates, cutoff, side="right"))
        partial = False
        if n and st.dates[n - 1] == today:
            if now.time() < OPEN_TIME:
                n -= 1  # no row for today before the open
            elif now.time() < CLOSE_TIME:
                partial = True
        sl = slice(0, n)
        dates = st.dates[sl]
        o, h, l, c = st.o[sl].copy(), st.h[sl].copy(), st.l[sl].copy(), st.c[sl].copy()
        vol, value = st.vol[sl].copy(), st.value[sl].copy()
        if partial:
            i = n - 1
            o[i], h[i], l[i], c[i], vol[i], value[i] = partial_bar(
                st.info.code, int(o[i]), int(h[i]), int(l[i]), int(c[i]), int(vol[i]), int(value[i]), now)
        base = st.base[sl]
        sign = _signs(c, base, dates)
        shares = st.shares[sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            turnover = np.where(shares > 0, vol / np.where(shares > 0, shares, 1) * 100.0, np.nan)
        value_mil = np.round(value / 1e6).astype("int64")
        if adjusted and len(st.ev_ex):
            pf = price_factors(dates, st.ev_ex, st.ev_f, cutoff)
            vf = price_factors(dates, st.ev_ex, st.ev_vf, cutoff)
            o, h, l, c = (np.round(x * pf).astype("int64") for x in (o, h, l, c))
            ref = np.round(base * pf).astype("int64")
            vol = np.round(vol * vf).astype("int64")
        else:
            ref = base
        return Rows(dates, o, h, l, c, vol, value_mil, c - ref, sign, turnover)

    def bars(self, code: str, base_dt: Any, adjusted: bool = True, now: Any = None) -> pd.DataFrame:
        """Oracle: the rows ka10081 serves for ``(code, base_dt, upd_stkpc_tp)`` at ``now``, all pages merged.

        ``code`` may carry ``_NX`` (rows from the NXT launch, empty unless
        NXT-enabled) or ``_AL`` (the KRX rows).  ``now=None`` means long
        after ``base_dt`` (every bar final).  The frame matches finder's bar
        frames: ``date`` index ascending, float OHLC, int64 ``volume`` and
        ``value`` (KRW, i.e. ``trde_prica`` x 1,000,000).  Raises ``KeyError``
        for a code the market does not know.
        """
        bare, _, venue = code.partition("_")
        if now is None:
            now = _dt.datetime.combine(pd.Timestamp(min(_d(base_dt), HORIZON)).date(), _dt.time(23, 59), KST)
        r = self.rows(bare, base_dt, adjusted, now)
        keep = np.ones(len(r), dtype=bool)
        if venue == "NX":
            keep = (r.dates >= NXT_START) & self.info(bare).nxt_enable
        frame = pd.DataFrame(
            {"open": r.o[keep].astype("float64"), "high": r.h[keep].astype("float64"),
             "low": r.l[keep].astype("float64"), "close": r.c[keep].astype("float64"),
             "volume": r.vol[keep].astype("int64"), "value": (r.value_mil[keep] * 1_000_000).astype("int64")},
            index=pd.DatetimeIndex(r.dates[keep].astype("datetime64[ns]"), name="date"),
        )
        return frame

    def latest(self, code: str, now: Any) -> tuple[int, bool] | None:
        """Index of the newest row visible at ``now`` and whether it is today's partial bar (None: no row)."""
        st = self.stock(code)
        now = to_kst(now)
        today = np.datetime64(now.date(), "D")
        n = int(np.searchsorted(st.dates, today, side="right"))
        if n and st.dates[n - 1] == today:
            if now.time() < OPEN_TIME:
                n -= 1
            elif now.time() < CLOSE_TIME:
                return n - 1, True
        return (n - 1, False) if n else None

    def describe(self) -> dict:
        counts = {m: sum(1 for s in self._stocks.values() if s.info.market == m) for m in MARKETS}
        return {"kind": self.kind, "stocks": len(self._stocks), **counts}


# ----------------------------------------------------------------------------------
# synthetic market
# ----------------------------------------------------------------------------------
_SYLLABLES = list("삼한대동신현우성세일진태광금영미코에네오유아하나경국제상보화정조청강명원용송해")
_SUFFIXES = [
    ("전자", "전기전자"), ("반도체", "전기전자"), ("화학", "화학"), ("바이오", "의약품"), ("제약", "의약품"),
    ("건설", "건설업"), ("에너지", "전기가스업"), ("중공업", "기계"), ("식품", "음식료품"), ("홀딩스", "금융업"),
    ("물산", "유통업"), ("증권", "증권"), ("테크", "IT 서비스"), ("소재", "철강금속"), ("엔터", "오락문화"),
    ("통신", "통신업"), ("게임즈", "디지털컨텐츠"), ("로직스", "운수창고업"), ("산업", "제조업"), ("정밀", "의료정밀"),
]
_ETF_BRANDS = ["KODEX", "TIGER", "KBSTAR", "ARIRANG", "ACE", "SOL", "HANARO", "PLUS"]
_ETF_THEMES = ["200", "코스닥150", "반도체", "2차전지산업", "미국S&P500", "레버리지", "인버스", "은행", "고배당",
               "배당성장", "200TR", "국고채3년", "골드선물(H)", "미국나스닥100", "헬스케어", "자동차", "철강", "IT",
               "중국CSI300", "단기채권", "KRX300", "미디어&엔터", "건설", "화학", "조선", "방산", "AI반도체", "리츠"]
# Fixed codes so that examples (005930, 069500) resolve; attributes are still synthetic.
_FORCED = {"KOSPI": ["005930", "000660", "005380"], "KOSDAQ": ["035720", "247540"], "ETF": ["069500", "102110"]}
_FORCED_NAMES = {"069500": "KODEX 200", "102110": "TIGER 200"}


def _session_days(s: np.ndarray, lo: str, hi: str) -> tuple[int, int]:
    return int(np.searchsorted(s, np.datetime64(lo, "D"))), int(np.searchsorted(s, np.datetime64(hi, "D")))


class SyntheticMarket(Market):
    """A deterministic synthetic KRX: ~50% KOSPI, ~40% KOSDAQ, ~10% ETF, 2015-01-02 to 2027-12-31.

    It holds a handful of splits (1:2, 1:5, 1:10, 1:50 and one 5:1 reverse
    split), yearly cash dividends (ex-date: the first session of January) for
    a subset, half-yearly ETF distributions (last sessions of April and
    October), listings after 2015, delistings and short suspensions.
    """

    kind = "synthetic"

    def __init__(self, seed: int = 0, n_stocks: int = 300) -> None:
        super().__init__()
        if n_stocks < 20:
            raise ValueError("n_stocks must be at least 20")
        self.seed = int(seed)
        s = sessions()
        self.sessions = s
        rng = np.random.default_rng([self.seed, 0xC0DE])
        n_etf = max(2, round(n_stocks * 0.10))
        n_kosdaq = max(2, round(n_stocks * 0.40))
        n_kospi = n_stocks - n_etf - n_kosdaq

        # Codes: multiples of ten below 500000, like real KRX common shares; none starts with '9'.
        taken = {c for v in _FORCED.values() for c in v}
        pool = np.arange(1, 50000) * 10
        pool = pool[~np.isin(pool, [int(c) for c in taken])]
        draw = iter(f"{x:06d}" for x in rng.choice(pool, size=n_stocks, replace=False))
        plan: list[tuple[str, str]] = []
        for market, n in (("KOSPI", n_kospi), ("KOSDAQ", n_kosdaq), ("ETF", n_etf)):
            forced = _FORCED[market][:n]
            plan += [(market, c) for c in forced]
            plan += [(market, next(draw)) for _ in range(n - len(forced))]
        forced_all = {c for v in _FORCED.values() for c in v}

        names: set[str] = set()
        split_plan = self._split_plan(rng, plan, forced_all)
        for market, code in plan:
            crng = np.random.default_rng([self.seed, int(code), 1])
            name, up = self._name(crng, market, code, names)
            st = self._generate(code, market, name, up, crng, s, code in forced_all, split_plan.get(code))
            self._stocks[code] = st
        self._size_names()

    # -- universe --------------------------------------------------------------------
    @staticmethod
    def _split_plan(rng: np.random.Generator, plan: list, forced: set) -> dict[str, float]:
        """Which stocks split and by what ratio k (price factor 1/k; k < 1 is a reverse split)."""
        candidates = [c for m, c in plan if m != "ETF" and c not in forced]
        chosen = rng.choice(len(candidates), size=min(9, len(candidates)), replace=False)
        ratios = [2.0, 5.0, 10.0, 2.0, 5.0, 50.0, 10.0, 2.0, 0.2]
        return {candidates[i]: ratios[j] for j, i in enumerate(chosen)}

    @staticmethod
    def _name(rng: np.random.Generator, market: str, code: str, taken: set) -> tuple[str, str]:
        for _ in range(100):
            if code in _FORCED_NAMES:
                name, up = _FORCED_NAMES[code], ""
            elif market == "ETF":
                name, up = f"{_ETF_BRANDS[rng.integers(len(_ETF_BRANDS))]} {_ETF_THEMES[rng.integers(len(_ETF_THEMES))]}", ""
            else:
                suffix, up = _SUFFIXES[rng.integers(len(_SUFFIXES))]
                name = "".join(_SYLLABLES[i] for i in rng.integers(len(_SYLLABLES), size=2)) + suffix
            if name not in taken:
                taken.add(name)
                return name, up
        name = f"{name}{code[-3:]}"
        taken.add(name)
        return name, up

    def _size_names(self) -> None:
        # Rank by the market cap on the first row: 대형주 top 100, 중형주 next 200 (per market).
        for market in ("KOSPI", "KOSDAQ"):
            stocks = [st for st in self._stocks.values() if st.info.market == market]
            caps = sorted(stocks, key=lambda st: -(float(st.c[0]) * float(st.shares[0])))
            for rank, st in enumerate(caps):
                if market == "KOSPI":
                    size = "대형주" if rank < 100 * len(caps) / 900 else "중형주" if rank < 300 * len(caps) / 900 else "소형주"
                else:
                    size = "KOSDAQ 100" if rank < 0.1 * len(caps) else "KOSDAQ MID 300" if rank < 0.4 * len(caps) else "KOSDAQ SMALL"
                st.info = dataclasses.replace(st.info, size_name=size)

    # -- one stock ----------------------------------------------------------------------
    def _generate(self, code: str, market: str, name: str, up_name: str, rng: np.random.Generator,
                  s: np.ndarray, forced: bool, split_k: float | None) -> _Stock:
        etf = market == "ETF"
        total = len(s)
        # listing window
        i0, i1 = 0, total
        reg: np.datetime64
        late_lo, late_hi = _session_days(s, "2015-06-01", "2025-10-01")
        if not forced and rng.random() < (0.2 if etf else 0.12):
            i0 = int(rng.integers(late_lo, late_hi))
            reg = s[i0]
        else:
            start = np.datetime64("2002-01-01" if etf else "1975-01-01", "D")
            span = int((np.datetime64("2014-12-01", "D") - start).astype(int))
            reg = start + np.timedelta64(int(rng.integers(span)), "D")
        delisted = None
        if not forced and not etf and split_k is None and rng.random() < 0.05:
            lo = max(i0 + 250, int(np.searchsorted(s, np.datetime64("2016-01-04", "D"))))
            if lo < late_hi:
                i1 = int(rng.integers(lo, late_hi))
                delisted = s[i1]
        idx = np.arange(i0, i1)
        n = len(idx)
        dates_all = s[i0:i1]

        # suspensions: a few short halts (no rows), and one right before a delisting
        halted = np.zeros(n, dtype=bool)
        if not forced and rng.random() < 0.05:
            for _ in range(int(rng.integers(1, 3))):
                a = int(rng.integers(5, max(6, n - 20)))
                halted[a:a + int(rng.integers(1, 9))] = True
        if delisted is not None:
            halted[max(1, n - int(rng.integers(3, 12))):] = True
            halted[-1] = False  # it trades on its last day (정리매매)

        # price path: regimes of drift, fat-tailed shocks
        if etf:
            p0 = float(np.exp(rng.uniform(np.log(5000), np.log(45000))))
            sigma = float(rng.uniform(0.007, 0.014)) * (2.0 if "레버리지" in name else 1.0)
        else:
            p0 = float(np.exp(rng.normal(np.log(15000), 1.25)))
            if rng.random() < 0.12:
                p0 = float(rng.uniform(400, 2000))
            if split_k is not None and split_k > 1:
                p0 = max(p0, float(rng.uniform(60000, 400000)) * min(split_k, 10) / 5)
            elif split_k is not None:
                p0 = float(rng.uniform(300, 900))
            p0 = min(p0, 1_500_000.0)
            sigma = float(np.exp(rng.normal(np.log(0.021), 0.3)))
        shocks = rng.standard_t(4, size=n) / np.sqrt(2.0) * sigma
        drift = np.empty(n)
        pos, level = 0, 0.0
        while pos < n:
            length = int(rng.geometric(1 / 140)) + 20
            # a gentle pull back once the regimes have drifted far (keeps levels plausible over 13 years)
            mu = rng.normal(0.0, 0.0012 if not etf else 0.0005) - 0.0008 * np.tanh(level)
            drift[pos:pos + length] = mu
            level += mu * min(length, n - pos)
            pos += length
        r = np.clip(drift + shocks, -0.26, 0.26)
        # occasional limit days, up or down alike (one-sided ones would inflate every price)
        limit_days = rng.random(n) < 0.0015
        r[limit_days] = np.log(1.30) * rng.choice([1.0, -1.2], size=int(limit_days.sum()))
        r[0] = 0.0 if i0 == 0 else r[0]
        # a halted session moves nothing; the first session after a halt gaps
        resume = np.zeros(n, dtype=bool)
        resume[1:] = halted[:-1] & ~halted[1:]
        r[resume] += rng.normal(0, 3 * sigma, int(resume.sum()))
        r[halted] = 0.0

        # corporate actions: (index in the full window, kind, k or yield)
        actions: list[tuple[int, str, float]] = []
        if split_k is not None:
            lo, hi = _session_days(s, "2016-03-01", "2025-06-30")
            cand = np.arange(max(lo, i0 + 40), min(hi, i1 - 5)) - i0
            cand = cand[~halted[cand]] if len(cand) else cand
            if len(cand):
                actions.append((int(rng.choice(cand)), "split", split_k))
        years = np.arange(2016, 2028)
        if etf and rng.random() < 0.6:
            yld = float(rng.uniform(0.003, 0.012))
            for y in years:
                for month in (4, 10):
                    last = int(np.searchsorted(s, np.datetime64(f"{y}-{month + 1:02d}-01", "D"))) - 1
                    if i0 < last < i1 and not halted[last - i0]:
                        actions.append((last - i0, "dividend", yld * float(rng.uniform(0.7, 1.3))))
        elif not etf and rng.random() < (0.45 if market == "KOSPI" else 0.25):
            yld = float(np.exp(rng.uniform(np.log(0.005), np.log(0.04))))
            for y in years:
                first = int(np.searchsorted(s, np.datetime64(f"{y}-01-01", "D")))
                if i0 < first < i1 and not halted[first - i0] and rng.random() < 0.9:
                    actions.append((first - i0, "dividend", yld * float(rng.uniform(0.8, 1.2))))
        actions.sort()

        # approximate factors drive the float path; exact ones come from integer closes below
        logf = np.zeros(n)
        for j, kind, x in actions:
            logf[j] += -np.log(x) if kind == "split" else np.log1p(-x)
        path = p0 * np.exp(np.cumsum(r + logf))
        close = np.maximum(np.round(path), 1).astype("int64")

        # exact factors and reference prices
        ev_j, ev_f, ev_vf, events = [], [], [], []
        f_row = np.ones(n)
        for j, kind, x in actions:
            if j == 0:
                continue
            p = int(close[j - 1])
            if kind == "split":
                f, vf, detail = 1.0 / x, x, (f"1:{int(x)}" if x >= 1 else f"{int(round(1 / x))}:1")
            else:
                d = int(round(x * p))
                if d < 1 or d >= p:
                    continue
                f, vf, detail = (p - d) / p, 1.0, f"D={d}"
            ev_j.append(j)
            ev_f.append(f)
            ev_vf.append(vf)
            f_row[j] = f
            events.append(CorporateAction(_ts(dates_all[j]), kind, f, vf, detail))
        prev = np.empty(n, dtype="int64")
        prev[0] = int(round(p0))
        prev[1:] = close[:-1]
        base = np.maximum(np.round(prev * f_row), 1).astype("int64")
        up, down = _limits(base, dates_all)
        close = np.clip(close, down, up)
        # the close may have moved by clipping: keep the next reference consistent
        prev[1:] = close[:-1]
        base = np.maximum(np.round(prev * f_row), 1).astype("int64")
        up, down = _limits(base, dates_all)
        close = np.clip(close, down, up)

        gap = 0.35 * r + rng.normal(0, 0.3 * sigma, n)
        open_ = np.clip(np.round(base * np.exp(gap)).astype("int64"), down, up)
        wick_h = np.abs(rng.normal(0, 0.55 * sigma, n))
        wick_l = np.abs(rng.normal(0, 0.55 * sigma, n))
        high = np.clip(np.round(np.maximum(open_, close) * np.exp(wick_h)).astype("int64"), down, up)
        low = np.clip(np.round(np.minimum(open_, close) * np.exp(-wick_l)).astype("int64"), down, up)
        high = np.maximum(high, np.maximum(open_, close))
        low = np.maximum(np.minimum(low, np.minimum(open_, close)), 1)

        # shares and volume
        cap = float(np.exp(rng.normal(np.log(6e11 if market == "KOSPI" else 1.5e11 if market == "KOSDAQ" else 8e10), 1.1)))
        shares0 = max(int(cap / p0), 100_000)
        share_mult = np.ones(n)
        for j, f, vf in zip(ev_j, ev_f, ev_vf):
            share_mult[j:] *= vf
        shares = np.round(shares0 * share_mult).astype("int64")
        tau = float(np.exp(rng.normal(np.log(0.004 if market == "KOSPI" else 0.012 if market == "KOSDAQ" else 0.006), 0.6)))
        surge = np.where(rng.random(n) < 0.03, np.exp(rng.normal(1.4, 0.5, n)), 1.0)
        move = 1.0 + 1.5 * np.abs(r) / sigma * 0.3
        vol = np.maximum(np.round(shares * tau * np.exp(rng.normal(0, 0.55, n)) * surge * move), 1).astype("int64")
        typical = (open_ + high + low + close) / 4.0 * np.exp(rng.normal(0, 0.01, n))
        value = np.round(vol * np.clip(typical, low, high)).astype("int64")

        keep = ~halted
        nxt = bool(not etf and (forced or rng.random() < 0.5) and (delisted is None or delisted > NXT_START))
        info = StockInfo(code=code, name=name, market=market, listed=_ts(reg),
                         delisted=None if delisted is None else _ts(delisted), nxt_enable=nxt, up_name=up_name)
        ev_ex = np.array([dates_all[j] for j in ev_j], dtype="datetime64[D]")
        return _Stock(
            info=info, dates=dates_all[keep], o=open_[keep], h=high[keep], l=low[keep], c=close[keep],
            vol=vol[keep], value=value[keep], base=base[keep], shares=shares[keep],
            ev_ex=ev_ex, ev_f=np.array(ev_f, dtype="float64"), ev_vf=np.array(ev_vf, dtype="float64"),
            events=events, pad=zlib.crc32(code.encode()) % 5 == 0,
        )


# ----------------------------------------------------------------------------------
# replayed market
# ----------------------------------------------------------------------------------
class ReplayMarket(Market):
    """Replays a CSV of daily bars (``code,date,open,high,low,close,volume``; ``.gz`` allowed).

    The rows are served as they are for both raw and adjusted requests (the
    sample file is already adjusted as of 2025-11-28 and carries no
    events).  Names are the codes, every stock is under KOSPI and
    NXT-enabled, ``regDay`` is its first date, and a stock whose rows stop
    before the file's last date counts as delisted on the next session.
    Traded value is ``close * volume``; listed shares are unknown (turnover
    is served blank).  The default clock is the file's last date, 20:30 KST.
    """

    kind = "replay"

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__()
        s = sessions()
        self.sessions = s
        df = frame.copy()
        df["code"] = df["code"].astype(str).str.strip().str.zfill(6)
        df["date"] = pd.to_datetime(df["date"]).values.astype("datetime64[D]")
        df = df.sort_values(["code", "date"]).drop_duplicates(["code", "date"], keep="last")
        last_day = df["date"].max()
        for code, g in df.groupby("code", sort=True):
            dates = g["date"].to_numpy().astype("datetime64[D]")
            o, h, l, c = (np.round(g[k].to_numpy(dtype="float64")).astype("int64") for k in ("open", "high", "low", "close"))
            vol = np.round(g["volume"].to_numpy(dtype="float64")).astype("int64")
            base = np.empty(len(c), dtype="int64")
            base[0] = o[0]
            base[1:] = c[:-1]
            delisted = None
            if dates[-1] < last_day:
                j = int(np.searchsorted(s, dates[-1], side="right"))
                delisted = _ts(s[j]) if j < len(s) else None
            info = StockInfo(code=code, name=code, market="KOSPI", listed=_ts(dates[0]), delisted=delisted,
                             nxt_enable=True)
            self._stocks[code] = _Stock(info=info, dates=dates, o=o, h=h, l=l, c=c, vol=vol, value=c * vol,
                                        base=base, shares=np.zeros(len(c), dtype="int64"))
        self.default_now = _dt.datetime.combine(pd.Timestamp(last_day).date(), _dt.time(20, 30), KST)

    @classmethod
    def from_csv(cls, path: str | Path) -> "ReplayMarket":
        """Read a CSV in the ``krx_daily_sample.csv.gz`` format."""
        frame = pd.read_csv(path, dtype={"code": str})
        missing = {"code", "date", "open", "high", "low", "close", "volume"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        return cls(frame)


_BUILD_LOCK = threading.Lock()


def default_market(seed: int = 0, n_stocks: int = 300) -> SyntheticMarket:
    """The synthetic market, built once per process (and per seed); safe to call from many threads."""
    with _BUILD_LOCK:  # lru_cache alone would let two threads build it at once
        return _build_market(seed, n_stocks)


@functools.lru_cache(maxsize=4)
def _build_market(seed: int, n_stocks: int) -> SyntheticMarket:
    t0 = time.perf_counter()
    m = SyntheticMarket(seed=seed, n_stocks=n_stocks)
    log.debug("built the synthetic market (%d stocks) in %.2fs", len(m.codes), time.perf_counter() - t0)
    return m

"""Which stocks a scan looks at, decided point in time.

A universe is given as:

* a market name: ``'KOSPI'``, ``'KOSDAQ'``, ``'ETF'`` (any market
  ``finder.data.get_stock_list`` knows), case-insensitive;
* a combination: ``'KOSPI+KOSDAQ'`` or ``['KOSPI', 'KOSDAQ']``;
* an explicit list of codes: ``['005930', '000660']`` (market names and
  codes may be mixed in one list);
* a callable ``f(session) -> iterable of codes``, called with the scan's
  session (a ``pandas.Timestamp``), so it can be point-in-time itself;
* a :class:`Universe`, which adds liquidity filters.

Point-in-time membership, applied on every scan: a stock counts only if it
was **listed on the session** (its listing date, when known, is on or
before it) **and traded that day** (it has a bar with volume > 0 on the
session).  Liquidity filters such as "the 200 most traded" rank by the mean
traded value of each stock's last ``value_window`` bars **up to the
session**, never by today's ranking (the old system ranked historical dates
by the current day's traded value: look-ahead).

Known limit (survivorship): market names resolve through Kiwoom's current
stock list (ka10099), which omits delisted stocks, so a scan of a past date
by market name cannot see stocks that have since been delisted.  Pass an
explicit code list (e.g. from an archived listing) to include them; codes
without data on the date are reported in ``result.attrs['missing']``.

Example::

    from finder.analysis import scan, Universe
    scan("2025-10-01", universe="KOSDAQ")
    scan("2025-10-01", universe=Universe("KOSPI+KOSDAQ", top_value=200))   # 200 most traded, 20-day mean
    scan("2025-10-01", universe=["005930", "000660", "035420"])
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError
from .._models import CODE_RE, MARKET_CODES

__all__ = ["Universe", "resolve_universe", "MARKETS"]

log = logging.getLogger(__name__)

MARKETS: tuple[str, ...] = tuple(MARKET_CODES)


def _norm_code(c: Any) -> str:
    if not isinstance(c, str):
        raise InvalidInputError(f"universe code {c!r} ({type(c).__name__}) is not a stock code; pass codes as "
                                "text such as '005930' (leading zeros matter)")
    text = c.strip().upper()
    if not CODE_RE.match(text):
        raise InvalidInputError(f"universe entry {c!r} is neither a market name {list(MARKETS)} nor a KRX code "
                                "such as '005930'")
    return text


def _parse_names(spec: str | Iterable[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a market combination / code list into (markets, codes), validated."""
    if isinstance(spec, str):
        parts = [p for p in (s.strip() for s in spec.replace(",", "+").split("+"))]
        if not spec.strip() or any(not p for p in parts):
            raise InvalidInputError(f"universe={spec!r} is not a market name such as 'KOSPI' or 'KOSPI+KOSDAQ'")
        markets = []
        for p in parts:
            if p.upper() not in MARKETS:
                raise InvalidInputError(f"unknown market {p!r} in universe={spec!r}; known markets: {list(MARKETS)}")
            markets.append(p.upper())
        return tuple(dict.fromkeys(markets)), ()
    items = list(spec)
    if not items:
        raise InvalidInputError("universe=[] is empty; give market names or stock codes")
    markets, codes = [], []
    for item in items:
        if isinstance(item, str) and item.strip().upper() in MARKETS:
            markets.append(item.strip().upper())
        else:
            codes.append(_norm_code(item))
    return tuple(dict.fromkeys(markets)), tuple(dict.fromkeys(codes))


@dataclass(frozen=True)
class Universe:
    """A universe specification plus optional liquidity filters (all point in time).

    ``base``: a market name or combination (``'KOSPI+KOSDAQ'``), a list of
    market names and/or codes, or a callable ``f(session) -> codes``.

    Liquidity filters, applied after the point-in-time membership check and
    computed on each stock's own last ``value_window`` bars up to the session
    (fewer if it has fewer; traded value falls back to close × volume where
    the data has none):

    * ``min_value``: keep stocks whose mean traded value ≥ this (KRW);
    * ``top_value``: then keep the ``top_value`` largest by that mean
      (ties broken by code, so the result is deterministic).
    """

    base: Any = "KOSPI+KOSDAQ"
    top_value: int | None = None
    min_value: float | None = None
    value_window: int = 20

    def __post_init__(self) -> None:
        base = self.base
        if isinstance(base, Universe):
            raise InvalidInputError("Universe(base=Universe(...)) is not supported; give the base directly")
        if callable(base) and not isinstance(base, (str, list, tuple)):
            markets, codes, func = (), (), base
        elif isinstance(base, (str, list, tuple, set, frozenset, pd.Index, pd.Series, np.ndarray)):
            if isinstance(base, (set, frozenset)):
                base = sorted(base, key=str)
            markets, codes = _parse_names(base if isinstance(base, str) else list(base))
            func = None
        else:
            raise InvalidInputError(f"universe={base!r} ({type(base).__name__}) is not a market name, a list of "
                                    "codes, a callable or a Universe")
        if self.top_value is not None and (isinstance(self.top_value, bool)
                                           or not isinstance(self.top_value, numbers.Integral)
                                           or self.top_value < 1):
            raise InvalidInputError(f"top_value={self.top_value!r} is not a whole number ≥ 1")
        if self.min_value is not None and (isinstance(self.min_value, bool)
                                           or not isinstance(self.min_value, numbers.Real)
                                           or not self.min_value >= 0):
            raise InvalidInputError(f"min_value={self.min_value!r} is not a number ≥ 0")
        if isinstance(self.value_window, bool) or not isinstance(self.value_window, numbers.Integral) \
                or self.value_window < 1:
            raise InvalidInputError(f"value_window={self.value_window!r} is not a whole number ≥ 1")
        object.__setattr__(self, "_markets", markets)
        object.__setattr__(self, "_codes", codes)
        object.__setattr__(self, "_func", func)

    # -- what it is -------------------------------------------------------
    @property
    def markets(self) -> tuple[str, ...]:
        return self._markets  # type: ignore[attr-defined]

    @property
    def codes(self) -> tuple[str, ...]:
        return self._codes  # type: ignore[attr-defined]

    @property
    def func(self) -> Callable[[pd.Timestamp], Iterable[str]] | None:
        return self._func  # type: ignore[attr-defined]

    def describe(self) -> str:
        parts = []
        if self.func is not None:
            parts.append(f"callable {getattr(self.func, '__name__', repr(self.func))}")
        if self.markets:
            parts.append("+".join(self.markets))
        if self.codes:
            parts.append(f"{len(self.codes)} codes")
        text = " + ".join(parts)
        if self.min_value is not None:
            text += f", mean {self.value_window}-bar traded value ≥ {self.min_value:,.0f} KRW"
        if self.top_value is not None:
            text += f", top {self.top_value} by mean {self.value_window}-bar traded value"
        return text

    # -- before data: which codes to fetch --------------------------------
    def _call(self, session: pd.Timestamp) -> tuple[str, ...]:
        out = self.func(session)  # type: ignore[misc]
        if isinstance(out, pd.DataFrame):
            if "code" not in out.columns:
                raise InvalidInputError("the universe callable returned a DataFrame without a 'code' column")
            out = out["code"]
        if isinstance(out, str) or not isinstance(out, Iterable):
            raise InvalidInputError(f"the universe callable returned {type(out).__name__}; return a list of codes")
        return tuple(dict.fromkeys(_norm_code(c) for c in out))

    def candidates(self, session: pd.Timestamp) -> tuple[list[str], pd.DataFrame]:
        """Codes to fetch for ``session`` and their metadata (indexed by code: name, market, listed).

        Market names go through ``finder.data.get_stock_list`` (current
        listings).  Stocks listed after ``session`` are dropped here already.
        """
        frames = []
        if self.markets:
            from .. import data  # analysis -> data access, never the client

            sl = data.get_stock_list(list(self.markets))
            frames.append(_meta_frame(sl))
        extra = list(self.codes)
        if self.func is not None:
            extra += list(self._call(session))
        meta = pd.concat(frames) if frames else _meta_frame(None)
        if extra:
            missing_meta = [c for c in dict.fromkeys(extra) if c not in meta.index]
            if missing_meta:
                meta = pd.concat([meta, _meta_frame(None, missing_meta)])
        meta = meta[~meta.index.duplicated(keep="first")]
        if self.markets and not extra:
            keep = meta
        else:
            wanted = set(extra)
            if self.markets:
                wanted |= set(meta.index[meta["market"].isin(self.markets)])
            keep = meta.loc[[c for c in meta.index if c in wanted]]
        keep = keep[~(keep["listed"] > session)]  # NaT (unknown) stays
        return sorted(keep.index), keep.sort_index()

    # -- after data: point-in-time membership -------------------------------
    def base_filter(self, codes: pd.Index, meta: pd.DataFrame | None, session: pd.Timestamp) -> pd.Index:
        """The codes among ``codes`` that belong to the base (markets via ``meta``, codes, callable)."""
        if self.markets and (meta is None or "market" not in meta.columns):
            raise InvalidInputError(f"universe {'+'.join(self.markets)!r} needs meta with a 'market' column "
                                    "to select stocks by market")
        wanted: set[str] = set(self.codes)
        if self.func is not None:
            wanted |= set(self._call(session))
        if self.markets:
            m = meta["market"].reindex(codes)  # type: ignore[index]
            wanted |= set(codes[m.isin(self.markets).to_numpy()])
        return codes[codes.isin(list(wanted))]

    def liquidity_filter(self, value: pd.DataFrame) -> tuple[pd.Index, pd.Series]:
        """Apply ``min_value`` / ``top_value`` to bottom-aligned traded values (last row = session).

        Returns the kept codes and each code's mean traded value.
        """
        tail = value.iloc[-self.value_window:]
        mean = tail.mean(axis=0, skipna=True)
        keep = mean.index
        if self.min_value is not None:
            keep = keep[(mean.reindex(keep) >= self.min_value).to_numpy()]
        if self.top_value is not None and len(keep) > self.top_value:
            m = mean.reindex(keep)
            order = pd.DataFrame({"m": -m.to_numpy(), "code": np.asarray(keep)}).sort_values(["m", "code"])
            keep = pd.Index(order["code"].iloc[: self.top_value])
            keep = value.columns[value.columns.isin(keep)]
        return keep, mean

    @property
    def has_liquidity_filter(self) -> bool:
        return self.top_value is not None or self.min_value is not None


def _meta_frame(sl: pd.DataFrame | None, codes: list[str] | None = None) -> pd.DataFrame:
    cols = ["name", "market", "listed"]
    if sl is None:
        idx = pd.Index(codes or [], name="code", dtype=object)
        return pd.DataFrame({"name": pd.Series(None, index=idx, dtype=object),
                             "market": pd.Series(None, index=idx, dtype=object),
                             "listed": pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")})
    df = sl.copy()
    if "code" in df.columns:
        df = df.set_index("code")
    for c in cols:
        if c not in df.columns:
            df[c] = pd.NaT if c == "listed" else None
    df["listed"] = pd.to_datetime(df["listed"], errors="coerce")
    df.index = df.index.astype(str)
    df.index.name = "code"
    return df[cols]


def resolve_universe(spec: Any) -> Universe:
    """Validate a universe argument (no I/O): a market name/combination, codes, a callable or a Universe."""
    if isinstance(spec, Universe):
        return spec
    if spec is None:
        raise InvalidInputError("universe=None; give a market such as 'KOSPI+KOSDAQ', a list of codes or a callable")
    return Universe(spec)

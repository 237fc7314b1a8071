"""Backtests: run a scan on every session of a range and measure what its picks did.

Notebook example::

    >>> import finder
    >>> res = finder.backtest("momentum", start="2025-09-01", end="2025-09-30",
    ...                       universe="KOSPI", horizons=(1, 5, 10))
    >>> res.summary()            # per horizon: count, win rate, mean, median, ...
    >>> res.trades.head()        # one row per pick and horizon
    >>> res.equity.tail()        # equal-weight portfolio, see "Portfolio rule"
    >>> fig = res.plot()         # equity + drawdown, return distribution, win rate

The module has two halves, kept apart so the arithmetic can be tested on
hand-made frames without any data layer:

* :func:`simulate` is **pure**: given the picks and one set of price panels it
  evaluates every trade, the summary and the equity curve.
* :func:`backtest` loads data: it validates its arguments (before any request),
  runs :func:`finder.analysis.scanner.scan` for every XKRX session in
  ``[start, end]``, loads **one** evaluation panel for the picked stocks, and
  hands both to :func:`simulate`.

Timing and prices (no look-ahead)
---------------------------------
* The picks of session ``d`` come from ``scan(d)``, which reads bars up to ``d``
  only, adjusted as of ``d`` (thresholds such as "close >= 2,000 KRW" are not
  scale-invariant across a split, so the scan must see the prices of its day).
* Every trade's entry and exit price come from **one** evaluation panel,
  adjusted as of the last session the backtest needs.  A split or dividend
  between entry and exit is therefore already divided out of both prices and
  cannot fake a return (``../shared/data/README.md`` shows how much two
  ``base_dt`` windows disagree).
* ``entry="next_open"`` (default): buy at the open of the session after ``d``.
  ``entry="close"``: buy at the close of ``d`` itself.
* Horizon ``h``: sell at the close of the ``h``-th session after ``d``.  With
  ``next_open``, ``h=1`` is therefore the intraday return of the entry day.
* ``take_profit``/``stop_loss`` (fractions, e.g. 0.05) are checked against each
  session's high and low from the first session the position is held (the
  entry day itself for ``next_open``: the open is the first trade of the day,
  so that day's high and low happen after it).  Fills:

  - a session that *opens* beyond a level fills at the open (a gap through the
    stop fills worse than the stop; a gap through the target fills better),
    because then the order of events is known;
  - otherwise the level's own price;
  - when a session's range touches **both** levels and the open did not
    decide it, the order within the day is unknown and the worse outcome is
    assumed: the stop.

Exit reasons (``trades.exit_reason``)
-------------------------------------
==================  =============================================================
``horizon``         sold at the close of the horizon session
``take_profit``     the target was hit first
``stop_loss``       the stop was hit first (or both on one day)
``halted``          no bar on the horizon session (a halt, or the stock stopped
                    trading for the rest of the data without being known as
                    delisted): valued at its last close on or before the horizon
``delisted``        the same, for a stock known to be delisted (``backtest``
                    knows it when a stock that stops trading is missing from
                    today's stock lists); when it stops before the entry
                    session there is no trade
``untradable``      no bar on the entry session (a halt): never entered
``no_data``         the data layer could not provide the stock's bars at all
``no_next_session`` the pick's entry session lies after the last session with data
``incomplete``      entered, but the horizon session lies after the last session
                    with data (the backtest ran up to recent days)
==================  =============================================================

Rows whose trade did not happen or did not finish keep ``NaN`` prices/return;
they are counted in ``summary()['not_traded']`` and never silently dropped.

Costs
-----
``cost_bps`` is a **round-trip** cost in basis points, subtracted once from
each trade's gross return: ``return = exit/entry - 1 - cost_bps/10_000``.
The default, :data:`DEFAULT_COST_BPS` = 25 bp, is the KRX securities
transaction tax on the sell side (0.18 % in 2024, 0.15 % in 2025 and back to
0.20 % from 2026: 20 bp is the conservative value), plus about 1.5 bp of online
broker commission on each side, plus about 2 bp of slippage.

Portfolio rule (``result.equity``)
----------------------------------
An equal-weight portfolio of *overlapping cohorts* (Jegadeesh & Titman 1993),
one curve per horizon ``H``:

* Capital 1.0 is split into ``H`` sleeves of ``1/H``.  The cohort of the
  ``k``-th scanned session (its picks, possibly none) uses sleeve ``k mod H``,
  so each sleeve is re-used exactly when its previous cohort has exited.
* A cohort invests its sleeve's whole value equally in its ``n`` picks,
  buy-and-hold, no rebalancing.  A pick that could not be entered keeps its
  ``1/n`` share in cash; a cohort without picks stays in cash; a position that
  exits early (target, stop) stays in cash until the sleeve's next cohort.
* Positions are marked to market at each session's close on the evaluation
  panel's (one-basis) prices; a session without a bar keeps the last close.
  The whole round-trip cost is charged on the entry day, so the value at exit
  is exactly ``1 + return`` of the trade.
* Portfolio equity = the sum of the sleeves, from the first scanned session
  until the last cohort's horizon is over (or the last session with data).  ``drawdown = equity / running max - 1``.

This compounds correctly while positions overlap: no capital is used twice
(a naive ``prod(1 + trade returns)`` reinvests all capital in every trade).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import calendar
from .._exceptions import InvalidInputError
from . import _range
from ._trades import equity_aligned, evaluate_aligned

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_COST_BPS",
    "DEFAULT_HORIZONS",
    "ENTRY_MODES",
    "EXIT_REASONS",
    "BacktestResult",
    "backtest",
    "simulate",
    "evaluate_trades",
    "equity_curve",
    "summarize",
]

logger = logging.getLogger(__name__)

DEFAULT_COST_BPS = 25.0
"""Round trip: 20 bp sell-side transaction tax + 2 x 1.5 bp commission + ~2 bp slippage."""

DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 10, 20)
ENTRY_MODES = ("next_open", "close")
EXIT_REASONS = ("horizon", "take_profit", "stop_loss", "halted", "delisted",
                "untradable", "no_data", "no_next_session", "incomplete")
MAX_HORIZON = 250  # about a year of sessions; more is a typo
PRICE_FIELDS = ("open", "high", "low", "close")

TRADE_COLUMNS = ["date", "code", "name", "rank", "score", "horizon", "entry_date", "entry_price",
                 "exit_date", "exit_price", "gross_return", "return", "exit_reason", "held"]


# --------------------------------------------------------------------------
# argument checks (all raise InvalidInputError naming the value, no requests)
# --------------------------------------------------------------------------

def _check_horizons(value: Any) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError(f"horizons={value!r} is not a whole number or a sequence of them, e.g. (1, 5, 10, 20)")
    else:
        items = list(value)
    if not items:
        raise InvalidInputError("horizons=() is empty; give at least one horizon, e.g. (1, 5)")
    out = []
    for h in items:
        if isinstance(h, bool) or not isinstance(h, numbers.Integral):
            raise InvalidInputError(f"horizons contains {h!r} ({type(h).__name__}); horizons are whole numbers of sessions")
        if not 1 <= int(h) <= MAX_HORIZON:
            raise InvalidInputError(f"horizons contains {h!r}; each horizon must be 1 to {MAX_HORIZON} sessions")
        out.append(int(h))
    return tuple(sorted(set(out)))


def _check_entry(value: Any) -> str:
    if not isinstance(value, str) or value not in ENTRY_MODES:
        raise InvalidInputError(f"entry={value!r} is not one of {ENTRY_MODES}")
    return value


def _check_fraction(value: Any, name: str, *, upper: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InvalidInputError(f"{name}={value!r} is not a number; give a fraction such as 0.05 for 5 %")
    x = abs(float(value)) if name == "stop_loss" else float(value)
    if not 0 < x < upper:
        raise InvalidInputError(f"{name}={value!r} is out of range; give a fraction between 0 and {upper:g} "
                                "(0.05 means 5 %)")
    return x


def _check_cost(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InvalidInputError(f"cost_bps={value!r} is not a number of basis points")
    if not 0 <= float(value) < 10_000:
        raise InvalidInputError(f"cost_bps={value!r} is out of range; use 0 to 10,000 basis points")
    return float(value)


def _check_positive_int(value: Any, name: str, *, allow_none: bool = False, lo: int = 1, hi: int = 100_000) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= int(value) <= hi:
        raise InvalidInputError(f"{name}={value!r} is not a whole number from {lo} to {hi}")
    return int(value)


def _check_params(horizons: Any, entry: Any, take_profit: Any, stop_loss: Any,
                  cost_bps: Any) -> tuple[tuple[int, ...], str, float | None, float | None, float]:
    return (_check_horizons(horizons), _check_entry(entry),
            _check_fraction(take_profit, "take_profit", upper=10.0),
            _check_fraction(stop_loss, "stop_loss", upper=1.0),
            _check_cost(cost_bps))


# --------------------------------------------------------------------------
# pure trade evaluation
# --------------------------------------------------------------------------

def _align_prices(prices: Mapping[str, pd.DataFrame]) -> tuple[pd.DatetimeIndex, dict[str, pd.DataFrame]]:
    """One index and one column set for the four price panels."""
    missing = [f for f in PRICE_FIELDS if f not in prices]
    if missing:
        raise InvalidInputError(f"prices lacks the panels {missing}; give a dict with {list(PRICE_FIELDS)}")
    index = prices["close"].index
    cols = prices["close"].columns
    for f in PRICE_FIELDS:
        index = index.union(prices[f].index)
        cols = cols.union(prices[f].columns)
    index = pd.DatetimeIndex(index).sort_values()
    out = {f: prices[f].reindex(index=index, columns=cols).astype(float) for f in PRICE_FIELDS}
    return index, out


def _first_event(o: np.ndarray, h: np.ndarray, l: np.ndarray, p0: float,
                 tp: float | None, sl: float | None) -> tuple[int, str, float] | None:
    """The first session (offset into the arrays) where the target or the stop fills."""
    if tp is None and sl is None:
        return None
    with np.errstate(invalid="ignore"):
        tp_px = p0 * (1 + tp) if tp is not None else np.inf
        sl_px = p0 * (1 - sl) if sl is not None else -np.inf
        hit_tp = h >= tp_px
        hit_sl = l <= sl_px
    hits = np.flatnonzero(hit_tp | hit_sl)
    if hits.size == 0:
        return None
    k = int(hits[0])
    op = o[k]
    # A gap open beyond a level decides the order of events: fill at the open.
    if sl is not None and not np.isnan(op) and op <= sl_px:
        return k, "stop_loss", float(op)
    if tp is not None and not np.isnan(op) and op >= tp_px:
        return k, "take_profit", float(op)
    # Both touched within the day, order unknown: assume the worse (the stop).
    if hit_sl[k]:
        return k, "stop_loss", float(sl_px)
    return k, "take_profit", float(tp_px)


def evaluate_trades(picks: pd.DataFrame, prices: Mapping[str, pd.DataFrame], *,
                    horizons: Sequence[int] = DEFAULT_HORIZONS, entry: str = "next_open",
                    take_profit: float | None = None, stop_loss: float | None = None,
                    cost_bps: float = DEFAULT_COST_BPS, delisted: Collection[str] = (),
                    final_end: Any = None) -> pd.DataFrame:
    """Evaluate each pick at each horizon on one set of price panels (pure).

    ``picks`` needs ``date`` and ``code`` columns (``name``, ``rank``, ``score``
    are carried along when present).  ``prices`` maps ``open/high/low/close``
    to dates x codes frames on **one** adjustment basis; their index must hold
    every session from the first pick to the last session with data (a NaN
    means the stock did not trade that day).  The last row of the index is
    taken as the last session with data.  ``delisted`` names the stocks known
    to be delisted: one of them that stops trading is reported ``delisted``
    rather than ``halted``/``untradable`` (prices alone cannot tell a long
    halt from a delisting).  ``final_end``: the last session whose bars are
    final (default: the last row); a later row is today's live bar, which
    can still change, so no exit happens on it (such trades are
    ``incomplete``) and an ``entry="close"`` on it is not entered.

    Returns one row per pick and horizon with :data:`TRADE_COLUMNS`; see the
    module docstring for timing, fills and exit reasons.

    Example::

        >>> trades = evaluate_trades(picks, {"open": o, "high": h, "low": l, "close": c},
        ...                          horizons=(1, 5), take_profit=0.05, stop_loss=0.05)
    """
    horizons, entry, tp, sl, cost_bps = _check_params(horizons, entry, take_profit, stop_loss, cost_bps)
    cost = cost_bps / 10_000
    index, px = _align_prices(prices)
    last = len(index) - 1
    if final_end is not None:
        # exits only on final bars: a live bar's close and range are not settled yet
        last = int(index.searchsorted(calendar.parse_date(final_end, "final_end"), side="right")) - 1
    n_rows = len(index) - 1
    maxh = max(horizons)
    arrays: dict[str, tuple[np.ndarray, ...] | None] = {}

    def series(code: str) -> tuple[np.ndarray, ...] | None:
        if code not in arrays:
            arrays[code] = (tuple(px[f][code].to_numpy(dtype=float) for f in PRICE_FIELDS)
                            if code in px["close"].columns and px["close"][code].notna().any() else None)
        return arrays[code]

    rows: list[dict[str, Any]] = []
    if picks is None or len(picks) == 0:
        return _trades_frame(rows)
    for col in ("date", "code"):
        if col not in picks.columns:
            raise InvalidInputError(f"picks has no {col!r} column; it needs 'date' and 'code'")
    dates = pd.DatetimeIndex(pd.to_datetime(picks["date"]))
    pos = index.get_indexer(dates)
    if (pos < 0).any():
        bad = dates[pos < 0][0]
        raise InvalidInputError(f"pick date {bad.date()} is not in the price panels' index")
    has = {c: c in picks.columns for c in ("name", "rank", "score")}
    if not _PER_PICK_LOOP:  # the one numpy core, shared with the sweep
        return evaluate_aligned(picks, index, px, horizons, entry, tp, sl, cost_bps, delisted, final_end)

    for i_d, (_, pick) in zip(pos, picks.iterrows()):
        base = {"date": index[i_d], "code": pick["code"],
                "name": pick["name"] if has["name"] else None,
                "rank": pick["rank"] if has["rank"] else np.nan,
                "score": pick["score"] if has["score"] else np.nan}

        def emit(h: int, reason: str, ed=pd.NaT, ep=np.nan, xd=pd.NaT, xp=np.nan, held=np.nan) -> None:
            gross = xp / ep - 1 if np.isfinite(ep) and np.isfinite(xp) else np.nan
            rows.append({**base, "horizon": h, "entry_date": ed, "entry_price": ep, "exit_date": xd,
                         "exit_price": xp, "gross_return": gross,
                         "return": gross - cost if np.isfinite(gross) else np.nan,
                         "exit_reason": reason, "held": held})

        s = series(pick["code"])
        if s is None:
            for h in horizons:
                emit(h, "no_data")
            continue
        o, hi, lo, c = s
        ie = i_d + 1 if entry == "next_open" else i_d
        if ie > n_rows:
            for h in horizons:
                emit(h, "no_next_session")
            continue
        if ie > last and entry == "close":
            for h in horizons:  # the live close is not a price anyone has traded at yet
                emit(h, "incomplete")
            continue
        p0 = o[ie] if entry == "next_open" else c[ie]
        if np.isnan(p0) or np.isnan(c[ie]):
            # No bar on the entry session: a halt if it trades again, else gone.
            gone = pick["code"] in delisted and not np.isfinite(c[ie + 1:]).any()
            reason = "delisted" if gone else "untradable"
            if ie > last:
                reason = "incomplete"  # no live bar yet for this stock today
            for h in horizons:
                emit(h, reason)
            continue
        first_check = ie if entry == "next_open" else ie + 1
        stop = min(last, i_d + maxh)
        event = _first_event(o[first_check:stop + 1], hi[first_check:stop + 1], lo[first_check:stop + 1],
                             p0, tp, sl) if first_check <= stop else None
        ed = index[ie]
        for h in horizons:
            tgt = i_d + h
            if event is not None and first_check + event[0] <= tgt:
                ix = first_check + event[0]
                emit(h, event[1], ed, p0, index[ix], event[2], ix - i_d)
            elif tgt > last:
                emit(h, "incomplete", ed, p0)
            elif np.isfinite(c[tgt]):
                emit(h, "horizon", ed, p0, index[tgt], c[tgt], h)
            else:
                # No bar on the horizon session: value at the last close before it.
                j = ie + int(np.flatnonzero(np.isfinite(c[ie:tgt + 1]))[-1])
                gone = pick["code"] in delisted and not np.isfinite(c[tgt + 1:]).any()
                reason = "delisted" if gone else "halted"
                emit(h, reason, ed, p0, index[j], c[j], j - i_d)
    return _trades_frame(rows)


_PER_PICK_LOOP = False  # True: the per-pick loop above, the reference tests compare the numpy core with


def _trades_frame(rows: list[dict[str, Any]] | dict[str, Any]) -> pd.DataFrame:
    """The trades table from row dicts or from column arrays, with its dtypes fixed in one place."""
    df = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    for col in ("date", "entry_date", "exit_date"):
        df[col] = pd.to_datetime(df[col])
    for col in ("entry_price", "exit_price", "gross_return", "return", "score", "rank", "held"):
        df[col] = df[col].astype(float)
    df["horizon"] = df["horizon"].astype("int64")
    return df


# --------------------------------------------------------------------------
# summary and equity (pure)
# --------------------------------------------------------------------------

def summarize(trades: pd.DataFrame) -> pd.DataFrame:
    """Per horizon: count, win_rate, mean, median, profit_factor, best, worst, not_traded.

    ``count`` is the number of trades with a return; ``not_traded`` the picks
    without one (untradable, no data, no next session, incomplete).  Returns are
    net of costs, as fractions (0.012 = +1.2 %).  ``profit_factor`` = sum of
    gains / sum of losses (``inf`` without losses, NaN without trades).
    """
    out = []
    for h, g in trades.groupby("horizon", sort=True):
        r = g["return"].dropna()
        gains, losses = r[r > 0].sum(), -r[r < 0].sum()
        pf = gains / losses if losses > 0 else (np.inf if gains > 0 else np.nan)
        out.append({"horizon": int(h), "count": int(r.size),
                    "win_rate": float((r > 0).mean()) if r.size else np.nan,
                    "mean": float(r.mean()) if r.size else np.nan,
                    "median": float(r.median()) if r.size else np.nan,
                    "profit_factor": float(pf),
                    "best": float(r.max()) if r.size else np.nan,
                    "worst": float(r.min()) if r.size else np.nan,
                    "not_traded": int(g["return"].isna().sum())})
    cols = ["count", "win_rate", "mean", "median", "profit_factor", "best", "worst", "not_traded"]
    if not out:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="horizon", dtype="int64"))
    return pd.DataFrame(out).set_index("horizon")[cols]


def equity_curve(trades: pd.DataFrame, close: pd.DataFrame, sessions: Sequence[Any], horizon: int,
                 cost_bps: float = DEFAULT_COST_BPS) -> pd.DataFrame:
    """Daily equity of the equal-weight overlapping-cohort portfolio for one horizon (pure).

    ``trades`` as from :func:`evaluate_trades`; ``close`` the same one-basis
    close panel; ``sessions`` the scanned sessions in order (each one a cohort,
    with or without picks).  Returns a frame indexed by session from the first
    scanned session to ``horizon`` sessions after the last one (or the last row
    of ``close``, if sooner) with columns ``equity``
    (starts from 1.0), ``drawdown`` (<= 0), ``return`` (daily) and
    ``positions`` (positions held during the session).  The rule is in the
    module docstring.
    """
    H = _check_positive_int(horizon, "horizon", hi=MAX_HORIZON)
    cost_bps = _check_cost(cost_bps)
    index = pd.DatetimeIndex(close.index)
    sess = pd.DatetimeIndex(pd.to_datetime(list(sessions))).sort_values()
    if len(sess) == 0:
        raise InvalidInputError("sessions is empty; the equity curve needs the scanned sessions")
    spos = index.get_indexer(sess)
    if (spos < 0).any():
        raise InvalidInputError(f"session {sess[spos < 0][0].date()} is not in the close panel's index")
    return equity_aligned(trades, close, sess, H, cost_bps)


# --------------------------------------------------------------------------
# the result object
# --------------------------------------------------------------------------

@dataclass
class BacktestResult:
    """What a backtest produced.

    Attributes: ``trades`` (one row per pick and horizon), ``picks`` (the scan
    results with a ``date`` column), ``prices`` (the one-basis evaluation
    panels), ``sessions`` (scanned sessions), ``params`` (the arguments).

    Example::

        >>> res.summary().style.format("{:.2%}", subset=["win_rate", "mean", "median"])
        >>> res.equity_for(5)["drawdown"].min()
        >>> res.plot().savefig("backtest.png")
    """

    trades: pd.DataFrame
    picks: pd.DataFrame
    prices: dict[str, pd.DataFrame]
    sessions: pd.DatetimeIndex
    params: dict[str, Any] = field(default_factory=dict)
    _equity: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def horizons(self) -> tuple[int, ...]:
        return tuple(self.params.get("horizons", sorted(self.trades["horizon"].unique())))

    @property
    def equity_horizon(self) -> int:
        """The horizon ``equity`` uses: ``params['equity_horizon']``, else the longest one."""
        return int(self.params.get("equity_horizon") or max(self.horizons))

    def summary(self) -> pd.DataFrame:
        """Per horizon: count, win_rate, mean, median, profit_factor, best, worst, not_traded."""
        return summarize(self.trades)

    def equity_for(self, horizon: int) -> pd.DataFrame:
        """The portfolio's daily ``equity``, ``drawdown``, ``return`` and ``positions`` for one horizon."""
        if horizon not in self.horizons:
            raise InvalidInputError(f"horizon={horizon!r} was not backtested; choose one of {self.horizons}")
        if horizon not in self._equity:
            self._equity[horizon] = equity_curve(self.trades, self.prices["close"], self.sessions, horizon,
                                                 self.params.get("cost_bps", DEFAULT_COST_BPS))
        return self._equity[horizon]

    @property
    def equity(self) -> pd.DataFrame:
        """``equity_for(self.equity_horizon)``: equity and drawdown of the longest horizon by default."""
        return self.equity_for(self.equity_horizon)

    def exit_reasons(self) -> pd.DataFrame:
        """How many rows ended for each reason, per horizon."""
        return (self.trades.groupby(["horizon", "exit_reason"]).size().unstack(fill_value=0)
                if len(self.trades) else pd.DataFrame())

    def stats(self, risk_free: float = 0.0, benchmark: Any = "default") -> pd.DataFrame:
        """Per horizon: return, risk, drawdown, trade and benchmark statistics (formulas: ``finder.analysis.stats``)."""
        from .stats import result_stats

        return result_stats(self, risk_free=risk_free, benchmark=benchmark)

    def plot(self, horizon: int | None = None, benchmark: Any = "default") -> "Figure":
        """Equity (with the benchmark index) and drawdown, return distribution and win rate; returns the Figure."""
        from ..plots.backtest import plot_backtest

        return plot_backtest(self, horizon=horizon, benchmark=benchmark)

    def __repr__(self) -> str:
        p = self.params
        span = f"{self.sessions[0].date()}..{self.sessions[-1].date()}" if len(self.sessions) else "empty"
        return (f"BacktestResult({p.get('conditions', '?')!r}, {span}, {len(self.sessions)} sessions, "
                f"{len(self.picks)} picks, horizons={self.horizons}, entry={p.get('entry')!r}, "
                f"cost_bps={p.get('cost_bps')})")


def simulate(picks: pd.DataFrame, prices: Mapping[str, pd.DataFrame], sessions: Sequence[Any] | None = None, *,
             horizons: Sequence[int] = DEFAULT_HORIZONS, entry: str = "next_open",
             take_profit: float | None = None, stop_loss: float | None = None,
             cost_bps: float = DEFAULT_COST_BPS, equity_horizon: int | None = None,
             delisted: Collection[str] = (), params: Mapping[str, Any] | None = None,
             final_end: Any = None) -> BacktestResult:
    """Turn picks and one-basis price panels into a :class:`BacktestResult` (pure).

    ``sessions`` are the scanned sessions (cohorts for the equity curve); by
    default the distinct pick dates.  ``delisted``: codes known to be delisted
    (see :func:`evaluate_trades`).  Use this to backtest picks made any way
    you like, e.g. from your own ``scan_panels`` loop::

        >>> res = simulate(my_picks, {"open": o, "high": h, "low": l, "close": c},
        ...                sessions=c.index[:20], horizons=(5,))
    """
    horizons, entry, tp, sl, cost = _check_params(horizons, entry, take_profit, stop_loss, cost_bps)
    if equity_horizon is not None and equity_horizon not in horizons:
        raise InvalidInputError(f"equity_horizon={equity_horizon!r} is not one of horizons={horizons}")
    index, px = _align_prices(prices)
    picks = picks if picks is not None else pd.DataFrame(columns=["date", "code"])
    if sessions is None:
        sessions = pd.DatetimeIndex(pd.to_datetime(picks["date"])).unique().sort_values()
    trades = evaluate_trades(picks, px, horizons=horizons, entry=entry, take_profit=tp, stop_loss=sl,
                             cost_bps=cost, delisted=frozenset(delisted), final_end=final_end)
    all_params = {**(params or {}), "horizons": horizons, "entry": entry, "take_profit": tp,
                  "stop_loss": sl, "cost_bps": cost, "equity_horizon": equity_horizon}
    return BacktestResult(trades=trades, picks=picks, prices=px,
                          sessions=pd.DatetimeIndex(pd.to_datetime(list(sessions)), name="date"),
                          params=all_params)


# --------------------------------------------------------------------------
# data loading: the public entry point
# --------------------------------------------------------------------------

def backtest(conditions: Any = "momentum", start: Any = None, end: Any = None, *,
             universe: Any = "KOSPI+KOSDAQ", horizons: Sequence[int] | int = DEFAULT_HORIZONS,
             entry: str = "next_open", take_profit: float | None = None, stop_loss: float | None = None,
             cost_bps: float = DEFAULT_COST_BPS, max_picks: int | None = None, lookback: int = 220,
             equity_horizon: int | None = None, progress: bool = True, engine: str = "auto") -> BacktestResult:
    """Run ``conditions`` on every XKRX session in ``[start, end]`` and measure its picks.

    Arguments:
        conditions: a preset name (``"momentum"``) or a condition object, as
            :func:`finder.analysis.scanner.scan` accepts.
        start, end: the scanned range; ``'YYYYMMDD'``, ``'YYYY-MM-DD'``,
            ``datetime.date`` or ``Timestamp``.  ``end`` may not be after today.
        universe: as ``scan`` accepts (point-in-time membership is the scan's job).
        horizons: sessions after the pick date at which each trade is closed.
        entry: ``"next_open"`` (default) or ``"close"`` of the pick date.
        take_profit, stop_loss: fractions such as 0.05 (5 %); ``None`` = off.
            The old screener's "swing" rule was ``take_profit=0.05, stop_loss=0.05``
            with 3-10 session holds.
        cost_bps: round-trip cost in basis points (default 25; module docstring).
        max_picks: keep only the top ``max_picks`` picks of each session by rank.
        lookback: bars each scan uses (default 220, the old screener's window).
        equity_horizon: the horizon ``result.equity`` shows (default the longest).
        progress: show a tqdm progress bar of sessions done.
        engine: ``"auto"`` (default) scans the whole range at once
            (:mod:`finder.analysis._range`: one load, each indicator computed
            once, the same picks as ``scan`` per session) and falls back to
            ``"session"`` (``scan(d)`` for every session, the reference) when
            the screen or universe needs it; ``"range"`` refuses to fall back.

    Every argument is checked before any request; bad ones raise
    :class:`~finder._exceptions.InvalidInputError` naming the value.

    Example::

        >>> res = backtest("momentum", "2025-09-01", "2025-09-30", universe="KOSPI",
        ...                horizons=(1, 5), take_profit=0.05, stop_loss=0.05, max_picks=10)
        >>> res.summary()
    """
    # -- 1. validate everything before any data request ------------------
    if start is None or end is None:
        raise InvalidInputError(f"start={start!r} and end={end!r}: both are required, e.g. "
                                "start='2025-09-01', end='2025-09-30'")
    start_ts = calendar.parse_date(start, "start")
    end_ts = calendar.parse_date(end, "end")
    today = calendar.today()
    if end_ts > today:
        raise InvalidInputError(f"end={end!r} is in the future (today is {today.date()} KST)")
    if start_ts > end_ts:
        raise InvalidInputError(f"start={start!r} is after end={end!r}")
    horizons_t, entry, tp, sl, cost = _check_params(horizons, entry, take_profit, stop_loss, cost_bps)
    max_picks = _check_positive_int(max_picks, "max_picks", allow_none=True)
    lookback = _check_positive_int(lookback, "lookback", lo=21, hi=10_000)
    if equity_horizon is not None and equity_horizon not in horizons_t:
        raise InvalidInputError(f"equity_horizon={equity_horizon!r} is not one of horizons={horizons_t}")
    if not isinstance(progress, bool):
        raise InvalidInputError(f"progress={progress!r} is not True or False")
    _check_conditions(conditions, universe)
    sessions = calendar.sessions_in_range(start_ts, end_ts)
    if len(sessions) == 0:
        raise InvalidInputError(f"there is no XKRX session from start={start!r} to end={end!r}")

    sessions = _scannable(sessions)
    if len(sessions) == 0:
        raise InvalidInputError(f"there is no session to scan from start={start!r} to end={end!r}: "
                                "today's session has not opened yet")
    if engine not in ENGINES:
        raise InvalidInputError(f"engine={engine!r} is not one of {ENGINES}")

    # -- 2. the picks: session d sees bars up to d, adjusted as of d -----------
    prepared = None
    if engine in ("auto", "range"):
        try:
            prepared = prepare_backtest(sessions[0], sessions[-1], universe=universe, lookback=lookback,
                                        progress=progress)
            picks_all = prepared.picks(conditions, max_picks)
        except _range.Unsupported as exc:
            if engine == "range":
                raise InvalidInputError(f"engine='range' cannot run this backtest: {exc}") from None
            logger.info("backtest: scanning session by session (%s)", exc)
            prepared = None
    prices = None
    if prepared is None:
        picks_all = _picks_per_session(sessions, conditions, universe, lookback, max_picks, progress)
    else:
        prices = prepared.prices(_evaluation_end(sessions[-1], max(horizons_t)), picks_all)
    logger.info("backtest: %d picks over %d sessions", len(picks_all), len(sessions))
    return _finish(picks_all, sessions, conditions, universe, horizons_t, entry, tp, sl, cost, max_picks,
                   lookback, equity_horizon, engine="range" if prepared is not None else "session", prices=prices)


ENGINES = ("auto", "range", "session")


def _scannable(sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Drop today when its session has not opened: ``scan(today)`` would scan the previous session again."""
    from .scanner import resolve_session

    if len(sessions) and sessions[-1] == calendar.today():
        _, session, _ = resolve_session(sessions[-1])
        if session != sessions[-1]:
            return sessions[:-1]
    return sessions


def _picks_per_session(sessions: pd.DatetimeIndex, conditions: Any, universe: Any, lookback: int,
                       max_picks: int | None, progress: bool) -> pd.DataFrame:
    """The reference path: ``scan(d)`` for every session."""
    from . import scanner  # imported late: the scanner pulls in the data layer

    tqdm = _tqdm()
    frames = []
    for d in tqdm(sessions, desc="backtest", unit="session", disable=not progress):
        picks = scanner.scan(d, universe=universe, conditions=conditions, lookback=lookback, top=max_picks)
        if len(picks):
            # the scanner ranks in the index (named "rank", from 1)
            picks = picks.reset_index() if picks.index.name == "rank" else picks.reset_index(drop=True)
            if "rank" not in picks.columns:
                picks.insert(0, "rank", np.arange(1, len(picks) + 1))
            picks.insert(0, "date", d)
            frames.append(picks)
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=["date", "rank", "code", "name", "score"]))


def _finish(picks_all: pd.DataFrame, sessions: pd.DatetimeIndex, conditions: Any, universe: Any,
            horizons_t: tuple[int, ...], entry: str, tp: float | None, sl: float | None, cost: float,
            max_picks: int | None, lookback: int, equity_horizon: int | None, engine: str,
            prices: Mapping[str, Any] | None = None) -> BacktestResult:
    # -- 3. one evaluation panel, one adjustment basis ---------------------
    eval_end = _evaluation_end(sessions[-1], max(horizons_t))
    timeline = calendar.sessions_in_range(sessions[0], eval_end)
    if prices is None:
        prices = _load_prices(sorted(set(picks_all["code"])), timeline)
    prices = dict(prices)
    final_end = calendar.latest_final_session()
    final_end = final_end if final_end < timeline[-1] else None

    delisted = _known_delisted(prices)
    params = {"conditions": conditions if isinstance(conditions, str) else repr(conditions),
              "start": sessions[0], "end": sessions[-1], "universe": universe if isinstance(universe, str)
              else repr(universe), "max_picks": max_picks, "lookback": lookback, "eval_end": eval_end,
              "missing": prices.pop("_missing", []), "delisted": sorted(delisted), "engine": engine}
    return simulate(picks_all, prices, sessions, horizons=horizons_t, entry=entry, take_profit=tp,
                    stop_loss=sl, cost_bps=cost, equity_horizon=equity_horizon, delisted=delisted, params=params,
                    final_end=final_end)


# --------------------------------------------------------------------------
# prepared data: load once, backtest many screens (for sweeps)
# --------------------------------------------------------------------------

@dataclass
class PreparedBacktest:
    """A universe's bars over a range, loaded once, to backtest many screens and trade rules.

    Build with :func:`prepare_backtest`, then call :meth:`run` as often as
    you like: indicators shared by screens are computed once, and the
    evaluation prices are loaded once per evaluation end.

    Example::

        >>> prep = prepare_backtest("2025-01-02", "2025-06-30", universe="KOSPI")
        >>> for n in (10, 20, 30):
        ...     res = prep.run(momentum(tema_n=n), horizons=(5,), max_picks=10)
    """

    sessions: pd.DatetimeIndex
    universe: Any
    lookback: int
    range: Any                                  # _range.Prepared for the final sessions
    live: pd.Timestamp | None = None            # today's live session, scanned on its own

    def picks(self, conditions: Any = "momentum", max_picks: int | None = None) -> pd.DataFrame:
        """Every session's ranked picks (``date, rank, code, ...``), as ``scan`` ranks them."""
        max_picks = _check_positive_int(max_picks, "max_picks", allow_none=True)
        out = self.range.scan(conditions, top=max_picks)
        if self.live is not None:
            live = _picks_per_session(pd.DatetimeIndex([self.live]), conditions, self.universe, self.lookback,
                                      max_picks, progress=False)
            out = pd.concat([out, live], ignore_index=True) if len(live) else out
        return out

    def run(self, conditions: Any = "momentum", *, horizons: Sequence[int] | int = DEFAULT_HORIZONS,
            entry: str = "next_open", take_profit: float | None = None, stop_loss: float | None = None,
            cost_bps: float = DEFAULT_COST_BPS, max_picks: int | None = None,
            equity_horizon: int | None = None) -> BacktestResult:
        """Backtest ``conditions`` on the prepared range; the same result as :func:`backtest`."""
        horizons_t, entry, tp, sl, cost = _check_params(horizons, entry, take_profit, stop_loss, cost_bps)
        if equity_horizon is not None and equity_horizon not in horizons_t:
            raise InvalidInputError(f"equity_horizon={equity_horizon!r} is not one of horizons={horizons_t}")
        _check_conditions(conditions, self.universe)
        picks_all = self.picks(conditions, max_picks)
        eval_end = _evaluation_end(self.sessions[-1], max(horizons_t))
        prices = self.prices(eval_end, picks_all)
        return _finish(picks_all, self.sessions, conditions, self.universe, horizons_t, entry, tp, sl, cost,
                       max_picks, self.lookback, equity_horizon, engine="range", prices=prices)

    def prices(self, eval_end: pd.Timestamp, picks_all: pd.DataFrame) -> dict[str, Any]:
        """OHLC of the picked stocks on the sessions the trades need, adjusted as of ``eval_end``.

        When the trades end with the loaded range they come from the bars in
        memory (the rows ``get_panel`` would serve); otherwise one
        ``get_panel`` call loads them.
        """
        codes = sorted(set(picks_all["code"])) if len(picks_all) else []
        timeline = calendar.sessions_in_range(self.sessions[0], eval_end)
        if self.live is None:
            out = self.range.data.panels(codes, timeline)
            if out is not None:
                if out["_missing"]:
                    logger.warning("backtest: no evaluation bars for %d picked stocks (%s); their picks are "
                                   "'no_data'", len(out["_missing"]), ", ".join(out["_missing"][:10]))
                return out
        return _load_prices(codes, timeline)


def prepare_backtest(start: Any, end: Any, *, universe: Any = "KOSPI+KOSDAQ", lookback: int = 220,
                     progress: bool = True) -> PreparedBacktest:
    """Load ``universe``'s bars for every session in ``[start, end]`` once (see :class:`PreparedBacktest`).

    Raises ``InvalidInputError`` for bad arguments (before any request) and
    when the range cannot be scanned at once (e.g. a universe with a
    liquidity window longer than the lookback), saying why.
    """
    start_ts = calendar.parse_date(start, "start")
    end_ts = calendar.parse_date(end, "end")
    if end_ts > calendar.today():
        raise InvalidInputError(f"end={end!r} is in the future (today is {calendar.today().date()} KST)")
    if start_ts > end_ts:
        raise InvalidInputError(f"start={start!r} is after end={end!r}")
    lookback = _check_positive_int(lookback, "lookback", lo=21, hi=10_000)
    from .universe import resolve_universe

    resolve_universe(universe)
    sessions = _scannable(calendar.sessions_in_range(start_ts, end_ts))
    if len(sessions) == 0:
        raise InvalidInputError(f"there is no session to scan from start={start!r} to end={end!r}")
    live = calendar.live_session()
    live = live if (live is not None and sessions[-1] == live) else None
    final = sessions[:-1] if live is not None else sessions
    if len(final) == 0:
        raise _range.Unsupported("only today's live session is in the range")
    rng = _range.prepare_range(final, universe, lookback, progress=progress)
    return PreparedBacktest(sessions=sessions, universe=universe, lookback=lookback, range=rng, live=live)


def _tqdm() -> Any:
    """``tqdm.auto.tqdm``, without its warning when Jupyter runs without ipywidgets (it falls back to text)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        from .._progress import progress as tqdm  # widget, terminal or a one-line log

    return tqdm


def _check_conditions(conditions: Any, universe: Any) -> None:
    """Refuse unknown presets, malformed conditions and universes before any request.

    The scanner owns both vocabularies; its parsers are pure (no I/O).
    """
    from .conditions import as_screen
    from .universe import resolve_universe

    as_screen(conditions)
    resolve_universe(universe)


def _evaluation_end(last_scan: pd.Timestamp, max_horizon: int) -> pd.Timestamp:
    """The last session the trades need: ``max_horizon`` sessions after the last scan, capped at final data."""
    d = last_scan
    for _ in range(max_horizon):
        d = calendar.next_session(d)
    return min(d, max(calendar.latest_final_session(), last_scan))


def _known_delisted(prices: Mapping[str, Any]) -> set[str]:
    """Picked stocks that stop trading before the data ends and are missing from today's stock lists.

    Kiwoom's lists (ka10099) hold current listings only, so absence there is
    the one fact that tells a delisting from a long halt.  The lists are asked
    for only when some stock stops trading, and are cached for the day.
    """
    close = prices["close"]
    if close.shape[1] == 0:
        return set()
    last_valid = close.notna().to_numpy()[::-1].argmax(axis=0)  # rows since each stock's last bar
    stopped = [c for c, k, any_ in zip(close.columns, last_valid, close.notna().any().to_numpy()) if any_ and k > 0]
    if not stopped:
        return set()
    from .. import data

    try:
        listed = set(data.get_stock_list(["KOSPI", "KOSDAQ", "ETF"])["code"].astype(str))
    except Exception as exc:  # without the lists a stop is reported as a halt, never guessed
        logger.warning("backtest: cannot read the stock lists to tell delistings from halts: %s", exc)
        return set()
    return {c for c in stopped if c not in listed}


def _load_prices(codes: list[str], timeline: pd.DatetimeIndex) -> dict[str, Any]:
    """OHLC panels for ``codes`` on ``timeline``, all adjusted as of its last session."""
    from .. import data

    empty = pd.DataFrame(index=timeline, columns=pd.Index([], dtype=object), dtype=float)
    if not codes:
        return {**{f: empty for f in PRICE_FIELDS}, "_missing": []}
    panels = data.get_panel(codes, count=len(timeline), base_dt=timeline[-1], field=list(PRICE_FIELDS),
                            adjusted=True)
    missing = list(getattr(panels.get("close"), "attrs", {}).get("missing", []) or [])
    if missing:
        logger.warning("backtest: no evaluation bars for %d picked stocks (%s); their picks are 'no_data'",
                       len(missing), ", ".join(missing[:10]))
    out: dict[str, Any] = {f: panels[f].reindex(timeline) for f in PRICE_FIELDS}
    out["_missing"] = missing
    return out

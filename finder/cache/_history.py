"""One stock's bar history in the cache, and how adjusted prices are rebuilt from it.

Kiwoom adjusts prices *as of the base_dt requested*: a series fetched with
``base_dt=B`` applies only corporate actions with ex-date ``<= B``.  So the
same old session carries different adjusted prices in answers with different
``base_dt``, and windows fetched at different ``base_dt`` cannot be stitched.

finder therefore keeps, per stock:

* the **raw** bars (``upd_stkpc_tp=0``), which never change, and
* the **corporate actions** (ex-date, price factor, volume factor), found by
  comparing one raw walk with one adjusted walk fetched at the same anchor:
  the ratio adjusted/raw is a step function whose steps are the actions.

Any ``base_dt = D`` is then rebuilt locally: ``adj_D(t) = round(raw(t) * prod(f_e
for actions e with t < ex_e <= D))``.  When no action lies between ``D`` and the
anchor, the adjusted numbers Kiwoom itself sent are returned unchanged.

Guarantee: equal to what Kiwoom returns for ``D`` where no action falls in
``(D, anchor]``; otherwise within 1 KRW (the rounding of a rebuilt product).
Actions are found from rounding-aware bounds (every price of a row, +/-0.5
KRW each), so a 2 KRW dividend on a 264 KRW stock is found.  Not guaranteed:
an action too small to move any price of the rows around it beyond rounding
is not detected; its effect on every price is then below 1 KRW.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PRICE_COLS = ("open", "high", "low", "close")


@dataclass
class Walk:
    """The rows of one upstream ka10081 walk (what the memoized fetch stores)."""

    code: str
    base_dt: np.datetime64          # the anchor the walk was fetched at (a final session)
    adjusted: bool
    dates: np.ndarray               # datetime64[D], ascending
    prices: np.ndarray              # float64 (n, 4): open, high, low, close
    volume: np.ndarray              # int64
    value: np.ndarray               # int64 (KRW)
    reached_start: bool             # nothing older exists upstream

    @classmethod
    def from_frame(cls, code: str, base_dt: pd.Timestamp, adjusted: bool, frame: pd.DataFrame,
                   reached_start: bool) -> "Walk":
        return cls(
            code=code,
            base_dt=np.datetime64(base_dt.date(), "D"),
            adjusted=adjusted,
            dates=frame.index.values.astype("datetime64[D]"),
            prices=frame[list(PRICE_COLS)].to_numpy(dtype="float64", copy=True),
            volume=frame["volume"].fillna(0).to_numpy().round().astype("int64"),
            value=frame["value"].fillna(0).to_numpy().round().astype("int64"),
            reached_start=reached_start,
        )


@dataclass
class Events:
    """Corporate actions: ex-dates with their price and volume factors."""

    ex: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[D]"))
    price: np.ndarray = field(default_factory=lambda: np.array([], dtype="float64"))
    volume: np.ndarray = field(default_factory=lambda: np.array([], dtype="float64"))

    def __len__(self) -> int:
        return len(self.ex)


# Kiwoom's adjusted price is round(raw * factor): within half a won of the exact product.  A hair
# more, so a product that lands exactly on .5 in floating point is never taken for a step.
_HALF = 0.5 + 1e-7


def factor_bounds(raw_prices: np.ndarray, adj_prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the interval of cumulative factors consistent with every price of the row.

    Each adjusted price ``a`` is ``raw * f`` rounded to a whole won, so ``f`` lies in
    ``[(a - 0.5) / raw, (a + 0.5) / raw]``; a row's factor lies in the intersection
    over its four prices (prices of zero say nothing and are skipped).
    """
    valid = (raw_prices > 0) & (adj_prices > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(valid, (adj_prices - _HALF) / raw_prices, -np.inf).max(axis=1)
        hi = np.where(valid, (adj_prices + _HALF) / raw_prices, np.inf).min(axis=1)
    return lo, hi


def _exact(estimate: float, newer: float, prev_close: float, bounds: tuple[float, float]) -> float:
    """The action's exact factor near ``estimate`` whose cumulative (``newer`` x it) fits ``bounds``.

    Tried in order: a split's 1/k or k (when the estimate is that close to it), then a whole-won
    reference price over the previous raw close (``B / prev_close``, a cash dividend).  None fits:
    the estimate.
    """
    lo, hi = bounds
    cands = []
    if estimate > 0:
        for m in (round(1 / estimate), round(estimate)):
            if m >= 2:
                for f in (1.0 / m, float(m)):
                    if abs(f / estimate - 1) < 1e-3:
                        cands.append(f)
        if prev_close > 0:
            cands.append(round(estimate * prev_close) / prev_close)
    for f in cands:
        if lo <= newer * f <= hi:
            return f
    return estimate


def find_events(raw: Walk, adj: Walk) -> Events:
    """The corporate actions visible between a raw and an adjusted walk with the same anchor.

    Both walks hold Kiwoom's integers, each adjusted price the raw one times
    the cumulative factor, rounded to the nearest won.  So each row bounds its
    factor to an interval (:func:`factor_bounds`, all four prices), and rows
    belong to one step exactly when their intervals share a point.  Steps are
    grown from the newest row back (the newest step is the one that must hold
    1): a row whose interval misses the step's common interval starts an older
    step, and the action's ex-date is the first row of the newer step.  This
    finds an action whenever it moves any price of the rows on both sides by
    more than the rounding can explain (a 2 KRW dividend on a 264 KRW stock
    included).  Each step's factor is then estimated from all of its rows.
    """
    common, ri, ai = np.intersect1d(raw.dates, adj.dates, return_indices=True)
    if len(common) == 0:
        return Events()
    rp, ap = raw.prices[ri], adj.prices[ai]
    rs, as_ = rp.sum(axis=1), ap.sum(axis=1)
    rv = raw.volume[ri].astype("float64")
    av = adj.volume[ai].astype("float64")
    ok = (rs > 0) & (as_ > 0)
    dates, rp, ap, rs, as_, rv, av = common[ok], rp[ok], ap[ok], rs[ok], as_[ok], rv[ok], av[ok]
    if len(dates) == 0:
        return Events()
    lo, hi = factor_bounds(rp, ap)
    # Grow steps from the newest row back; starts[] are each step's first (oldest) row.
    n = len(dates)
    starts_rev = []
    lo_l, hi_l = lo.tolist(), hi.tolist()  # plain floats: this loop runs once per row
    cur_lo, cur_hi = lo_l[-1], hi_l[-1]
    # A stock that traded on the adjusted walk's anchor has had no action after its last row,
    # so its newest step is exactly 1.  Without this pin, on a low price (where +-0.5 won spans
    # a dividend's factor) rows of an older step could join it and move its interval off 1:
    # a phantom action after the last row, which as-of answers would then undo.
    pinned = bool(dates[-1] >= adj.base_dt) and cur_lo <= 1.0 <= cur_hi
    if pinned:
        cur_lo = cur_hi = 1.0
    for i in range(n - 2, -1, -1):
        new_lo, new_hi = max(cur_lo, lo_l[i]), min(cur_hi, hi_l[i])
        if new_lo > new_hi:
            starts_rev.append(i + 1)
            cur_lo, cur_hi = lo_l[i], hi_l[i]
        else:
            cur_lo, cur_hi = new_lo, new_hi
    starts = np.array([0] + starts_rev[::-1], dtype=int)
    ends = np.concatenate([starts[1:], [n]])
    seg_bounds = [(lo[s:e].max(), hi[s:e].min()) for s, e in zip(starts, ends)]
    seg_price = np.array([min(max(as_[s:e].sum() / rs[s:e].sum(), b[0]), b[1])
                          for (s, e), b in zip(zip(starts, ends), seg_bounds)])
    seg_vol = np.array([(av[s:e].sum() / rv[s:e].sum()) if rv[s:e].sum() > 0 else 1.0 for s, e in zip(starts, ends)])
    # The newest step should be 1 (nothing after the last row up to the anchor).  If its rows
    # cannot hold 1, an action happened after the stock's last row (e.g. during a suspension).
    newest_lo, newest_hi = seg_bounds[-1]
    after_last = not pinned and not (newest_lo <= 1.0 <= newest_hi)
    # Each action's factor is the exchange's: a whole-won reference price over the previous close
    # (B / P), or a split's 1/k.  Snapping the estimate to that form (when it fits every row of the
    # older step) makes rebuilt prices exact rather than within a won.  Newest step first.
    cum = np.empty(len(starts))
    cum[-1] = _exact(seg_price[-1], 1.0, rp[-1, 3], seg_bounds[-1]) if after_last else 1.0
    for k in range(len(starts) - 1, 0, -1):
        cum[k - 1] = cum[k] * _exact(seg_price[k - 1] / cum[k], cum[k], rp[starts[k] - 1, 3], seg_bounds[k - 1])
    ex, pf, vf = [], [], []
    for k in range(1, len(starts)):
        ex.append(dates[starts[k]])
        pf.append(cum[k - 1] / cum[k])
        vf.append(seg_vol[k - 1] / seg_vol[k])
    if after_last:
        ex.append(dates[-1] + np.timedelta64(1, "D"))
        pf.append(cum[-1])
        vf.append(seg_vol[-1])
    return Events(np.array(ex, dtype="datetime64[D]"), np.array(pf, dtype="float64"), np.array(vf, dtype="float64"))


@dataclass
class History:
    """A stock's cached bars: raw prices, Kiwoom's adjusted prices as of ``anchor``, and the actions."""

    code: str
    anchor: np.datetime64           # last final session the history covers
    reached_start: bool
    dates: np.ndarray               # datetime64[D] ascending
    raw: np.ndarray                 # float64 (n, 4)
    adj: np.ndarray                 # float64 (n, 4): adjusted as of anchor (Kiwoom's own numbers)
    raw_volume: np.ndarray          # int64
    adj_volume: np.ndarray          # int64
    value: np.ndarray               # int64
    events: Events
    frames: dict = field(default_factory=dict)  # in-memory helpers (the ns date index), never stored

    def __getstate__(self) -> dict:
        # Only arrays go to disk: they unpickle in a few microseconds, and get_panel never
        # needs a frame; get_ohlcv builds one from the rows it returns.
        state = dict(self.__dict__)
        state["frames"] = {}
        return state

    def _index(self, lo: int, hi: int) -> pd.DatetimeIndex:
        if "index" not in self.frames:
            self.frames["index"] = pd.DatetimeIndex(self.dates.astype("datetime64[ns]"), name="date")
        return self.frames["index"][lo:hi]

    # -- compact storage: one bytes blob, so a cache hit is one C-speed unpickle --
    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(blob: bytes) -> "History":
        obj = pickle.loads(blob)
        if not isinstance(obj, History):
            raise TypeError("not a finder History")
        return obj

    # -- queries ---------------------------------------------------------------
    @property
    def first(self) -> np.datetime64 | None:
        return self.dates[0] if len(self.dates) else None

    @property
    def last_row(self) -> np.datetime64 | None:
        return self.dates[-1] if len(self.dates) else None

    def rows_on_or_before(self, end: np.datetime64) -> int:
        return int(np.searchsorted(self.dates, end, "right"))

    def covers(self, end: np.datetime64, count: int) -> bool:
        """True when the last ``count`` bars on or before ``end`` are all here."""
        return end <= self.anchor and (self.reached_start or self.rows_on_or_before(end) >= count)

    def arrays(self, end: np.datetime64, count: int, adjusted: bool, as_of: np.datetime64 | None = None):
        """(dates, prices (n,4), volume, value) for the last ``count`` rows on or before ``end``.

        Adjusted rows are as of ``as_of`` (default ``end``), which must be on or
        before the anchor: actions after ``as_of`` are taken out.
        """
        hi = self.rows_on_or_before(end)
        lo = max(0, hi - count)
        dates = self.dates[lo:hi]
        if not adjusted:
            return dates, self.raw[lo:hi], self.raw_volume[lo:hi], self.value[lo:hi]
        as_of = end if as_of is None else as_of
        ev = self.events
        later = (ev.ex > as_of) & (ev.ex <= self.anchor)
        if not later.any():
            return dates, self.adj[lo:hi], self.adj_volume[lo:hi], self.value[lo:hi]
        # Rebuild from raw: each row gets the actions with t < ex <= as_of.
        use = ev.ex <= as_of
        ex, pf, vf = ev.ex[use], ev.price[use], ev.volume[use]
        if len(ex) == 0:
            return dates, self.raw[lo:hi], self.raw_volume[lo:hi], self.value[lo:hi]
        # suffix products: factor for a row = product of factors with ex > t
        suffix_p = np.concatenate([np.cumprod(pf[::-1])[::-1], [1.0]])
        suffix_v = np.concatenate([np.cumprod(vf[::-1])[::-1], [1.0]])
        k = np.searchsorted(ex, dates, "right")
        fp, fv = suffix_p[k], suffix_v[k]
        prices = np.round(self.raw[lo:hi] * fp[:, None])
        volume = np.round(self.raw_volume[lo:hi] * fv).astype("int64")
        return dates, prices, volume, self.value[lo:hi]

    def frame(self, end: np.datetime64, count: int, adjusted: bool, as_of: np.datetime64 | None = None) -> pd.DataFrame:
        as_of = end if as_of is None else as_of
        ev = self.events
        rebuild = adjusted and bool(((ev.ex > as_of) & (ev.ex <= self.anchor)).any())
        if not rebuild and len(self.dates):
            # Kiwoom's own numbers: build the frame straight from the rows asked for (cheaper
            # than building the whole history's frame and slicing it).
            hi = self.rows_on_or_before(end)
            lo = max(0, hi - count)
            prices, volume = (self.adj, self.adj_volume) if adjusted else (self.raw, self.raw_volume)
            return bars_frame(None, prices[lo:hi], volume[lo:hi], self.value[lo:hi], index=self._index(lo, hi))
        dates, prices, volume, value = self.arrays(end, count, adjusted, as_of)
        return bars_frame(dates, prices, volume, value)


def bars_frame(dates: np.ndarray | None, prices: np.ndarray, volume: np.ndarray, value: np.ndarray,
               index: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """The public frame shape: ``date`` index, float OHLC, int64 volume and value."""
    if index is None:
        index = pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="date")
    # copy=True: the frame owns its memory (never shares the history's arrays) and is built
    # consolidated, one float and one int64 block; a frame of six blocks costs every later
    # copy, slice and unpickle a consolidation (about 2x on a warm get_ohlcv hit).
    return pd.DataFrame(
        {"open": prices[:, 0], "high": prices[:, 1], "low": prices[:, 2], "close": prices[:, 3],
         "volume": np.asarray(volume, dtype="int64"), "value": np.asarray(value, dtype="int64")},
        index=index, copy=True,
    )


def build(code: str, raw: Walk, adj: Walk, extensions: list[Walk], priors: list[Walk] = ()) -> History:
    """Assemble a history: raw rows from a raw walk plus extensions, adjusted rows from one reference.

    * ``raw``: a raw walk; ``extensions`` (later adjusted walks, raw walks or
      quote bars) each add the rows after the current last row.  An adjusted
      walk or quote is a raw extension only where no corporate action falls
      between its rows and its anchor; the planner checked that, or uses the
      walk's newest row alone, which is raw by definition (nothing after it).
    * ``adj``: the reference adjusted walk; rows it holds carry Kiwoom's own
      adjusted numbers, rows after its anchor are raw (no action since), and the
      corporate actions are the steps of adj/raw over the rows both hold.
    * ``priors``: earlier adjusted references, kept after a corporate action so
      the new reference need not reach back as far: actions up to the new
      reference's first row are taken from them.
    """
    dates, prices = raw.dates, raw.prices
    volume, value = raw.volume, raw.value
    for w in extensions:
        new = w.dates > dates[-1] if len(dates) else np.ones(len(w.dates), bool)
        if new.any():
            dates = np.concatenate([dates, w.dates[new]])
            prices = np.concatenate([prices, w.prices[new]])
            volume = np.concatenate([volume, w.volume[new]])
            value = np.concatenate([value, w.value[new]])
    anchor = max([raw.base_dt, adj.base_dt] + [w.base_dt for w in extensions])
    rows = Walk(code, anchor, False, dates, prices, volume, value, raw.reached_start)
    events = find_events(rows, adj)
    if len(priors) and len(adj.dates):
        first = adj.dates[0]
        old = [find_events(rows, p) for p in priors]
        keep = [(e.ex[e.ex <= first], e.price[e.ex <= first], e.volume[e.ex <= first]) for e in old]
        ex = np.concatenate([events.ex] + [k[0] for k in keep])
        if len(ex):
            ex, idx = np.unique(ex, return_index=True)  # the same action seen twice counts once
            pf = np.concatenate([events.price] + [k[1] for k in keep])[idx]
            vf = np.concatenate([events.volume] + [k[2] for k in keep])[idx]
            events = Events(ex, pf, vf)
    adj_prices, adj_volume = prices.copy(), volume.copy()
    _, ri, ai = np.intersect1d(dates, adj.dates, return_indices=True)
    adj_prices[ri], adj_volume[ri] = adj.prices[ai], adj.volume[ai]
    older = dates < adj.dates[0] if len(adj.dates) else np.zeros(len(dates), bool)
    if older.any() and len(events):
        # Rows older than the reference (it should reach as far; be safe): rebuild them.
        later = events.ex > dates[older][:, None]
        fp = np.where(later, events.price, 1.0).prod(axis=1)
        fv = np.where(later, events.volume, 1.0).prod(axis=1)
        adj_prices[older] = np.round(prices[older] * fp[:, None])
        adj_volume[older] = np.round(volume[older] * fv).astype("int64")
    return History(
        code=code,
        anchor=anchor,
        reached_start=bool(raw.reached_start),
        dates=dates,
        raw=prices,
        adj=adj_prices,
        raw_volume=volume,
        adj_volume=adj_volume,
        value=value,
        events=events,
    )


def quote_adds_no_action(history: History, session: np.datetime64, previous: np.datetime64, base_price: float) -> bool:
    """True when a quote's reference price equals our close of the previous session.

    The exchange's reference price is the previous close, except on an
    ex-rights or ex-distribution day, when it is adjusted: a difference means
    a corporate action.  Only meaningful when the stock traded on the session
    before ``session`` (its last row is that session).
    """
    if history.last_row is None or history.last_row != previous or history.anchor != previous:
        return False
    return bool(base_price == history.adj[-1][3])


def adds_no_action(history: History, forward: Walk) -> bool:
    """True when an adjusted walk at a later anchor agrees exactly with our last row.

    Kiwoom's adjusted numbers for a row change only when a corporate action
    falls after it; identical integers mean none happened in between.
    """
    last = history.last_row
    if last is None:
        return True
    i = np.searchsorted(forward.dates, last)
    if i >= len(forward.dates) or forward.dates[i] != last:
        return False  # no overlap to check against: be safe
    return bool(np.array_equal(forward.prices[i], history.adj[-1]) and forward.volume[i] == history.adj_volume[-1])

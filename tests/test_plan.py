"""Property tests of the pure cache planner (``finder.cache._plan``), over random histories.

No server and no disk: a small synthetic stock (random listing day, prices,
splits and dividends) answers walks the way Kiwoom does (the last ``depth``
rows on or before ``base_dt``, adjusted as of ``base_dt``), and a sequence of
requests with a moving clock is planned and executed the way ``Store.ensure``
does it.  Seeded random loops (no extra dependency); every failure prints its
seed.

Properties:

* the history a plan returns always covers the request: ``count`` bars on or
  before ``end``, or every bar the stock has (item 2 of issue 10: never a
  short frame, after a corporate action included);
* its adjusted bars equal Kiwoom's as of ``end`` within 1 KRW;
* folding a spec (``compacted``) changes nothing in the history, and keeps a
  spec short however many sessions it is extended by.
"""

from __future__ import annotations

import numpy as np
import pytest

from finder.cache._history import Walk, build
from finder.cache._plan import Fetch, Use, WalkRef, compacted, extensions, plan
from finder.cache._store import _same_history


class Stock:
    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = int(rng.integers(700, 1600))
        self.sessions = np.busday_offset(np.datetime64("2019-01-02"), np.arange(n), roll="forward").astype("datetime64[D]")
        self.listed = int(rng.integers(0, n - 5)) if rng.random() < 0.5 else 0
        dates = self.sessions[self.listed:]
        m = len(dates)
        level = float(rng.choice([250.0, 3_000.0, 60_000.0]))
        close = np.maximum(np.round(level * np.exp(np.cumsum(rng.normal(0, 0.015, m)))), 10)
        open_ = np.maximum(np.round(close * (1 + rng.normal(0, 0.004, m))), 10)
        high = np.maximum(open_, close) + np.round(rng.uniform(0, 0.01, m) * close)
        low = np.maximum(np.minimum(open_, close) - np.round(rng.uniform(0, 0.01, m) * close), 1)
        self.dates = dates
        self.raw = np.column_stack([open_, high, low, close]).astype("float64")
        self.volume = rng.integers(1_000, 1_000_000, m).astype("int64")
        self.value = (self.volume * close).astype("int64")
        k = int(rng.integers(0, 4))
        idx = sorted(set(int(i) for i in rng.integers(1, m, k))) if m > 2 else []
        # splits and big dividends: small ones are item 3's test, not the planner's
        self.events = [(dates[i], float(rng.choice([0.5, 0.2, 0.9, 0.93, 2.0]))) for i in idx]

    def gap(self, a, b) -> int:
        a, b = np.datetime64(a, "D"), np.datetime64(b, "D")
        if b <= a:
            return 0
        return int(np.searchsorted(self.sessions, b, "right") - np.searchsorted(self.sessions, a, "right"))

    def adjusted(self, upto: int, as_of) -> tuple[np.ndarray, np.ndarray]:
        f = np.ones(upto)
        for ex, pf in self.events:
            if ex <= as_of:
                f[self.dates[:upto] < ex] *= pf
        return np.round(self.raw[:upto] * f[:, None]), np.round(self.volume[:upto] / f).astype("int64")

    def walk(self, ref: WalkRef) -> Walk:
        base = np.datetime64(ref.base_dt, "D")
        hi = int(np.searchsorted(self.dates, base, "right"))
        lo = max(0, hi - int(ref.depth))
        if ref.kind == "raw":
            prices, volume = self.raw[:hi], self.volume[:hi]
        else:  # adj, prior, quote: as of base_dt (a quote's row is the newest: raw = adjusted)
            prices, volume = self.adjusted(hi, base)
        return Walk("000000", base, ref.kind != "raw", self.dates[lo:hi], prices[lo:hi], volume[lo:hi],
                    self.value[lo:hi], reached_start=lo == 0)

    def history(self, spec):
        walks = [self.walk(r) for r in spec if r.kind != "prior"]
        priors = [self.walk(r) for r in spec if r.kind == "prior"]
        return build("000000", walks[0], walks[1], walks[2:], priors)


def _execute(stock: Stock, hist, spec, end, count, newest):
    step = plan(hist, spec, end, count, newest, stock.gap)
    fetches = 0
    while isinstance(step, Fetch):
        fetches += 1
        assert fetches == 1, "the planner asks for at most one forward walk"
        step = plan(hist, spec, end, count, newest, stock.gap, forward=stock.walk(step.ref))
    assert isinstance(step, Use)
    assert all(isinstance(r, WalkRef) for r in step.spec)
    return step.spec


@pytest.mark.parametrize("seed", range(120))
def test_a_plan_always_covers_the_request_and_folding_changes_nothing(seed):
    rng = np.random.default_rng(1000 + seed)
    stock = Stock(seed)
    sessions = stock.sessions
    n = len(sessions)
    hist = spec = None
    clock = int(rng.integers(stock.listed, n - 1))
    if rng.random() < 0.6:  # an action just after the first cached session: the after-action branch
        i = min(len(stock.dates) - 1, clock - stock.listed + int(rng.integers(1, 4)))
        stock.events = sorted(stock.events + [(stock.dates[i], float(rng.choice([0.5, 0.9, 2.0])))],
                              key=lambda e: e[0])
    for step in range(int(rng.integers(2, 6))):
        if step:
            clock = min(n - 1, clock + int(rng.choice([0, 1, 1, 2, 3, 5, 40])))
        newest = sessions[clock]
        end = sessions[clock if rng.random() < 0.5 else int(rng.integers(max(stock.listed, clock - 900), clock + 1))]
        count = int(rng.choice([1, 5, 60, 220, 599, 600, 601, 700, 1300]))
        spec = _execute(stock, hist, spec, end, count, newest)
        new = stock.history(spec)
        traded = int(np.searchsorted(stock.dates, end, "right"))
        rows = new.rows_on_or_before(end)
        assert new.covers(end, count), (seed, end, count, spec)
        assert rows >= min(count, traded), (seed, rows, count, traded)  # never a short frame
        dates, prices, _, _ = new.arrays(end, count, True)
        want, _ = stock.adjusted(traded, end)
        want = want[max(0, traded - count):traded]
        assert len(dates) == min(count, traded)
        assert np.abs(prices - want).max(initial=0) <= 1.0, (seed, end, spec)
        # fold it, as the store does after every extension: the same history, a short spec
        folded = compacted(spec, new.anchor, len(new.dates))
        if folded != spec:
            snap = Walk("000000", new.anchor, False, new.dates, new.raw, new.raw_volume, new.value, new.reached_start)
            walks = [stock.walk(r) for r in folded[1:] if r.kind != "prior"]
            priors = [stock.walk(r) for r in folded if r.kind == "prior"]
            again = build("000000", snap, walks[0], walks[1:], priors)
            assert _same_history(again, new), (seed, spec, folded)
            # the folded raw walk is exactly what the upstream walk of that key returns
            real = stock.walk(folded[0])
            assert np.array_equal(real.dates, snap.dates) and np.array_equal(real.prices, snap.prices)
            spec = folded
        assert not extensions(spec)
        hist = new


def test_daily_extensions_keep_the_spec_short():
    stock = Stock(3)
    stock.events = [(stock.dates[-30], 0.5)]  # a split in the middle of the run
    sessions = stock.sessions
    start = len(sessions) - 90
    spec = _execute(stock, None, None, sessions[start], 220, sessions[start])
    hist = stock.history(spec)
    for clock in range(start + 1, len(sessions)):
        spec = _execute(stock, hist, spec, sessions[clock], 220, sessions[clock])
        hist = stock.history(spec)
        spec = compacted(spec, hist.anchor, len(hist.dates))
        assert len(spec) <= 3, spec  # raw, adjusted reference and at most the one prior of the split
        hist = stock.history(spec)
        assert hist.anchor == sessions[clock]

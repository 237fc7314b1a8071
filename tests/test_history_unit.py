"""Unit tests of the adjustment math in finder.cache._history (no server).

The expected adjusted values are computed here independently, with a plain
loop over the events, the way Kiwoom's rule is stated: an adjusted series as
of D applies every action with t < ex <= D.
"""

import numpy as np
import pandas as pd
import pytest

from finder.cache._history import Walk, adds_no_action, build, find_events


def _raw_series(n=300, seed=1):
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-01") + n).astype("datetime64[D]")
    close = np.round(20000 * np.exp(np.cumsum(rng.normal(0, 0.02, n))))
    open_ = np.round(close * (1 + rng.normal(0, 0.005, n)))
    high = np.maximum(open_, close) + np.round(rng.uniform(0, 300, n))
    low = np.minimum(open_, close) - np.round(rng.uniform(0, 300, n))
    vol = rng.integers(10_000, 1_000_000, n)
    return dates, np.column_stack([open_, high, low, close]), vol


def _kiwoom_adjusted(dates, prices, vol, events, as_of):
    """Kiwoom's rule, written as a loop: factors of actions with t < ex <= as_of."""
    out_p = prices.copy()
    out_v = vol.astype("float64").copy()
    for i, t in enumerate(dates):
        fp = fv = 1.0
        for ex, pf, vf in events:
            if t < ex <= as_of:
                fp *= pf
                fv *= vf
        out_p[i] = np.round(prices[i] * fp)
        out_v[i] = np.round(vol[i] * fv)
    return out_p, out_v.astype("int64")


def _walk(dates, prices, vol, anchor, adjusted):
    return Walk(code="000001", base_dt=np.datetime64(anchor, "D"), adjusted=adjusted, dates=dates,
                prices=prices, volume=vol, value=(prices[:, 3] * vol).astype("int64"), reached_start=True)


@pytest.fixture
def market():
    dates, raw, vol = _raw_series()
    events = [
        (dates[80], 0.2, 5.0),            # a 1:5 split
        (dates[150], (raw[149, 3] - 500) / raw[149, 3], 1.0),  # a 500 KRW dividend
        (dates[230], 0.5, 2.0),           # a 1:2 split
    ]
    # Raw prices after each split really are lower: apply the splits to later raw prices.
    raw = raw.copy()
    for ex, pf, vf in events:
        if vf != 1.0:
            after = dates >= ex
            raw[after] = np.round(raw[after] * pf)
            vol = np.where(after, (vol * vf).astype("int64"), vol)
    return dates, raw, vol, events


def test_find_events_recovers_each_action(market):
    dates, raw, vol, events = market
    anchor = dates[-1]
    adj_p, adj_v = _kiwoom_adjusted(dates, raw, vol, events, anchor)
    ev = find_events(_walk(dates, raw, vol, anchor, False), _walk(dates, adj_p, adj_v, anchor, True))
    assert list(ev.ex) == [e[0] for e in events]
    for got, (_, pf, vf) in zip(zip(ev.price, ev.volume), events):
        assert got[0] == pytest.approx(pf, rel=2e-5)
        assert got[1] == pytest.approx(vf, rel=2e-5)


@pytest.mark.parametrize("as_of_index", [60, 80, 120, 150, 151, 229, 230, 299])
def test_adjusted_as_of_any_date_matches_kiwoom_within_1krw(market, as_of_index):
    dates, raw, vol, events = market
    anchor = dates[-1]
    adj_p, adj_v = _kiwoom_adjusted(dates, raw, vol, events, anchor)
    hist = build("000001", _walk(dates, raw, vol, anchor, False), _walk(dates, adj_p, adj_v, anchor, True), [])
    d = dates[as_of_index]
    want_p, want_v = _kiwoom_adjusted(dates, raw, vol, events, d)
    got_d, got_p, got_v, _ = hist.arrays(d, 100, adjusted=True)
    lo = as_of_index + 1 - len(got_d)
    assert list(got_d) == list(dates[lo:as_of_index + 1])
    assert np.abs(got_p - want_p[lo:as_of_index + 1]).max() <= 1.0
    assert np.abs(got_v - want_v[lo:as_of_index + 1]).max() <= 1


def test_no_action_after_date_returns_kiwooms_own_numbers(market):
    dates, raw, vol, events = market
    anchor = dates[-1]
    adj_p, adj_v = _kiwoom_adjusted(dates, raw, vol, events, anchor)
    hist = build("000001", _walk(dates, raw, vol, anchor, False), _walk(dates, adj_p, adj_v, anchor, True), [])
    _, got_p, _, _ = hist.arrays(dates[-1], 50, adjusted=True)
    assert np.array_equal(got_p, adj_p[-50:])
    _, raw_p, _, _ = hist.arrays(dates[100], 50, adjusted=False)
    assert np.array_equal(raw_p, raw[51:101])


def test_forward_walk_check_detects_a_new_action(market):
    dates, raw, vol, events = market
    cut = 200
    anchor = dates[cut - 1]
    adj_p, adj_v = _kiwoom_adjusted(dates[:cut], raw[:cut], vol[:cut], events, anchor)
    hist = build("000001", _walk(dates[:cut], raw[:cut], vol[:cut], anchor, False),
                 _walk(dates[:cut], adj_p, adj_v, anchor, True), [])
    # A forward walk to dates[220]: no action in (anchor, dates[220]] -> its overlap row agrees.
    a2 = dates[220]
    fp, fv = _kiwoom_adjusted(dates[cut - 1:221], raw[cut - 1:221], vol[cut - 1:221], events, a2)
    assert adds_no_action(hist, _walk(dates[cut - 1:221], fp, fv, a2, True))
    # A forward walk past the split at dates[230]: the overlap row changed -> refetch needed.
    a3 = dates[240]
    fp, fv = _kiwoom_adjusted(dates[cut - 1:241], raw[cut - 1:241], vol[cut - 1:241], events, a3)
    assert not adds_no_action(hist, _walk(dates[cut - 1:241], fp, fv, a3, True))


def test_history_roundtrips_through_bytes(market):
    dates, raw, vol, events = market
    hist = build("000001", _walk(dates, raw, vol, dates[-1], False), _walk(dates, raw, vol, dates[-1], True), [])
    from finder.cache._history import History

    again = History.from_bytes(hist.to_bytes())
    assert np.array_equal(again.raw, hist.raw) and again.anchor == hist.anchor
    with pytest.raises(TypeError):
        History.from_bytes(__import__("pickle").dumps({"not": "a history"}))



@pytest.mark.parametrize("seed", range(40))
def test_no_phantom_action_after_the_last_row_on_low_prices(seed):
    """A stock that traded on the adjusted walk's anchor has no action after its last row.

    On low prices +-0.5 won spans a dividend's factor, so rows of an older step could
    join the newest one and move its factor off 1: an action "after the last row" that
    does not exist, which answers as of the anchor then undid (1 KRW off on rows that
    must be Kiwoom's own numbers).  Random ~70-won stocks with one ~0.6% dividend.
    """
    rng = np.random.default_rng(seed)
    n = 300
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-01") + n).astype("datetime64[D]")
    close = np.round(70 * np.exp(np.cumsum(rng.normal(0, 0.01, n))))
    open_ = np.round(close * (1 + rng.normal(0, 0.01, n)))
    prices = np.column_stack([open_, np.maximum(open_, close) + rng.integers(0, 2, n),
                              np.minimum(open_, close) - rng.integers(0, 2, n), close])
    vol = rng.integers(10_000, 1_000_000, n)
    ex = dates[int(rng.integers(50, 250))]
    events = [(ex, 1 - rng.uniform(0.004, 0.008), 1.0)]
    # the adjusted reference ends 5 sessions before the raw rows (a history extended since)
    ref = dates[-6]
    adj_p, adj_v = _kiwoom_adjusted(dates[:-5], prices[:-5], vol[:-5], events, ref)
    value = vol * 70
    raw = Walk("000001", dates[-1], False, dates, prices, vol, value, False)
    adj = Walk("000001", ref, True, dates[:-5], adj_p, adj_v, value[:-5], False)
    found = find_events(raw, adj)
    assert not (found.ex > ref).any(), (seed, found.ex, ex)
    hist = build("000001", raw, adj, [])
    # as of the reference's anchor, with no action since: Kiwoom's own numbers, exactly
    _, p, _, _ = hist.arrays(ref, n - 5, True)
    assert np.array_equal(p, adj_p), seed

"""Corporate-action detection on the simulator's whole default market (issue 10, item 3).

No server: the market's own raw and adjusted bars (what ka10081 returns) are
compared with its list of actions.  Goal: 0 actions missed, 0 spurious, and
every value rebuilt as of an earlier ``base_dt`` within 1 KRW of the
market's own answer (the oracle), for every stock.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finder.cache._history import Walk, build, find_events

ANCHOR = pd.Timestamp("2025-11-28")


def _walks(market, code):
    raw = market.bars(code, ANCHOR, adjusted=False)
    adj = market.bars(code, ANCHOR, adjusted=True)
    return (Walk.from_frame(code, ANCHOR, False, raw, True), Walk.from_frame(code, ANCHOR, True, adj, True))


@pytest.mark.slow
def test_every_action_of_the_default_market_is_found_and_none_is_made_up(sim_market):
    missed, spurious, total = {}, {}, 0
    for code in sim_market.codes:
        raw, adj = _walks(sim_market, code)
        if not len(raw.dates):
            continue
        first, last = raw.dates[0], raw.dates[-1]
        truth = set()
        for e in sim_market.events(code):
            ex = np.datetime64(e.ex_date.date(), "D")
            if first < ex <= np.datetime64(ANCHOR.date(), "D"):
                truth.add(ex if ex <= last else last + np.timedelta64(1, "D"))  # booked after the last row
        got = set(find_events(raw, adj).ex.tolist())
        got = {np.datetime64(g, "D") for g in got}
        total += len(truth)
        if truth - got:
            missed[code] = sorted(truth - got)
        if got - truth:
            spurious[code] = sorted(got - truth)
    assert total > 1000
    assert not missed, missed
    assert not spurious, spurious


@pytest.mark.slow
def test_values_as_of_every_earlier_date_are_within_1_krw_of_the_oracle(sim_market):
    rng = np.random.default_rng(10)
    worst, checked = 0.0, 0
    for code in sim_market.codes:
        raw, adj = _walks(sim_market, code)
        if len(raw.dates) < 2:
            continue
        hist = build(code, raw, adj, [])
        # the day before and the day of each action, plus a few random days
        days = set()
        for e in sim_market.events(code):
            i = int(np.searchsorted(hist.dates, np.datetime64(e.ex_date.date(), "D")))
            days.update({max(i - 1, 0), min(i, len(hist.dates) - 1)})
        days.update(int(x) for x in rng.integers(0, len(hist.dates), 3))
        for i in sorted(days):
            day = hist.dates[i]
            want = sim_market.bars(code, pd.Timestamp(day), adjusted=True)
            dates, prices, _, _ = hist.arrays(day, len(hist.dates), True)
            assert len(dates) == len(want), (code, day)
            diff = np.abs(prices - want[["open", "high", "low", "close"]].to_numpy()).max(initial=0)
            worst = max(worst, float(diff))
            checked += 1
            assert diff <= 1.0, (code, str(day), diff)
    assert checked > 1000, checked

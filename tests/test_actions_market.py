"""Corporate-action detection over the simulator's whole default market (issue 10, item 3).

For every stock of ``default_market()`` the cache's own detector
(``finder.cache._history.find_events``) is run on one raw and one adjusted
walk at an anchor, exactly the pair the cache fetches, and its answer is
compared with the simulator's true actions:

* missed: a true action with ``first row < ex_date <= anchor`` that was not
  found on its ex-date;
* spurious: a found action on a date where there is none;
* as-of values: the history ``build`` assembles from the pair must give, for
  every ``base_dt`` and count, prices within 1 KRW of what the simulator
  serves (and exactly Kiwoom's where no action lies in ``(base_dt, anchor]``).

Every ``base_dt`` is covered without looping over thousands of dates: the
answer as of ``D`` for a row ``t <= D`` depends only on which actions have
``ex <= D``, so it is the same for all ``D`` between two consecutive
boundaries (true or detected ex-dates).  Checking the last session before each
boundary and the anchor, with every row up to it (the largest count), covers
every ``D`` and every count.

The walks are built straight from the market (``market.bars`` is the oracle of
what ka10081 serves, all pages merged), not over HTTP: ~300 stocks over HTTP
would cost minutes and test the transport, which other tests cover.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finder.cache._history import Walk, build, find_events

PRICE = ["open", "high", "low", "close"]
# The default clock of the test suite (SIM_NOW), the ex-date of a January of dividends (actions on the
# walk's last row), and the session before it (actions the day after the anchor, invisible yet).
ANCHORS = ["2025-11-28", "2025-01-02", "2024-12-30"]


def _walk(code: str, anchor: pd.Timestamp, adjusted: bool, frame: pd.DataFrame) -> Walk:
    return Walk.from_frame(code, anchor, adjusted, frame, reached_start=True)


def _check_stock(market, code: str, anchor: pd.Timestamp, sessions: np.ndarray) -> dict:
    """Detection and as-of values of one stock at ``anchor``; returns what went wrong (empty when nothing)."""
    raw = market.bars(code, anchor, adjusted=False)
    if raw.empty:
        return {"actions": 0}
    adj = market.bars(code, anchor, adjusted=True)
    rw, aw = _walk(code, anchor, False, raw), _walk(code, anchor, True, adj)
    found = find_events(rw, aw)
    first = raw.index[0]
    true = [e for e in market.events(code) if first < e.ex_date <= anchor]
    true_ex = {np.datetime64(e.ex_date.date(), "D") for e in true}
    found_ex = {np.datetime64(x, "D") for x in found.ex}
    out: dict = {"actions": len(true_ex)}
    missed = sorted(true_ex - found_ex)
    spurious = sorted(found_ex - true_ex)
    if missed:
        out["missed"] = [(code, str(x), next(e.detail for e in true if np.datetime64(e.ex_date.date(), "D") == x))
                         for x in missed]
    if spurious:
        out["spurious"] = [(code, str(x)) for x in spurious]

    hist = build(code, rw, aw, [])
    anchor64 = np.datetime64(anchor.date(), "D")
    boundaries = sorted(true_ex | found_ex)
    as_ofs = {anchor64}
    for b in boundaries:
        i = int(np.searchsorted(sessions, b, "left")) - 1  # the last session before the boundary
        if i >= 0 and sessions[i] >= np.datetime64(first.date(), "D"):
            as_ofs.add(min(sessions[i], anchor64))
    worst = []
    for d in sorted(as_ofs):
        want = market.bars(code, pd.Timestamp(d), adjusted=True)
        dates, prices, volume, _value = hist.arrays(d, len(hist.dates), True)
        got_dates = dates.astype("datetime64[D]")
        want_dates = want.index.values.astype("datetime64[D]")
        if not np.array_equal(got_dates, want_dates):
            worst.append((code, str(d), f"dates differ: {len(got_dates)} rows vs the simulator's {len(want_dates)}"))
            continue
        diff = np.abs(np.asarray(prices, dtype="float64") - want[PRICE].to_numpy(dtype="float64"))
        exact = not any(d < e <= anchor64 for e in true_ex)
        limit = 0.0 if exact else 1.0
        if len(diff) and diff.max() > limit:
            r, c = np.unravel_index(int(diff.argmax()), diff.shape)
            worst.append((code, str(d), f"{PRICE[c]} on {got_dates[r]} off by {diff.max():.0f} KRW "
                                        f"(allowed {limit:.0f}; {int((diff > limit).any(axis=1).sum())} rows)"))
    if worst:
        out["as_of"] = worst
    return out


@pytest.mark.slow
@pytest.mark.parametrize("anchor", ANCHORS)
def test_every_action_of_the_default_market_is_found_and_every_as_of_value_is_within_1_krw(sim_market, anchor):
    from finder.sim._clock import sessions

    at = pd.Timestamp(anchor)
    s = sessions()
    actions, missed, spurious, as_of = 0, [], [], []
    for code in sim_market.codes:
        r = _check_stock(sim_market, code, at, s)
        actions += r["actions"]
        missed += r.get("missed", [])
        spurious += r.get("spurious", [])
        as_of += r.get("as_of", [])
    print(f"\nanchor {anchor}: {len(sim_market.codes)} stocks, {actions} actions, {len(missed)} missed, "
          f"{len(spurious)} spurious, {len(as_of)} as-of dates off")
    assert actions > 500, "the default market should hold hundreds of actions before the anchor"
    problems = []
    if missed:
        problems.append(f"{len(missed)} of {actions} actions missed (code, ex-date, detail): {missed}")
    if spurious:
        problems.append(f"{len(spurious)} spurious actions (code, date): {spurious}")
    if as_of:
        problems.append(f"{len(as_of)} (stock, base_dt) answers off (first 10): {as_of[:10]}")
    assert not problems, "\n".join(problems)

"""Backtests that end on today (issue 10 item 7), over real HTTP to a simulator whose clock agrees with finder's.

* Before the open, ``scan(today)`` scans the previous session; the backtest
  must not label those picks with today (2025-11-27 and 2025-11-28 used to
  get the same picks).
* During the session, today's bar is live: an exit on it is not final, so
  the trade is ``incomplete``, never ``horizon``.
"""

from __future__ import annotations

import pandas as pd
import pytest

sim_mod = pytest.importorskip("finder.sim")

from finder import KiwoomAPI, data  # noqa: E402
from finder.analysis import close  # noqa: E402
from finder.analysis.backtest import backtest  # noqa: E402

TODAY = pd.Timestamp("2025-11-28")


@pytest.fixture
def at(make_sim, sim_market, monkeypatch, tmp_path):
    clients = []

    def connect(now: str) -> list[str]:
        monkeypatch.setenv("FINDER_NOW", now)
        sim = make_sim(now=now, rate=1000.0, burst=100)
        c = KiwoomAPI("today-app-key", "today-secret-key", sim.url, cache_dir=tmp_path / now[11:13], rate=1000.0)
        clients.append(c)
        data.set_default_client(c)
        return sorted(sim_market.listings("KOSPI", TODAY))[:6]

    yield connect
    data.set_default_client(None)
    for c in clients:
        c.close()


@pytest.mark.parametrize("engine", ["auto", "session"])
def test_before_the_open_today_is_not_scanned_again(at, engine):
    codes = at("2025-11-28T08:00:00+09:00")
    res = backtest(close > 0, "2025-11-26", TODAY, universe=codes, horizons=(1,), progress=False, engine=engine)
    assert list(res.sessions) == [pd.Timestamp("2025-11-26"), pd.Timestamp("2025-11-27")]
    assert set(res.picks["date"]) == set(res.sessions)
    assert (res.picks.groupby("date").size() == len(codes)).all()


@pytest.mark.parametrize("engine", ["auto", "session"])
def test_exits_on_the_live_bar_are_incomplete(at, engine):
    codes = at("2025-11-28T11:00:00+09:00")
    res = backtest(close > 0, "2025-11-26", TODAY, universe=codes, horizons=(1,), progress=False, engine=engine)
    assert res.sessions[-1] == TODAY            # today's live session is scanned (and said to be live)
    t = res.trades.set_index(["date", "code"])["exit_reason"]
    assert (t.loc[pd.Timestamp("2025-11-26")] == "horizon").all()      # sold at 11-27's final close
    assert (t.loc[pd.Timestamp("2025-11-27")] == "incomplete").all()   # 11-28's close is not final yet
    assert (t.loc[TODAY] == "no_next_session").all()
    assert res.trades.loc[res.trades["date"] == pd.Timestamp("2025-11-27"), "exit_price"].isna().all()

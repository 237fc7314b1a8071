"""backtest() end to end: the real client over HTTP, the disk cache and the simulator.

Expected prices are read independently from the simulator's market oracle
(``market.bars``: what ka10081 serves for a code and ``base_dt``), never from
finder's own data layer.
"""

from __future__ import annotations

import pandas as pd
import pytest

sim_mod = pytest.importorskip("finder.sim")

from finder import KiwoomAPI, calendar, data  # noqa: E402
from finder.analysis import close  # noqa: E402
from finder.analysis.backtest import backtest  # noqa: E402

SIM_NOW = "2025-11-28T20:30:00+09:00"
COST = 25 / 10_000


@pytest.fixture
def market_client(make_sim, sim_market, monkeypatch, tmp_path):
    """A simulator over real HTTP, finder's clock at its instant, and finder.data pointed at it."""
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    sim = make_sim(rate=500.0, burst=50)
    clients = []

    def connect(cache: str = "cache") -> KiwoomAPI:
        c = KiwoomAPI("bt-app-key", "bt-secret-key", sim.url, cache_dir=tmp_path / cache, rate=500.0)
        clients.append(c)
        data.set_default_client(c)
        return c

    yield sim, sim_market, connect
    data.set_default_client(None)
    for c in clients:
        c.close()


def shift(day: pd.Timestamp, n: int) -> pd.Timestamp:
    for _ in range(n):
        day = calendar.next_session(day)
    return day


def sessions_traded(bars: pd.DataFrame, days: list[pd.Timestamp]) -> bool:
    return all(d in bars.index for d in days)


def test_split_inside_the_holding_period_against_the_oracle(market_client):
    sim, market, connect = market_client
    connect()
    # the most recent split in the simulated market whose stock trades around it
    found = None
    for ex, code in sorted(((e.ex_date, c) for c in market.codes for e in market.events(c) if e.kind == "split"),
                           reverse=True):
        d = calendar.previous_session(calendar.previous_session(ex))
        entry_day, exit_day = calendar.next_session(d), shift(d, 5)
        if sessions_traded(market.bars(code, "2025-11-28"), [d, entry_day, exit_day]):
            found = code, d, entry_day, exit_day
            break
    assert found, "the simulated market has no usable split"
    code, d, entry_day, exit_day = found
    assert entry_day < ex <= exit_day  # the split falls inside the 5-session hold

    res = backtest(close > 0, d, d, universe=[code], horizons=(1, 5), progress=False)

    # the scan saw prices adjusted as of its own day (before the split)
    as_of_d = market.bars(code, d)
    assert res.picks["close"].iloc[0] == as_of_d.loc[d, "close"]
    # trades priced on one basis: adjusted as of the last session the trades need
    assert res.params["eval_end"] == exit_day
    oracle = market.bars(code, exit_day)
    t = res.trades.set_index("horizon")
    assert t.loc[5, "exit_reason"] == "horizon"
    assert (t.loc[5, "entry_date"], t.loc[5, "exit_date"]) == (entry_day, exit_day)
    assert t.loc[5, "entry_price"] == pytest.approx(oracle.loc[entry_day, "open"], abs=1)
    assert t.loc[5, "exit_price"] == pytest.approx(oracle.loc[exit_day, "close"], abs=1)
    expected = oracle.loc[exit_day, "close"] / oracle.loc[entry_day, "open"] - 1 - COST
    assert t.loc[5, "return"] == pytest.approx(expected, abs=2e-4)
    h1 = oracle.loc[entry_day, "close"] / oracle.loc[entry_day, "open"] - 1 - COST
    assert t.loc[1, "return"] == pytest.approx(h1, abs=2e-4)
    # the test means something: entry and exit read on their own days' bases disagree by the split
    naive = market.bars(code, exit_day).loc[exit_day, "close"] / market.bars(code, entry_day).loc[entry_day, "open"] - 1
    assert abs(naive - (expected + COST)) > 0.2


def test_a_delisted_pick_is_reported_against_the_oracle(market_client):
    # Simulated delistings look like real ones: a halt, one last session, then gone.
    sim, market, connect = market_client
    connect()
    found = None
    for gone, code in sorted(((market.info(c).delisted, c) for c in market.codes
                              if market.info(c).delisted is not None), reverse=True):
        bars = market.bars(code, gone)
        d, entry_day, last_day = bars.index[-3:]
        if entry_day == calendar.next_session(d) and shift(d, 5) < last_day < shift(d, 10):
            found = code, d, entry_day, last_day
            break
    assert found, "the simulated market has no usable delisting"
    code, d, entry_day, last_day = found
    res = backtest(close > 0, d, d, universe=[code], horizons=(1, 5, 10), progress=False)
    oracle = market.bars(code, res.params["eval_end"])
    t = res.trades.set_index("horizon")
    assert t.loc[1, "exit_reason"] == "horizon"
    # h=5 ends inside the halt (it trades once more later): valued at its last close before
    assert t.loc[5, "exit_reason"] == "halted" and t.loc[5, "exit_date"] == entry_day
    # h=10 ends after its last session, and it is gone from the stock lists
    assert t.loc[10, "exit_reason"] == "delisted" and t.loc[10, "exit_date"] == last_day
    assert t.loc[10, "exit_price"] == pytest.approx(oracle.loc[last_day, "close"], abs=1)
    expected = oracle.loc[last_day, "close"] / oracle.loc[entry_day, "open"] - 1 - COST
    assert t.loc[10, "return"] == pytest.approx(expected, abs=2e-4)
    assert res.params["delisted"] == [code]
    assert res.summary().loc[10, "count"] == 1  # reported, and counted, not dropped


def test_cold_backtest_fetches_each_stock_about_once_and_warm_makes_no_request(market_client, capsys, monkeypatch):
    sim, market, connect = market_client
    end = pd.Timestamp("2025-10-31")
    sessions = calendar.sessions_in_range("2025-09-01", end)[-15:]
    codes = [c for c in market.codes if market.info(c).market != "ETF"
             and market.info(c).listed < pd.Timestamp("2024-01-01") and market.info(c).delisted is None][:25]
    assert len(codes) == 25
    connect("shared")
    before = sim.stats()["requests"].get("ka10081", 0)
    monkeypatch.setenv("FINDER_PROGRESS", "text")  # a terminal's text bar, though pytest's stderr is no TTY
    cold = backtest("momentum", sessions[0], sessions[-1], universe=codes, horizons=(1, 5), progress=True)
    cold_requests = sim.stats()["requests"].get("ka10081", 0) - before
    assert 0 < cold_requests <= 3 * len(codes)
    assert "/25 [" in capsys.readouterr().err  # the whole-range engine shows its one load, stock by stock

    connect("shared")  # a new client on the same disk cache, as after a kernel restart
    stats = sim.stats()["requests"]
    warm = backtest("momentum", sessions[0], sessions[-1], universe=codes, horizons=(1, 5), progress=False)
    assert sim.stats()["requests"] == stats  # nothing reached the simulator
    pd.testing.assert_frame_equal(warm.trades, cold.trades)
    # every trade that exists is priced from the oracle on the evaluation basis
    oracle = {c: market.bars(c, cold.params["eval_end"]) for c in set(cold.trades["code"])}
    done = cold.trades[cold.trades["exit_reason"] == "horizon"]
    assert len(done) > 0
    for t in done.itertuples():
        assert t.entry_price == pytest.approx(oracle[t.code].loc[t.entry_date, "open"], abs=1)
        assert t.exit_price == pytest.approx(oracle[t.code].loc[t.exit_date, "close"], abs=1)

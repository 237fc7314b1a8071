"""finder.sweep end to end on the simulator over real HTTP: each row equals a standalone backtest, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("finder.sim")

import finder  # noqa: E402
from finder import InvalidInputError, KiwoomAPI, calendar, data  # noqa: E402
from finder.analysis import Condition, Screen, close, sma, volume_ratio, volume  # noqa: E402
from finder.analysis.backtest import backtest  # noqa: E402
from finder.analysis.sweep import sweep  # noqa: E402

SIM_NOW = "2025-11-28T20:30:00+09:00"


@pytest.fixture
def market_client(make_sim, sim_market, monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    sim = make_sim(rate=500.0, burst=50)
    clients = []

    def connect(cache: str = "cache") -> KiwoomAPI:
        c = KiwoomAPI("sw-app-key", "sw-secret-key", sim.url, cache_dir=tmp_path / cache, rate=500.0)
        clients.append(c)
        data.set_default_client(c)
        return c

    yield sim, sim_market, connect
    data.set_default_client(None)
    for c in clients:
        c.close()


def level_screen(min_close: float = 2_000, trend: int = 20, surge: float = 1.5) -> Screen:
    """A custom screen with a KRW price-level threshold (not scale-free across a split)."""
    return Screen(filters=[(close >= min_close).named("price")],
                  signals=[(close > sma(close, trend)).named("trend"),
                           (volume_ratio(volume, 5) >= surge).named("surge")],
                  min_signals=1, name="level", params={"min_close": min_close, "trend": trend, "surge": surge})


def level_screen_fn(min_close: float = 2_000) -> Screen:
    """The same rules with the price threshold as a plain function of the bars: the per-session path."""
    def price(bars):
        return bars.close.iloc[-1] >= min_close

    return Screen(filters=[Condition(price, "price")],
                  signals=[(close > sma(close, 20)).named("trend"), (volume_ratio(volume, 5) >= 1.5).named("surge")],
                  min_signals=1, name="level_fn", params={"min_close": min_close})


def _universe(market, sessions, n=18):
    """Long-listed stocks, including one that splits inside the range (the price threshold must see it)."""
    codes = [c for c in market.codes if market.info(c).market != "ETF"
             and market.info(c).listed < pd.Timestamp("2024-01-01") and market.info(c).delisted is None]
    split = [c for c in codes if any(e.kind == "split" and sessions[1] < e.ex_date <= sessions[-1]
                                     for e in market.events(c))]
    chosen = (split[:1] + [c for c in codes if c not in split[:1]])[:n]
    return chosen, (split[0] if split else None)


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b or (a is pd.NaT and b is pd.NaT)


@pytest.mark.parametrize("builder,engine", [(level_screen, "range"), (level_screen_fn, "session")])
def test_every_row_equals_a_standalone_backtest_and_warm_makes_no_request(market_client, builder, engine):
    sim, market, connect = market_client
    sessions = calendar.sessions_in_range("2025-09-01", "2025-10-31")[-16:]
    codes, split_code = _universe(market, sessions, n=14)
    grid = {"min_close": [2_000, 30_000], "take_profit": [None, 0.04], "max_picks": [None, 2]}
    connect("shared")
    sw = sweep(builder, grid, sessions[0], sessions[-1], universe=codes, horizons=(1, 3), stop_loss=0.05,
               benchmark=None, blocks=4, progress=False)
    assert len(sw.table) == 8 and list(sw.table.columns[:3]) == list(grid)
    assert (sw.table["trades"] > 0).all()

    # warm: a new client on the same disk cache (as after a kernel restart) asks the simulator nothing
    connect("shared")
    before = sim.stats()["requests"]
    warm = sweep(builder, grid, sessions[0], sessions[-1], universe=codes, horizons=(1, 3), stop_loss=0.05,
                 benchmark=None, blocks=4, progress=False)
    assert sim.stats()["requests"] == before
    pd.testing.assert_frame_equal(warm.table, sw.table, check_exact=True)

    for i in range(len(sw.table)):
        row = sw.table.loc[i]
        kw = {"min_close": row["min_close"]}
        tp = row["take_profit"]
        mp = row["max_picks"]
        ref = backtest(builder(**kw), sessions[0], sessions[-1], universe=codes, horizons=(1, 3),
                       take_profit=None if pd.isna(tp) else float(tp), stop_loss=0.05,
                       max_picks=None if pd.isna(mp) else int(mp), progress=False)
        mine = sw.backtest(i)
        pd.testing.assert_frame_equal(mine.trades, ref.trades, check_exact=True)
        pd.testing.assert_frame_equal(mine.picks, ref.picks, check_exact=True)
        pd.testing.assert_frame_equal(mine.equity, ref.equity, check_exact=True)
        assert mine.params == ref.params and ref.params["engine"] == engine
        st = ref.stats(benchmark=None).loc[3]
        for col in st.index:
            assert _same(row[col], st[col]), (i, col, row[col], st[col])
    # the split stock's price threshold was judged on each session's own basis: some row picked it
    if split_code is not None:
        assert any((sw.backtest(i).picks["code"] == split_code).any() for i in range(4))


def test_sweep_result_surface(market_client):
    sim, market, connect = market_client
    connect()
    sessions = calendar.sessions_in_range("2025-09-01", "2025-10-31")[-20:]
    codes, _ = _universe(market, sessions, n=10)
    bench = pd.Series(np.linspace(2500, 2600, 60), index=calendar.sessions_in_range("2025-08-01", "2025-11-28")[-60:])
    sw = sweep("momentum", {"min_signals": [1, 2], "surge_volume": [1.5, 2.5]}, sessions[0], sessions[-1],
               universe=codes, horizons=(2,), benchmark=bench, blocks=4, walk_forward=(8, 4), progress=False)
    best = sw.best("sharpe")
    assert best["sharpe"] == sw.table["sharpe"].max()
    assert sw.best("max_drawdown")["max_drawdown"] == sw.table["max_drawdown"].max()
    assert sw.table["beta"].notna().all()          # the given benchmark series is used
    fig = sw.heatmap("min_signals", "surge_volume", "sharpe")
    assert fig.axes and fig.axes[0].get_xlabel() == "min_signals"
    text = repr(sw)
    assert text.splitlines()[0].startswith("best of 4: Sharpe") and "walk-forward" in text
    assert "<b>best of 4" in sw._repr_html_()
    with pytest.raises(InvalidInputError):
        sw.heatmap("min_signals", "nope")
    with pytest.raises(InvalidInputError):
        sw.backtest(99)
    assert finder.sweep is sweep


@pytest.mark.parametrize("kw", [
    {"grid": {"min_signals": []}},
    {"grid": {"min_signals": 3}},
    {"grid": {"nope": [1]}},
    {"grid": {"take_profit": [-5]}},
    {"grid": {"max_picks": [0]}},
    {"start": "2025-10-10", "end": "2025-09-01"},
    {"walk_forward": (5,)},
    {"risk_free": "3%"},
])
def test_bad_arguments_are_refused_before_any_request(market_client, kw):
    sim, market, connect = market_client
    connect()
    before = sim.stats()["requests"]
    args = {"grid": {"min_signals": [2]}, "start": "2025-09-01", "end": "2025-09-10", **kw}
    with pytest.raises(InvalidInputError):
        sweep("momentum", args.pop("grid"), args.pop("start"), args.pop("end"), universe=["005930"],
              progress=False, **args)
    assert sim.stats()["requests"] == before


def test_default_benchmark_is_the_market_index_from_get_index(market_client):
    from finder.analysis.stats import benchmark_for_universe

    assert [benchmark_for_universe(u) for u in ("KOSPI", "KOSDAQ", "KOSPI+KOSDAQ", ["005930"])] == \
        ["KOSPI", "KOSDAQ", "KOSPI", "KOSPI"]
    sim, market, connect = market_client
    connect()
    sessions = calendar.sessions_in_range("2025-09-01", "2025-10-31")[-12:]
    codes, _ = _universe(market, sessions, n=8)
    res = backtest(close > 0, sessions[0], sessions[-1], universe=codes, horizons=(3,), progress=False)
    st = res.stats()
    assert st.attrs["benchmark"] == "KOSPI"
    eq = res.equity_for(3)
    idx = finder.get_index("KOSPI", 60, eq.index[-1])["close"]
    prev = idx.index[idx.index.get_loc(eq.index[0]) - 1]
    assert st.loc[3, "benchmark_return"] == pytest.approx(idx.loc[eq.index[-1]] / idx.loc[prev] - 1, rel=1e-12)
    assert np.isfinite(st.loc[3, "beta"]) and np.isfinite(st.loc[3, "information_ratio"])

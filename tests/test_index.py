"""Index bars (ka20006) end to end over real HTTP: client, paging, the disk cache, finder.get_index.

Expected values come from the simulator's own index series (``finder.sim._aggregates``),
never from constants; request counts are read at the simulator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import finder
from finder._exceptions import InvalidInputError
from finder.cache import _index_bars
from finder.sim._aggregates import index_series
from _support import client

SIM_NOW = "2025-11-28T20:30:00+09:00"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE"):
        monkeypatch.delenv(var, raising=False)


def _n(sim, api_id="ka20006") -> int:
    # Pages answered with data: a request refused for an expired token (the simulator's clock
    # jumps sessions ahead here) and sent again is not a second fetch of bars.
    return int(sim.stats()["pages"].get(api_id, 0))


def _truth(market, code: str, end: str) -> pd.DataFrame:
    s = index_series(market, code)
    keep = s.dates <= np.datetime64(end)
    return pd.DataFrame({"close": np.round(s.c[keep] * 100) / 100}, index=pd.DatetimeIndex(s.dates[keep]))


@pytest.mark.parametrize("name,code", [("KOSPI", "001"), ("kosdaq", "101"), ("KOSPI200", "201")])
def test_client_walks_pages_and_scales_levels(sim, sim_market, tmp_path, name, code):
    with client(sim, tmp_path / "cache", cache=False) as api:
        sim.reset_stats()
        df = api.get_index_bars(name, 700, "2025-10-01")
    assert _n(sim) == 2  # 600 rows a page: 700 bars need two
    truth = _truth(sim_market, code, "2025-10-01").iloc[-700:]
    assert list(df.index) == list(truth.index)
    np.testing.assert_allclose(df["close"].to_numpy(), truth["close"].to_numpy(), atol=0.006)
    assert df.index[-1] <= pd.Timestamp("2025-10-01")
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "value"]
    assert (df["high"] >= df[["open", "close"]].max(axis=1) - 0.011).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1) + 0.011).all()
    assert df["close"].iloc[-1] < 100_000  # points, not hundredths


def test_unknown_index_refused_before_any_request(sim, tmp_path):
    with client(sim, tmp_path / "cache", cache=False) as api:
        sim.reset_stats()
        for bad in ("KOSPI100", "", None, 1):
            with pytest.raises(InvalidInputError):
                api.get_index_bars(bad, 10)
    with client(sim, tmp_path / "cache") as api:
        with pytest.raises(InvalidInputError):
            _index_bars.get_index("NASDAQ", client=api)
    assert sim.stats()["total_requests"] == 0


def test_same_frame_shape_as_get_ohlcv(sim, sim_market, tmp_path):
    with client(sim, tmp_path / "cache") as api:
        idx = _index_bars.get_index("KOSPI", 30, "2025-09-30", client=api)
        stock = api.get_ohlcv("005930", 30, "2025-09-30")
    assert list(idx.columns) == list(stock.columns)
    assert list(idx.dtypes) == list(stock.dtypes)
    assert idx.index.name == stock.index.name == "date"
    assert list(idx.index) == list(stock.index)


def test_cache_fetches_each_bar_once_and_extends_forward(sim, sim_market, tmp_path, monkeypatch):
    with client(sim, tmp_path / "cache") as api:
        sim.reset_stats()
        a = _index_bars.get_index("KOSPI", 220, "2025-06-02", client=api)
        cold = _n(sim)
        assert cold == 1  # one page at the newest final session covers it
        # Any other date inside the stored history: no request.
        for d in ("2025-01-10", "2025-08-01", "2025-11-28", None):
            _index_bars.get_index("KOSPI", 100, d, client=api)
        assert _n(sim) == cold
        # Two sessions later: one extension request, stopping at the stored end.
        sim.advance_sessions(2)
        monkeypatch.setenv("FINDER_NOW", sim.app.clock.now().isoformat())
        b = _index_bars.get_index("KOSPI", 5, None, client=api)
        assert _n(sim) == cold + 1
        truth = _truth(sim_market, "001", str(b.index[-1].date()))
        np.testing.assert_allclose(b["close"].to_numpy(), truth["close"].iloc[-5:].to_numpy(), atol=0.006)
        # Older than stored: one deepening walk, then served from disk.
        deep = _index_bars.get_index("KOSPI", 900, "2020-01-31", client=api)
        n = _n(sim)
        again = _index_bars.get_index("KOSPI", 900, "2020-01-31", client=api)
        assert _n(sim) == n
    pd.testing.assert_frame_equal(deep, again)
    assert len(deep) == 900 and deep.index[-1] == pd.Timestamp("2020-01-31")
    truth = _truth(sim_market, "001", "2020-01-31").iloc[-900:]
    np.testing.assert_allclose(deep["close"].to_numpy(), truth["close"].to_numpy(), atol=0.006)
    assert a.index[-1] == pd.Timestamp("2025-06-02")


def test_live_bar_while_open_is_not_stored_as_final(make_sim, sim_market, tmp_path, monkeypatch):
    now = "2025-11-27T11:00:00+09:00"
    sim = make_sim(now=now)
    monkeypatch.setenv("FINDER_NOW", now)
    monkeypatch.setenv("FINDER_LIVE_TTL", "3600")
    with client(sim, tmp_path / "cache") as api:
        live = _index_bars.get_index("KOSDAQ", 10, None, client=api)
        assert live.index[-1] == pd.Timestamp("2025-11-27")
        final_close = round(float(index_series(sim_market, "101").c[
            np.searchsorted(index_series(sim_market, "101").dates, np.datetime64("2025-11-27"))]), 2)
        assert live["close"].iloc[-1] != pytest.approx(final_close, abs=0.005)  # a partial bar at 11:00
        n = _n(sim)
        _index_bars.get_index("KOSDAQ", 10, None, client=api)
        assert _n(sim) == n  # within the live TTL
        # After the cut-off the same session is final and comes from the server again.
        sim.set_now("2025-11-27T20:30:00+09:00")
        monkeypatch.setenv("FINDER_NOW", "2025-11-27T20:30:00+09:00")
        final = _index_bars.get_index("KOSDAQ", 10, None, client=api)
    assert final.index[-1] == pd.Timestamp("2025-11-27")
    assert final["close"].iloc[-1] == pytest.approx(final_close, abs=0.006)


def test_errors_are_not_stored(make_sim, tmp_path):
    sim = make_sim()
    with client(sim, tmp_path / "cache", max_retries=0) as api:
        sim.faults.add(kind="http_error", count=1, api_id="ka20006")
        with pytest.raises(finder.TransportError):
            _index_bars.get_index("KOSPI", 10, "2025-11-28", client=api)
        assert not list((tmp_path / "cache" / "finder" / "index_bars").glob("*.npz"))
        df = _index_bars.get_index("KOSPI", 10, "2025-11-28", client=api)
    assert len(df) == 10


def test_get_index_is_exported_lazily():
    import importlib
    import sys

    assert "get_index" in finder._LAZY
    assert callable(finder.get_index)
    assert sys.modules["finder.cache._index_bars"].get_index is finder.get_index
    importlib.import_module("finder")


def test_plan_is_pure_and_minimal():
    f = pd.Timestamp("2025-11-28")
    assert _index_bars.plan(None, f, f, 10) == ("fetch", 600)
    assert _index_bars.plan(None, f, pd.Timestamp("2025-11-27"), 600) == ("fetch", 1200)
    bars = pd.DataFrame({c: [1.0] * 3 for c in ("open", "high", "low", "close", "volume", "value")},
                        index=pd.DatetimeIndex(["2025-11-26", "2025-11-27", "2025-11-28"]))
    st = _index_bars.Stored(bars, False)
    assert _index_bars.plan(st, f, f, 3) == ("hit", None)
    assert _index_bars.plan(st, f, f, 4) == ("deepen", 600)
    assert _index_bars.plan(_index_bars.Stored(bars, True), f, f, 4) == ("hit", None)
    assert _index_bars.plan(_index_bars.Stored(bars.iloc[:2], False), f, f, 2) == ("extend", pd.Timestamp("2025-11-27"))


def test_cache_refresh_keeps_index_bars_current(sim, sim_market, tmp_path, monkeypatch):
    with client(sim, tmp_path / "cache") as api:
        _index_bars.get_index("KOSPI200", 50, None, client=api)
        sim.advance_sessions(1)
        monkeypatch.setenv("FINDER_NOW", sim.app.clock.now().isoformat())
        sim.reset_stats()
        out = finder.cache.refresh(client=api, progress=False)
        assert out["indices"] == 1 and out["indices_failed"] == 0
        assert _n(sim) == 1
        df = _index_bars.get_index("KOSPI200", 50, None, client=api)
        assert _n(sim) == 1  # served from what the refresh stored
    s = index_series(sim_market, "201")
    new_day = pd.Timestamp(sim.app.clock.now().date())
    assert df.index[-1] == new_day
    assert df["close"].iloc[-1] == pytest.approx(s.c[np.searchsorted(s.dates, np.datetime64(new_day.date()))],
                                                 abs=0.006)


def test_deepening_past_the_first_bar_marks_the_start(sim, sim_market, tmp_path):
    s = index_series(sim_market, "001")
    first = pd.Timestamp(s.dates[0])
    with client(sim, tmp_path / "cache") as api:
        # Ask for more bars than exist before an early date: the history is complete, and says so.
        early = first + pd.Timedelta(days=40)
        df = _index_bars.get_index("KOSPI", 500, early, client=api)
        n = _n(sim)
        again = _index_bars.get_index("KOSPI", 500, early, client=api)
        assert _n(sim) == n  # complete history known: no further request
    assert df.index[0] == first and len(df) == len(again) == int((s.dates <= np.datetime64(early.date())).sum())

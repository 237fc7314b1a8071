"""Cache integrity for daily, long-lived use (issue 10): no short frames, bounded growth, safety, threads.

Real parts: the real client over real HTTP against the simulator, the real
joblib.Memory in a temporary folder.  Counts are checked, never times.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from finder import calendar
from finder._exceptions import CacheError
from _support import REPO, client, ka10081


@pytest.fixture(autouse=True)
def _finder_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE",
                "FINDER_LIVE_TTL", "FINDER_ALLOW_SHARED_CACHE"):
        monkeypatch.delenv(var, raising=False)


def _at(sim, monkeypatch, day: str) -> None:
    now = f"{day}T20:30:00+09:00"
    sim.set_now(now)
    monkeypatch.setenv("FINDER_NOW", now)


def _traded(market, code: str, day: str) -> int:
    return len(market.bars(code, pd.Timestamp(day), adjusted=True))


# -- item 2: never a short frame --------------------------------------------------------------------
def test_no_short_frame_after_a_split(make_sim, sim_market, tmp_path, monkeypatch):
    """171840 cached 600 deep on 2024-05-08, splits 1:2 on 2024-05-10; 700 bars asked on 2024-05-13."""
    sim = make_sim(now="2024-05-08T20:30:00+09:00")
    cache = tmp_path / "cache"
    _at(sim, monkeypatch, "2024-05-08")
    with client(sim, cache) as api:
        assert len(api.get_ohlcv("171840", 600)) == 600
        _at(sim, monkeypatch, "2024-05-13")
        df = api.get_ohlcv("171840", 700)
        want = sim_market.bars("171840", pd.Timestamp("2024-05-13"), adjusted=True).iloc[-700:]
        assert len(df) == 700 == min(700, _traded(sim_market, "171840", "2024-05-13"))
        assert df.index[0] == want.index[0]
        assert np.abs(df[["open", "high", "low", "close"]].to_numpy()
                      - want[["open", "high", "low", "close"]].to_numpy()).max() <= 1
        # the same through get_panel, one session later, after a batched refresh
        _at(sim, monkeypatch, "2024-05-14")
        from finder.cache._ohlcv import get_panel

        panel = get_panel(api, ["171840", "005930"], 900, progress=False)
        assert panel["171840"].notna().sum() == min(900, _traded(sim_market, "171840", "2024-05-14"))


# -- item 1: bounded growth ----------------------------------------------------------------------------
def _entries(root) -> list:
    return sorted(p.parent.parent.name + "/" + p.parent.name[:6] for p in (root / "joblib").rglob("output.pkl"))


def test_daily_extensions_through_a_split_keep_the_entry_count_flat(make_sim, sim_market, tmp_path, monkeypatch):
    """get_ohlcv once a session for 12 sessions across 171840's split: entries stay those of a fresh build."""
    days = calendar.sessions_in_range("2024-05-02", "2024-05-21")
    sim = make_sim(now=f"{days[0].date()}T20:30:00+09:00")
    cache = tmp_path / "cache"
    counts = []
    with client(sim, cache) as api:
        for day in days:
            _at(sim, monkeypatch, str(day.date()))
            df = api.get_ohlcv("171840", 220)
            assert len(df) == 220 and df.index[-1] == day
            counts.append(len(_entries(cache)))
    # raw walk, adjusted reference, history, frame; after the split one prior reference more
    assert max(counts) <= 5, counts
    assert counts[-1] <= 5 and counts[0] == 4, counts
    # the folded history still answers exactly: compare with the simulator as of a day before the split
    with client(sim, cache) as api:
        sim.reset_stats()
        old = api.get_ohlcv("171840", 100, "2024-05-08")
        assert ka10081(sim) == 0
    want = sim_market.bars("171840", pd.Timestamp("2024-05-08"), adjusted=True).iloc[-100:]
    assert np.abs(old[["open", "high", "low", "close"]].to_numpy()
                  - want[["open", "high", "low", "close"]].to_numpy()).max() <= 1


def test_growth_bench_small(tmp_path, monkeypatch):
    """A small bench/growth.py: 6 stocks refreshed on 12 sessions stay within 1.2x of a fresh build."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("finder_bench_growth", REPO / "bench" / "growth.py")
    growth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(growth)
    r = growth.run(stocks=8, sessions=12, count=220, workdir=tmp_path / "growth", progress=False)
    print(growth.report(r))
    assert r["files_ratio"] <= 1.2 and r["bytes_ratio"] <= 1.2, r
    later = r["later_requests"]
    # one batched quote request a session, one walk per corporate action at most
    assert later.get("ka10095", 0) <= r["sessions"] - 1
    assert later.get("ka10081", 0) <= r["actions"], r

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

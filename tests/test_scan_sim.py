"""scan() end to end: the real client, the disk cache and the simulator.

No look-ahead through the whole stack: changing every bar after the scan
date in the simulator's data changes nothing, and neither does first
caching later bars (and the splits and dividends that come with them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sim_mod = pytest.importorskip("finder.sim")

from finder import data  # noqa: E402
from finder.analysis import scan  # noqa: E402
from finder import KiwoomAPI  # noqa: E402

SIM_NOW = "2025-11-28T20:30:00+09:00"
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "krx_daily_sample.csv.gz"
DAY = "2025-09-15"


@pytest.fixture
def use_market(monkeypatch, tmp_path):
    """Point finder.data at an in-process simulator of ``market`` with a fresh cache folder."""
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    clients = []

    def use(market, name):
        client = KiwoomAPI(transport=sim_mod.in_process_transport(market), cache_dir=tmp_path / name, rate=1000)
        clients.append(client)
        data.set_default_client(client)
        return client

    yield use
    data.set_default_client(None)
    for c in clients:
        c.close()


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"real-data sample not found at {SAMPLE}")
def test_changing_bars_after_the_date_in_the_simulator_changes_nothing(use_market):
    frame = pd.read_csv(SAMPLE, dtype={"code": str})
    full = frame.groupby("code")["date"].agg(["min", "max"])
    codes = sorted(full[(full["min"] <= "2024-06-01") & (full["max"] >= "2025-11-14")].index)[:40]
    frame = frame[frame["code"].isin(codes)]
    later = frame.copy()
    after = later["date"] > DAY
    rng = np.random.default_rng(0)
    for col in ("open", "high", "low", "close"):
        later.loc[after, col] = later.loc[after, col] * rng.uniform(0.3, 3.0, after.sum())
    later["volume"] = later["volume"].astype(float)
    later.loc[after, "volume"] = (later.loc[after, "volume"] * rng.uniform(0.1, 20, after.sum())).round()

    use_market(sim_mod.ReplayMarket(frame), "original")
    before = scan(DAY, universe=codes, matches_only=False)
    use_market(sim_mod.ReplayMarket(later), "changed")
    changed = scan(DAY, universe=codes, matches_only=False)
    pd.testing.assert_frame_equal(before, changed)
    assert len(before) == 40 and before["matched"].any()


def test_caching_later_bars_first_changes_nothing(use_market, sim_market):
    codes = sorted(sim_market.listings("KOSPI", pd.Timestamp(DAY)))[:40]
    use_market(sim_market, "cold")
    cold = scan(DAY, universe=codes, matches_only=False)
    use_market(sim_market, "later_first")
    scan("2025-11-28", universe=codes, matches_only=False)   # caches later bars and corporate actions
    again = scan(DAY, universe=codes, matches_only=False)
    pd.testing.assert_frame_equal(cold, again)
    assert again.attrs["session"] == pd.Timestamp(DAY) and len(again) > 0


def test_market_universe_is_point_in_time(use_market, sim_market):
    use_market(sim_market, "pit")
    res = scan(DAY, universe="KOSPI", conditions="momentum", matches_only=False)
    day = pd.Timestamp(DAY)
    for code in res["code"]:
        info = sim_market.info(code)
        assert info.listed <= day and (info.delisted is None or info.delisted > day)
    assert res.attrs["survivorship"] and set(res["market"]) == {"KOSPI"}

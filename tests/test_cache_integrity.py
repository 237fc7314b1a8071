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
            counts.append(len(_entries(cache)) + len(list((cache / "finder" / "frames").glob("*.pkl"))))
    # raw walk, adjusted reference, history, ready frame; after the split one prior reference more
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


# -- item 7: counts agree with the disk ---------------------------------------------------------------------
def test_info_and_clear_counts_agree_with_the_disk_after_a_prune(sim, sim_market, tmp_path, monkeypatch):
    from finder import cache
    from _support import full_history_codes

    monkeypatch.setenv("FINDER_NOW", "2025-11-28T20:30:00+09:00")
    root = tmp_path / "cache"
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 6)
    with client(sim, root) as api:
        for c in codes:
            api.get_ohlcv(c, 30, "2025-10-01")
    before = cache.info(root)
    assert before["stocks"] == 6
    out = cache.prune(max_bytes=before["bytes"] // 2, root=root)
    assert out["removed"] > 0
    after = cache.info(root)
    pointers = sorted(p.stem for p in (root / "finder" / "index").glob("*.json"))
    # every stock counted has its history on disk, and no pointer is left without one
    assert after["stocks"] == len(pointers), (after, pointers)
    assert after["entries"] == sum(1 for _ in (root / "joblib").rglob("output.pkl"))
    for code in pointers:
        n = cache.clear(code, root=root)
        assert n > 0, f"{code} was counted as a cached stock but clearing it removed no entry"
    assert cache.info(root)["stocks"] == 0


_READER = """
import json, os, sys, warnings
sys.path.insert(0, "tests")
import numpy as np
from finder import KiwoomAPI
from finder.cache._store import Store
warnings.simplefilter("always")
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"],
                rate=2000)
store = Store.for_client(api)
code = os.environ["T_CODE"]
loads = misses = 0
first_rows = set()
with warnings.catch_warnings(record=True) as caught:
    for i in range(int(os.environ["T_N"])):
        store.forget()                      # no in-memory copy: every load reads the pointer and the disk
        hist = store.cached_history(api, code)
        if hist is None:
            misses += 1
            continue
        loads += 1
        first_rows.add((str(hist.dates[0]), float(hist.raw[0, 3])))
print(json.dumps({"loads": loads, "misses": misses, "first_rows": sorted(first_rows),
                  "warnings": [str(w.message) for w in caught]}))
"""


def test_readers_racing_with_commits_see_a_miss_or_a_whole_history(make_sim, sim_market, tmp_path, monkeypatch):
    """Two reader processes load a stock's history over and over while this process extends it 8 times
    (each commit removes the entries it superseded): every load is a whole history or a miss, never damage."""
    from _support import APP_KEY, SECRET_KEY

    days = calendar.sessions_in_range("2025-06-02", "2025-06-13")
    sim = make_sim(now=f"{days[0].date()}T20:30:00+09:00")
    cache = tmp_path / "cache"
    code = "005930"
    _at(sim, monkeypatch, str(days[0].date()))
    with client(sim, cache) as api:
        api.get_ohlcv(code, 220)
        env = dict(os.environ)
        env.update({"T_KEY": APP_KEY, "T_SECRET": SECRET_KEY, "T_URL": sim.url, "T_CACHE": str(cache),
                    "T_CODE": code, "T_N": "400", "FINDER_CACHE_DIR": str(cache)})
        readers = [subprocess.Popen([sys.executable, "-c", _READER], env=env, cwd=str(REPO), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        for day in days[1:]:
            _at(sim, monkeypatch, str(day.date()))
            assert api.get_ohlcv(code, 220).index[-1] == day
        outs = [r.communicate(timeout=300) for r in readers]
    for (out, err), r in zip(outs, readers):
        assert r.returncode == 0, err[-3000:]
        res = __import__("json").loads(out.strip().splitlines()[-1])
        assert res["loads"] + res["misses"] == 400
        assert not [w for w in res["warnings"] if "damaged" in w or "unreadable" in w], res["warnings"]
        # a whole history always starts at the same first row
        assert len(res["first_rows"]) == 1, res["first_rows"]

"""The disk cache: the W1-W6 workloads of the cache issue, counted at the simulator, and its rules.

Real parts only: the real client over real HTTP, the real joblib.Memory on a
temporary folder, and real subprocesses where processes are the point.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finder import calendar
from finder._exceptions import CacheError, StockNotFoundError
from _support import APP_KEY, REPO, SECRET_KEY, client, digest, full_history_codes, ka10081, run_python

SIM_NOW = "2025-11-28T20:30:00+09:00"
D = "2025-10-01"


@pytest.fixture(autouse=True)
def _finder_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE",
                "FINDER_LIVE_TTL", "FINDER_ALLOW_SHARED_CACHE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def _sessions_back(end: str, n: int) -> list[pd.Timestamp]:
    days = calendar.sessions_in_range(pd.Timestamp(end) - pd.Timedelta(days=3 * n), end)
    return list(days[-n:])


def _env_for(sim, cache_dir) -> dict:
    return {"FINDER_NOW": SIM_NOW, "FINDER_CACHE_DIR": str(cache_dir), "T_URL": sim.url,
            "T_KEY": APP_KEY, "T_SECRET": SECRET_KEY, "T_CACHE": str(cache_dir)}


# -- W1: a new process finds everything on disk ------------------------------------------------
_W1 = """
import json, os
from finder import KiwoomAPI
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"], rate=500)
frames = [api.get_ohlcv(c, 220, os.environ["T_D"]) for c in os.environ["T_CODES"].split(",")]
import sys; sys.path.insert(0, "tests")
from _support import digest
print(json.dumps({"digest": digest(frames), "rows": sum(len(f) for f in frames)}))
"""


@pytest.mark.slow
def test_w1_a_restarted_kernel_fetches_nothing(sim, sim_market, cache_dir):
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 20)
    env = {**_env_for(sim, cache_dir), "T_CODES": ",".join(codes), "T_D": D}
    sim.reset_stats()
    first = run_python(_W1, env)
    cold = ka10081(sim)
    assert cold <= 2 * len(codes)          # one raw and one adjusted page per stock
    sim.reset_stats()
    second = run_python(_W1, env)           # a new interpreter: nothing in memory
    assert ka10081(sim) == 0
    assert second == first and first["rows"] == 220 * len(codes)


def test_w2_smaller_counts_are_served_from_the_same_bars(sim, sim_market, cache_dir):
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 10)
    with client(sim, cache_dir) as api:
        big = {c: api.get_ohlcv(c, 220, D) for c in codes}
        sim.reset_stats()
        for c in codes:
            for n in (20, 60):
                small = api.get_ohlcv(c, n, D)
                assert small.equals(big[c].iloc[-n:])
        assert ka10081(sim) == 0


def _w3(api, codes, days):
    frames = []
    for c in codes:
        for d in days:
            frames.append(api.get_ohlcv(c, 220, d))
    return frames


@pytest.mark.slow
def test_w3_a_60_session_backtest_pattern_costs_at_most_3_requests_per_stock(sim, sim_market, cache_dir, tmp_path):
    days = _sessions_back("2025-11-20", 60)
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 40)
    with client(sim, cache_dir) as api:
        sim.reset_stats()
        frames = _w3(api, codes, days)
        cold = ka10081(sim)
        assert cold <= 3 * len(codes), cold
        sim.reset_stats()
        again = _w3(api, codes, days)
        assert ka10081(sim) == 0
    assert digest(frames) == digest(again)
    # Every answer equals what Kiwoom serves for that base_dt (adjusted as of it), to the won.
    for k in range(0, len(frames), 97):
        code, d = codes[k // len(days)], days[k % len(days)]
        want = sim_market.bars(code, d, adjusted=True).iloc[-220:]
        got = frames[k]
        assert got.index.equals(want.index)
        assert np.abs(got[["open", "high", "low", "close"]].to_numpy() - want[["open", "high", "low", "close"]].to_numpy()).max() <= 1


def test_w4_one_new_session_costs_at_most_one_request_per_stock(sim, sim_market, cache_dir, monkeypatch):
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 40)
    with client(sim, cache_dir) as api:
        for c in codes:
            api.get_ohlcv(c, 220)
        # The market moves one session on (Monday 2025-12-01, after the cut-off).
        nxt = calendar.next_session("2025-11-28")
        now = f"{nxt.date()}T20:30:00+09:00"
        sim.set_now(now)
        monkeypatch.setenv("FINDER_NOW", now)
        sim.reset_stats()
        frames = {c: api.get_ohlcv(c, 220) for c in codes}
        assert ka10081(sim) <= len(codes)
        for c in codes[::9]:
            want = sim_market.bars(c, nxt, adjusted=True).iloc[-220:]
            assert frames[c].index[-1] == nxt
            assert np.abs(frames[c][["open", "high", "low", "close"]].to_numpy()
                          - want[["open", "high", "low", "close"]].to_numpy()).max() <= 1


_W5 = """
import json, os, sys
sys.path.insert(0, "tests")
import pandas as pd
from finder import KiwoomAPI, calendar
from _support import digest
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"],
                rate=float(os.environ["T_RATE"]))
days = os.environ["T_DAYS"].split(",")
frames = [api.get_ohlcv(c, 220, d) for c in os.environ["T_CODES"].split(",") for d in days]
print(json.dumps({"digest": digest(frames)}))
"""


@pytest.mark.slow
def test_w5_four_processes_on_one_cold_cache(make_sim, sim_market, cache_dir, tmp_path):
    import subprocess
    import sys

    days = _sessions_back("2025-11-20", 60)
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 20)
    # A real limit on the server; the processes share one pacing file at 80% of it.
    s = make_sim(rate=50.0, burst=2)
    with client(s, tmp_path / "single", rate=40.0) as api:
        s.reset_stats()
        single = digest(_w3(api, codes, days))
        w3_total = ka10081(s)
    s.reset_stats()
    env = dict(os.environ, **_env_for(s, cache_dir), T_RATE="40", T_CODES=",".join(codes),
               T_DAYS=",".join(str(d.date()) for d in days))
    procs = [subprocess.Popen([sys.executable, "-c", _W5], env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    digests = {__import__("json").loads(o.strip().splitlines()[-1])["digest"] for o, _ in outs}
    st = s.stats()
    assert st["requests"]["ka10081"] <= w3_total, (st["requests"], w3_total)
    assert st["total_rate_limited"] == 0
    assert digests == {single}


_W6 = """
import json, os, sys
sys.path.insert(0, "tests")
from joblib import Parallel, delayed

def work(code, days):
    from finder import KiwoomAPI
    api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"], rate=40)
    return [api.get_ohlcv(code, 220, d) for d in days]

days = os.environ["T_DAYS"].split(",")
codes = os.environ["T_CODES"].split(",")
out = Parallel(n_jobs=4)(delayed(work)(c, days) for c in codes)
from _support import digest
print(json.dumps({"digest": digest([f for fs in out for f in fs])}))
"""


@pytest.mark.slow
def test_w6_joblib_parallel_workers_share_the_cache(make_sim, sim_market, cache_dir, tmp_path):
    days = _sessions_back("2025-11-20", 60)
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 20)
    s = make_sim(rate=50.0, burst=2)
    with client(s, tmp_path / "single", rate=40.0) as api:
        single = digest(_w3(api, codes, days))
        w3_total = ka10081(s)
    s.reset_stats()
    env = {**_env_for(s, cache_dir), "T_CODES": ",".join(codes), "T_DAYS": ",".join(str(d.date()) for d in days)}
    out = run_python(_W6, env, timeout=400)
    st = s.stats()
    assert st["requests"]["ka10081"] <= w3_total
    assert st["total_rate_limited"] == 0
    assert out["digest"] == single
    s.reset_stats()
    assert run_python(_W6, env, timeout=400)["digest"] == single   # warm: nothing fetched
    assert ka10081(s) == 0


# -- adjusted as of base_dt ------------------------------------------------------------------------
def _events(sim_market, kind, lo="2019-01-01", hi="2025-10-01"):
    for code in sim_market.codes:
        for e in sim_market.events(code):
            if e.kind == kind and pd.Timestamp(lo) < e.ex_date < pd.Timestamp(hi):
                return code, e.ex_date
    raise AssertionError(f"no {kind} in the synthetic market between {lo} and {hi}")


@pytest.mark.parametrize("kind", ["split", "dividend"])
def test_adjusted_values_equal_kiwooms_for_every_base_dt_around_an_action(sim, sim_market, cache_dir, kind):
    code, ex = _events(sim_market, kind)
    around = [calendar.previous_session(ex), ex, calendar.next_session(ex),
              calendar.previous_session(calendar.previous_session(ex)), pd.Timestamp(SIM_NOW[:10])]
    with client(sim, cache_dir) as api:
        for d in around:
            got = api.get_ohlcv(code, 120, d)
            want = sim_market.bars(code, d, adjusted=True).iloc[-120:]
            assert got.index.equals(want.index)
            diff = np.abs(got[["open", "high", "low", "close"]].to_numpy() - want[["open", "high", "low", "close"]].to_numpy())
            assert diff.max() <= 1, (d, diff.max())
            assert np.abs(got.volume.to_numpy() - want.volume.to_numpy()).max() <= 1
            raw = api.get_ohlcv(code, 120, d, adjusted=False)
            want_raw = sim_market.bars(code, d, adjusted=False).iloc[-120:]
            assert np.array_equal(raw[["open", "high", "low", "close"]].to_numpy(),
                                  want_raw[["open", "high", "low", "close"]].to_numpy())


# -- live bars -----------------------------------------------------------------------------------------
def test_live_bar_expires_after_the_ttl_and_is_final_after_the_cutoff(make_sim, sim_market, cache_dir, monkeypatch):
    import time

    code = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 1)[0]
    t0 = "2025-11-27T10:30:00+09:00"
    s = make_sim(now=t0)
    monkeypatch.setenv("FINDER_NOW", t0)
    monkeypatch.setenv("FINDER_LIVE_TTL", "1.0")
    with client(s, cache_dir) as api:
        first = api.get_ohlcv(code, 5)
        assert first.index[-1] == pd.Timestamp("2025-11-27")
        s.reset_stats()
        assert api.get_ohlcv(code, 5).equals(first)          # inside the TTL: the same live entry
        assert ka10081(s) == 0
        # finder's "now" moves 2.5 hours on: the entry is older than the TTL by FINDER_NOW (which every
        # freshness decision follows), whatever the wall clock says
        s.set_now("2025-11-27T13:00:00+09:00")
        monkeypatch.setenv("FINDER_NOW", "2025-11-27T13:00:00+09:00")
        moved = api.get_ohlcv(code, 5)
        assert ka10081(s) == 1
        assert moved.iloc[-1].to_dict() != first.iloc[-1].to_dict()
        assert moved.iloc[:-1].equals(first.iloc[:-1])        # final bars never move
        assert api.get_ohlcv(code, 5).equals(moved) and ka10081(s) == 1
        time.sleep(1.2)                                       # and by the wall clock, FINDER_NOW standing still
        assert api.get_ohlcv(code, 5).equals(moved)
        assert ka10081(s) == 2
        # After the cut-off today's bar is final: cached for good, equal to the server's final bar.
        s.set_now("2025-11-27T20:30:00+09:00")
        monkeypatch.setenv("FINDER_NOW", "2025-11-27T20:30:00+09:00")
        final = api.get_ohlcv(code, 5)
        want = sim_market.bars(code, "2025-11-27", adjusted=True).iloc[-5:]
        assert np.array_equal(final[["open", "high", "low", "close"]].to_numpy(), want[["open", "high", "low", "close"]].to_numpy())
        s.reset_stats()
        time.sleep(1.2)
        assert api.get_ohlcv(code, 5).equals(final)
        assert ka10081(s) == 0


# -- never cache what is not data ----------------------------------------------------------------------
def test_unknown_codes_are_remembered_as_a_marker_until_the_next_session(sim, cache_dir, monkeypatch):
    from finder.cache._store import Store

    with client(sim, cache_dir) as api:
        for _ in range(2):
            with pytest.raises(StockNotFoundError):
                api.get_ohlcv("123456", 10, D)
        assert ka10081(sim) == 1   # the second call is answered by the marker
    Store._instances.clear()       # a restarted process reads the marker from disk
    with client(sim, cache_dir) as api:
        with pytest.raises(StockNotFoundError):
            api.get_ohlcv("123456", 10, D)
        assert ka10081(sim) == 1
    # a marker, never data: no pointer, no entry
    index = cache_dir / "finder" / "index"
    assert not index.exists() or not list(index.glob("*.json"))
    # (the day's stock lists, which told the code is not listed, are cached; no bars are)
    assert not [p for p in (cache_dir / "joblib").rglob("output.pkl") if "stock_list" not in p.parts]
    assert (cache_dir / "finder" / "unknown" / "123456.json").is_file()
    # the next session asks again (a code can be listed overnight)
    monkeypatch.setenv("FINDER_NOW", "2025-12-01T20:30:00+09:00")
    Store._instances.clear()
    with client(sim, cache_dir) as api:
        with pytest.raises(StockNotFoundError):
            api.get_ohlcv("123456", 10, D)
        assert ka10081(sim) == 2


def test_a_walk_cut_short_is_not_cached(sim, sim_market, cache_dir):
    code = full_history_codes(sim_market, "2020-01-01", SIM_NOW[:10], 1)[0]
    sim.faults.add("repeat_key", probability=1.0, api_id="ka10081")
    with client(sim, cache_dir) as api:
        from finder._exceptions import TransportError

        with pytest.raises(TransportError):
            api.get_ohlcv(code, 1000, "2023-06-01")  # needs more than one page: cut short
        sim.faults.clear()
        good = api.get_ohlcv(code, 1000, "2023-06-01")
    want = sim_market.bars(code, "2023-06-01", adjusted=True).iloc[-1000:]
    assert good.index.equals(want.index)


def test_corrupted_entries_are_refetched_with_a_warning(sim, sim_market, cache_dir):
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 3)
    from finder.cache._store import Store

    with client(sim, cache_dir) as api:
        want = {c: api.get_ohlcv(c, 100, D) for c in codes}
        outputs = sorted((cache_dir / "joblib").rglob("output.pkl"))
        outputs += sorted((cache_dir / "finder" / "frames").glob("*.pkl"))  # the ready frames too
        for p in outputs:
            data = p.read_bytes()
            p.write_bytes(data[: len(data) // 3])       # truncated pickles everywhere
        Store.for_client(api).forget()
        sim.reset_stats()
        with pytest.warns(RuntimeWarning, match="damaged"):
            got = {c: api.get_ohlcv(c, 100, D) for c in codes}
        for c in codes:
            assert got[c].equals(want[c])
        assert ka10081(sim) > 0   # refetched...
        Store.for_client(api).forget()
        sim.reset_stats()
        assert all(api.get_ohlcv(c, 100, D).equals(want[c]) for c in codes)
        assert ka10081(sim) == 0  # ...and the cache is whole again


def test_ready_frames_missing_or_of_an_older_layout_are_rebuilt_without_requests(make_sim, sim_market, cache_dir,
                                                                                 monkeypatch):
    """A cache written before ready frames: its hits are served from the histories, with no request, and
    write the ready frames; the legacy joblib frame entry a pointer names goes with the stock's next commit."""
    import json

    from finder.cache import _frames
    from finder.cache._store import Store

    sim = make_sim()
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 3)
    with client(sim, cache_dir) as api:
        want = {c: api.get_ohlcv(c, 100, D) for c in codes}
        latest = api.get_ohlcv(codes[0], 100)
    ready = cache_dir / "finder" / "frames"
    assert sorted(p.stem for p in ready.glob("*.pkl")) == sorted(codes)
    shutil.rmtree(ready)
    # what an older finder left: a pointer naming a joblib frame entry
    legacy = cache_dir / "joblib" / "finder" / "cache" / "_memo" / "frame" / ("ab" * 16)
    legacy.mkdir(parents=True)
    (legacy / "output.pkl").write_bytes(b"old frame")
    pointer = cache_dir / "finder" / "index" / f"{codes[0]}.json"
    data = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**data, "frame": "ab" * 16}))

    Store._instances.clear()
    sim.reset_stats()
    with client(sim, cache_dir) as api:
        for c in codes:
            assert api.get_ohlcv(c, 100, D).equals(want[c])
        assert ka10081(sim) == 0
        store = Store.for_client(api)
        assert sorted(p.stem for p in ready.glob("*.pkl")) == sorted(codes)
        store.forget()
        for c in codes:  # now answered by the ready frames: the histories are not loaded
            assert api.get_ohlcv(c, 100, D).equals(want[c])
        assert not store._lru and len(store._frames) == len(codes)
    # the next session: the commit that extends codes[0] removes the legacy entry
    nxt = f"{calendar.next_session(SIM_NOW[:10]).date()}T20:30:00+09:00"
    sim.set_now(nxt)
    monkeypatch.setenv("FINDER_NOW", nxt)
    Store._instances.clear()
    with client(sim, cache_dir) as api:
        moved = api.get_ohlcv(codes[0], 100)
    assert moved.index[-1] > latest.index[-1]
    assert not legacy.exists()
    assert "frame" not in json.loads(pointer.read_text())
    anchor, _events, _reached, frame = _frames.loads(codes[0], (ready / f"{codes[0]}.pkl").read_bytes())
    assert str(anchor) == nxt[:10] and frame.iloc[-100:].equals(moved)


# -- safety -----------------------------------------------------------------------------------------------
def test_cache_holds_no_credentials(sim, sim_market, cache_dir):
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 5)
    with client(sim, cache_dir) as api:
        for c in codes:
            api.get_ohlcv(c, 300, D)
        token = api._tokens.peek().value
    token_files = set((cache_dir / "finder" / "tokens").glob("*.json"))
    for path in cache_dir.rglob("*"):
        if path.is_file() and path not in token_files:
            blob = path.read_bytes()
            for secret in (APP_KEY, SECRET_KEY, token):
                assert secret.encode() not in blob, (path, "holds a secret")


def test_cache_folder_is_owner_only_and_a_shared_one_is_refused(sim, sim_market, tmp_path, monkeypatch):
    code = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 1)[0]
    private = tmp_path / "private"
    with client(sim, private) as api:
        api.get_ohlcv(code, 10, D)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    from finder.cache._store import Store

    Store._instances.pop(shared.resolve(), None)
    with client(sim, shared) as api:
        with pytest.raises(CacheError, match="writable by"):
            api.get_ohlcv(code, 10, D)
        monkeypatch.setenv("FINDER_ALLOW_SHARED_CACHE", "1")
        assert len(api.get_ohlcv(code, 10, D)) == 10


_EDIT = """
import json, os, sys
# Import finder from the edited copy, not from the editable install of the checkout.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__ + type(f).__name__]
sys.path.insert(0, os.environ["T_SRC"])
from finder import KiwoomAPI
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"], rate=500)
for c in os.environ["T_CODES"].split(","):
    api.get_ohlcv(c, 220, "2025-10-01")
import finder
print(json.dumps({"file": finder.__file__}))
"""


@pytest.mark.slow
def test_editing_other_modules_keeps_the_cache(sim, sim_market, cache_dir, tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(REPO / "finder", copy / "finder", ignore=shutil.ignore_patterns("__pycache__"))
    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 5)
    env = {**_env_for(sim, cache_dir), "T_CODES": ",".join(codes), "T_SRC": str(copy)}
    out = run_python(_EDIT, env)
    assert out["file"].startswith(str(copy))
    # A release edits the package: new code above and below, in the cache package too.
    for rel in ("cache/_store.py", "cache/_fetch.py", "client/_api.py", "calendar.py"):
        path = copy / "finder" / rel
        # Comments on top shift every line; a new function at the end changes the module's code.
        path.write_text("# an edit in a new release\n# another line\n" + path.read_text() + "\n\ndef added():\n    return 1\n")
    sim.reset_stats()
    assert run_python(_EDIT, env)["file"].startswith(str(copy))
    assert ka10081(sim) == 0


def test_changing_a_returned_frame_never_changes_the_cache(sim, sim_market, cache_dir):
    code = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 1)[0]
    with client(sim, cache_dir) as api:
        first = api.get_ohlcv(code, 50, D)
        keep = first.copy()
        first.loc[first.index[-1], "close"] = -1.0
        first["volume"] = 0
        again = api.get_ohlcv(code, 50, D)
    assert again.equals(keep)


def test_warm_resumes_where_it_stopped_and_the_cli_reports_it(sim, sim_market, cache_dir, monkeypatch, capsys):
    from finder import cli, data

    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 12)
    with client(sim, cache_dir) as api:
        data.set_default_client(api)
        try:
            # An interrupted warm-up got through the first 5 stocks...
            assert cli.main(["cache", "warm", "--codes", ",".join(codes[:5]), "--count", "300", "--quiet"]) == 0
            sim.reset_stats()
            # ...the rerun fetches only the other 7.
            assert cli.main(["cache", "warm", "--codes", ",".join(codes), "--count", "300", "--quiet"]) == 0
            out = capsys.readouterr().out.strip().splitlines()[-1]
            assert out.startswith("warm: 7 fetched, 5 already cached, 0 failed of 12")
            assert ka10081(sim) == 2 * 7
            sim.reset_stats()
            for c in codes:
                assert len(api.get_ohlcv(c, 300, D)) == 300
            assert ka10081(sim) == 0
            assert cli.main(["cache", "info"]) == 0
            shown = capsys.readouterr().out
            assert str(cache_dir) in shown
            assert f"beside them   {len(codes)} ready frames, 0 panels" in shown  # one ready frame per stock
        finally:
            data.set_default_client(None)


def test_prune_trims_and_nothing_wrong_is_served_afterwards(sim, sim_market, cache_dir):
    import finder.cache as fcache
    from finder.cache._store import Store

    codes = full_history_codes(sim_market, "2024-01-01", SIM_NOW[:10], 8)
    with client(sim, cache_dir) as api:
        want = {c: api.get_ohlcv(c, 200, D) for c in codes}
        before = fcache.info(cache_dir)["bytes"]
        out = fcache.prune(max_bytes=before // 3, root=cache_dir)
        after = fcache.info(cache_dir)["bytes"]
        assert out["removed"] > 0 and after <= before // 3 + 64 * 1024
        Store.for_client(api).forget()
        for c in codes:
            assert api.get_ohlcv(c, 200, D).equals(want[c])
        assert fcache.prune(older_than="0s", root=cache_dir)["kept"] == 0
        Store.for_client(api).forget()
        assert api.get_ohlcv(codes[0], 200, D).equals(want[codes[0]])
    import pytest as _pytest
    from finder._exceptions import InvalidInputError

    with _pytest.raises(InvalidInputError):
        fcache.prune(max_bytes="lots", root=cache_dir)

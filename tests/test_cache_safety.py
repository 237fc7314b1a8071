"""Safety and isolation of the cache (issue 10, item 5): pickles, shared frames, threads.

* Every entry point checks the folder before its first unpickle: a planted
  pickle that would create a marker file never runs from a folder others can
  write (get_ohlcv, get_panel after the cut-off and at a live session, refresh,
  warm, the stock list).
* A frame handed out never shares memory with what the cache keeps, whatever
  pandas' copy-on-write mode.
* No finder call changes the process's warning filters: 8 threads of cold
  calls, then a warning must still reach stderr (in a separate process, away
  from pytest's own warning capture).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from finder._exceptions import CacheError
from _support import APP_KEY, REPO, SECRET_KEY, client, full_history_codes

SIM_NOW = "2025-11-28T20:30:00+09:00"
D = "2025-10-01"


@pytest.fixture(autouse=True)
def _finder_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE",
                "FINDER_LIVE_TTL", "FINDER_ALLOW_SHARED_CACHE"):
        monkeypatch.delenv(var, raising=False)


class _Planted:
    """Unpickling this creates a file: proof that a pickle from the folder ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_never_runs_from_a_folder_others_can_write(make_sim, sim_market, tmp_path, monkeypatch):
    from finder import cache, data
    from finder.cache._ohlcv import get_panel
    from finder.cache._store import Store

    sim = make_sim()
    root = tmp_path / "cache"
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 3)
    with client(sim, root) as api:
        for c in codes:
            api.get_ohlcv(c, 30, D)
            api.get_ohlcv(c, 30)
        data.get_stock_list("KOSPI", client=api)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Planted(str(marker)))
    planted = 0
    ready = list((root / "finder" / "frames").glob("*.pkl"))
    assert len(ready) == len(codes)
    for p in list((root / "joblib").rglob("output.pkl")) + ready:
        p.write_bytes(evil)
        planted += 1
    assert planted >= 8 + len(codes)
    os.chmod(root, 0o777)

    def fresh():
        Store._instances.clear()
        return client(sim, root)

    def check(name, call):
        with fresh() as api:
            with pytest.raises(CacheError, match="writable by"):
                call(api)
        assert not marker.exists(), f"{name} unpickled a planted file before checking the folder"

    check("get_ohlcv", lambda api: api.get_ohlcv(codes[0], 10, D))
    check("get_ohlcv latest", lambda api: api.get_ohlcv(codes[0], 10))
    check("get_panel", lambda api: get_panel(api, codes, 10, progress=False))
    check("refresh", lambda api: cache.refresh(progress=False, client=api))
    check("warm", lambda api: cache.warm(codes, count=10, progress=False, client=api))
    check("stock list", lambda api: data.get_stock_list("KOSPI", client=api))
    # a live session: get_panel goes through the batched live quotes first
    live = "2025-12-01T10:30:00+09:00"
    sim.set_now(live)
    monkeypatch.setenv("FINDER_NOW", live)
    check("get_panel live", lambda api: get_panel(api, codes, 10, progress=False))
    check("get_ohlcv live", lambda api: api.get_ohlcv(codes[0], 10))


def test_frames_handed_out_never_share_memory_with_the_cache(sim, sim_market, tmp_path):
    from finder.cache._store import Store

    code = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 1)[0]
    root = tmp_path / "cache"
    with client(sim, root) as api:
        api.get_ohlcv(code, 50, D)            # cold: builds the history and its ready frame
        store = Store.for_client(api)
        rows = len(api.get_ohlcv(code, 600, D))
        for count in (50, rows):              # a slice of the ready frame, and the whole of it
            hit = api.get_ohlcv(code, count, D)
            kept = store._frames[code]
            assert isinstance(kept, bytes)    # the process keeps bytes, never a frame it hands out
            again = api.get_ohlcv(code, count, D)
            for col in ("open", "close", "volume"):
                assert not np.shares_memory(hit[col].to_numpy(), again[col].to_numpy()), (count, col)
            before = again.copy()
            hit.iloc[0, hit.columns.get_loc("close")] = -1.0
            hit["volume"] = 0
            assert api.get_ohlcv(code, count, D).equals(before), count
            assert again.equals(before), count


_THREADS = """
import json, os, sys, threading, warnings
sys.path.insert(0, "tests")
import numpy as np
from finder import KiwoomAPI
from finder.sim import default_market
filters_before = list(warnings.filters)
show_before = warnings.showwarning
impl_before = warnings._showwarnmsg_impl
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"],
                rate=2000)
codes = os.environ["T_CODES"].split(",")
days = ["2025-06-02", "2025-08-01", "2025-10-01"]
out, errors = {}, []
def work(i):
    try:
        for j, c in enumerate(codes[i::8]):
            for d in days:
                out[(c, d)] = api.get_ohlcv(c, 30 + j, d)
    except Exception as exc:
        errors.append(repr(exc))
changed, running = [0], [True]
def monitor():  # any moment at which a call had redirected the process's warnings into its own record
    # (pandas itself briefly swaps the filter list inside some of its functions, without record=True;
    # that is not finder's doing and does not swallow other threads' warnings)
    import time
    while running[0]:
        if warnings._showwarnmsg_impl is not impl_before or warnings.showwarning is not show_before:
            changed[0] += 1
        time.sleep(0.001)  # sampling: often enough to catch a swap, seldom enough to leave the GIL to the workers
m = threading.Thread(target=monitor); m.start()
ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
running[0] = False; m.join()
market = default_market()
import pandas as pd
wrong = 0
for (c, d), df in out.items():
    want = market.bars(c, pd.Timestamp(d), adjusted=True).iloc[-len(df):]
    if len(df) != len(want) or np.abs(df[["open","high","low","close"]].to_numpy()
                                      - want[["open","high","low","close"]].to_numpy()).max() > 1:
        wrong += 1
same_filters = (list(warnings.filters) == filters_before and warnings.showwarning is show_before
                and warnings._showwarnmsg_impl is impl_before)
warnings.warn("finder-thread-test-still-warns", UserWarning)
print(json.dumps({"calls": len(out), "errors": errors, "wrong": wrong, "same_filters": same_filters, "changed": changed[0]}))
"""


def test_threads_leave_the_warning_filters_alone(sim, sim_market, tmp_path):
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 40)
    env = dict(os.environ)
    env.update({"T_KEY": APP_KEY, "T_SECRET": SECRET_KEY, "T_URL": sim.url, "T_CACHE": str(tmp_path / "c"),
                "T_CODES": ",".join(codes), "FINDER_CACHE_DIR": str(tmp_path / "c")})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_THREADS)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["errors"] == [] and r["calls"] == 120 and r["wrong"] == 0, r
    assert r["same_filters"] and r["changed"] == 0, r
    assert "finder-thread-test-still-warns" in proc.stderr

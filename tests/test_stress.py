"""A small version of ``bench/stress.py``: 8 processes on one cold cache, real limits, light faults.

The bench's own run (its figures are reported, not asserted) is shortened
here to at least 24 calls per process (count-based, never a time window)
on 8 stocks, with a 20/s server limit and the
processes pacing themselves together at 16/s.  The goals are asserted:

* no rate-limit rejection at the server (no 429 storm is injected, so every
  429 would be a real one);
* no corrupted or inconsistent result: every result equals the same call
  replayed in one fault-free process (identical, or within the cache's
  documented 1 KRW rounding of rebuilt adjusted prices), and every bar
  result equals the simulator's own answer within 1 KRW;
* no untyped error; the only typed failure light faults can cause (a token
  superseded twice in a row) is an AuthenticationError;
* every kind of call ran, prunes included, and upstream requests happened.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "stress.py"


@pytest.mark.slow
def test_stress_small(tmp_path, monkeypatch):
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE",
                "FINDER_LIVE_TTL", "FINDER_ALLOW_SHARED_CACHE", "FINDER_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    spec = importlib.util.spec_from_file_location("finder_bench_stress", BENCH)
    stress = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stress)
    # Count-based, not a time window: each process makes at least 24 calls (its plan's 21st is a
    # prune) however slow a busy machine is; 2 s of calls is only what it does beyond that.
    f = stress.run(seconds=2, procs=8, n_codes=8, server_rate=20.0, client_rate=16.0, faults="light", seed=7,
                   workdir=tmp_path / "stress", quiet=True, prune_every=stress.PRUNE_EVERY, min_calls=24)
    print(stress.report(f))
    assert f["procs"] == 8
    assert f["calls"] >= 8 * 24
    assert f["calls_by_kind"].get("prune", 0) >= 8, f["calls_by_kind"]  # one per process at least
    assert set(f["calls_by_kind"]) == {"ohlcv", "live", "scan", "panel", "prune"}, f["calls_by_kind"]
    assert f["upstream"].get("ka10081", 0) > 0 and f["minimum"].get("ka10081", 0) > 0
    assert f["rate_limit_rejections"] == 0 and f["client_saw_429"] == 0
    assert f["failed_untyped"] == 0
    assert set(f["failures"]) <= {"AuthenticationError"}, f["failures"]
    assert f["compared"] >= f["calls"] - f["calls_by_kind"]["prune"] - f["failed"]
    assert f["compared"] > 100
    assert f["inconsistent"] == 0, f["inconsistent_examples"]
    assert f["oracle_checked"] > 50 and f["oracle_wrong"] == 0, f["oracle_examples"]
    assert f["cache_entries"] > 0 and f["cache_bytes"] > 0

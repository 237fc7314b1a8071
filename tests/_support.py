"""Helpers for the client and cache tests: clients on a simulator, subprocess runs.

The simulator fixtures themselves live in conftest.py (``make_sim``, ``sim``,
``sim_market``); their clock is frozen at ``SIM_NOW``, and finder's own clock
is moved to the same instant with ``FINDER_NOW`` so every calendar decision
on both sides agrees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
APP_KEY = "PSappkey-9f3c1e7a2b"
SECRET_KEY = "secret-4d8b0a6c5e1f"


def client(sim, cache_dir, *, cache=True, rate=500.0, **kw):
    from finder import KiwoomAPI

    return KiwoomAPI(APP_KEY, SECRET_KEY, sim.url, cache=cache, cache_dir=cache_dir, rate=rate, **kw)


def sim_now_env(sim) -> str:
    return sim.app.clock.now().isoformat()


def run_python(script: str, env: dict | None = None, timeout: float = 240, pythonpath: str | None = None) -> dict:
    """Run ``script`` in a fresh interpreter; it must print one JSON line last. Returns that object."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if pythonpath:
        full_env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=full_env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    last = [line for line in proc.stdout.splitlines() if line.strip()][-1]
    return json.loads(last)


def digest(frames: list[pd.DataFrame]) -> str:
    """A content hash of frames, to compare results between processes."""
    import hashlib

    h = hashlib.sha256()
    for f in frames:
        h.update(np.ascontiguousarray(f.index.values.astype("int64")).tobytes())
        h.update(np.ascontiguousarray(f.to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()


def full_history_codes(market, start: str, end: str, n: int) -> list[str]:
    """``n`` stock codes (not ETFs) listed before ``start`` and still listed after ``end``."""
    out = []
    for code in market.codes:
        info = market.info(code)
        if info.market == "ETF":
            continue
        if info.listed <= pd.Timestamp(start) and (info.delisted is None or info.delisted > pd.Timestamp(end)):
            out.append(code)
        if len(out) == n:
            break
    return out


def ka10081(sim) -> int:
    return int(sim.stats()["requests"].get("ka10081", 0))

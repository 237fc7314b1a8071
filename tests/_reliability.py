"""Helpers for the reliability tests (faults, cache faults, bad input, security, stress).

* ``arm_at(sim, n, kind, ...)``: arm a simulator fault right before the
  ``n``-th request of one api-id reaches the real server, so a fault can hit
  the middle of a paging walk (page 2) rather than its first page.
* ``cache_files(root)``: what the cache folder holds, by kind: joblib entries
  per memoized function, stock pointers, temporary files.
* ``assert_walks_complete(root, market)``: every stored ka10081 walk equals
  what the simulator serves for its arguments, row for row: no partial walk
  was stored.
* ``assert_matches_oracle(df, market, code, base_dt, count)``: adjusted
  values within 1 KRW of the simulator oracle, same dates.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

SIM_NOW = "2025-11-28T20:30:00+09:00"
PRICES = ["open", "high", "low", "close"]
ENV_VARS = ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE",
            "FINDER_LIVE_TTL", "FINDER_ALLOW_SHARED_CACHE", "FINDER_LIVE_CUTOFF")


def clean_env(monkeypatch, cache_dir: Path, now: str = SIM_NOW) -> None:
    """finder's clock on the simulator's, a private cache folder, no credentials from the outside."""
    monkeypatch.setenv("FINDER_NOW", now)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(cache_dir))
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def forget_stores() -> None:
    """Drop every in-process Store (and its in-memory LRU), as a new process would start."""
    from finder.cache._store import Store

    Store._instances.clear()


@contextlib.contextmanager
def default_client_on(sim, monkeypatch, root: Path, app_key: str, secret_key: str):
    """finder's module-level default client pointed at ``sim`` through the environment, as a user sets it."""
    import finder

    clean_env(monkeypatch, root)
    monkeypatch.setenv("KIWOOM_APPKEY", app_key)
    monkeypatch.setenv("KIWOOM_SECRETKEY", secret_key)
    monkeypatch.setenv("KIWOOM_BASE_URL", sim.url)
    monkeypatch.setenv("FINDER_RATE", "500")
    forget_stores()
    finder.data.set_default_client(None)
    try:
        yield root
    finally:
        finder.data.set_default_client(None)
        forget_stores()


@contextlib.contextmanager
def arm_at(sim, n: int, kind: str, api_id: str = "ka10081", **spec):
    """Arm ``kind`` on the real simulator just before its ``n``-th ``api_id`` request (1-based) is answered."""
    app = sim.app
    original = app.respond
    seen = {"n": 0}

    def respond(method, path, headers, body):
        h = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        if h.get("api-id") == api_id:
            seen["n"] += 1
            if seen["n"] == n:
                sim.faults.add(kind, api_id=api_id, **spec)
        return original(method, path, headers, body)

    app.respond = respond
    try:
        yield seen
    finally:
        app.respond = original


@dataclass
class CacheFiles:
    entries: dict = field(default_factory=dict)   # memoized function name -> [entry folders]
    pointers: list = field(default_factory=list)  # finder/index/<code>.json
    frames: list = field(default_factory=list)    # finder/frames/<code>.pkl (ready frames)
    temp: list = field(default_factory=list)      # half-written temporaries

    def of(self, func: str) -> list[Path]:
        return self.entries.get(func, [])

    def codes(self, func: str) -> set[str]:
        out = set()
        for e in self.of(func):
            meta = read_meta(e)
            if meta:
                out.add(eval(meta["input_args"]["code"]))  # noqa: S307 - joblib stores repr() of a str
        return out


def read_meta(entry: Path) -> dict | None:
    try:
        return json.loads((entry / "metadata.json").read_text())
    except (OSError, ValueError):
        return None


def cache_files(root: Path) -> CacheFiles:
    out = CacheFiles()
    memo = root / "joblib" / "finder" / "cache" / "_memo"
    if memo.is_dir():
        for func_dir in memo.iterdir():
            if func_dir.is_dir():
                out.entries[func_dir.name] = sorted(p for p in func_dir.iterdir()
                                                    if p.is_dir() and (p / "output.pkl").exists())
    index = root / "finder" / "index"
    if index.is_dir():
        out.pointers = sorted(index.glob("*.json"))
    ready = root / "finder" / "frames"
    if ready.is_dir():
        out.frames = sorted(ready.glob("*.pkl"))
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.startswith(".tmp-") or ".pkl." in f or "metadata.json." in f:
                out.temp.append(Path(dirpath) / f)
    return out


def assert_walks_complete(root: Path, market) -> int:
    """Every stored walk is the whole answer the server gives for its (code, base_dt, depth, adjusted)."""
    n = 0
    for entry in cache_files(root).of("walk"):
        walk = joblib.load(entry / "output.pkl")
        want = market.bars(walk.code, str(walk.base_dt), adjusted=walk.adjusted)
        meta = read_meta(entry)
        assert meta is not None, f"walk entry {entry} has no metadata.json"
        want = want.iloc[-int(meta["input_args"]["depth"]):]
        assert len(walk.dates) == len(want), f"partial walk stored for {walk.code}: {len(walk.dates)} of {len(want)} rows"
        assert np.array_equal(walk.dates, want.index.values.astype("datetime64[D]")), walk.code
        assert np.array_equal(walk.prices, want[PRICES].to_numpy()), walk.code
        n += 1
    return n


def assert_matches_oracle(df: pd.DataFrame, market, code: str, base_dt, count: int) -> None:
    want = market.bars(code, base_dt, adjusted=True).iloc[-count:]
    assert len(df) == len(want) == count, (code, len(df), len(want))
    assert df.index.equals(want.index), code
    diff = np.abs(df[PRICES].to_numpy() - want[PRICES].to_numpy())
    assert diff.max() <= 1, (code, diff.max())


def fired(sim, kind: str) -> int:
    return int(sim.stats()["faults"].get(kind, 0))

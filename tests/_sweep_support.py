"""Synthetic panels and screens for the sweep tests: pure noise, and a planted signal.

Random picks use a stable hash of (seed, code, session), so every run (and every
Dask worker process) draws the same picks regardless of PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from finder.analysis.conditions import Condition, Screen


def _u(seed: int, code: str, session: pd.Timestamp) -> float:
    h = hashlib.blake2b(f"{seed}|{code}|{session.value}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0 ** 64


def noise_panels(T: int = 150, N: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Random-walk stocks without any predictable return."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=T)
    codes = [f"{i:06d}" for i in range(N)]
    r = rng.normal(0.0, 0.02, (T, N))
    close = pd.DataFrame(1000 * np.exp(np.cumsum(r, 0)), index=idx, columns=codes)
    opn = close.shift(1).fillna(close)
    return {"open": opn, "high": np.maximum(opn, close) * 1.005, "low": np.minimum(opn, close) * 0.995,
            "close": close, "volume": pd.DataFrame(1e5, index=idx, columns=codes)}


def random_screen(seed: int = 0, share: float = 0.1) -> Screen:
    """Picks each stock on each session with probability ``share``: no skill at all."""
    def pick(bars):
        return pd.Series([_u(seed, c, bars.session) < share for c in bars.codes], index=bars.codes)

    return Screen(filters=[Condition(pick, "random")], name="random", params={"seed": seed, "share": share})


def planted_panels(T: int = 150, N: int = 60, seed: int = 1, edge: float = 0.006) -> dict[str, pd.DataFrame]:
    """A hidden daily signal s ~ N(0, 1) per stock, shown as ``volume = 1e5 * exp(s)``;
    the next session's open-to-close return is ``edge * s + noise``: a rule on volume really predicts returns."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=T)
    codes = [f"{i:06d}" for i in range(N)]
    s = rng.normal(0.0, 1.0, (T, N))
    opn = np.empty((T, N))
    close = np.empty((T, N))
    c = np.full(N, 1000.0)
    for t in range(T):
        o = c * np.exp(rng.normal(0.0, 0.005, N))
        drift = edge * s[t - 1] if t > 0 else 0.0
        c = o * np.exp(drift + rng.normal(0.0, 0.02, N))
        opn[t], close[t] = o, c
    o_df = pd.DataFrame(opn, index=idx, columns=codes)
    c_df = pd.DataFrame(close, index=idx, columns=codes)
    return {"open": o_df, "high": np.maximum(o_df, c_df) * 1.002, "low": np.minimum(o_df, c_df) * 0.998,
            "close": c_df, "volume": pd.DataFrame(1e5 * np.exp(s), index=idx, columns=codes)}


def band_screen(lo: float = 0.0, width: float = 0.75) -> Screen:
    """Pick stocks whose log volume (the hidden signal) lies in ``[lo, lo + width)``."""
    def pick(bars):
        s = np.log(bars.volume.iloc[-1] / 1e5)
        return (s >= lo) & (s < lo + width)

    return Screen(filters=[Condition(pick, "band")], name="band", params={"lo": lo, "width": width})

"""The momentum preset on real KRX bars, against an independent per-stock re-implementation.

The reference below is written from the rules in ../shared/old-screener.md
(with finder's documented fixes: volume ratios exclude today, the
persistence signal counts), one stock at a time with plain pandas, sharing
no code with finder.analysis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finder.analysis import scan_panels

# ../shared/data next to the checkout (or next to the folder of worktrees holding it)
SAMPLE = next((p for p in (Path(__file__).resolve().parents[n] / "shared" / "data" / "krx_daily_sample.csv.gz"
                           for n in (2, 3)) if p.exists()),
              Path(__file__).resolve().parents[2] / "shared" / "data" / "krx_daily_sample.csv.gz")
pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"real-data sample not found at {SAMPLE}")


@pytest.fixture(scope="module")
def panels():
    df = pd.read_csv(SAMPLE, dtype={"code": str}, parse_dates=["date"])
    return {f: df.pivot(index="date", columns="code", values=f).sort_index()
            for f in ["open", "high", "low", "close", "volume"]}


def ema(s, n):
    return s.ewm(span=n, adjust=False).mean()


def tema(s, n):
    e1 = ema(s, n)
    e2 = ema(e1, n)
    return 3 * e1 - 3 * e2 + ema(e2, n)


def dema(s, n):
    e1 = ema(s, n)
    return 2 * e1 - ema(e1, n)


def rsi_smoothed(c, f, n=14):
    d = c.diff()
    g = f(d.clip(lower=0), n).clip(lower=0)
    lo = f((-d).clip(lower=0), n).clip(lower=0)
    tot = g + lo
    return np.where(tot > 0, 100 * g / tot, 50.0)


def lsq_slope(y):
    k = np.arange(len(y))
    return np.polyfit(k, y, 1)[0]


def reference(df: pd.DataFrame) -> dict:
    """The v1 rules for one stock; df = its last 220 trading bars, oldest first."""
    c, v = df["close"], df["volume"]
    t, d = tema(c, 20), dema(c, 10)
    rt = rsi_smoothed(c, tema)[-1]
    rd = rsi_smoothed(c, dema)[-1]
    m = ema(c, 12) - ema(c, 26)
    hist = (m - ema(m, 9)).iloc[-1]
    vr5 = v.iloc[-1] / v.iloc[-6:-1].mean()
    vr20 = v.iloc[-1] / v.iloc[-21:-1].mean()
    turnover = (c * v).iloc[-20:].mean()
    tema_slope = lsq_slope(t.iloc[-20:].to_numpy()) / t.iloc[-20:].mean()
    obv = (np.sign(c.diff()).fillna(0) * v).cumsum()
    obv_slope = lsq_slope(obv.iloc[-20:].to_numpy())
    above = int((c.iloc[-5:] > t.iloc[-5:]).sum())  # close above TEMA20 on the last 5 bars
    filters = {
        "liquidity": turnover >= 1e9,
        "price": c.iloc[-1] >= 2000,
        "trend": c.iloc[-1] >= ema(c, 60).iloc[-1],
        "not_overheated": not (rt >= 70 and vr5 >= 3.0),
    }
    signals = {
        "cross": (t.iloc[-2] <= d.iloc[-2]) and (t.iloc[-1] > d.iloc[-1]),
        "volume_surge": vr5 >= 2.5 and vr20 >= 1.2,
        "macd": hist > 0,
        "rsi_rising": rt > rd or (abs(rt - rd) <= 3 and rt > 58),
        "tema_trend": tema_slope > 0 and c.iloc[-1] > t.iloc[-1],
        "obv_trend": obv_slope > 0,
        "persistence": above >= 3,
    }
    weights = {"cross": 3, "volume_surge": 2, "macd": 1, "rsi_rising": 1, "tema_trend": 2, "obv_trend": 2,
               "persistence": 2}
    n = sum(signals.values())
    return {**{f"{k}_pass": bool(x) for k, x in {**filters, **signals}.items()},
            "score": float(sum(weights[k] for k, x in signals.items() if x)),
            "signals": n, "matched": all(filters.values()) and n >= 3}


@pytest.mark.parametrize("day", ["2025-10-01", "2025-06-16"])
def test_momentum_matches_independent_reimplementation(panels, day):
    session = pd.Timestamp(day)
    res = scan_panels(panels, session, "momentum", matches_only=False).set_index("code")
    assert len(res) > 150
    mismatches = []
    for code in res.index:
        df = pd.DataFrame({f: panels[f][code] for f in ("close", "volume")}).loc[:session]
        df = df[(df["close"] > 0) & (df["volume"] > 0)].dropna().iloc[-220:]
        if len(df) < 21:
            continue
        want = reference(df)
        for k, w in want.items():
            got = res.loc[code, k]
            if k == "score":
                ok = got == w
            else:
                ok = bool(got) == bool(w)
            if not ok:
                mismatches.append((code, k, got, w))
    # Knife-edge float ties (e.g. a slope of exactly ~0) could in principle
    # flip; on this data there are none.
    assert mismatches == []
    assert res["matched"].sum() > 0


def test_result_ranking_and_units(panels):
    res = scan_panels(panels, "2025-10-01")
    assert list(res.index) == list(range(1, len(res) + 1))
    keys = list(zip(-res["score"], -res["signals"], -res["value"], res["code"]))
    assert keys == sorted(keys)
    # change_pct is percent against the previous trading bar
    code = res["code"].iloc[0]
    c = panels["close"][code].loc[:"2025-10-01"].dropna()
    assert res["change_pct"].iloc[0] == pytest.approx((c.iloc[-1] / c.iloc[-2] - 1) * 100)
    assert res["value"].iloc[0] == pytest.approx(c.iloc[-1] * panels["volume"][code].loc["2025-10-01"])

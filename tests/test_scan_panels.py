"""The pure scanner: point in time, no look-ahead, deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finder import calendar
from finder._exceptions import InvalidInputError
from finder.analysis import Condition, Screen, Universe, close, scan_panels, sma, volume

SESSIONS = calendar.sessions_in_range("2024-06-03", "2025-11-28")
DAY = pd.Timestamp("2025-09-15")


def synthetic(n_codes=60, seed=1, sessions=SESSIONS) -> dict[str, pd.DataFrame]:
    """Random-walk panels on real XKRX sessions, with late listings, halts and zero-volume days."""
    rng = np.random.default_rng(seed)
    codes = [f"{100000 + 7 * i:06d}" for i in range(n_codes)]
    t = len(sessions)
    drift = rng.normal(0.0008, 0.0008, n_codes)
    c = 5000 * np.exp(np.cumsum(rng.normal(drift, 0.025, (t, n_codes)), axis=0))
    v = rng.lognormal(12, 0.6, (t, n_codes))
    v[rng.random((t, n_codes)) < 0.03] *= 4  # some volume surges
    h = c * (1 + rng.uniform(0, 0.03, (t, n_codes)))
    lo = c * (1 - rng.uniform(0, 0.03, (t, n_codes)))
    o = (h + lo) / 2
    frames = {k: pd.DataFrame(a, index=sessions, columns=codes) for k, a in
              {"open": o, "high": h, "low": lo, "close": c, "volume": v}.items()}
    frames["close"].index.name = "date"
    mask = pd.DataFrame(False, index=sessions, columns=codes)
    for j in range(0, n_codes, 9):  # late listings
        mask.iloc[: int(rng.integers(100, 300)), j] = True
    for j in range(2, n_codes, 7):  # halts
        g = int(rng.integers(150, t - 20))
        mask.iloc[g:g + 5, j] = True
    for k in frames:
        frames[k] = frames[k].mask(mask)
    frames["value"] = frames["close"] * frames["volume"] * rng.uniform(0.98, 1.02, (t, n_codes))
    return frames


@pytest.fixture(scope="module")
def panels():
    return synthetic()


LOOSE = Screen(filters=[Condition(close > sma(close, 60), "trend")],
               signals=[Condition(close > close.shift(), "up").weighted(2), Condition(volume > sma(volume, 20), "busy")],
               min_signals=1, min_bars=21, name="loose")


def test_no_look_ahead_changing_later_bars_changes_nothing(panels):
    for conditions in ("momentum", LOOSE):
        before = scan_panels(panels, DAY, conditions, matches_only=False)
        rng = np.random.default_rng(99)
        later = {k: f.copy() for k, f in panels.items()}
        after_rows = later["close"].index > DAY
        for k, f in later.items():
            f.loc[after_rows] = rng.uniform(1, 1e6, (after_rows.sum(), f.shape[1]))
        # also a stock that only exists after the day, and fewer rows after it
        for k, f in later.items():
            f["999990"] = np.where(after_rows, 5000.0, np.nan)
        after = scan_panels(later, DAY, conditions, matches_only=False)
        pd.testing.assert_frame_equal(before, after)
        assert before.attrs == after.attrs or {k for k in before.attrs if before.attrs[k] != after.attrs[k]} \
            == {"excluded"}
        truncated = {k: f.loc[:DAY] for k, f in panels.items()}
        pd.testing.assert_frame_equal(before, scan_panels(truncated, DAY, conditions, matches_only=False))


def test_only_the_last_lookback_bars_are_read(panels):
    before = scan_panels(panels, DAY, "momentum", lookback=220, matches_only=False)
    old = {k: f.copy() for k, f in panels.items()}
    # Every stock has >= 220 bars before DAY; rows older than each stock's window can change freely.
    for k, f in old.items():
        for code in f.columns:
            s = panels["close"][code].loc[:DAY]
            valid = s[s.notna() & (panels["volume"][code].loc[:DAY] > 0)]
            if len(valid) > 220:
                f.loc[f.index < valid.index[-220], code] = 1.0
    pd.testing.assert_frame_equal(before, scan_panels(old, DAY, "momentum", lookback=220, matches_only=False))
    # ... while a shorter look-back does see a different window (EMAs depend on it).
    shorter = scan_panels(panels, DAY, "momentum", lookback=100, matches_only=False)
    assert not np.allclose(before["not_overheated"], shorter["not_overheated"], equal_nan=True)


def test_point_in_time_membership(panels):
    p = {k: f.copy() for k, f in panels.items()}
    codes = list(p["close"].columns)
    p["close"].loc[DAY, codes[1]] = np.nan        # did not trade
    p["volume"].loc[DAY, codes[3]] = 0.0          # zero volume: not a trading bar
    meta = pd.DataFrame({"name": [f"N{c}" for c in codes], "market": ["KOSPI"] * len(codes),
                         "listed": [pd.Timestamp("2020-01-01")] * len(codes)}, index=codes)
    meta.loc[codes[4], "listed"] = DAY + pd.Timedelta(days=1)  # listed after the day
    res = scan_panels(p, DAY, LOOSE, meta=meta, matches_only=False)
    ex = res.attrs["excluded"]
    assert codes[1] in ex["not_traded"] and codes[3] in ex["not_traded"]
    assert ex["not_listed_yet"] == [codes[4]]
    assert not {codes[1], codes[3], codes[4]} & set(res["code"])
    assert res.set_index("code").loc[codes[5], "name"] == f"N{codes[5]}"
    assert res.attrs["scanned"] == len(res)


def test_halted_stock_is_scanned_on_its_own_bars(panels):
    # A stock with a halt inside its window gives the same row as its compacted series alone.
    p = {k: f.copy() for k, f in panels.items()}
    code = p["close"].columns[5]
    halt = p["close"].index[(p["close"].index < DAY)][-30:-25]
    for f in p.values():
        f.loc[halt, code] = np.nan  # a week's halt inside the 220-bar window
    panels = p
    full = scan_panels(panels, DAY, "momentum", matches_only=False).set_index("code").loc[code]
    ok = panels["close"][code].notna()
    alone = {k: f.loc[ok, [code]] for k, f in panels.items()}
    single = scan_panels(alone, DAY, "momentum", matches_only=False).set_index("code").loc[code]
    pd.testing.assert_series_equal(full, single)


def test_deterministic_and_independent_of_column_order(panels):
    a = scan_panels(panels, DAY, "momentum", matches_only=False)
    cols = list(panels["close"].columns)[::-1]
    shuffled = {k: f[cols] for k, f in panels.items()}
    b = scan_panels(shuffled, DAY, "momentum", matches_only=False)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, scan_panels(panels, DAY, "momentum", matches_only=False))


def test_results_do_not_depend_on_call_order(panels):
    d1, d2 = pd.Timestamp("2025-08-01"), DAY
    x1 = scan_panels(panels, d1, "momentum", matches_only=False)
    scan_panels(panels, d2, Screen(signals=[Condition(close > 0, "any")], min_signals=0), matches_only=False)
    x2 = scan_panels(panels, d2, "momentum", matches_only=False)
    pd.testing.assert_frame_equal(x2, scan_panels(panels, d2, "momentum", matches_only=False))
    pd.testing.assert_frame_equal(x1, scan_panels(panels, d1, "momentum", matches_only=False))


def test_output_shape_ranking_and_top(panels):
    res = scan_panels(panels, DAY, LOOSE)
    assert list(res.columns[:8]) == ["code", "name", "market", "close", "change_pct", "value", "score", "signals"]
    assert list(res.columns[8:]) == ["trend", "trend_pass", "up", "up_pass", "busy", "busy_pass"]
    assert res.index.name == "rank" and list(res.index) == list(range(1, len(res) + 1))
    assert res["trend_pass"].all() and (res["signals"] >= 1).all()
    keys = list(zip(-res["score"], -res["signals"], -res["value"], res["code"]))
    assert keys == sorted(keys)
    assert res["score"].tolist() == (2 * res["up_pass"] + res["busy_pass"]).astype(float).tolist()
    top = scan_panels(panels, DAY, LOOSE, top=5)
    pd.testing.assert_frame_equal(top, res.head(5))
    # value is the session's traded value; change_pct is percent
    row = res.iloc[0]
    assert row["value"] == panels["value"].loc[DAY, row["code"]]
    c = panels["close"][row["code"]].loc[:DAY].dropna()
    assert row["change_pct"] == pytest.approx(100 * (c.iloc[-1] / c.iloc[-2] - 1))


def test_value_falls_back_to_close_times_volume(panels):
    p = {k: f for k, f in panels.items() if k != "value"}
    res = scan_panels(p, DAY, LOOSE)
    row = res.iloc[0]
    assert row["value"] == pytest.approx(panels["close"].loc[DAY, row["code"]] * panels["volume"].loc[DAY, row["code"]])
    assert "close × volume" in res.attrs["value_source"]


def test_too_few_bars_and_empty_results(panels):
    young = {k: f.loc[SESSIONS[SESSIONS <= DAY][-15]:] for k, f in panels.items()}
    res = scan_panels(young, DAY, "momentum")
    assert len(res) == 0 and len(res.attrs["excluded"]["too_few_bars"]) == young["close"].shape[1]
    assert "score" in res.columns and "cross_pass" in res.columns
    holiday = scan_panels(panels, "2025-10-03", "momentum")  # no row for that day: nobody traded
    assert len(holiday) == 0 and holiday.attrs["scanned"] == 0


def test_universe_filters_use_bars_up_to_the_day_only(panels):
    p = {k: f.copy() for k, f in panels.items()}
    star = p["close"].columns[10]
    after = p["close"].index > DAY
    p["value"].loc[after, star] = 1e15  # hugely traded, but only after the day
    uni = Universe(list(p["close"].columns), top_value=5)
    res = scan_panels(p, DAY, LOOSE, universe=uni, matches_only=False)
    assert star not in set(res["code"])
    mean20 = {}
    for code in p["close"].columns:
        ok = p["close"][code].loc[:DAY].notna() & (p["volume"][code].loc[:DAY] > 0)
        if ok.iloc[-1]:
            mean20[code] = p["value"][code].loc[:DAY][ok].iloc[-20:].mean()
    want = sorted(mean20, key=lambda c: (-mean20[c], c))[:5]
    assert sorted(res["code"]) == sorted(want)
    assert len(res.attrs["excluded"]["below_liquidity"]) == len(mean20) - 5


def test_universe_market_and_codes(panels):
    codes = list(panels["close"].columns)
    meta = pd.DataFrame({"name": "x", "market": ["KOSPI" if i % 2 else "KOSDAQ" for i in range(len(codes))]},
                        index=codes)
    res = scan_panels(panels, DAY, LOOSE, meta=meta, universe="KOSDAQ", matches_only=False)
    assert set(res["market"]) == {"KOSDAQ"}
    res2 = scan_panels(panels, DAY, LOOSE, universe=codes[:4], matches_only=False)
    assert set(res2["code"]) <= set(codes[:4])
    with pytest.raises(InvalidInputError, match="market"):
        scan_panels(panels, DAY, LOOSE, universe="KOSPI")  # no meta to tell markets apart


@pytest.mark.parametrize("kwargs,match", [
    ({"conditions": "nope"}, "'nope'"),
    ({"lookback": 0}, "lookback=0"),
    ({"lookback": 10}, "lookback=10"),  # shorter than momentum's 21 bars
    ({"lookback": "220"}, "lookback='220'"),
    ({"top": 0}, "top=0"),
    ({"top": 2.5}, "top=2.5"),
    ({"universe": "NASDAQ"}, "'NASDAQ'"),
    ({"universe": ["5930"]}, "'5930'"),
])
def test_bad_arguments(panels, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        scan_panels(panels, DAY, **kwargs)


def test_bad_panels():
    with pytest.raises(InvalidInputError, match="dict"):
        scan_panels(pd.DataFrame(), DAY)
    with pytest.raises(InvalidInputError, match="close"):
        scan_panels({"volume": pd.DataFrame()}, DAY)
    idx = pd.DatetimeIndex(["2025-09-12", "2025-09-11"])
    with pytest.raises(InvalidInputError, match="ascending"):
        scan_panels({"close": pd.DataFrame({"000001": [1.0, 2.0]}, index=idx)}, DAY)

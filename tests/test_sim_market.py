"""The simulator's market data: determinism, realism, corporate actions and the adjustment oracle."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finder.sim import CorporateAction, ReplayMarket, SyntheticMarket
from finder.sim._clock import sessions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NOW = "2025-11-28T20:30:00+09:00"


def expected_adjusted(raw: pd.DataFrame, events: list[CorporateAction], base_dt: str) -> pd.DataFrame:
    """The documented rule, written out plainly (one event at a time) as an independent check."""
    base = pd.Timestamp(base_dt)
    price = np.ones(len(raw))
    volume = np.ones(len(raw))
    for e in events:
        if e.ex_date <= base:
            before = raw.index < e.ex_date
            price[before] *= e.factor
            volume[before] *= e.volume_factor
    out = raw[["open", "high", "low", "close"]].mul(price, axis=0).round()
    out["volume"] = np.round(raw["volume"] * volume).astype("int64")
    return out


def test_universe_shape(sim_market):
    m = sim_market
    d = m.describe()
    assert d["stocks"] == 300 and d["KOSPI"] == 150 and d["KOSDAQ"] == 120 and d["ETF"] == 30
    assert len(set(m.codes)) == 300
    for code in m.codes:
        assert re.fullmatch(r"[0-8]\d{5}", code), code  # 6 digits, never starting with 9 (the 1902 rule)
    names = [m.info(c).name for c in m.codes]
    assert len(set(names)) == len(names)
    etf_names = [m.info(c).name for c in m.codes if m.info(c).market == "ETF"]
    assert all(n.split()[0] in {"KODEX", "TIGER", "KBSTAR", "ARIRANG", "ACE", "SOL", "HANARO", "PLUS"} for n in etf_names)
    assert m.info("069500").name == "KODEX 200" and m.info("005930").market == "KOSPI"


def test_deterministic():
    # Generation speed is a benchmark's business (tests never time themselves); this checks determinism.
    a = SyntheticMarket(seed=3, n_stocks=60)
    b = SyntheticMarket(seed=3, n_stocks=60)
    c = SyntheticMarket(seed=4, n_stocks=60)
    assert a.codes == b.codes and a.codes != c.codes
    for code in a.codes[::37]:
        pd.testing.assert_frame_equal(a.raw_bars(code), b.raw_bars(code))
        assert a.events(code) == b.events(code)


def test_bars_are_sane(sim_market):
    s = sessions()
    closes = []
    for code in sim_market.codes:
        raw = sim_market.raw_bars(code)
        assert raw.index.is_monotonic_increasing and raw.index.is_unique
        assert np.isin(raw.index.values.astype("datetime64[D]"), s).all()
        assert (raw["low"] <= raw[["open", "close"]].min(axis=1)).all()
        assert (raw["high"] >= raw[["open", "close"]].max(axis=1)).all()
        assert (raw["low"] >= 1).all() and (raw["volume"] >= 1).all()
        assert (raw["value"] >= raw["low"] * raw["volume"]).all() and (raw["value"] <= raw["high"] * raw["volume"]).all()
        closes.append(raw.loc[:"2025-11-28", "close"].iloc[-1] if len(raw.loc[:"2025-11-28"]) else np.nan)
    closes = np.array(closes)
    closes = closes[~np.isnan(closes)]
    assert (closes < 2000).sum() >= 10, "some penny-ish stocks"
    assert ((closes >= 5000) & (closes <= 200_000)).mean() > 0.4, "many in the usual range"
    # volume surges exist: some day trades at least 5x the stock's median volume
    raw = sim_market.raw_bars("005930")
    assert (raw["volume"] > 5 * raw["volume"].median()).any()


def test_corporate_actions_exist_and_follow_their_definition(sim_market):
    m = sim_market
    kinds = {"split": 0, "dividend": 0}
    ratios = set()
    for code in m.codes:
        raw = m.raw_bars(code)
        for e in m.events(code):
            kinds[e.kind] += 1
            i = raw.index.get_loc(e.ex_date)
            assert i > 0, "an ex-date has a previous session"
            p = raw["close"].iloc[i - 1]
            ref = raw["base"].iloc[i]
            if e.kind == "split":
                k = 1 / e.factor
                ratios.add(round(k, 3))
                assert e.volume_factor == pytest.approx(k)
                assert ref == round(p * e.factor)
            else:
                d = int(e.detail.removeprefix("D="))
                assert e.factor == pytest.approx((p - d) / p, rel=1e-12)
                assert ref == p - d and e.volume_factor == 1.0
                assert 0.001 < d / p < 0.05
            # the raw open starts near the exchange reference price, not the old close
            assert abs(raw["open"].iloc[i] / ref - 1) < 0.2
    assert kinds["split"] >= 5 and kinds["dividend"] >= 100
    assert {2.0, 5.0, 10.0} <= ratios and 0.2 in ratios  # forward splits and one 5:1 reverse split


def test_listings_delistings_and_halts(sim_market):
    m = sim_market
    s = sessions()
    late = [c for c in m.codes if m.info(c).listed > pd.Timestamp("2015-01-02")]
    gone = [c for c in m.codes if m.info(c).delisted is not None]
    assert len(late) >= 10 and len(gone) >= 3
    for c in late:
        assert m.raw_bars(c).index[0] == m.info(c).listed
    for c in gone:
        raw = m.raw_bars(c)
        assert raw.index[-1] < m.info(c).delisted
        assert c not in m.listings(m.info(c).market, m.info(c).delisted)
        assert c in m.listings(m.info(c).market, raw.index[-1])
    halted = 0
    for c in m.codes:
        raw = m.raw_bars(c)
        first = np.searchsorted(s, raw.index.values[0].astype("datetime64[D]"))
        last = np.searchsorted(s, raw.index.values[-1].astype("datetime64[D]"))
        halted += (last - first + 1) > len(raw)
    assert halted >= 5, "some stocks skip sessions (halts)"


def test_adjusted_oracle_matches_the_rule_and_raw_never_moves(sim_market):
    m = sim_market
    split_codes = [c for c in m.codes if any(e.kind == "split" and e.ex_date < pd.Timestamp("2025-06-30")
                                             for e in m.events(c))]
    div_codes = [c for c in m.codes if sum(e.kind == "dividend" for e in m.events(c)) >= 3][:5]
    for code in split_codes + div_codes:
        raw = m.raw_bars(code)
        for base in ("20160104", "20200630", "20251128"):
            got = m.bars(code, base, True, now=NOW)
            exp = expected_adjusted(raw.loc[:pd.Timestamp(base)], m.events(code), base)
            assert len(got) == len(exp)
            np.testing.assert_array_equal(got[["open", "high", "low", "close"]].to_numpy(),
                                          exp[["open", "high", "low", "close"]].to_numpy())
            np.testing.assert_array_equal(got["volume"].to_numpy(), exp["volume"].to_numpy())
            # traded value is never adjusted (served in millions of KRW)
            np.testing.assert_array_equal(got["value"].to_numpy(),
                                          np.round(raw.loc[:pd.Timestamp(base), "value"].to_numpy() / 1e6) * 1_000_000)
        r1 = m.bars(code, "20200630", False, now=NOW)
        r2 = m.bars(code, "20251128", False, now=NOW).loc[:"2020-06-30"]
        pd.testing.assert_frame_equal(r1, r2)


def test_a_past_bar_never_depends_on_today(sim_market):
    code = "005930"
    a = sim_market.bars(code, "20230630", True, now="2023-07-03T20:30+09:00")
    b = sim_market.bars(code, "20230630", True, now="2025-11-28T20:30+09:00")
    pd.testing.assert_frame_equal(a, b)
    # but an action after "today" is not applied, however late base_dt is
    late = [c for c in sim_market.codes if any(e.ex_date == pd.Timestamp("2026-01-02") for e in sim_market.events(c))]
    assert late
    c = late[0]
    before = sim_market.bars(c, "20271231", True, now=NOW)
    after = sim_market.bars(c, "20271231", True, now="2026-01-02T20:30+09:00").loc[:"2025-11-28"]
    assert (after["close"] < before["close"]).all()


def test_oracle_nxt_and_unknowns(sim_market):
    nx = sim_market.bars("005930_NX", "20251128", True, now=NOW)
    krx = sim_market.bars("005930", "20251128", True, now=NOW)
    assert sim_market.info("005930").nxt_enable
    pd.testing.assert_frame_equal(nx, krx.loc["2025-03-04":])
    assert sim_market.bars("005930", "20141231", True, now=NOW).empty
    with pytest.raises(KeyError):
        sim_market.bars("999999", "20251128")


def test_replay_market_serves_the_file_as_is():
    path = DATA / "krx_daily_sample.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    m = ReplayMarket.from_csv(path)
    src = pd.read_csv(path, dtype={"code": str})
    assert len(m.codes) == src["code"].nunique()
    assert m.default_now.isoformat().startswith("2025-11-28T20:30")
    one = src[src["code"] == "005930"].set_index(pd.to_datetime(src.loc[src["code"] == "005930", "date"]))
    got_adj = m.bars("005930", "20251128", True)
    got_raw = m.bars("005930", "20251128", False)
    pd.testing.assert_frame_equal(got_adj, got_raw)
    np.testing.assert_array_equal(got_adj["close"].to_numpy(), one["close"].to_numpy())
    np.testing.assert_array_equal(got_adj["volume"].to_numpy(), one["volume"].to_numpy())
    np.testing.assert_array_equal(got_adj["value"].to_numpy(),
                                  np.round(one["close"].to_numpy() * one["volume"].to_numpy() / 1e6) * 1e6)
    assert m.info("005930").listed == one.index[0] and m.info("005930").name == "005930"

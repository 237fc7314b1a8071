"""The whole-range engine against the per-session reference, over real HTTP to the simulator.

``scanner.scan(d)`` per session is the reference.  The whole-range path
(``finder.analysis._range`` through ``prepare_backtest``) must give the same
dates, codes and ranks, scores within 1e-9 relative, on ranges that hold a
split and dividends, for every preset and a custom set with a price-level
threshold on the splitting stock and ranking ties; on the real KRX sample too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sim_mod = pytest.importorskip("finder.sim")

from finder import KiwoomAPI, calendar, data  # noqa: E402
from finder.analysis import (PRESETS, Screen, atr, close, crossed_above, ema, high, low, macd,  # noqa: E402
                             rsi, scanner, sma, volume, volume_ratio)
from finder.analysis.backtest import backtest, prepare_backtest  # noqa: E402

SIM_NOW = "2025-11-28T20:30:00+09:00"
ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout (or next to the folder of worktrees holding it)
SAMPLE = next((p for p in (ROOT.parent / "shared" / "data" / "krx_daily_sample.csv.gz",
                           ROOT.parent.parent / "shared" / "data" / "krx_daily_sample.csv.gz") if p.exists()),
              ROOT.parent / "shared" / "data" / "krx_daily_sample.csv.gz")
SPLIT_CODE, SPLIT_EX = "171840", pd.Timestamp("2024-05-10")
SPLIT_RANGE = ("2024-04-26", "2024-05-16")       # the 1:2 split of 171840 and ETF dividends (04-30)
DIVIDEND_RANGE = ("2024-12-26", "2025-01-08")    # 83 year-end dividends, ex-date 2025-01-02
# KOSPI and ETFs hold the ranges' dividends and ETF distributions; KOSDAQ would add cost, not cases.
UNIVERSE = "KOSPI+ETF"


@pytest.fixture(scope="module")
def env(sim_market, tmp_path_factory):
    """One simulator over real HTTP and one cache for the module; finder.data pointed at them."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FINDER_NOW", SIM_NOW)
    sim = sim_mod.Simulator(market=sim_market, rate=1000.0, burst=100, now=SIM_NOW).start()
    base = tmp_path_factory.mktemp("range")
    client = KiwoomAPI("range-app-key", "range-secret-key", sim.url, cache_dir=base / "cache", rate=1000.0)
    data.set_default_client(client)
    yield sim, sim_market, base
    data.set_default_client(None)
    client.close()
    sim.stop()
    mp.undo()


def reference(sessions, universe, conditions, top=None) -> pd.DataFrame:
    frames = []
    for d in sessions:
        r = scanner.scan(d, universe=universe, conditions=conditions, top=top).reset_index()
        r.insert(0, "date", d)
        frames.append(r)
    return pd.concat(frames, ignore_index=True)


def assert_same_picks(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    key = ["date", "rank", "code"]
    assert list(map(tuple, got[key].astype(str).to_numpy())) == list(map(tuple, ref[key].astype(str).to_numpy()))
    np.testing.assert_allclose(got["score"].to_numpy(float), ref["score"].to_numpy(float), rtol=1e-9, atol=0)
    assert (got["signals"].to_numpy() == ref["signals"].to_numpy()).all()
    for c in ref.columns:
        if c.endswith("_pass"):
            assert (got[c].to_numpy(bool) == ref[c].to_numpy(bool)).all(), c
        elif c in ("close", "value", "change_pct"):
            np.testing.assert_array_equal(got[c].to_numpy(float), ref[c].to_numpy(float), err_msg=c)
        elif c not in key + ["name", "market", "score", "signals"]:
            # condition values: the same numbers up to float rounding of differently ordered sums
            np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=1e-7, atol=1e-12,
                                       err_msg=c)


def custom_screen(level: float) -> Screen:
    """Equal weights and min_signals=0: every stock matches, so equal scores (ties) abound."""
    return Screen(signals=[(close >= level).named("price_level"),
                           (close > ema(close, 20)).named("above_ema20"),
                           (rsi(close, 14) > 50).named("rsi50"),
                           (macd(close).hist > 0).named("macd_up"),
                           crossed_above(close, sma(close, 10)).named("cross10"),
                           (atr(high, low, close, 14) >= 50).named("atr_krw"),
                           (volume_ratio(volume, 5) >= 1.5).named("volume_up")],
                  min_signals=0, min_bars=1, name="custom")


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("span", [SPLIT_RANGE, DIVIDEND_RANGE], ids=["split", "dividends"])
def test_presets_match_the_per_session_scan(env, preset, span):
    sim, market, base = env
    prep = prepare_backtest(*span, universe=UNIVERSE, progress=False)
    assert prep.range.data.classes > 0, "the range must hold corporate actions of scanned stocks"
    got = prep.picks(preset)
    ref = reference(prep.sessions, UNIVERSE, preset)
    assert len(ref) > 0
    assert_same_picks(got, ref)
    # max_picks keeps each session's top ranks, as scan(top=) does
    top3 = ref[ref["rank"] <= 3].reset_index(drop=True)   # scan(top=3) keeps each session's first three
    assert_same_picks(prep.picks(preset, max_picks=3), top3)


def test_custom_set_with_a_price_threshold_across_a_split_and_ties(env):
    sim, market, base = env
    sessions = calendar.sessions_in_range(*SPLIT_RANGE)
    before = [d for d in sessions if d < SPLIT_EX]
    after = [d for d in sessions if d >= SPLIT_EX]
    # each session's own basis: before the ex-date the stock trades at twice its later price
    pre = min(market.bars(SPLIT_CODE, d).loc[d, "close"] for d in before)
    post = max(market.bars(SPLIT_CODE, d).loc[d, "close"] for d in after)
    assert pre > 1.5 * post
    level = (pre + post) / 2
    codes = sorted(market.listings("KOSPI", sessions[0]))[:30] + [SPLIT_CODE]
    screen = custom_screen(level)
    prep = prepare_backtest(*SPLIT_RANGE, universe=codes, progress=False)
    got = prep.picks(screen)
    ref = reference(sessions, codes, screen)
    assert_same_picks(got, ref)
    # the threshold passed before the split and failed after: prices were each date's own
    mine = got[got["code"] == SPLIT_CODE].set_index("date")["price_level_pass"]
    assert mine.loc[before].all() and not mine.loc[after].any()
    # ties: sessions where several stocks share a score are ranked by traded value, then code
    tied = got.groupby(["date", "score"]).size()
    assert (tied > 1).any()


def test_backtest_engines_agree_and_requests(env):
    """The same trades from both engines; the same upstream requests cold, none warm."""
    sim, market, base = env
    codes = sorted(market.listings("KOSDAQ", pd.Timestamp(SPLIT_RANGE[0])))[:25] + [SPLIT_CODE]
    kw = dict(universe=codes, horizons=(1, 5), progress=False)
    old = data.default_client()
    results, counts = {}, {}
    try:
        for engine in ("range", "session"):
            fresh = KiwoomAPI("range-app-key", "range-secret-key", sim.url, rate=1000.0,
                              cache_dir=base / f"requests-{engine}")
            data.set_default_client(fresh)
            n = []
            for _ in range(2):
                n0 = int(sim.stats()["requests"].get("ka10081", 0))
                results[engine] = backtest("momentum", *SPLIT_RANGE, engine=engine, **kw)
                n.append(int(sim.stats()["requests"].get("ka10081", 0)) - n0)
            counts[engine] = n
            fresh.close()
    finally:
        data.set_default_client(old)
    # cold: the range path asks for exactly what the per-session path asks for; warm: nothing
    assert counts["range"][0] == counts["session"][0] >= 2 * len(codes)
    assert counts["range"][1] == counts["session"][1] == 0
    fast, slow = results["range"], results["session"]
    assert fast.params["engine"] == "range" and slow.params["engine"] == "session"
    pd.testing.assert_frame_equal(fast.picks[["date", "rank", "code"]], slow.picks[["date", "rank", "code"]])
    pd.testing.assert_frame_equal(fast.trades, slow.trades, check_exact=False, rtol=1e-9)


def test_function_conditions_fall_back_to_the_reference(env):
    sim, market, base = env
    codes = sorted(market.listings("KOSPI", pd.Timestamp(SPLIT_RANGE[0])))[:10]

    def rising(bars):
        return bars.close > bars.close.shift()

    res = backtest(rising, "2024-05-02", "2024-05-08", universe=codes, horizons=(1,), progress=False)
    assert res.params["engine"] == "session"
    from finder._exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="function of the bars"):
        backtest(rising, "2024-05-02", "2024-05-08", universe=codes, horizons=(1,), progress=False, engine="range")


def test_range_scan_reads_no_later_bar(env):
    """No look-ahead on the whole-range path: every bar after the last session changed, picks unchanged."""
    sim, market, base = env
    last = pd.Timestamp("2024-05-08")
    codes = sorted(market.listings("KOSPI", pd.Timestamp("2024-01-02")))[:40]
    frames = []
    for code in codes:
        b = market.bars(code, "2025-11-28").reset_index()
        b.insert(0, "code", code)
        frames.append(b)
    frame = pd.concat(frames, ignore_index=True)
    later = frame.copy()
    after = later["date"] > last
    rng = np.random.default_rng(1)
    for col in ("open", "high", "low", "close"):
        later.loc[after, col] = (later.loc[after, col] * rng.uniform(0.3, 3.0, after.sum())).round()
    later.loc[after, "volume"] = (later.loc[after, "volume"] * rng.uniform(0.1, 20, after.sum())).round()
    results = []
    old = data.default_client()
    try:
        for i, f in enumerate((frame, later)):
            client = KiwoomAPI(transport=sim_mod.in_process_transport(sim_mod.ReplayMarket(f)), rate=1000,
                               cache_dir=base / f"lookahead{i}")
            data.set_default_client(client)
            results.append(prepare_backtest("2024-04-01", last, universe=codes, progress=False).picks("momentum"))
            client.close()
    finally:
        data.set_default_client(old)
    pd.testing.assert_frame_equal(results[0], results[1])
    assert len(results[0]) > 0


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"real-data sample not found at {SAMPLE}")
def test_real_bars_match_the_per_session_scan(env):
    sim, market, base = env
    frame = pd.read_csv(SAMPLE, dtype={"code": str})
    span = frame.groupby("code")["date"].agg(["min", "max"])
    codes = sorted(span[(span["min"] <= "2024-06-01") & (span["max"] >= "2025-11-14")].index)[:150]
    old = data.default_client()
    client = KiwoomAPI(transport=sim_mod.in_process_transport(sim_mod.ReplayMarket(frame[frame["code"].isin(codes)])),
                       rate=1000, cache_dir=base / "real")
    data.set_default_client(client)
    try:
        prep = prepare_backtest("2025-09-01", "2025-09-30", universe=codes, progress=False)
        for conditions in ("momentum", "momentum_strict", custom_screen(20_000)):
            got = prep.picks(conditions)
            ref = reference(prep.sessions, codes, conditions)
            assert len(ref) > 0
            assert_same_picks(got, ref)
    finally:
        data.set_default_client(old)
        client.close()


def test_trades_at_the_data_end_priced_from_memory_equal_the_reference(env):
    """A range ending on the newest session: evaluation prices come from the bars already loaded."""
    sim, market, base = env
    codes = sorted(market.listings("KOSPI", pd.Timestamp("2025-11-03")))[:15]
    kw = dict(universe=codes, horizons=(1, 3), take_profit=0.03, stop_loss=0.03, progress=False)
    fast = backtest(close > sma(close, 5), "2025-11-17", "2025-11-28", engine="range", **kw)
    slow = backtest(close > sma(close, 5), "2025-11-17", "2025-11-28", engine="session", **kw)
    assert fast.params["eval_end"] == pd.Timestamp("2025-11-28") and len(fast.trades) > 0
    pd.testing.assert_frame_equal(fast.trades, slow.trades, check_exact=False, rtol=1e-9)
    for f in ("open", "high", "low", "close"):
        pd.testing.assert_frame_equal(fast.prices[f], slow.prices[f])


@pytest.mark.parametrize("liquid", [dict(top_value=40), dict(min_value=3e9, value_window=10)])
def test_liquidity_universes_match_the_per_session_scan(env, liquid):
    from finder.analysis import Universe

    uni = Universe("KOSPI+KOSDAQ", **liquid)
    prep = prepare_backtest(*DIVIDEND_RANGE, universe=uni, progress=False)
    for conditions in ("momentum", custom_screen(10_000)):
        got = prep.picks(conditions)
        ref = reference(prep.sessions, uni, conditions)
        assert len(ref) > 0
        assert_same_picks(got, ref)
    if "top_value" in liquid:
        assert got.groupby("date").size().max() <= 40


# --------------------------------------------------------------------------
# the load: from the stored panel (memory-mapped) vs every stock from its history
# --------------------------------------------------------------------------

def _layout(span, universe, use_panels: bool, monkeypatch):
    from finder.analysis import _range

    monkeypatch.setattr(_range, "_USE_PANELS", use_panels)
    return prepare_backtest(*span, universe=universe, progress=False).range.data


@pytest.mark.parametrize("span", [SPLIT_RANGE, DIVIDEND_RANGE], ids=["split", "dividends"])
def test_panel_load_lays_out_the_same_arrays_as_the_histories(env, span, monkeypatch):
    """Stocks served by the stored panel get exactly the columns History.arrays(as of d) gives."""
    sim, market, base = env
    uni = UNIVERSE
    slow = _layout(span, uni, False, monkeypatch)
    fast = _layout(span, uni, True, monkeypatch)
    assert slow.panel is None and fast.panel is not None
    # most stocks from the panel; those with an action inside the range or after it (the panel holds
    # prices as of its newer end) from their histories
    assert len(fast.panel.codes) > 0.5 * len(set(fast.codes)) and fast.classes > 0
    assert 0 < len(fast.histories) < len(set(fast.codes))
    assert fast.classes == slow.classes and fast.missing == slow.missing
    assert list(fast.codes) == list(slow.codes)
    np.testing.assert_array_equal(fast.pos, slow.pos)
    np.testing.assert_array_equal(fast.start, slow.start)
    assert set(fast.fields) == set(slow.fields)
    for f in slow.fields:
        np.testing.assert_array_equal(fast.fields[f], slow.fields[f], err_msg=f)


def test_warm_panel_load_makes_no_request_and_survives_a_damaged_panel(env, monkeypatch):
    """A second load is served by the stored panel with 0 requests; a damaged panel file is rebuilt, same arrays."""
    sim, market, base = env
    from finder.cache import _panel

    uni = "KOSPI+KOSDAQ"
    first = _layout(DIVIDEND_RANGE, uni, True, monkeypatch)
    n0 = int(sim.stats()["requests"].get("ka10081", 0))
    again = _layout(DIVIDEND_RANGE, uni, True, monkeypatch)
    assert int(sim.stats()["requests"].get("ka10081", 0)) == n0
    assert again.panel is not None and again.panel.panel.id == first.panel.panel.id
    # damage the data file in place (same size): the load must not serve it
    path = again.panel.panel.path / "data.npy"
    raw = bytearray(path.read_bytes())
    raw[-4096:] = b"\x7f" * 4096
    path.write_bytes(bytes(raw))
    _panel._verified.clear()
    healed = _layout(DIVIDEND_RANGE, uni, True, monkeypatch)
    assert healed.panel is not None and healed.panel.panel.id != first.panel.panel.id
    assert int(sim.stats()["requests"].get("ka10081", 0)) == n0
    for f in first.fields:
        np.testing.assert_array_equal(healed.fields[f], first.fields[f], err_msg=f)
    np.testing.assert_array_equal(healed.pos, first.pos)
    np.testing.assert_array_equal(healed.start, first.start)


def test_evaluation_prices_from_the_panel_equal_get_panel(env):
    """Trades ending with the loaded range are priced from the mapped panel: the rows get_panel serves."""
    sim, market, base = env
    codes = sorted(market.listings("KOSPI", pd.Timestamp("2025-10-01")))[:40]
    prep = prepare_backtest("2025-10-01", "2025-11-28", universe=codes, progress=False)
    assert prep.range.data.panel is not None
    timeline = calendar.sessions_in_range("2025-10-01", "2025-11-28")
    got = prep.range.data.panels(codes, timeline)
    ref = data.get_panel(codes, len(timeline), timeline[-1], field=["open", "high", "low", "close"])
    assert got["_missing"] == list(ref["close"].attrs["missing"])
    for f in ("open", "high", "low", "close"):
        pd.testing.assert_frame_equal(got[f], ref[f].reindex(timeline), check_names=False)


def test_a_code_the_panel_cannot_serve_goes_per_stock_without_rebuilding(env, monkeypatch):
    """An unknown code in the universe is listed missing; the panel serving the rest is reused, not rebuilt."""
    sim, market, base = env
    codes = sorted(market.listings("KOSDAQ", pd.Timestamp("2025-10-01")))[:40] + ["999990"]
    span = ("2025-10-01", "2025-11-28")
    slow = _layout(span, codes, False, monkeypatch)
    fast = _layout(span, codes, True, monkeypatch)
    n0 = int(sim.stats()["requests"].get("ka10081", 0))
    again = _layout(span, codes, True, monkeypatch)
    assert int(sim.stats()["requests"].get("ka10081", 0)) == n0
    assert "999990" in fast.missing and set(fast.missing) == set(slow.missing) == set(again.missing)
    assert again.panel.panel.id == fast.panel.panel.id
    for got in (fast, again):
        assert list(got.codes) == list(slow.codes)
        np.testing.assert_array_equal(got.pos, slow.pos)
        np.testing.assert_array_equal(got.start, slow.start)
        for f in slow.fields:
            np.testing.assert_array_equal(got.fields[f], slow.fields[f], err_msg=f)

"""Batched daily refresh (ka10095): quotes, corporate actions, halts, listings, and bar-for-bar equality.

Route A: a warm cache brought to the next session with ``finder.cache.refresh``.
Route B: a full per-stock refetch from the server (``cache=False``).
Every bar of every stock must be identical.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import finder.cache as fcache
from finder import calendar
from finder._exceptions import InvalidInputError
from _support import client, full_history_codes

PRICE = ["open", "high", "low", "close"]


def _set_clock(sim, monkeypatch, day) -> None:
    now = f"{pd.Timestamp(day).date()}T20:30:00+09:00"
    sim.set_now(now)
    monkeypatch.setenv("FINDER_NOW", now)


def _req(sim, api_id):
    return int(sim.stats()["requests"].get(api_id, 0))


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "default"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "FINDER_RATE", "FINDER_LIVE_TTL"):
        monkeypatch.delenv(var, raising=False)


# -- the client call ------------------------------------------------------------------------
def test_get_quotes_batches_by_100_and_reports_unknown_codes(sim, sim_market, tmp_path, monkeypatch):
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T20:30:00+09:00")
    codes = [c for c in sim_market.codes if sim_market.is_listed(c, np.datetime64("2025-11-28"))][:230]
    with client(sim, tmp_path / "c", cache=False) as api:
        sim.reset_stats()
        q = api.get_quotes(codes + ["123456"])
        assert _req(sim, "ka10095") == math.ceil(231 / 100)
        assert q.attrs["unknown"] == ["123456"]
        assert list(q.index) == codes
        assert (q[PRICE] > 0).all().all()              # signs stripped
        for code in codes[::23]:
            bar = sim_market.bars(code, "2025-11-28", adjusted=False).iloc[-1]
            if bool(q.loc[code, "traded"]):
                assert q.loc[code, "date"] == pd.Timestamp("2025-11-28")
                assert np.array_equal(q.loc[code, PRICE].to_numpy(float), bar[PRICE].to_numpy(float))
                assert q.loc[code, "volume"] == bar.volume and q.loc[code, "value"] == bar.value
        with pytest.raises(InvalidInputError):
            api.get_quotes(["005930", "KRX:005930"])


def test_get_quotes_goes_through_the_retry_rules(sim, sim_market, tmp_path, monkeypatch):
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T20:30:00+09:00")
    sim.faults.add("rate_storm", count=2, api_id="ka10095")
    with client(sim, tmp_path / "c", cache=False, backoff=0.01) as api:
        q = api.get_quotes(sim_market.codes[:5])
    assert len(q) + len(q.attrs["unknown"]) == 5
    assert sim.stats()["rate_limited"]["ka10095"] == 2


# -- refresh == full refetch ---------------------------------------------------------------------
def _scenario(sim_market, kind):
    """(session T, codes to cache at T-1, the event stock) for each kind of day."""
    base = full_history_codes(sim_market, "2023-06-01", "2025-11-28", 110)
    if kind == "split":
        code = next(c for c in sim_market.codes for e in sim_market.events(c)
                    if e.kind == "split" and pd.Timestamp("2023-01-01") < e.ex_date < pd.Timestamp("2025-11-01"))
        day = next(e.ex_date for e in sim_market.events(code) if e.kind == "split")
    elif kind == "dividend":
        day = pd.Timestamp("2025-01-02")
        code = next(c for c in base if any(e.ex_date == day for e in sim_market.events(c)))
    elif kind == "halt":
        code, day = _halted(sim_market)
    else:  # a listing on the day: not in the cache, so fetched the usual way
        code = next(c for c in sim_market.codes
                    if pd.Timestamp("2023-06-01") < sim_market.info(c).listed < pd.Timestamp("2025-11-01"))
        day = sim_market.info(code).listed
    t = pd.Timestamp(day)
    # 40 stocks make the same points as 110 (quotes in one batch, actions, halts) at a third of the cost;
    # batching across 100 is test_get_quotes_batches_by_100_and_reports_unknown_codes's job.
    codes = [c for c in base if sim_market.info(c).listed < t - pd.Timedelta(days=400)][:40]
    if kind != "listing" and code not in codes:
        codes.append(code)
    return t, codes, code


def _halted(sim_market):
    sess = calendar.sessions_in_range("2023-06-01", "2025-11-01")
    for code in sim_market.codes:
        rb = sim_market.raw_bars(code)
        have = rb.index[(rb.index >= sess[0]) & (rb.index <= sess[-1])]
        if len(have) < 300:
            continue
        inside = sess[(sess > have[0]) & (sess < have[-1])]
        missing = inside.difference(have)
        for day in missing:
            if calendar.previous_session(day) in have:
                return code, day
    raise AssertionError("no halt in the synthetic market")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["split", "dividend", "halt", "listing"])
def test_refresh_equals_a_full_refetch_bar_for_bar(sim, sim_market, tmp_path, monkeypatch, kind):
    day, codes, event_code = _scenario(sim_market, kind)
    prev = calendar.previous_session(day)
    _set_clock(sim, monkeypatch, prev)
    with client(sim, tmp_path / "a") as api:
        for c in codes:
            api.get_ohlcv(c, 200)
        _set_clock(sim, monkeypatch, day)
        sim.reset_stats()
        out = fcache.refresh(codes, progress=False, client=api)
        quotes_used, walks_used = _req(sim, "ka10095"), _req(sim, "ka10081")
        universe = codes + ([event_code] if kind == "listing" else [])
        got = {c: (api.get_ohlcv(c, 200), api.get_ohlcv(c, 200, adjusted=False)) for c in universe}
    with client(sim, tmp_path / "b", cache=False) as fresh:
        want = {c: (fresh.get_ohlcv(c, 200, day), fresh.get_ohlcv(c, 200, day, adjusted=False)) for c in universe}
    for c in universe:
        for g, w in zip(got[c], want[c]):
            assert g.index.equals(w.index.astype("datetime64[ns]")), c
            assert np.array_equal(g.to_numpy(float), w.to_numpy(float)), (c, kind)
    # The whole history, its oldest row included: after an action that row lies before the new
    # adjusted reference and is rebuilt from the prior one (within the 1 KRW of a rebuilt product).
    from finder.cache._store import Store

    with client(sim, tmp_path / "a") as api, client(sim, tmp_path / "b", cache=False) as fresh:
        store = Store.for_client(api)
        for c in codes:
            n = len(store.cached_history(api, c).dates)
            g, w = api.get_ohlcv(c, n), fresh.get_ohlcv(c, n, day)
            assert g.index.equals(w.index.astype("datetime64[ns]"))
            assert np.abs(g[PRICE].to_numpy() - w[PRICE].to_numpy()).max() <= 1, (c, kind)
            assert np.abs(g.volume.to_numpy() - w.volume.to_numpy()).max() <= 1
    # What it cost: one ka10095 request per 100 stocks one session behind, and ka10081 only
    # for corporate actions (their adjusted history) -- halted stocks get no bar.
    one_behind = len(codes)
    assert quotes_used == math.ceil(one_behind / 100)
    assert out["current"] == 0 and not out["failed"]
    assert out["from_quotes"] + out["actions"] + out["halted"] + out["walked"] == len(codes)
    if kind == "split":
        assert out["actions"] >= 1
        assert got[event_code][0].index[-1] == day
    if kind == "dividend":
        assert out["actions"] >= 1
    if kind == "halt":
        assert out["halted"] >= 1
        assert got[event_code][0].index[-1] < day        # no bar made up for a halted stock
    print(f"{kind} on {day.date()}: {out} ka10095={quotes_used} ka10081={walks_used}")
    # An action refetches one adjusted walk: 2 pages once a 600-row page has grown by a day.
    assert walks_used <= 2 * out["actions"], (walks_used, out)


def test_missed_sessions_fall_back_to_ka10081(sim, sim_market, tmp_path, monkeypatch):
    codes = full_history_codes(sim_market, "2024-01-01", "2025-11-28", 30)
    _set_clock(sim, monkeypatch, "2025-11-21")
    with client(sim, tmp_path / "a") as api:
        for c in codes:
            api.get_ohlcv(c, 100)
        _set_clock(sim, monkeypatch, "2025-11-28")          # five sessions later
        sim.reset_stats()
        out = fcache.refresh(codes, progress=False, client=api)
        assert _req(sim, "ka10095") == 0                    # quotes only show today
        assert _req(sim, "ka10081") == len(codes) == out["walked"]
        sim.reset_stats()
        frames = [api.get_ohlcv(c, 100) for c in codes]
        assert _req(sim, "ka10081") == 0
    for c, f in zip(codes[::7], frames[::7]):
        want = sim_market.bars(c, "2025-11-28", adjusted=True).iloc[-100:]
        assert np.array_equal(f[PRICE].to_numpy(), want[PRICE].to_numpy())


def test_get_panel_refreshes_transparently_with_quotes(sim, sim_market, tmp_path, monkeypatch):
    codes = full_history_codes(sim_market, "2024-01-01", "2025-11-28", 150)
    _set_clock(sim, monkeypatch, "2025-11-26")
    from finder import data

    with client(sim, tmp_path / "a") as api:
        data.set_default_client(api)
        try:
            data.get_panel(codes, 60)
            _set_clock(sim, monkeypatch, "2025-11-27")
            sim.reset_stats()
            panel = data.get_panel(codes, 60, field="close")
            assert _req(sim, "ka10095") == 2
            assert _req(sim, "ka10081") <= 2 * sum(
                1 for c in codes for e in sim_market.events(c) if e.ex_date == pd.Timestamp("2025-11-27"))
            assert panel.index[-1] == pd.Timestamp("2025-11-27")
        finally:
            data.set_default_client(None)


def test_live_bars_for_many_stocks_come_from_quotes(sim, sim_market, tmp_path, monkeypatch):
    codes = full_history_codes(sim_market, "2024-01-01", "2025-11-28", 120)
    _set_clock(sim, monkeypatch, "2025-11-26")
    from finder import data

    with client(sim, tmp_path / "a") as api:
        data.set_default_client(api)
        try:
            data.get_panel(codes, 30)
            now = "2025-11-27T11:00:00+09:00"
            sim.set_now(now)
            monkeypatch.setenv("FINDER_NOW", now)
            sim.reset_stats()
            panel = data.get_panel(codes, 30, field="close")
            assert _req(sim, "ka10095") == 2 and _req(sim, "ka10081") == 0
            assert panel.index[-1] == pd.Timestamp("2025-11-27")
            with client(sim, tmp_path / "b", cache=False) as fresh:
                for c in codes[::17]:
                    want = fresh.get_ohlcv(c, 30)
                    got = panel[c].dropna()
                    assert np.array_equal(got.to_numpy(), want.close.to_numpy()), c
        finally:
            data.set_default_client(None)

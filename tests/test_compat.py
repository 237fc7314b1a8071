"""finder.compat.KiwoomAPI: every method of the old class (shared/seed-api.md) returns its documented shape.

The compat class is built the way old code builds it, from the environment
(the old names APP_KEY / APP_SECRET / API_BASE pointing at a real simulator
server), and every expectation is derived from the simulator's market or
from finder's own cached API.  Request counts are read at the simulator.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import finder
from finder import compat
from finder._exceptions import InvalidInputError
from _support import client, run_python

SIM_NOW = "2025-11-28T20:30:00+09:00"
ENV_VARS = ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE", "APP_KEY",
            "APP_SECRET", "API_BASE")


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    compat._reported.clear()


@pytest.fixture
def old_env(sim, monkeypatch):
    monkeypatch.setenv("APP_KEY", "old-app-key-123")
    monkeypatch.setenv("APP_SECRET", "old-secret-456")
    monkeypatch.setenv("API_BASE", sim.url)
    monkeypatch.setenv("FINDER_RATE", "500")
    return sim


@pytest.fixture
def api(old_env):
    a = compat.KiwoomAPI()
    yield a
    a.client.close()


def _n(sim, api_id):
    return int(sim.stats()["requests"].get(api_id, 0))


def _stock(sim_market, since="2018-01-01"):
    for code in sim_market.codes:
        info = sim_market.info(code)
        if info.market == "KOSPI" and info.listed < pd.Timestamp(since) and info.delisted is None:
            return code
    raise AssertionError("no long-listed KOSPI stock")


# -- construction and environment ------------------------------------------------------------------
def test_old_environment_names_reach_the_configured_host(make_sim, monkeypatch):
    sim = make_sim(credentials={"old-app-key-123": "old-secret-456"})  # any other key is refused
    monkeypatch.setenv("APP_KEY", "old-app-key-123")
    monkeypatch.setenv("APP_SECRET", "old-secret-456")
    monkeypatch.setenv("API_BASE", sim.url)
    api = compat.KiwoomAPI()
    assert api.client.base_url == sim.url and not api.client.simulated
    assert len(api.get_ohlcv("005930", 5, "20251001")) == 5
    assert sim.stats()["token_issues"] == 1 and sim.stats()["auth_failures"] == 0


def test_kiwoom_names_win_over_old_ones(sim, monkeypatch):
    monkeypatch.setenv("APP_KEY", "old")
    monkeypatch.setenv("APP_SECRET", "old-secret")
    monkeypatch.setenv("API_BASE", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("KIWOOM_APPKEY", "new")
    monkeypatch.setenv("KIWOOM_SECRETKEY", "new-secret")
    monkeypatch.setenv("KIWOOM_BASE_URL", sim.url)
    a = compat.KiwoomAPI()
    assert a.client.base_url == sim.url and a.client._app_key == "new"


@pytest.mark.parametrize("env", [
    {"APP_KEY": "k-only-1234"},
    {"APP_SECRET": "s-only-5678"},
    {"KIWOOM_APPKEY": "k-only-1234", "APP_SECRET": "s-only-5678"},
    {"API_BASE": "https://api.kiwoom.com"},
    {"KIWOOM_BASE_URL": "https://mockapi.kiwoom.com/"},
])
def test_incomplete_credentials_raise_instead_of_serving_the_simulator(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(InvalidInputError) as exc:
        compat.KiwoomAPI()
    for v in env.values():
        if "kiwoom.com" not in v:
            assert v not in str(exc.value)  # never echo a secret


def test_no_settings_at_all_is_the_announced_simulator():
    a = compat.KiwoomAPI()
    assert a.client.simulated and a.force_mock is False


def test_module_level_api_is_created_on_first_use_not_at_import(old_env, monkeypatch):
    out = run_python("""
        import json, finder.compat as c
        created_at_import = c._instance is not None
        from finder.compat import api
        created_by_from_import = c._instance is not None
        api.force_mock
        print(json.dumps({"import": created_at_import, "from": created_by_from_import,
                          "use": c._instance is not None}))
    """)
    assert out == {"import": False, "from": False, "use": True}
    monkeypatch.setattr(compat, "_instance", None)
    assert compat.api.get_stock_name("005930") == old_env.market.info("005930").name
    assert isinstance(compat._instance, compat.KiwoomAPI)
    assert compat.api.client is compat._instance.client


# -- get_ohlcv ---------------------------------------------------------------------------------------
def test_get_ohlcv_old_shape(api, sim_market):
    code = _stock(sim_market)
    df = api.get_ohlcv(code, 120, "20251001")
    assert isinstance(df.index, pd.RangeIndex) and df.index.start == 0
    assert list(df.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert len(df) == 120
    assert all(isinstance(d, str) and len(d) == 8 and d.isdigit() for d in df["date"])
    assert list(df["date"]) == sorted(df["date"]) and df["date"].is_unique
    assert df["date"].iloc[-1] <= "20251001"
    ref = finder.KiwoomAPI(base_url=api.client.base_url, cache_dir=api.client.cache_root).get_ohlcv(code, 120,
                                                                                                    "2025-10-01")
    np.testing.assert_array_equal(df["close"].to_numpy(), ref["close"].to_numpy())
    assert list(df["date"]) == [d.strftime("%Y%m%d") for d in ref.index]
    truth = sim_market.bars(code, "2025-10-01").iloc[-120:]
    np.testing.assert_array_equal(df["close"].to_numpy(), truth["close"].to_numpy())


def test_more_than_600_bars(api, sim_market):
    df = api.get_ohlcv(_stock(sim_market, "2019-01-01"), 900, "20251128")
    assert len(df) == 900 and df["date"].iloc[-1] == "20251128"


def test_future_base_dt_means_latest(api, sim_market):
    code = _stock(sim_market)
    latest = api.get_ohlcv(code, 30)
    future = api.get_ohlcv(code, 30, "20991231")
    pd.testing.assert_frame_equal(latest, future)
    pd.testing.assert_frame_equal(latest, api.get_ohlcv(code, 30, ""))
    assert latest["date"].iloc[-1] == "20251128"
    assert api._last_ohlcv_leak is False


def test_unknown_code_gives_empty_frame_logged_once(api, sim, caplog):
    caplog.set_level(logging.WARNING, logger="finder.compat")
    for code in ("999999", "999999", "123456", "123456", "ABC", "ABC"):
        df = api.get_ohlcv(code, 20, "20251001")
        assert df.empty and list(df.columns) == ["date", "open", "high", "low", "close", "volume"]
        assert isinstance(df.index, pd.RangeIndex)
    lines = [r.getMessage() for r in caplog.records if r.name == "finder.compat"]
    assert len(lines) == 3 and sum("999999" in m for m in lines) == 1 and sum("123456" in m for m in lines) == 1


def test_failed_fetch_gives_empty_frame_and_is_not_cached(sim, sim_market, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="finder.compat")
    a = compat.KiwoomAPI(client=client(sim, tmp_path / "cache", max_retries=0))
    code = _stock(sim_market)
    sim.faults.add(kind="http_error", count=1, api_id="ka10081")
    assert a.get_ohlcv(code, 10, "20251001").empty
    assert any(code in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    assert len(a.get_ohlcv(code, 10, "20251001")) == 10  # the failure was not stored


def test_bad_count_or_date_is_a_clear_error(api, sim):
    sim.reset_stats()
    for kwargs in ({"count": 0}, {"count": "20"}, {"base_dt": "2025-13-45"}):
        with pytest.raises(InvalidInputError):
            api.get_ohlcv("005930", **{"count": 20, **kwargs})
    assert sim.stats()["total_requests"] == 0


def test_base_dt_none_includes_todays_live_bar(make_sim, sim_market, tmp_path, monkeypatch):
    now = "2025-11-27T11:00:00+09:00"
    sim = make_sim(now=now)
    monkeypatch.setenv("FINDER_NOW", now)
    a = compat.KiwoomAPI(client=client(sim, tmp_path / "cache"))
    code = _stock(sim_market)
    df = a.get_ohlcv(code, 5)
    assert df["date"].iloc[-1] == "20251127"
    final = sim_market.bars(code, "2025-11-27")["close"].iloc[-1]
    live = sim_market.bars(code, "2025-11-27", now=pd.Timestamp(now).to_pydatetime())["close"].iloc[-1]
    assert df["close"].iloc[-1] == live and live != final


def test_force_mock_is_always_false(api):
    assert api.force_mock is False
    api.force_mock = False
    with pytest.raises(InvalidInputError):
        api.force_mock = True
    api._last_ohlcv_leak = False  # old code resets it; that stays harmless
    assert api.force_mock is False and api._last_ohlcv_leak is False


# -- names ---------------------------------------------------------------------------------------------
def test_names_from_the_days_shared_stock_list(api, sim, sim_market):
    code = _stock(sim_market)
    name = sim_market.info(code).name
    sim.reset_stats()
    assert api.get_stock_name(code) == name
    assert api.get_code_by_name(" ".join(name)) == code  # spaces ignored
    assert api.get_stock_name("000000") == "000000"
    assert api.get_code_by_name("없는회사") == ""
    first = _n(sim, "ka10099")
    assert first == 3  # KOSPI, KOSDAQ, ETF: once for the day
    for _ in range(50):
        api.get_stock_name(code)
    other = compat.KiwoomAPI()  # another instance (a worker) reads the day's list from disk
    assert other.get_stock_name(code) == name
    assert _n(sim, "ka10099") == first


# -- today's numbers ---------------------------------------------------------------------------------------
def test_get_top_codes_from_the_ranking(api, sim, sim_market, monkeypatch):
    sim.reset_stats()
    top = api.get_top_codes("KOSPI", 10)
    assert isinstance(top, list) and len(top) == 10 and all(isinstance(c, str) and len(c) == 6 for c in top)
    day = np.datetime64("2025-11-28")

    def value(c):
        st = sim_market.stock(c)
        i = int(np.searchsorted(st.dates, day))
        return int(st.value[i]) if i < len(st.dates) and st.dates[i] == day else -1

    kospi = [c for c in sim_market.codes if sim_market.info(c).market in ("KOSPI", "ETF") and value(c) > 0]
    expected = sorted(kospi, key=lambda c: (-round(value(c) / 1e6), c))[:10]
    assert [round(value(c) / 1e6) for c in top] == [round(value(c) / 1e6) for c in expected]
    assert set(api.get_top_codes("KOSDAQ", 5)) <= {c for c in sim_market.codes
                                                    if sim_market.info(c).market == "KOSDAQ"}
    n = _n(sim, "ka10032")
    monkeypatch.setenv("FINDER_LIVE_TTL", "0")  # after the cut-off the ranking is final: kept regardless
    assert api.get_top_codes("KOSPI", 3) == top[:3]
    assert _n(sim, "ka10032") == n
    with pytest.raises(InvalidInputError):
        api.get_top_codes("NASDAQ", 5)


def test_top_codes_strip_venue_suffixes(api):
    frame = api.client.get_top_traded("KOSPI", 20, exchange="ALL")
    assert len(frame) == 20 and all(len(c) == 6 and "_" not in c for c in frame["code"])


def test_top_codes_live_ttl_while_open(make_sim, tmp_path, monkeypatch):
    now = "2025-11-27T11:00:00+09:00"
    sim = make_sim(now=now)
    monkeypatch.setenv("FINDER_NOW", now)
    monkeypatch.setenv("FINDER_LIVE_TTL", "3600")
    a = compat.KiwoomAPI(client=client(sim, tmp_path / "cache"))
    a.get_top_codes("KOSPI", 5)
    a.get_top_codes("KOSPI", 5)
    assert _n(sim, "ka10032") == 2  # 100 rows a page: two pages, once
    monkeypatch.setenv("FINDER_LIVE_TTL", "0")
    a.get_top_codes("KOSPI", 5)
    assert _n(sim, "ka10032") == 4  # expired while live: fetched again


def test_get_stock_quote(api, sim, sim_market):
    code = _stock(sim_market)
    sim.reset_stats()
    q = api.get_stock_quote(code)
    assert set(q) == {"current_price", "change_rate", "volume", "market_cap"}
    st = sim_market.stock(code)
    i = int(np.searchsorted(st.dates, np.datetime64("2025-11-28")))
    assert q["current_price"] == int(st.c[i]) and q["volume"] == int(st.vol[i])
    assert q["change_rate"] == pytest.approx(round((st.c[i] - st.base[i]) / st.base[i] * 100, 2))
    listed = finder.get_stock_list("KOSPI", client=api.client).set_index("code")
    assert q["market_cap"] == int(round(listed.loc[code, "shares"] * q["current_price"]))
    n = _n(sim, "ka10095")
    assert api.get_stock_quote(code) == q and _n(sim, "ka10095") == n == 1
    assert api.get_stock_quote("123456") == {}


# -- the cache -----------------------------------------------------------------------------------------------
def test_clear_ohlcv_cache(api, sim, sim_market):
    a = _stock(sim_market)
    b = next(c for c in sim_market.codes if c != a and sim_market.info(c).market == "KOSPI"
             and sim_market.info(c).listed < pd.Timestamp("2018-01-01") and sim_market.info(c).delisted is None)
    api.get_ohlcv(a, 50, "20251001")
    api.get_ohlcv(b, 50, "20251001")
    sim.reset_stats()
    assert api.clear_ohlcv_cache(a) is None
    api.get_ohlcv(b, 50, "20251001")
    assert _n(sim, "ka10081") == 0  # the other stock is still cached
    api.get_ohlcv(a, 50, "20251001")
    assert _n(sim, "ka10081") >= 1  # cleared: fetched again


def test_get_ohlcv_cache_stats(api, sim, sim_market):
    code = _stock(sim_market)
    api.get_ohlcv(code, 50, "20251001")
    stats = api.get_ohlcv_cache_stats()
    assert set(stats) == {"total", "valid", "expired", "disk"}
    assert set(stats["disk"]) == {"enabled", "total_files", "total_size_mb", "cache_dir"}
    assert stats["total"] >= 1 and stats["valid"] + stats["expired"] == stats["total"]
    assert stats["disk"]["enabled"] is True and stats["disk"]["total_files"] > 0
    assert stats["disk"]["cache_dir"] == str(api.client.cache_root) and stats["disk"]["total_size_mb"] > 0
    sim.reset_stats()
    assert api.clear_ohlcv_cache(code) is None
    api.get_ohlcv(code, 50, "20251001")
    assert _n(sim, "ka10081") >= 1  # cleared: fetched again
    api.clear_ohlcv_cache()
    assert api.get_ohlcv_cache_stats()["total"] == 0


# -- the raw door and what is out of scope --------------------------------------------------------------------
def test_post_returns_json_plus_headers(api, sim):
    out = api._post("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})
    assert out["return_code"] == 0 and isinstance(out["list"], list) and out["list"]
    assert isinstance(out["__headers__"], dict) and out["__headers__"].get("cont-yn") in ("Y", "N")
    page = api._post("ka10081", "/api/dostk/chart", {"stk_cd": "005930", "base_dt": "20251001",
                                                     "upd_stkpc_tp": "1"})
    key = page["__headers__"]["next-key"]
    nxt = api._post("ka10081", "/api/dostk/chart", {"stk_cd": "005930", "base_dt": "20251001", "upd_stkpc_tp": "1"},
                    {"cont-yn": "Y", "next-key": key})
    assert nxt["stk_dt_pole_chart_qry"][0]["dt"] < page["stk_dt_pole_chart_qry"][-1]["dt"]


@pytest.mark.parametrize("method", ["send_order", "buy", "sell", "cancel_order", "get_balance", "get_account_info"])
def test_orders_and_accounts_are_out_of_scope(api, sim, method):
    sim.reset_stats()
    with pytest.raises(NotImplementedError, match="out of scope"):
        getattr(api, method)("005930", 1)
    assert sim.stats()["total_requests"] == 0

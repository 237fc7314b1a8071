"""The Kiwoom client over real HTTP against the simulator (cache off: the client alone).

Every count asserted here is read from the simulator's statistics endpoint,
i.e. what actually reached the server.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from finder import KiwoomAPI
from finder._exceptions import (
    AuthenticationError,
    InvalidInputError,
    RateLimitError,
    StockNotFoundError,
    TransportError,
)
from _support import APP_KEY, SECRET_KEY, client, ka10081, run_python

SIM_NOW = "2025-11-28T20:30:00+09:00"


@pytest.fixture(autouse=True)
def _finder_clock(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def api(sim, tmp_path):
    with client(sim, tmp_path / "cache", cache=False) as c:
        yield c


def _code(sim_market, since="2018-01-01"):
    for code in sim_market.codes:
        info = sim_market.info(code)
        if info.market != "ETF" and info.listed < pd.Timestamp(since) and info.delisted is None:
            return code
    raise AssertionError("no long-listed stock in the market")


# -- paging ---------------------------------------------------------------------------------
@pytest.mark.parametrize("count,pages", [(1, 1), (600, 1), (601, 2), (1200, 2), (1500, 3)])
def test_paging_stops_exactly_at_count(sim, api, sim_market, count, pages):
    code = _code(sim_market)
    sim.reset_stats()
    df = api.get_ohlcv(code, count, "2025-10-01")
    assert len(df) == count
    assert ka10081(sim) == pages


def test_multi_page_walk_matches_the_server_rows(sim, api, sim_market):
    code = _code(sim_market)
    df = api.get_ohlcv(code, 1500, "2025-10-01")
    want = sim_market.bars(code, "2025-10-01", adjusted=True).iloc[-1500:]
    assert df.index.equals(want.index)
    assert np.array_equal(df[["open", "high", "low", "close"]].to_numpy(), want[["open", "high", "low", "close"]].to_numpy())
    assert (df.volume.to_numpy() == want.volume.to_numpy()).all()
    assert df.index.is_monotonic_increasing and df.index.is_unique and df.index.name == "date"
    assert [str(t) for t in df.dtypes] == ["float64"] * 4 + ["int64", "int64"]


@pytest.mark.parametrize("base_dt", ["2025-06-03", "20250607", "2025-10-01"])
def test_no_row_after_base_dt(api, sim_market, base_dt):
    code = _code(sim_market)
    df = api.get_ohlcv(code, 50, base_dt)
    assert df.index.max() <= pd.Timestamp(base_dt)
    assert len(df) == 50


def _split_stock(sim_market, lo="2019-01-01", hi="2025-11-01"):
    for code in sim_market.codes:
        for e in sim_market.events(code):
            if e.kind == "split" and pd.Timestamp(lo) < e.ex_date < pd.Timestamp(hi):
                return code, e.ex_date
    raise AssertionError("the synthetic market has no split in the window")


def test_raw_prices_do_not_depend_on_base_dt(api, sim_market):
    code, ex = _split_stock(sim_market)
    from finder import calendar

    before = api.get_ohlcv(code, 30, ex - pd.Timedelta(days=3), adjusted=False)
    span = calendar.sessions_between_count(ex, "2025-11-28") + 40
    after = api.get_ohlcv(code, span, "2025-11-28", adjusted=False)
    common = before.index.intersection(after.index)
    assert len(common) > 20
    assert before.loc[common].equals(after.loc[common])
    # ...while adjusted prices of the same sessions do change once the split is applied.
    adj_after = api.get_ohlcv(code, span, "2025-11-28", adjusted=True)
    assert not np.allclose(adj_after.loc[common].close, after.loc[common].close)


# -- today's bar ------------------------------------------------------------------------------
def test_todays_partial_bar_is_returned_and_moves(make_sim, tmp_path, sim_market, monkeypatch):
    live_now = "2025-11-27T10:30:00+09:00"
    monkeypatch.setenv("FINDER_NOW", live_now)
    s = make_sim(now=live_now)
    code = _code(sim_market)
    with client(s, tmp_path / "c", cache=False) as api:
        first = api.get_ohlcv(code, 5)
        assert first.index[-1] == pd.Timestamp("2025-11-27")
        s.set_now("2025-11-27T14:00:00+09:00")
        second = api.get_ohlcv(code, 5)
        assert second.index[-1] == pd.Timestamp("2025-11-27")
        assert second.iloc[-1].to_dict() != first.iloc[-1].to_dict()
        assert second.iloc[:-1].equals(first.iloc[:-1])


# -- errors -------------------------------------------------------------------------------------
def test_unknown_codes_are_errors_not_empty_frames(sim, api):
    sim.reset_stats()
    with pytest.raises(StockNotFoundError):
        api.get_ohlcv("123456", 10, "2025-10-01")   # blank-row rule
    with pytest.raises(StockNotFoundError):
        api.get_ohlcv("999990", 10, "2025-10-01")   # 7 / 1902 rule
    assert ka10081(sim) == 2


BAD_INPUTS = [
    dict(code="5930"), dict(code="ABCDEF"), dict(code=5930), dict(code="005930_XX"),
    dict(count=0), dict(count=-3), dict(count=10**7), dict(count=2.5),
    dict(base_dt="2025/10/01"), dict(base_dt="20251341"), dict(base_dt="2099-01-01"), dict(base_dt=20251001),
    dict(adjusted="yes"),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: f"{next(iter(b))}={next(iter(b.values()))!r}")
def test_bad_input_is_refused_before_any_request(sim, api, bad):
    args = dict(code="005930", count=10, base_dt="2025-10-01", adjusted=True)
    args.update(bad)
    sim.reset_stats()
    with pytest.raises(InvalidInputError) as err:
        api.get_ohlcv(args["code"], args["count"], args["base_dt"], args["adjusted"])
    assert repr(next(iter(bad.values()))) in str(err.value) or str(next(iter(bad.values()))) in str(err.value)
    assert sim.stats()["total_requests"] == 0


def test_stock_list_markets(api, sim_market):
    kospi = api.get_stock_list("KOSPI")
    both = api.get_stock_list("KOSPI+KOSDAQ")
    assert {"code", "name", "market", "listed"} <= set(kospi.columns)
    assert set(kospi.market) == {"KOSPI"} and set(both.market) == {"KOSPI", "KOSDAQ"}
    assert len(both) > len(kospi)
    assert kospi.code.str.fullmatch(r"\d{6}").all()
    with pytest.raises(InvalidInputError, match="NASDAQ"):
        api.get_stock_list("NASDAQ")


# -- resilience ---------------------------------------------------------------------------------------
def test_429_storm_is_survived_by_backoff(sim, api, sim_market):
    code = _code(sim_market)
    sim.faults.add("rate_storm", count=3, api_id="ka10081")
    df = api.get_ohlcv(code, 10, "2025-10-01")
    assert len(df) == 10
    st = sim.stats()
    assert st["rate_limited"].get("ka10081", 0) == 3
    assert ka10081(sim) == 4


def test_429_storm_longer_than_retries_raises_rate_limit_error(sim, tmp_path, sim_market):
    code = _code(sim_market)
    sim.faults.add("rate_storm", count=50, api_id="ka10081")
    with client(sim, tmp_path / "c", cache=False, max_retries=2, backoff=0.01) as api:
        with pytest.raises(RateLimitError):
            api.get_ohlcv(code, 10, "2025-10-01")
    assert ka10081(sim) == 3


def test_token_superseded_mid_walk_is_recovered(sim, api, sim_market):
    code = _code(sim_market)
    sim.faults.add("token_invalidate", count=1, api_id="ka10081")
    df = api.get_ohlcv(code, 1500, "2025-10-01")
    assert len(df) == 1500
    st = sim.stats()
    assert st["token_issues"] == 2 and st["auth_failures"] == 1


def test_repeated_next_key_terminates_the_walk(sim, api, sim_market):
    code = _code(sim_market)
    sim.faults.add("repeat_key", probability=1.0, api_id="ka10081")
    sim.reset_stats()
    df = api.get_ohlcv(code, 3000, "2025-10-01")   # would need 5 pages
    assert 0 < len(df) < 3000
    assert ka10081(sim) == 2   # the second answer repeats the key: stop there


def test_empty_page_with_cont_yn_terminates_the_walk(sim, api, sim_market):
    code = _code(sim_market)
    sim.faults.add("empty_page", probability=1.0, api_id="ka10081")
    sim.reset_stats()
    with pytest.raises(StockNotFoundError):
        api.get_ohlcv(code, 3000, "2025-10-01")
    assert ka10081(sim) == 1


def test_unknown_fields_in_rows_are_ignored(sim, api, sim_market):
    code = _code(sim_market)
    clean = api.get_ohlcv(code, 20, "2025-10-01")
    sim.faults.add("extra_fields", probability=1.0)
    noisy = api.get_ohlcv(code, 20, "2025-10-01")
    assert noisy.equals(clean)


def test_wrong_host_key_gives_authentication_error(sim, tmp_path):
    with client(sim, tmp_path / "c", cache=False) as api:
        sim.faults.add("token_invalidate", count=0)  # no-op; the key mismatch comes from credentials below
    from finder.sim import Simulator

    with Simulator(rate=None, now=SIM_NOW, credentials={"only-this-key": "only-this-secret"}) as strict:
        with client(strict, tmp_path / "d", cache=False) as api:
            with pytest.raises(AuthenticationError):
                api.get_ohlcv("005930", 5, "2025-10-01")


# -- secrets ---------------------------------------------------------------------------------------------
def test_secrets_never_reach_repr_logs_or_errors(sim, tmp_path, sim_market, caplog):
    caplog.set_level(logging.DEBUG)
    code = _code(sim_market)
    with client(sim, tmp_path / "c", cache=False) as api:
        api.get_ohlcv(code, 700, "2025-10-01")
        sim.faults.add("token_invalidate", count=1, api_id="ka10081")
        api.get_ohlcv(code, 700, "2025-10-01")
        try:
            api.get_ohlcv("123456", 5, "2025-10-01")
        except StockNotFoundError as exc:
            err = repr(exc) + str(exc)
        token = api._tokens.peek().value
        text = caplog.text + repr(api) + err
    assert len(token) > 10
    for secret in (APP_KEY, SECRET_KEY, token):
        assert secret not in text


def test_token_file_is_owner_only_and_holds_no_key(sim, tmp_path, sim_market):
    import os
    import stat
    from pathlib import Path

    with client(sim, tmp_path / "c", cache=False) as api:
        api.get_ohlcv(_code(sim_market), 5, "2025-10-01")
    state = Path(os.environ["FINDER_STATE_DIR"])
    files = list(state.glob("*/token.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    text = files[0].read_text() + files[0].parent.name
    assert APP_KEY not in text and SECRET_KEY not in text
    assert not (tmp_path / "c" / "finder" / "tokens").exists()  # nothing of the client's in the cache folder


# -- several processes, one app key ------------------------------------------------------------
_WORKER = """
import json, os, sys
from finder import KiwoomAPI
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache=False,
                cache_dir=os.environ["T_CACHE"], rate=float(os.environ["T_RATE"]))
codes = os.environ["T_CODES"].split(",")
n = 0
for code in codes:
    n += len(api.get_ohlcv(code, int(os.environ["T_COUNT"]), "2025-10-01"))
print(json.dumps({"rows": n}))
"""


def _spawn_workers(sim, tmp_path, codes, n_proc, rate, count=100):
    import subprocess
    import sys

    env = dict(**__import__("os").environ, T_KEY=APP_KEY, T_SECRET=SECRET_KEY, T_URL=sim.url,
               T_CACHE=str(tmp_path / "shared"), T_RATE=str(rate), T_CODES=",".join(codes), T_COUNT=str(count))
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n_proc)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]


@pytest.mark.slow
def test_processes_sharing_an_app_key_share_one_token(sim, tmp_path, sim_market):
    codes = [c for c in sim_market.codes if sim_market.info(c).listed < pd.Timestamp("2020-01-01")][:6]
    _spawn_workers(sim, tmp_path, codes, n_proc=3, rate=100)
    st = sim.stats()
    assert st["token_issues"] == 1
    assert st["auth_failures"] == 0


@pytest.mark.slow
def test_processes_paging_together_stay_under_the_limit(make_sim, tmp_path, sim_market):
    # Kiwoom-like limit: 5/s with a burst of 2. Two processes pacing at 4/s between them.
    s = make_sim(rate=5.0, burst=2)
    codes = [c for c in sim_market.codes if sim_market.info(c).listed < pd.Timestamp("2020-01-01")][:5]
    _spawn_workers(s, tmp_path, codes, n_proc=2, rate=4.0, count=700)  # 2 pages per code
    st = s.stats()
    assert st["requests"]["ka10081"] == 2 * len(codes) * 2
    assert st["total_rate_limited"] == 0, st


def test_client_without_credentials_uses_the_in_process_simulator(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    api = KiwoomAPI(cache=False)
    assert api.simulated
    df = api.get_ohlcv("005930", 30, "2025-10-01")
    assert len(df) == 30 and df.index[-1] <= pd.Timestamp("2025-10-01")
    api.close()


def test_half_credentials_are_refused(monkeypatch):
    monkeypatch.setenv("KIWOOM_APPKEY", "only-the-key")
    with pytest.raises(InvalidInputError, match="KIWOOM_SECRETKEY"):
        KiwoomAPI()


def test_creating_a_client_makes_no_request(sim, tmp_path):
    sim.reset_stats()
    with client(sim, tmp_path / "c"):
        pass
    assert sim.stats()["total_requests"] == 0


def test_quotes_are_matched_by_the_echoed_code_not_by_position(sim, api, sim_market):
    listed = [c for c in sim_market.codes if sim_market.info(c).delisted is None][:2]
    q = api.get_quotes([listed[0], "123456", listed[1]])   # an unknown code between two known ones
    assert list(q.index) == listed
    assert q.attrs["unknown"] == ["123456"]
    for code in listed:
        bar = sim_market.bars(code, "2025-11-28", adjusted=True).iloc[-1]
        assert q.loc[code, "close"] == bar.close and q.loc[code, "date"] == pd.Timestamp("2025-11-28")

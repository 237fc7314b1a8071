"""The simulator over real HTTP with plain httpx: tokens, ka10081, ka10099, ka10095, clock, limits, controls."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import SIM_NOW, KiwoomHTTP
from finder._models import detail_code
from finder.sim import NXT_START, SimTransport, in_process_transport

KST = dt.timezone(dt.timedelta(hours=9))
PRICE_FIELDS = ("open_pric", "high_pric", "low_pric", "cur_prc")


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Served rows -> the oracle's shape (ascending, float OHLC, int volume, value in KRW)."""
    idx = pd.DatetimeIndex(pd.to_datetime([r["dt"] for r in rows], format="%Y%m%d").astype("datetime64[ns]"), name="date")
    f = pd.DataFrame({
        "open": [float(r["open_pric"]) for r in rows], "high": [float(r["high_pric"]) for r in rows],
        "low": [float(r["low_pric"]) for r in rows], "close": [float(r["cur_prc"]) for r in rows],
        "volume": np.array([int(r["trde_qty"]) for r in rows], dtype="int64"),
        "value": np.array([int(r["trde_prica"]) * 1_000_000 for r in rows], dtype="int64"),
    }, index=idx)
    return f.sort_index()


def rc_detail(r: httpx.Response) -> tuple[int, str | None]:
    body = r.json()
    return body["return_code"], detail_code(body["return_msg"])


def first_event(market, kind: str, after: str = "2016-06-01", before: str = "2025-10-31"):
    for code in market.codes:
        for e in market.events(code):
            if e.kind == kind and pd.Timestamp(after) <= e.ex_date <= pd.Timestamp(before):
                return code, e
    raise AssertionError(f"no {kind} in the market")


# -- tokens ------------------------------------------------------------------------------------
def test_token_issue_has_kst_expiry(sim):
    k = KiwoomHTTP(sim.url)
    r = k.issue()
    body = r.json()
    assert r.status_code == 200 and body["return_code"] == 0
    assert set(body) >= {"token", "token_type", "expires_dt"} and "access_token" not in body
    assert re.fullmatch(r"\d{14}", body["expires_dt"])
    expires = dt.datetime.strptime(body["expires_dt"], "%Y%m%d%H%M%S").replace(tzinfo=KST)
    assert expires == dt.datetime.fromisoformat(SIM_NOW) + dt.timedelta(days=1)
    assert sim.stats()["token_issues"] == 1


def test_token_field_is_secretkey_not_appsecret(sim):
    r = httpx.post(sim.url + "/oauth2/token", json={"grant_type": "client_credentials", "appkey": "a", "appsecret": "b"})
    assert r.status_code == 200 and rc_detail(r) == (2, "1511")
    r = httpx.post(sim.url + "/oauth2/token", json={"grant_type": "password", "appkey": "a", "secretkey": "b"})
    assert rc_detail(r) == (2, "1517")


def test_new_token_invalidates_the_old_one(sim):
    a, b = KiwoomHTTP(sim.url), KiwoomHTTP(sim.url)  # two "processes", one app key
    a.issue()
    assert rc_detail(a.daily("005930", "20251128"))[0] == 0
    b.issue()
    assert a.token != b.token
    r = a.daily("005930", "20251128")
    assert r.status_code == 200 and rc_detail(r) == (3, "8005")
    assert rc_detail(b.daily("005930", "20251128"))[0] == 0
    other = KiwoomHTTP(sim.url, appkey="another-app")
    other.issue()  # a different app key does not knock b out
    assert rc_detail(b.daily("005930", "20251128"))[0] == 0
    assert sim.stats()["auth_failures"] == 1


def test_expired_and_revoked_tokens_are_rejected(sim, kiwoom):
    sim.advance(seconds=86400 - 1)
    assert rc_detail(kiwoom.daily("005930", "20251128"))[0] == 0
    sim.advance(seconds=2)
    assert rc_detail(kiwoom.daily("005930", "20251128")) == (3, "8005")
    kiwoom.issue()
    r = kiwoom.http.post("/oauth2/revoke", json={"appkey": kiwoom.appkey, "secretkey": kiwoom.secretkey,
                                                 "token": kiwoom.token})
    assert rc_detail(r)[0] == 0
    assert rc_detail(kiwoom.daily("005930", "20251128")) == (3, "8005")
    assert rc_detail(kiwoom.daily("005930", "20251128")) == (3, "8005")
    assert sim.stats()["token_revokes"] == 1


def test_credentials_map_checks_the_secret(make_sim):
    s = make_sim(credentials={"app1": "s1"})
    assert KiwoomHTTP(s.url, "app1", "s1").issue().json()["return_code"] == 0
    assert KiwoomHTTP(s.url, "app1", "wrong").issue().json()["return_code"] == 3


# -- ka10081 ----------------------------------------------------------------------------------
def test_daily_paging_matches_the_oracle(sim, kiwoom, sim_market):
    code = "005930"
    first = kiwoom.daily(code, "20251128")
    rows = first.json()["stk_dt_pole_chart_qry"]
    assert len(rows) == 600 and first.headers["cont-yn"] == "Y" and first.headers["next-key"]
    assert [r["dt"] for r in rows] == sorted((r["dt"] for r in rows), reverse=True)  # newest first
    assert rows[0]["dt"] == "20251128"
    for r in rows:
        assert all(isinstance(v, str) for v in r.values())
        assert set(r) >= {"dt", "open_pric", "high_pric", "low_pric", "cur_prc", "trde_qty", "trde_prica",
                          "pred_pre", "pred_pre_sig", "trde_tern_rt"}
    second = kiwoom.daily(code, "20251128", key=first.headers["next-key"])
    rows2 = second.json()["stk_dt_pole_chart_qry"]
    assert rows2[0]["dt"] < rows[-1]["dt"] and len(rows2) == 600
    everything, pages = kiwoom.walk(code, "20251128")
    oracle = sim_market.bars(code, "20251128", True, now=SIM_NOW)
    assert pages == -(-len(oracle) // 600)
    pd.testing.assert_frame_equal(rows_frame(everything), oracle)
    assert sim.stats()["pages"]["ka10081"] == pages + 2


def test_rows_never_after_base_dt_or_today(kiwoom):
    r = kiwoom.daily("005930", "20251129")  # a Saturday
    assert r.json()["stk_dt_pole_chart_qry"][0]["dt"] == "20251128"
    r = kiwoom.daily("005930", "20240517")
    assert all(row["dt"] <= "20240517" for row in r.json()["stk_dt_pole_chart_qry"])
    r = kiwoom.daily("005930", "20271231")  # the future: the clock says 2025-11-28
    assert r.json()["stk_dt_pole_chart_qry"][0]["dt"] == "20251128"


def test_daily_changes_and_signs_are_consistent(kiwoom, sim_market):
    rows = kiwoom.daily("000660", "20251128", adjusted=False).json()["stk_dt_pole_chart_qry"]
    raw = sim_market.raw_bars("000660")
    for r in rows[:100]:
        base = raw.loc[pd.Timestamp(r["dt"]), "base"]
        close = int(r["cur_prc"])
        assert int(r["pred_pre"]) == close - base
        assert r["pred_pre_sig"] in {"1", "2"} if close > base else r["pred_pre_sig"] in {"4", "5"} if close < base \
            else r["pred_pre_sig"] == "3"
        assert re.fullmatch(r"[+-]\d+\.\d\d", r["trde_tern_rt"])


def test_some_codes_are_served_zero_padded(kiwoom, sim_market):
    padded = [c for c in sim_market.codes if sim_market.stock(c).pad][0]
    row = kiwoom.daily(padded, "20251128").json()["stk_dt_pole_chart_qry"][0]
    assert re.fullmatch(r"0\d{7}", row["cur_prc"]) or len(row["cur_prc"]) > 8


def test_unknown_codes_and_bad_input(kiwoom):
    blank = kiwoom.daily("123450", "20251128")
    body = blank.json()
    assert body["return_code"] == 0 and blank.headers["cont-yn"] == "N"
    assert len(body["stk_dt_pole_chart_qry"]) == 1
    assert all(v == "" for v in body["stk_dt_pole_chart_qry"][0].values())
    assert rc_detail(kiwoom.daily("912340", "20251128")) == (7, "1902")
    before = kiwoom.daily("005930", "20141230").json()["stk_dt_pole_chart_qry"]  # before the first row
    assert len(before) == 1 and all(v == "" for v in before[0].values())
    assert rc_detail(kiwoom.call("ka10081", {"stk_cd": "005930", "upd_stkpc_tp": "1"})) == (2, "1511")
    assert rc_detail(kiwoom.call("ka10081", {"base_dt": "20251128", "upd_stkpc_tp": "1"})) == (2, "1511")
    for bad in ({"base_dt": "2025-11-28"}, {"base_dt": "20251332"}, {"upd_stkpc_tp": "2"}, {"stk_cd": "KRX:005930"}):
        body = {"stk_cd": "005930", "base_dt": "20251128", "upd_stkpc_tp": "1", **bad}
        assert rc_detail(kiwoom.call("ka10081", body)) == (2, "1517"), bad
    assert rc_detail(kiwoom.daily("005930", "20251128", key="garbage")) == (2, "1517")
    r = kiwoom.http.post("/api/dostk/chart", content=b"{not json", headers={"api-id": "ka10081",
                         "authorization": f"Bearer {kiwoom.token}"})
    assert rc_detail(r) == (2, "1517")
    assert rc_detail(kiwoom.call("ka99999", {"stk_cd": "005930"}))[0] == 2
    assert rc_detail(kiwoom.call("ka10081", {"stk_cd": "005930"}, path="/api/dostk/nowhere"))[0] == 2
    assert kiwoom.http.get("/api/dostk/chart", headers={"api-id": "ka10081"}).status_code == 405
    assert rc_detail(kiwoom.call("ka10081", {"stk_cd": "005930"}, token="not-a-token")) == (3, "8005")


def test_adjusted_as_of_base_dt_around_a_split(kiwoom, sim_market):
    code, e = first_event(sim_market, "split")
    raw = sim_market.raw_bars(code)
    i = raw.index.get_loc(e.ex_date)
    old_day = raw.index[i - 5].strftime("%Y%m%d")
    day_before = raw.index[i - 1].strftime("%Y%m%d")
    ex_day = e.ex_date.strftime("%Y%m%d")

    def close_on(base, adjusted):
        rows, _ = kiwoom.walk(code, base, adjusted)
        return {r["dt"]: int(r["cur_prc"]) for r in rows}[old_day]

    raw_close = int(raw.loc[pd.Timestamp(old_day), "close"])
    before = close_on(day_before, True)
    after = close_on(ex_day, True)
    assert before == raw_close  # the split is not applied yet
    assert after == round(raw_close * e.factor) and after != before
    assert close_on(day_before, False) == close_on(ex_day, False) == close_on("20251128", False) == raw_close
    # volumes scale by the split ratio, traded value does not
    rows = {r["dt"]: r for r in kiwoom.walk(code, ex_day, True)[0]}
    assert int(rows[old_day]["trde_qty"]) == round(raw.loc[pd.Timestamp(old_day), "volume"] * e.volume_factor)
    assert int(rows[old_day]["trde_prica"]) == round(raw.loc[pd.Timestamp(old_day), "value"] / 1e6)


def test_adjusted_as_of_base_dt_around_a_dividend(kiwoom, sim_market):
    code, e = first_event(sim_market, "dividend", after="2024-01-01")
    raw = sim_market.raw_bars(code)
    i = raw.index.get_loc(e.ex_date)
    day_before = raw.index[i - 1].strftime("%Y%m%d")
    a = rows_frame(kiwoom.daily(code, day_before).json()["stk_dt_pole_chart_qry"])
    b = rows_frame(kiwoom.daily(code, e.ex_date.strftime("%Y%m%d")).json()["stk_dt_pole_chart_qry"])
    common = a.index.intersection(b.index)
    assert len(common) > 500
    p = raw["close"].iloc[i - 1]
    d = int(e.detail.removeprefix("D="))
    ratio = (b.loc[common, "close"] / a.loc[common, "close"]).to_numpy()
    # a constant factor (P - D) / P, as in the real 069500 example, up to integer rounding
    assert np.allclose(ratio, (p - d) / p, atol=1.0 / a.loc[common, "close"].min() + 1e-9)
    assert (b.loc[common, "close"] != a.loc[common, "close"]).any()
    pd.testing.assert_series_equal(a.loc[common, "volume"], b.loc[common, "volume"])


def test_todays_bar_is_partial_during_the_session_and_final_after(sim, kiwoom, sim_market):
    code = "005930"
    final = sim_market.raw_bars(code).loc["2025-11-27"]

    def today_row(adjusted=True):
        return kiwoom.daily(code, "20251127", adjusted).json()["stk_dt_pole_chart_qry"][0]

    sim.set_now("2025-11-27T08:30:00+09:00")
    assert today_row()["dt"] == "20251126"  # no row for today before the open
    sim.set_now("2025-11-27T10:00:00+09:00")
    early = today_row()
    assert early["dt"] == "20251127"
    assert early == today_row(), "a frozen clock answers the same"
    assert early == today_row(adjusted=False), "raw = adjusted today"
    sim.advance(seconds=3600 + 17)
    later = today_row()
    assert later != early
    assert int(later["trde_qty"]) > int(early["trde_qty"]) and int(later["trde_qty"]) < final["volume"]
    for r in (early, later):
        lo, hi = int(r["low_pric"]), int(r["high_pric"])
        assert final["low"] <= lo <= int(r["cur_prc"]) <= hi <= final["high"]
        assert int(r["open_pric"]) == final["open"]
    sim.set_now("2025-11-27T16:00:00+09:00")
    done = today_row()
    assert [int(done[f]) for f in PRICE_FIELDS] == [final["open"], final["high"], final["low"], final["close"]]
    assert int(done["trde_qty"]) == final["volume"]


def test_nxt_empty_page_quirk(kiwoom, sim_market):
    code = "005930"
    assert sim_market.info(code).nxt_enable
    r = kiwoom.daily(code + "_NX", "20240105")
    assert r.json()["return_code"] == 0 and r.json()["stk_dt_pole_chart_qry"] == []
    assert r.headers["cont-yn"] == "Y" and r.headers["next-key"]
    keys = {r.headers["next-key"]}
    for _ in range(5):  # it keeps saying "more" with empty pages
        r = kiwoom.daily(code + "_NX", "20240105", key=r.headers["next-key"])
        assert r.json()["stk_dt_pole_chart_qry"] == [] and r.headers["cont-yn"] == "Y"
        keys.add(r.headers["next-key"])
    assert len(keys) == 6
    rows = kiwoom.daily(code + "_NX", "20251128").json()["stk_dt_pole_chart_qry"]
    krx = sim_market.bars(code, "20251128", True, now=SIM_NOW).loc[str(NXT_START):]
    assert len(rows) == len(krx) and rows[-1]["dt"] == "20250304"
    al = kiwoom.daily(code + "_AL", "20251128").json()["stk_dt_pole_chart_qry"]
    assert al == kiwoom.daily(code, "20251128").json()["stk_dt_pole_chart_qry"]
    no_nxt = next(c for c in sim_market.codes if not sim_market.info(c).nxt_enable)
    blank = kiwoom.daily(no_nxt + "_NX", "20251128").json()["stk_dt_pole_chart_qry"]
    assert len(blank) == 1 and all(v == "" for v in blank[0].values())


# -- ka10099 ----------------------------------------------------------------------------------
def listed(kiwoom, tp: str) -> dict:
    r = kiwoom.call("ka10099", {"mrkt_tp": tp})
    assert r.json()["return_code"] == 0 and r.headers["cont-yn"] == "N"
    return {i["code"]: i for i in r.json()["list"]}


def test_stock_list_fields_and_markets(kiwoom, sim_market):
    kospi = listed(kiwoom, "0")
    today = pd.Timestamp("2025-11-28")
    expected = {c for c in sim_market.codes if sim_market.info(c).market == "KOSPI"
                and sim_market.info(c).listed <= today
                and (sim_market.info(c).delisted is None or sim_market.info(c).delisted > today)}
    assert set(kospi) == expected
    item = kospi["005930"]
    assert item["marketName"] == "거래소" and item["name"] == sim_market.info("005930").name
    assert re.fullmatch(r"\d{8}", item["regDay"]) and re.fullmatch(r"0\d+", item["listCount"])
    assert int(item["lastPrice"]) == sim_market.raw_bars("005930").loc["2025-11-28", "close"]
    assert item["lastPrice"].startswith("0") and item["nxtEnable"] in {"Y", "N"}
    assert {i["marketName"] for i in listed(kiwoom, "10").values()} == {"코스닥"}
    assert {sim_market.info(c).market for c in listed(kiwoom, "8")} == {"ETF"}
    assert listed(kiwoom, "60") == {}
    assert rc_detail(kiwoom.call("ka10099", {})) == (2, "1511")
    assert rc_detail(kiwoom.call("ka10099", {"mrkt_tp": "001"})) == (2, "1517")


def test_stock_list_lifecycle(sim, kiwoom, sim_market):
    late = next(c for c in sim_market.codes if sim_market.info(c).listed > pd.Timestamp("2016-01-01")
                and sim_market.info(c).delisted is None)
    info = sim_market.info(late)
    tp = {"KOSPI": "0", "KOSDAQ": "10", "ETF": "8"}[info.market]
    sim.set_now(info.listed - pd.Timedelta(days=1) + pd.Timedelta(hours=12))
    assert late not in listed(kiwoom, tp)
    sim.set_now(info.listed + pd.Timedelta(hours=8))
    assert listed(kiwoom, tp)[late]["regDay"] == info.listed.strftime("%Y%m%d")
    gone = next(c for c in sim_market.codes if sim_market.info(c).delisted is not None)
    ginfo = sim_market.info(gone)
    tp = {"KOSPI": "0", "KOSDAQ": "10", "ETF": "8"}[ginfo.market]
    sim.set_now(ginfo.delisted - pd.Timedelta(days=1) + pd.Timedelta(hours=12))
    assert gone in listed(kiwoom, tp)
    sim.set_now(ginfo.delisted + pd.Timedelta(hours=12))
    assert gone not in listed(kiwoom, tp)
    rows = kiwoom.daily(gone, "20251128").json()["stk_dt_pole_chart_qry"]
    assert rows[0]["dt"] < ginfo.delisted.strftime("%Y%m%d")  # history still served, nothing after


# -- ka10095 ----------------------------------------------------------------------------------
def quotes(kiwoom, text: str) -> httpx.Response:
    return kiwoom.call("ka10095", {"stk_cd": text})


def test_watchlist_rows_separators_and_limit(kiwoom, sim_market):
    rows = quotes(kiwoom, "005930|123450|069500").json()["atn_stk_infr"]
    assert [r["stk_cd"] for r in rows] == ["005930", "", "069500"]
    assert all(v == "" for v in rows[1].values())
    for text in ("005930,069500", "005930 069500", "005930;069500", "KRX:005930"):
        rows = quotes(kiwoom, text).json()["atn_stk_infr"]
        assert len(rows) == 1 and rows[0]["stk_cd"] == "", text
    hundred = [c for c in sim_market.listings("KOSPI", "2025-11-28")][:100]
    assert len(hundred) == 100
    r = quotes(kiwoom, "|".join(hundred))
    assert [x["stk_cd"] for x in r.json()["atn_stk_infr"]] == hundred
    r = quotes(kiwoom, "|".join(hundred + ["069500"]))
    assert r.status_code == 200 and rc_detail(r) == (5, "1634")


def test_watchlist_signed_prices_match_the_daily_bar(sim, kiwoom, sim_market):
    sim.set_now("2025-11-27T11:00:00+09:00")  # mid-session: both show the same partial bar
    codes = sim_market.listings("KOSPI", "2025-11-27")[:30]
    qrows = quotes(kiwoom, "|".join(codes)).json()["atn_stk_infr"]
    seen_signs = set()
    for code, q in zip(codes, qrows):
        d = kiwoom.daily(code, "20251127").json()["stk_dt_pole_chart_qry"][0]
        if d["dt"] != "20251127":  # halted today: no bar, no volume
            assert q["trde_qty"] == "0"
            continue
        base = int(q["base_pric"])
        for qf, df in (("cur_prc", "cur_prc"), ("open_pric", "open_pric"), ("high_pric", "high_pric"),
                       ("low_pric", "low_pric")):
            value = int(q[qf])
            assert abs(value) == int(d[df])
            assert np.sign(value) == np.sign(abs(value) - base) or (abs(value) == base and not q[qf][0] in "+-")
            seen_signs.add(q[qf][0] if q[qf][0] in "+-" else "")
        assert q["trde_qty"] == d["trde_qty"] and q["trde_prica"] == d["trde_prica"]
        assert int(q["pred_pre"]) == int(d["pred_pre"]) and q["dt"] == "20251127"
    assert {"+", "-"} <= seen_signs


def test_watchlist_base_price_on_an_ex_date(sim, kiwoom, sim_market):
    code, e = first_event(sim_market, "dividend", after="2025-01-01")
    raw = sim_market.raw_bars(code)
    i = raw.index.get_loc(e.ex_date)
    prev_close = raw["close"].iloc[i - 1]
    sim.set_now(e.ex_date + pd.Timedelta(hours=16))
    q = quotes(kiwoom, code).json()["atn_stk_infr"][0]
    d = int(e.detail.removeprefix("D="))
    assert int(q["base_pric"]) == prev_close - d != prev_close
    split_code, s = first_event(sim_market, "split")
    sim.set_now(s.ex_date + pd.Timedelta(hours=16))
    q = quotes(kiwoom, split_code).json()["atn_stk_infr"][0]
    p = sim_market.raw_bars(split_code)["close"].shift(1).loc[s.ex_date]
    assert int(q["base_pric"]) == round(p * s.factor)


def test_watchlist_for_a_halted_stock_makes_no_bar(sim, kiwoom, sim_market):
    s = sim_market.sessions
    for code in sim_market.codes:
        dates = sim_market.raw_bars(code).index.values.astype("datetime64[D]")
        span = s[(s >= dates[0]) & (s <= dates[-1])]
        missing = np.setdiff1d(span, dates)
        missing = missing[missing < np.datetime64("2025-11-28")]
        if len(missing):
            break
    else:
        pytest.fail("no halted stock")
    day = pd.Timestamp(missing[0])
    sim.set_now(day + pd.Timedelta(hours=14))
    q = quotes(kiwoom, code).json()["atn_stk_infr"][0]
    prev = sim_market.raw_bars(code).loc[:day, "close"].iloc[-1]
    assert q["stk_cd"] == code and q["trde_qty"] == "0" and q["open_pric"] == "0"
    assert int(q["cur_prc"]) == prev and q["dt"] == day.strftime("%Y%m%d")
    rows = kiwoom.daily(code, day.strftime("%Y%m%d")).json()["stk_dt_pole_chart_qry"]
    assert rows[0]["dt"] < day.strftime("%Y%m%d")


# -- rate limit -------------------------------------------------------------------------------
def test_rate_limit_is_per_app_key_and_api_id(make_sim):
    s = make_sim(rate=2.0, burst=1)
    k = KiwoomHTTP(s.url)
    assert k.issue().status_code == 200
    statuses = [k.daily("005930", "20251128").status_code for _ in range(4)]
    assert statuses[0] == 200 and 429 in statuses
    r = k.daily("005930", "20251128")
    assert r.status_code == 429 and rc_detail(r) == (5, "1700") and "ka10081" in r.json()["return_msg"]
    assert k.call("ka10099", {"mrkt_tp": "0"}).status_code == 200  # another api-id has its own bucket
    other = KiwoomHTTP(s.url, appkey="other-app")
    assert other.issue().status_code == 200
    assert other.daily("005930", "20251128").status_code == 200  # another app key too
    time.sleep(0.55)
    assert k.daily("005930", "20251128").status_code == 200
    st = s.stats()
    assert st["rate_limited"]["ka10081"] == statuses.count(429) + 1
    assert st["requests"]["ka10081"] == 7


def test_token_calls_are_rate_limited_too(make_sim):
    s = make_sim(rate=1.0, burst=1)
    k = KiwoomHTTP(s.url)
    assert k.issue().status_code == 200
    assert k.issue().status_code == 429
    assert s.stats()["rate_limited"] == {"au10001": 1}


def test_no_limit_when_rate_is_none(make_sim):
    s = make_sim(rate=None)
    k = KiwoomHTTP(s.url)
    k.issue()
    assert all(k.call("ka10099", {"mrkt_tp": "8"}).status_code == 200 for _ in range(30))


# -- controls -----------------------------------------------------------------------------------
def test_control_endpoints(sim, kiwoom):
    kiwoom.daily("005930", "20251128")
    st = httpx.get(sim.url + "/_sim/stats").json()
    assert st["requests"] == {"au10001": 1, "ka10081": 1} and st["token_issues"] == 1
    httpx.get(sim.url + "/_sim/health")
    assert httpx.get(sim.url + "/_sim/stats").json()["total_requests"] == 2  # controls are not counted
    assert httpx.post(sim.url + "/_sim/reset").json() == {"ok": True}
    assert httpx.get(sim.url + "/_sim/stats").json()["total_requests"] == 0
    c = httpx.post(sim.url + "/_sim/clock", json={"advance_sessions": 1}).json()
    assert c["now"].startswith("2025-12-01T20:30") and c["frozen"]  # Friday -> Monday
    c = httpx.post(sim.url + "/_sim/clock", json={"advance_seconds": -3600}).json()
    assert c["now"].startswith("2025-12-01T19:30")
    c = httpx.post(sim.url + "/_sim/clock", json={"now": "2025-06-02T10:00", "frozen": True}).json()
    assert c["now"] == "2025-06-02T10:00:00+09:00"
    c = httpx.post(sim.url + "/_sim/clock", json={"now": "2025-06-02T10:00+09:00", "frozen": False}).json()
    time.sleep(0.05)
    assert not c["frozen"] and sim.clock.now() > dt.datetime(2025, 6, 2, 10, 0, tzinfo=KST)
    f = httpx.post(sim.url + "/_sim/faults", json={"kind": "http_error", "count": 2, "api_id": "ka10081"}).json()
    assert f["fault"]["kind"] == "http_error" and len(f["faults"]) == 1
    assert httpx.get(sim.url + "/_sim/faults").json()["faults"][0]["count"] == 2
    assert httpx.post(sim.url + "/_sim/faults", json={"clear": True}).json()["cleared"] == 1
    assert httpx.post(sim.url + "/_sim/faults", json={"kind": "no-such"}).status_code == 400
    assert httpx.get(sim.url + "/_sim/nothing").status_code == 404
    assert httpx.get(sim.url + "/_sim/stats").json()["total_requests"] == 0


def test_clock_ticks_when_not_frozen(make_sim):
    s = make_sim(now="2025-11-27T10:00:00+09:00", frozen=False)
    a = s.clock.now()
    time.sleep(0.05)
    assert s.clock.now() > a


# -- in-process transport and the CLI entry ---------------------------------------------------
def test_in_process_transport_shares_the_protocol(sim_market, monkeypatch):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    transport = in_process_transport(sim_market)
    assert isinstance(transport, SimTransport)
    k = KiwoomHTTP("http://simulator.invalid", transport=transport)
    body = k.issue().json()
    assert body["expires_dt"] == "20251129203000"  # the clock follows FINDER_NOW
    rows, pages = k.walk("069500", "20251128")
    pd.testing.assert_frame_equal(rows_frame(rows), sim_market.bars("069500", "20251128", True, now=SIM_NOW))
    errors = []

    def worker():
        try:
            for _ in range(10):
                assert k.daily("005930", "20251128").json()["return_code"] == 0
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert transport.app.stats()["requests"]["ka10081"] == pages + 60


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_serve_prints_its_url_and_stops_on_ctrl_c(sigint, tmp_path):
    """Also when started with SIGINT ignored, as from a background job of a script (then Python never
    raises KeyboardInterrupt; a CI run started that way hung here until serve() handled SIGINT itself)."""
    code = "from finder.sim import serve; serve(port=0, now='2025-11-28T20:30+09:00')"
    disposition = signal.SIG_IGN if sigint == "ignored" else signal.SIG_DFL
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        assert httpx.get(url + "/_sim/health").json()["ok"] is True
        proc.send_signal(signal.SIGINT)
        try:
            code_ = proc.wait(timeout=60)  # a bound for a hung process on a busy machine, not a timing goal
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            proc.wait(timeout=30)
            raise AssertionError(f"the simulator did not stop on SIGINT:\n{proc.stderr.read()[-4000:]}") from None
        assert code_ == 0, proc.stderr.read()[-4000:]
        with pytest.raises(httpx.ConnectError):  # the port is closed
            httpx.get(url + "/_sim/health")
    finally:
        if proc.poll() is None:
            proc.kill()

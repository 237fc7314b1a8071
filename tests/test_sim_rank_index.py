"""The simulator's ka10032 (traded-value ranking) and ka20006 (index daily bars), at the wire level.

A bare httpx caller (``kiwoom`` fixture) talks to a real server; expected
values are derived from the simulator's market, never hard-coded.
"""

from __future__ import annotations

import numpy as np
import pytest

from finder.sim._aggregates import index_series, members


def _rank(kiwoom, body, key=None):
    return kiwoom.call("ka10032", body, key=key, path="/api/dostk/rkinfo")


def _index(kiwoom, body, key=None):
    return kiwoom.call("ka20006", body, key=key, path="/api/dostk/chart")


def _rank_all(kiwoom, body):
    rows, key, pages = [], None, 0
    while True:
        r = _rank(kiwoom, body, key)
        assert r.status_code == 200 and r.json()["return_code"] == 0, r.text[:300]
        pages += 1
        rows += r.json()["trde_prica_upper"]
        if r.headers.get("cont-yn") != "Y":
            return rows, pages
        key = r.headers["next-key"]
        assert pages < 20


def test_ranking_is_sorted_by_value_and_pages(kiwoom, sim_market):
    rows, pages = _rank_all(kiwoom, {"mrkt_tp": "000", "mang_stk_incls": "0", "stex_tp": "1"})
    values = [int(r["trde_prica"]) for r in rows]
    assert values == sorted(values, reverse=True)
    assert [int(r["now_rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert pages == -(-len(rows) // 100) and pages >= 2
    codes = [r["stk_cd"] for r in rows]
    assert len(set(codes)) == len(codes)
    day = np.datetime64("2025-11-28")
    traded = [c for c in sim_market.codes if sim_market.is_listed(c, day)
              and day in sim_market.stock(c).dates and sim_market.stock(c).vol[
                  np.searchsorted(sim_market.stock(c).dates, day)] > 0]
    assert set(codes) == set(traded)
    top = sim_market.stock(rows[0]["stk_cd"])
    i = int(np.searchsorted(top.dates, day))
    assert int(rows[0]["trde_prica"]) == int(round(top.value[i] / 1e6))
    assert abs(int(rows[0]["cur_prc"])) == int(top.c[i])


def test_ranking_markets_and_venue_suffixes(kiwoom, sim_market):
    kospi, _ = _rank_all(kiwoom, {"mrkt_tp": "001", "mang_stk_incls": "0", "stex_tp": "1"})
    kosdaq, _ = _rank_all(kiwoom, {"mrkt_tp": "101", "mang_stk_incls": "0", "stex_tp": "1"})
    assert {sim_market.info(r["stk_cd"]).market for r in kospi} <= {"KOSPI", "ETF"}
    assert {sim_market.info(r["stk_cd"]).market for r in kosdaq} == {"KOSDAQ"}
    both, _ = _rank_all(kiwoom, {"mrkt_tp": "001", "mang_stk_incls": "0", "stex_tp": "3"})
    assert all(r["stk_cd"].endswith("_AL") for r in both)
    assert [r["stk_cd"][:6] for r in both] == [r["stk_cd"] for r in kospi]
    nxt, _ = _rank_all(kiwoom, {"mrkt_tp": "001", "mang_stk_incls": "0", "stex_tp": "2"})
    assert all(r["stk_cd"].endswith("_NX") and sim_market.info(r["stk_cd"][:6]).nxt_enable for r in nxt)


@pytest.mark.parametrize("body,field", [
    ({"mang_stk_incls": "0", "stex_tp": "1"}, "mrkt_tp"),
    ({"mrkt_tp": "002", "mang_stk_incls": "0", "stex_tp": "1"}, "mrkt_tp"),
    ({"mrkt_tp": "001", "mang_stk_incls": "0", "stex_tp": "9"}, "stex_tp"),
    ({"mrkt_tp": "001", "stex_tp": "1"}, "mang_stk_incls"),
])
def test_ranking_input_errors(kiwoom, body, field):
    r = _rank(kiwoom, body)
    assert r.status_code == 200 and r.json()["return_code"] == 2 and field in r.json()["return_msg"]


def test_ranking_is_live_while_open(make_sim, sim_market):
    from conftest import KiwoomHTTP

    sim = make_sim(now="2025-11-27T10:00:00+09:00")
    k = KiwoomHTTP(sim.url)
    k.issue()
    body = {"mrkt_tp": "000", "mang_stk_incls": "0", "stex_tp": "1"}
    at10 = {r["stk_cd"]: int(r["now_trde_qty"]) for r in _rank_all(k, body)[0]}
    sim.set_now("2025-11-27T14:00:00+09:00")
    at14 = {r["stk_cd"]: int(r["now_trde_qty"]) for r in _rank_all(k, body)[0]}
    sim.set_now("2025-11-27T08:00:00+09:00")
    before_open = _rank_all(k, body)[0]
    k.close()
    code = next(iter(at10))
    assert at14[code] > at10[code]  # volume grows through the session
    st = sim_market.stock(code)
    assert at14[code] < int(st.vol[np.searchsorted(st.dates, np.datetime64("2025-11-27"))])
    # Before the open the ranking is the previous session's, final.
    st0 = sim_market.stock(before_open[0]["stk_cd"])
    i = int(np.searchsorted(st0.dates, np.datetime64("2025-11-26")))
    assert int(before_open[0]["now_trde_qty"]) == int(st0.vol[i])


def test_index_rows_encoding_paging_and_cutoff(kiwoom, sim_market):
    r = _index(kiwoom, {"inds_cd": "001", "base_dt": "20251001"})
    assert r.status_code == 200 and r.json()["return_code"] == 0
    page = r.json()["inds_dt_pole_qry"]
    assert len(page) == 600 and r.headers["cont-yn"] == "Y" and r.headers["next-key"]
    assert page[0]["dt"] == "20251001" and page[0]["dt"] > page[1]["dt"]  # newest first
    s = index_series(sim_market, "001")
    i = int(np.searchsorted(s.dates, np.datetime64("2025-10-01")))
    assert abs(int(page[0]["cur_prc"])) == int(round(s.c[i] * 100))  # x100, no decimal point
    assert page[0]["cur_prc"][0] in "+-" or int(round(s.c[i] * 100)) == int(round(s.c[i - 1] * 100))
    assert all(set(v) <= set("+-0123456789") for row in page for k, v in row.items()
               if k in ("cur_prc", "open_pric", "high_pric", "low_pric", "trde_qty", "trde_prica"))
    r2 = _index(kiwoom, {"inds_cd": "001", "base_dt": "20251001"}, key=r.headers["next-key"])
    page2 = r2.json()["inds_dt_pole_qry"]
    assert page2[0]["dt"] < page[-1]["dt"]
    # No row after the simulator's clock (2025-11-28 20:30), whatever base_dt says.
    future = _index(kiwoom, {"inds_cd": "101", "base_dt": "20261231"}).json()["inds_dt_pole_qry"]
    assert future[0]["dt"] == "20251128"


def test_index_unknown_code_and_bad_input(kiwoom):
    blank = _index(kiwoom, {"inds_cd": "999", "base_dt": "20251001"}).json()
    assert blank["return_code"] == 0 and all(v == "" for v in blank["inds_dt_pole_qry"][0].values())
    assert _index(kiwoom, {"base_dt": "20251001"}).json()["return_code"] == 2
    assert _index(kiwoom, {"inds_cd": "001", "base_dt": "2025-10-01"}).json()["return_code"] == 2


def test_index_is_cap_weighted_over_its_members(sim_market):
    s = index_series(sim_market, "201")
    assert s.cap_weighted and 1 <= len(s.members) <= 200
    kospi = members(sim_market, "001")
    assert set(s.members) <= set(kospi)
    assert all(sim_market.info(c).market == "KOSPI" for c in kospi)
    # A split in a member moves no index: returns are taken against the reference price.
    d = np.datetime64("2024-03-04")
    j = int(np.searchsorted(s.dates, d))
    w = r = 0.0
    for c in s.members:
        st = sim_market.stock(c)
        i = int(np.searchsorted(st.dates, s.dates[j]))
        if i < len(st.dates) and st.dates[i] == s.dates[j] and st.base[i] > 0:
            cap = float(st.base[i]) * float(st.shares[i])
            w += cap
            r += cap * (st.c[i] / st.base[i] - 1)
    assert s.c[j] / s.c[j - 1] - 1 == pytest.approx(r / w, rel=1e-9)


def test_replay_market_serves_an_equal_weighted_index():
    from pathlib import Path

    from finder.sim import ReplayMarket

    sample = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "krx_daily_sample.csv.gz"
    if not sample.exists():
        pytest.skip(f"real KRX bars not found at {sample} (../shared/data next to the checkout)")
    market = ReplayMarket.from_csv(sample)
    s = index_series(market, "001")
    assert not s.cap_weighted and len(s.members) == len(market.codes)
    # Equal weights: each session's return is the plain mean of the members' close-to-reference returns.
    j = len(s.dates) - 1
    rets = []
    for c in s.members:
        st = market.stock(c)
        i = int(np.searchsorted(st.dates, s.dates[j]))
        if i < len(st.dates) and st.dates[i] == s.dates[j]:
            rets.append(st.c[i] / st.base[i] - 1)
    assert s.c[j] / s.c[j - 1] - 1 == pytest.approx(float(np.mean(rets)), rel=1e-9)
    assert len(index_series(market, "101").dates) == 0  # every replayed stock is listed under KOSPI

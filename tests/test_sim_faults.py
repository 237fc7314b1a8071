"""Every injected fault is observable over real HTTP (and the transport-level ones in-process too)."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import SIM_NOW, KiwoomHTTP
from finder._models import detail_code
from finder.sim import FAULT_KINDS, Faults, SimApp, SimTransport


def rc(r: httpx.Response) -> tuple[int, str | None]:
    body = r.json()
    return body["return_code"], detail_code(body["return_msg"])


def arm(sim, **spec) -> dict:
    r = httpx.post(sim.url + "/_sim/faults", json=spec)
    assert r.status_code == 200, r.text
    return r.json()["fault"]


def test_http_errors_burst_then_recover(sim, kiwoom):
    arm(sim, kind="http_error", count=3, api_id="ka10081")
    statuses = [kiwoom.daily("005930", "20251128").status_code for _ in range(4)]
    assert statuses[:3] == [500, 502, 503] and statuses[3] == 200
    assert kiwoom.call("ka10099", {"mrkt_tp": "8"}).status_code == 200  # other api-ids untouched
    arm(sim, kind="http_error", count=1, status=504)
    assert kiwoom.call("ka10099", {"mrkt_tp": "8"}).status_code == 504
    assert sim.stats()["faults"] == {"http_error": 4}


def test_slow_answers_and_timeouts(sim, kiwoom):
    arm(sim, kind="slow", count=1, seconds=0.3)
    t0 = time.perf_counter()
    assert kiwoom.daily("005930", "20251128").status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    arm(sim, kind="slow", count=1, seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        kiwoom.http.post("/api/dostk/chart", json={"stk_cd": "005930", "base_dt": "20251128", "upd_stkpc_tp": "1"},
                         headers={"api-id": "ka10081", "authorization": f"Bearer {kiwoom.token}"}, timeout=0.2)


def test_dropped_connection_mid_body(sim, kiwoom):
    arm(sim, kind="drop", count=1, api_id="ka10081")
    with pytest.raises(httpx.RemoteProtocolError):
        kiwoom.daily("005930", "20251128")
    assert kiwoom.daily("005930", "20251128").json()["return_code"] == 0  # the next one is whole


def test_maintenance_page(sim, kiwoom):
    arm(sim, kind="maintenance", count=1)
    r = kiwoom.daily("005930", "20251128")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "점검" in r.text
    with pytest.raises(ValueError):
        r.json()


def test_rate_storm_ignores_the_rate(make_sim):
    s = make_sim(rate=None)
    k = KiwoomHTTP(s.url)
    k.issue()
    httpx.post(s.url + "/_sim/faults", json={"kind": "rate_storm", "count": 3, "api_id": "ka10081"})
    got = [k.daily("005930", "20251128") for _ in range(4)]
    assert [r.status_code for r in got] == [429, 429, 429, 200]
    assert rc(got[0]) == (5, "1700")
    st = s.stats()
    assert st["faults"] == {"rate_storm": 3} and st["rate_limited"] == {"ka10081": 3}


def test_token_invalidated_mid_walk(sim, kiwoom):
    arm(sim, kind="token_invalidate", count=1, api_id="ka10081")
    first = kiwoom.daily("005930", "20251128")
    assert first.json()["return_code"] == 0  # the first page is not a continuation
    second = kiwoom.daily("005930", "20251128", key=first.headers["next-key"])
    assert second.status_code == 200 and rc(second) == (3, "8005")
    assert rc(kiwoom.daily("005930", "20251128")) == (3, "8005")  # the token is dead for good
    kiwoom.issue()
    again = kiwoom.daily("005930", "20251128", key=first.headers["next-key"])
    assert again.json()["stk_dt_pole_chart_qry"][0]["dt"] < first.json()["stk_dt_pole_chart_qry"][-1]["dt"]
    st = sim.stats()
    assert st["faults"] == {"token_invalidate": 1} and st["auth_failures"] == 2 and st["token_issues"] == 2


def test_empty_page_with_cont_yes(sim, kiwoom):
    arm(sim, kind="empty_page", count=1, api_id="ka10081")
    r = kiwoom.daily("069500", "20251128")
    assert r.json()["stk_dt_pole_chart_qry"] == [] and r.headers["cont-yn"] == "Y" and r.headers["next-key"]
    arm(sim, kind="empty_page", count=1, api_id="ka10099")
    r = kiwoom.call("ka10099", {"mrkt_tp": "8"})
    assert r.json()["list"] == [] and r.headers["cont-yn"] == "Y"
    r = kiwoom.call("ka10099", {"mrkt_tp": "8"}, key=r.headers["next-key"])
    assert len(r.json()["list"]) > 10 and r.headers["cont-yn"] == "N"  # walking on loses nothing


def test_repeated_next_key(sim, kiwoom):
    arm(sim, kind="repeat_key", count=10, api_id="ka10081")
    first = kiwoom.daily("005930", "20251128")
    key = first.headers["next-key"]
    for _ in range(3):
        r = kiwoom.daily("005930", "20251128", key=key)
        assert r.headers["cont-yn"] == "Y" and r.headers["next-key"] == key
        assert len(r.json()["stk_dt_pole_chart_qry"]) == 600
    assert sim.stats()["faults"]["repeat_key"] == 4


def test_blank_rows_and_extra_fields(sim, kiwoom):
    arm(sim, kind="blank_rows", count=1, api_id="ka10081")
    rows = kiwoom.daily("005930", "20251128").json()["stk_dt_pole_chart_qry"]
    assert rows and all(v == "" for r in rows for v in r.values())
    arm(sim, kind="extra_fields", count=1, api_id="ka10081")
    rows = kiwoom.daily("005930", "20251128").json()["stk_dt_pole_chart_qry"]
    assert all({"upd_rt", "bic_inds_tp", "pred_close_pric", "zz_new_field"} <= set(r) for r in rows)
    assert rows[0]["cur_prc"] != ""
    arm(sim, kind="extra_fields", count=1, api_id="ka10095")
    q = kiwoom.call("ka10095", {"stk_cd": "005930"}).json()["atn_stk_infr"][0]
    assert "zz_new_field" in q and q["stk_cd"] == "005930"


def test_probability_and_scope(sim, kiwoom):
    arm(sim, kind="http_error", probability=0.0)
    assert all(kiwoom.call("ka10099", {"mrkt_tp": "8"}).status_code == 200 for _ in range(5))
    httpx.post(sim.url + "/_sim/faults", json={"clear": True})
    arm(sim, kind="http_error", probability=1.0, count=2)
    assert [kiwoom.call("ka10099", {"mrkt_tp": "8"}).status_code for _ in range(3)] == [500, 502, 200]
    # a page fault does not fire (or use up its count) on an operation without pages
    arm(sim, kind="empty_page", count=1)
    assert kiwoom.call("ka10095", {"stk_cd": "005930"}).json()["atn_stk_infr"][0]["stk_cd"] == "005930"
    assert kiwoom.daily("005930", "20251128").json()["stk_dt_pole_chart_qry"] == []


def test_faults_armed_at_start(make_sim):
    s = make_sim(faults=[{"kind": "http_error", "count": 1, "api_id": "au10001"}])
    k = KiwoomHTTP(s.url)
    assert k.issue().status_code == 500
    assert k.issue().status_code == 200
    with pytest.raises(ValueError):
        Faults([{"kind": "bogus"}])
    assert "drop" in FAULT_KINDS and len(FAULT_KINDS) == 10


def test_in_process_transport_acts_out_faults(sim_market):
    app = SimApp(sim_market, rate=None, now=SIM_NOW)
    k = KiwoomHTTP("http://simulator.invalid", transport=SimTransport(app))
    k.issue()
    app.faults.add("drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        k.daily("005930", "20251128")
    app.faults.add("slow", count=1, seconds=5.0)
    # The behaviour is the ReadTimeout itself: the client gave up instead of waiting out the 5 s answer.
    with pytest.raises(httpx.ReadTimeout):
        k.http.post("/api/dostk/chart", json={}, headers={"api-id": "ka10081"}, timeout=0.1)
    assert app.stats()["faults"] == {"drop": 1, "slow": 1}
    app.reset_stats()
    assert app.stats()["total_requests"] == 0

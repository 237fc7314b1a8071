"""``request(api_id, path, body, headers=None)``: the public door for operations finder does not model.

Real HTTP against the simulator; counts come from the simulator's statistics.
"""

from __future__ import annotations

import pytest

from finder._exceptions import InvalidInputError, InvalidRequestError, StockNotFoundError
from _support import client

SIM_NOW = "2025-11-28T20:30:00+09:00"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def api(sim, tmp_path):
    with client(sim, tmp_path / "cache", cache=False) as c:
        yield c


def test_request_returns_the_json_and_lower_case_headers(sim, api, sim_market):
    code = next(c for c in sim_market.codes if sim_market.info(c).market == "KOSPI")
    reply = api.request("ka10081", "/api/dostk/chart", {"stk_cd": code, "base_dt": "20251001", "upd_stkpc_tp": "1"})
    data, headers = reply                       # a NamedTuple: both spellings work
    assert data is reply.data and headers is reply.headers
    assert data["return_code"] == 0
    rows = data["stk_dt_pole_chart_qry"]
    assert rows[0]["dt"] == "20251001"          # newest first, straight from the wire
    assert all(k == k.lower() for k in headers)
    # The paging state is in the headers; follow it with the headers argument.
    assert headers["cont-yn"] == "Y" and headers["next-key"]
    page2, h2 = api.request("ka10081", "/api/dostk/chart",
                            {"stk_cd": code, "base_dt": "20251001", "upd_stkpc_tp": "1"},
                            headers={"cont-yn": "Y", "next-key": headers["next-key"]})
    assert page2["stk_dt_pole_chart_qry"][0]["dt"] < rows[-1]["dt"]
    st = sim.stats()
    assert st["requests"]["ka10081"] == 2 and st["token_issues"] == 1


def test_request_is_authenticated_and_re_issues_once(sim, api, sim_market):
    body = {"stk_cd": sim_market.codes[0], "base_dt": "20251001", "upd_stkpc_tp": "1"}
    _, headers = api.request("ka10081", "/api/dostk/chart", body)
    # The simulator supersedes the token on a continuation (as another login would).
    sim.faults.add("token_invalidate", count=1, api_id="ka10081")
    data, _ = api.request("ka10081", "/api/dostk/chart", body, headers={"cont-yn": "Y", "next-key": headers["next-key"]})
    assert data["stk_dt_pole_chart_qry"]
    st = sim.stats()
    assert st["token_issues"] == 2 and st["auth_failures"] == 1


def test_request_is_retried_on_429(sim, api):
    sim.faults.add("rate_storm", count=2, api_id="ka10099")
    data, _ = api.request("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})
    assert data["list"]
    assert sim.stats()["rate_limited"].get("ka10099", 0) == 2


def test_request_maps_return_codes_to_typed_errors(sim, api):
    with pytest.raises(InvalidRequestError) as err:
        api.request("ka10081", "/api/dostk/chart", {"stk_cd": "005930"})   # base_dt missing: 2 / 1511
    assert err.value.return_code == 2
    with pytest.raises(StockNotFoundError):
        api.request("ka10081", "/api/dostk/chart", {"stk_cd": "999990", "base_dt": "20251001", "upd_stkpc_tp": "1"})


@pytest.mark.parametrize("args,needle", [
    (("KA10081", "/api/dostk/chart", {}), "api_id"),
    (("ka10081", "api/dostk/chart", {}), "path"),
    (("ka10081", "https://evil.example/x", {}), "path"),
    (("ka10081", "/api/dostk/chart", ["x"]), "body"),
    (("ka10081", "/api/dostk/chart", {"x": object()}), "JSON"),
    (("ka10081", "/api/dostk/chart", {}, {"authorization": "Bearer x"}), "authorization"),
    (("ka10081", "/api/dostk/chart", {}, {"api-id": "ka10099"}), "api-id"),
    (("ka10081", "/api/dostk/chart", {}, {"cont-yn": 1}), "headers"),
])
def test_bad_request_arguments_send_nothing(sim, api, args, needle):
    sim.reset_stats()
    with pytest.raises(InvalidInputError, match=needle):
        api.request(*args)
    assert sim.stats()["total_requests"] == 0

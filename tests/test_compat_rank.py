"""The client's ka10032 call (``KiwoomAPI.get_top_traded``) over real HTTP: paging, limits, bad input, errors."""

from __future__ import annotations

import pytest

import finder
from finder._exceptions import InvalidInputError
from _support import client

SIM_NOW = "2025-11-28T20:30:00+09:00"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE"):
        monkeypatch.delenv(var, raising=False)


def _n(sim) -> int:
    return int(sim.stats()["requests"].get("ka10032", 0))


def test_full_ranking_follows_every_page(sim, kiwoom, tmp_path):
    wire, key = [], None
    while True:
        r = kiwoom.call("ka10032", {"mrkt_tp": "000", "mang_stk_incls": "0", "stex_tp": "1"}, key=key,
                        path="/api/dostk/rkinfo")
        wire += r.json()["trde_prica_upper"]
        if r.headers.get("cont-yn") != "Y":
            break
        key = r.headers["next-key"]
    with client(sim, tmp_path / "cache", cache=False) as api:
        sim.reset_stats()
        frame = api.get_top_traded("ALL")
        assert _n(sim) == -(-len(wire) // 100)
    assert list(frame.columns) == ["rank", "code", "name", "price", "change_rate", "volume", "value"]
    assert list(frame["code"]) == [r["stk_cd"] for r in wire]
    assert list(frame["value"]) == [int(r["trde_prica"]) * 1_000_000 for r in wire]
    assert list(frame["price"]) == [abs(float(r["cur_prc"])) for r in wire]
    assert (frame["price"] > 0).all() and list(frame["rank"]) == list(range(1, len(wire) + 1))


def test_limit_stops_paging_early(sim, tmp_path):
    with client(sim, tmp_path / "cache", cache=False) as api:
        sim.reset_stats()
        top = api.get_top_traded("KOSPI", 30)
        assert len(top) == 30 and _n(sim) == 1


@pytest.mark.parametrize("kwargs", [{"market": "NYSE"}, {"market": 1}, {"exchange": "LSE"}, {"managed": "no"},
                                    {"limit": 0}, {"limit": 2.5}])
def test_bad_input_refused_before_any_request(sim, tmp_path, kwargs):
    with client(sim, tmp_path / "cache", cache=False) as api:
        sim.reset_stats()
        with pytest.raises(InvalidInputError):
            api.get_top_traded(**{"market": "KOSPI", **kwargs})
    assert sim.stats()["total_requests"] == 0


def test_same_retries_and_errors_as_every_call(make_sim, tmp_path):
    sim = make_sim()
    with client(sim, tmp_path / "cache", cache=False, max_retries=2, backoff=0.01) as api:
        sim.faults.add(kind="http_error", count=1, api_id="ka10032")
        assert len(api.get_top_traded("KOSDAQ", 5)) == 5  # retried once
        sim.faults.add(kind="http_error", count=5, api_id="ka10032")
        with pytest.raises(finder.TransportError):
            api.get_top_traded("KOSDAQ", 5)
    assert sim.stats()["faults"]["http_error"] == 4

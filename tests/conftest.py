"""Shared fixtures.  The simulator fixtures (``sim_market``, ``make_sim``, ``sim``, ``kiwoom``) live here.

* ``sim_market``: the per-process synthetic market (session scope; built once).
* ``make_sim(**kwargs)``: starts a ``Simulator`` on a free port and stops it
  at teardown.  Defaults: the shared market, ``rate=200``, ``burst=20`` and a
  clock frozen at ``SIM_NOW`` (Friday 2025-11-28, 20:30 KST, after the
  cut-off), so tests are fast and deterministic; any keyword overrides them.
* ``sim``: ``make_sim()`` with the defaults.
* ``kiwoom``: a plain-httpx caller logged in to ``sim`` (no finder client).
* ``_finder_state_dir`` (autouse): ``FINDER_STATE_DIR`` set to a fresh tmp folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import httpx

import pytest

SIM_NOW = "2025-11-28T20:30:00+09:00"


class KiwoomHTTP:
    """A bare Kiwoom REST caller over httpx, for the simulator's own tests."""

    def __init__(self, url: str, appkey: str = "test-app", secretkey: str = "test-secret",
                 transport: httpx.BaseTransport | None = None, timeout: float = 10.0) -> None:
        self.http = httpx.Client(base_url=url, transport=transport, timeout=timeout)
        self.appkey, self.secretkey = appkey, secretkey
        self.token: str | None = None

    def issue(self) -> httpx.Response:
        r = self.http.post("/oauth2/token", json={"grant_type": "client_credentials", "appkey": self.appkey,
                                                  "secretkey": self.secretkey}, headers={"api-id": "au10001"})
        if r.status_code == 200 and r.json().get("return_code") == 0:
            self.token = r.json()["token"]
        return r

    def call(self, api_id: str, body: dict, key: str | None = None, token: str | None = None,
             path: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json;charset=UTF-8", "api-id": api_id,
                   "authorization": f"Bearer {token or self.token}"}
        if key is not None:
            headers["cont-yn"] = "Y"
            headers["next-key"] = key
        path = path or ("/api/dostk/chart" if api_id == "ka10081" else "/api/dostk/stkinfo")
        return self.http.post(path, json=body, headers=headers)

    def daily(self, code: str, base_dt: str, adjusted: bool = True, key: str | None = None) -> httpx.Response:
        return self.call("ka10081", {"stk_cd": code, "base_dt": base_dt, "upd_stkpc_tp": "1" if adjusted else "0"}, key)

    def walk(self, code: str, base_dt: str, adjusted: bool = True, max_pages: int = 40) -> tuple[list, int]:
        """Every ka10081 row (newest first) and the page count, following cont-yn / next-key."""
        rows, key, pages = [], None, 0
        while pages < max_pages:
            r = self.daily(code, base_dt, adjusted, key)
            assert r.status_code == 200 and r.json()["return_code"] == 0, r.text[:300]
            pages += 1
            rows += r.json()["stk_dt_pole_chart_qry"]
            if r.headers.get("cont-yn") != "Y" or not r.headers.get("next-key"):
                return rows, pages
            key = r.headers["next-key"]
        raise AssertionError(f"walk of {code} did not end in {max_pages} pages")

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="session")
def _krx_session_lists(tmp_path_factory) -> dict[int, Path]:
    """The XKRX session lists finder keeps in the state folder, built once per test process.

    Building the XKRX calendar costs a new process about two seconds; finder keeps the
    result in the user's state folder, but every test gets a fresh state folder, so
    without this each of the suite's subprocesses would build it again.
    """
    import numpy as np

    from finder import calendar

    folder = tmp_path_factory.mktemp("krx")
    out = {}
    import datetime

    # The lists finder asks for: FINDER_NOW in 2025 (2026) and the wall clock's year, one year ahead.
    years = sorted({2026, datetime.date.today().year + 1})
    latest = calendar._sessions_array(years[-1])  # one build; the others are its prefixes
    for end_year in years:
        path = folder / f"{end_year}.npy"
        np.save(path, latest[latest <= np.datetime64(f"{end_year}-12-31")], allow_pickle=False)
        out[end_year] = path
    return out


@pytest.fixture(autouse=True)
def _finder_state_dir(tmp_path_factory, monkeypatch, _krx_session_lists):
    """Tokens and pacing slots in a fresh tmp folder per test: never the user's real state folder.

    It holds the session lists built once per test process (see ``_krx_session_lists``).
    """
    import shutil

    from finder import calendar

    monkeypatch.setenv("FINDER_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    for end_year, src in _krx_session_lists.items():
        dest = calendar._sessions_file(end_year)
        if dest is not None:
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


@pytest.fixture(scope="session")
def sim_market():
    from finder.sim import default_market

    return default_market()


@pytest.fixture
def make_sim(sim_market) -> Callable[..., Any]:
    from finder.sim import Simulator

    started = []

    def factory(**kwargs: Any):
        kwargs.setdefault("market", sim_market)
        kwargs.setdefault("rate", 200.0)
        kwargs.setdefault("burst", 20)
        kwargs.setdefault("now", SIM_NOW)
        s = Simulator(**kwargs).start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


@pytest.fixture
def sim(make_sim):
    return make_sim()


@pytest.fixture
def kiwoom(sim):
    k = KiwoomHTTP(sim.url)
    assert k.issue().status_code == 200
    yield k
    k.close()
